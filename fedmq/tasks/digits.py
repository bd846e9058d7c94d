"""The ``digits`` task: digits-100 from BENCHMARKS.md, with N and alpha as parameters."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import numpy.typing as npt

from fedmq.tasks.base import Dataset
from fedmq.tasks.linear import LinearTask
from fedmq.tasks.partition import dirichlet_partition


@lru_cache(maxsize=8)
def digits_task(num_devices: int = 100, alpha: float = 0.5) -> LinearTask:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    X = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    parts = dirichlet_partition(y_tr, num_devices, alpha, seed=0)
    return LinearTask(
        "digits",
        tuple(Dataset(X_tr[p], y_tr[p]) for p in parts),
        Dataset(X_te, y_te),
        tuple(range(10)),
    )


def seconds_per_sample(num_devices: int = 100, seed: int = 1) -> npt.NDArray[np.float64]:
    """Per-device training speed t_k (seconds per sample per epoch), heavy-tailed."""
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(np.log(0.002), 1.0, size=num_devices))
