"""Hypothesis budgets of the ledger tests.

The default keeps the whole area within a few minutes on two cores;
ROLLON_LEDGER_HYPOTHESIS=deep runs many more examples, for a night-time hunt.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_DEEP = os.environ.get("ROLLON_LEDGER_HYPOTHESIS", "") == "deep"

# Pure properties: cheap, so many examples. Database properties: real commits at each step.
PURE_PROPERTIES = settings(
    max_examples=2_000 if _DEEP else 100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DB_PROPERTIES = settings(
    max_examples=300 if _DEEP else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
