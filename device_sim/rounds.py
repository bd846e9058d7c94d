"""Sync rounds for the simulated fleet: which devices train on each model version.

The fleet's concurrency limit alone is not FedAvg: a device that finishes frees
its slot and another device trains on the same version, so a sync round would
close with the first finishers instead of waiting for its stragglers. With
``FleetSettings(rounds=True)`` each model version gets a cohort of ``size``
devices drawn at random (from the fleet's seed and the version) among the
devices that have data, and only they train on it; the next cohort starts when
the next version appears. In the ideal fleet every device is idle when a round
starts, so this is FedAvg's uniform client sampling. Pure and clock-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fedmq.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Rounds:
    """The cohort of every model version; device indices are task partitions."""

    size: int  # devices per round (the fleet's concurrency)
    eligible: tuple[int, ...]  # device indices that can train (they have data)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size < 1:
            raise ConfigError(f"a round needs at least one device, got {self.size}")

    @classmethod
    def for_sizes(cls, size: int, samples: Sequence[int], seed: int = 0) -> Rounds:
        """Rounds over the devices whose sample count (``samples[index]``) is positive."""
        return cls(size, tuple(i for i, n in enumerate(samples) if n > 0), seed)

    def cohort(self, version: int) -> frozenset[int]:
        """The device indices that train on ``version`` (all eligible ones if too few)."""
        k = min(self.size, len(self.eligible))
        rng = np.random.default_rng([self.seed, version])
        picked = rng.choice(len(self.eligible), size=k, replace=False)
        return frozenset(self.eligible[int(i)] for i in picked)

    def selects(self, device_index: int, version: int) -> bool:
        return device_index in self.cohort(version)
