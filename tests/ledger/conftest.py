"""Fixtures of the ledger tests: a manual clock, a signing key and a Ledger on each database.

Hypothesis budgets: the profile `ledger-ci` (default) keeps the whole area within a few
minutes on two cores; ROLLON_LEDGER_HYPOTHESIS=deep runs many more examples, for a
night-time hunt.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from sqlalchemy.engine import Engine

from rollon.ledger.service import Ledger
from tests.ledger.builders import ManualClock

_DEEP = os.environ.get("ROLLON_LEDGER_HYPOTHESIS", "") == "deep"

# Pure properties: cheap, so many examples. Database properties: one real commit per step.
PURE_PROPERTIES = settings(
    max_examples=2_000 if _DEEP else 150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
DB_PROPERTIES = settings(
    max_examples=300 if _DEEP else 25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def signing_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def ledger(engine: Engine, clock: ManualClock, signing_key: Ed25519PrivateKey) -> Iterator[Ledger]:
    """A Ledger on a fresh database of each kind, with a clock the test moves by hand."""
    opened = Ledger(engine, signing_key=signing_key, clock_ns=clock, checkpoint_every=10)
    yield opened
    opened.close()
