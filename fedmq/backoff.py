"""Capped, jittered exponential backoff as a pure function (the caller supplies randomness).

Shared by the aggregator (partial jitter: it should come back soon) and devices
(full jitter, ``jitter=1``: thousands that lost one broker spread over the window).
"""

from __future__ import annotations

from fedmq.errors import ConfigError


def backoff_delay(
    attempt: int, *, base: float = 0.2, cap: float = 30.0, jitter: float = 0.5, u: float = 1.0
) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based).

    Jitter: ``min(cap, base * 2**attempt)`` scaled by ``1 - jitter * u`` with ``u``
    drawn uniformly from [0, 1) by the caller, so many clients restarted by one broker
    outage do not reconnect in lockstep. ``jitter=0`` gives the plain capped exponential.
    """
    if attempt < 0 or base <= 0 or cap <= 0 or not 0.0 <= jitter <= 1.0 or not 0.0 <= u <= 1.0:
        raise ConfigError("backoff needs attempt >= 0, base > 0, cap > 0, jitter and u in [0, 1]")
    ceiling = min(cap, base * 2.0 ** min(attempt, 60))
    return ceiling * (1.0 - jitter * u) if jitter else ceiling
