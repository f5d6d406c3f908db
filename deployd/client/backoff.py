"""Timing of polls: exponential backoff with full jitter, a jittered interval, `Retry-After`.

Pure functions of their inputs and a `random.Random`, so tests can seed them.
"""

from __future__ import annotations

import random
from email.utils import parsedate_to_datetime


class Backoff:
    """Delays after consecutive failures: the n-th (from 0) is uniform in
    [0, min(ceiling, base * 2**n)].

    Full jitter spreads a fleet that failed together over the whole window instead of letting it
    retry in step; the ceiling bounds the wait however long the outage lasts.
    """

    def __init__(self, base: float, ceiling: float, rng: random.Random) -> None:
        if base <= 0 or ceiling < base:
            raise ValueError("backoff needs 0 < base <= ceiling")
        self.base = base
        self.ceiling = ceiling
        self.rng = rng
        self.failures = 0

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before trying again."""
        # Cap the exponent so 2**n never overflows during a very long outage.
        window = min(self.ceiling, self.base * 2 ** min(self.failures, 60))
        self.failures += 1
        return self.rng.uniform(0, window)

    def reset(self) -> None:
        """Forget past failures (after a success)."""
        self.failures = 0


def jittered(interval: float, jitter: float, rng: random.Random) -> float:
    """`interval` scaled by a factor drawn uniformly from [1 - jitter, 1 + jitter]."""
    return interval * rng.uniform(1 - jitter, 1 + jitter)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from `Retry-After` (delta-seconds or HTTP-date); None if unusable."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)
