"""Simulated compute speed: digits-100's heavy-tailed seconds per sample per epoch."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from fedmq.tasks import seconds_per_sample


def device_speeds(num_partitions: int, seed: int = 1) -> npt.NDArray[np.float64]:
    """``t_k`` for partitions 0..N-1 (BENCHMARKS.md: rng seed 1, lognormal around 2 ms)."""
    return seconds_per_sample(num_partitions, seed)


def training_seconds(t_per_sample: float, num_samples: int, epochs: int) -> float:
    """Simulated seconds one local training takes: ``t_k * n_k * E``."""
    return t_per_sample * num_samples * epochs
