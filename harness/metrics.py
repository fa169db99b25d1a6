"""Metric values and the aggregations shared by tasks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from statsmodels.stats.proportion import proportion_confint


@dataclass(frozen=True)
class MetricValue:
    name: str
    value: float | None
    n: int
    ci_low: float | None = None
    ci_high: float | None = None
    higher_is_better: bool = True
    details: dict[str, Any] = field(default_factory=dict)


def proportion(name: str, successes: int, n: int, *, higher_is_better: bool = True,
               alpha: float = 0.05, **details: Any) -> MetricValue:
    """k/n with a Wilson score interval (None when n == 0: nothing to estimate)."""
    if n == 0:
        return MetricValue(name, None, 0, higher_is_better=higher_is_better,
                           details={"k": 0, **details})
    low, high = proportion_confint(successes, n, alpha=alpha, method="wilson")
    return MetricValue(name, successes / n, n, float(low), float(high), higher_is_better,
                       {"k": successes, "interval": f"wilson {1 - alpha:.0%}", **details})
