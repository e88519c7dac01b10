"""What every benchmark suite returns, and how figures are summarised."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SuiteResult:
    """Figures (rates, latencies, sizes) and ratios (service / ceiling) of one suite."""

    figures: dict[str, float] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)


Suite = Callable[[bool], SuiteResult]  # called with quick=True in CI's smoke mode


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]
