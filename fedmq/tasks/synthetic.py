"""The FedProx Synthetic(alpha, beta) task: 60 features, 10 classes, non-IID devices.

Each device k draws u_k ~ N(0, alpha), B_k ~ N(0, beta); its model W_k, b_k ~
N(u_k, 1), its features x ~ N(v_k, Sigma) with v_k ~ N(B_k, 1) and
Sigma = diag(j^-1.2); labels are argmax(softmax(W_k x + b_k)). Sizes are
int(lognormal(4, 2)) + 50. Each device keeps 80 % for training; the union of
the remaining 20 % is the test set.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from fedmq.tasks.base import Dataset
from fedmq.tasks.linear import LinearTask

DIM, CLASSES = 60, 10


@lru_cache(maxsize=8)
def synthetic_task(
    alpha: float = 0.5, beta: float = 0.5, num_devices: int = 30, seed: int = 0,
    max_samples: int = 2000,
) -> LinearTask:
    """``max_samples`` caps the lognormal's rare huge devices to keep memory sane."""
    rng = np.random.default_rng(seed)
    sizes = np.minimum(rng.lognormal(4, 2, num_devices).astype(int) + 50, max_samples)
    u = rng.normal(0, alpha, num_devices)
    B = rng.normal(0, beta, num_devices)
    std = np.sqrt(np.array([(j + 1) ** -1.2 for j in range(DIM)]))
    train, test_x, test_y = [], [], []
    for k in range(num_devices):
        W = rng.normal(u[k], 1, (DIM, CLASSES))
        b = rng.normal(u[k], 1, CLASSES)
        v = rng.normal(B[k], 1, DIM)
        x = (v + rng.normal(size=(sizes[k], DIM)) * std).astype(np.float32)
        y = np.argmax(x @ W + b, axis=1).astype(np.int64)  # softmax is monotone
        cut = int(0.8 * sizes[k])
        train.append(Dataset(x[:cut], y[:cut]))
        test_x.append(x[cut:])
        test_y.append(y[cut:])
    test = Dataset(np.concatenate(test_x), np.concatenate(test_y))
    return LinearTask("synthetic", tuple(train), test, tuple(range(CLASSES)))
