"""Label-Dirichlet partition of a data set over devices (the digits-100 scheme)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def dirichlet_partition(
    y: npt.NDArray[np.int64], num_devices: int, alpha: float = 0.5, seed: int = 0
) -> list[npt.NDArray[np.int64]]:
    """Indices into ``y`` for each device, exactly as BENCHMARKS.md's digits-100 defines.

    For each class ascending: that class's indices in order, shuffled by one
    generator, cut by a Dirichlet(alpha) draw over devices; piece k to device k.
    """
    rng = np.random.default_rng(seed)
    parts: list[list[npt.NDArray[np.int64]]] = [[] for _ in range(num_devices)]
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        idx = idx[rng.permutation(len(idx))]
        p = rng.dirichlet([alpha] * num_devices)
        cuts = (np.cumsum(p) * len(idx)).astype(int)[:-1]
        for k, piece in enumerate(np.split(idx, cuts)):
            parts[k].append(piece)
    return [np.concatenate(p).astype(np.int64) for p in parts]
