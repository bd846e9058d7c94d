"""Capped exponential backoff with full jitter, as a pure function."""

from __future__ import annotations


def backoff_delay(attempt: int, jitter: float, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based); ``jitter`` in [0, 1).

    Full jitter (``jitter * min(cap, base * 2**attempt)``) spreads thousands of
    devices that lost the broker at the same moment over the whole window.
    """
    ceiling = min(cap, base * 2.0 ** min(attempt, 32))
    return max(0.0, min(1.0, jitter)) * ceiling
