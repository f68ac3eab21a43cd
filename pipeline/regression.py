"""Before and after a change point: did a failure cause appear or grow? (pure)

The same rule for the ``analyze`` report (log time, failures as a share of the firewall's TLS
sessions) and for the stream's detector (processing time, failures per alert window): a cause
*appeared* when it did not fail before the change and fails at least ``min_failures`` times
after it; it *grew* when it fails at least ``min_failures`` times after and its rate after is
at least ``factor`` times its rate before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

APPEARED = "appeared"
GREW = "grew"


@dataclass(frozen=True)
class Criteria:
    before_s: float = 3600.0  # the window before a change point
    after_s: float = 3600.0  # the window after it
    factor: float = 2.0
    min_failures: int = 5

    @classmethod
    def from_settings(cls, settings: Any) -> Criteria:
        return cls(
            before_s=settings.change_before_s,
            after_s=settings.change_after_s,
            factor=settings.change_growth_factor,
            min_failures=settings.change_min_failures,
        )


def verdict(
    before: int, before_rate: float, after: int, after_rate: float, criteria: Criteria
) -> str | None:
    """``appeared``, ``grew`` or None, from the failure counts and rates on each side (rates in
    any unit, the same on both sides)."""
    if after < criteria.min_failures:
        return None
    if before == 0:
        return APPEARED
    if before_rate > 0 and after_rate >= criteria.factor * before_rate:
        return GREW
    return None


def growth(before_rate: float, after_rate: float) -> float | None:
    """How many times the rate after is the rate before (None when there was none before)."""
    if before_rate <= 0:
        return None
    return after_rate / before_rate
