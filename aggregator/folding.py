"""The running sums that fold deltas into the global model (pure numpy, no clock).

Async (FedAsync/FedBuff): ``w_{t+1} = w_t + lr * sum_i f(s_i) n_i D_i / sum_i n_i``.
Sync (FedAvg): ``w_{t+1} = sum_i n_i (w_t + D_i) / sum_i n_i``, which equals the async
form with ``f = 1`` and ``lr = 1`` because ``sum_i n_i w_t / sum_i n_i = w_t``.

Only ``sum_i f(s_i) n_i D_i`` (float64, one array per parameter) and ``sum_i n_i``
are kept, so memory is O(model) whatever the number of buffered updates. The sums
are float64 so that the order updates arrive in changes the result by far less than
one float32 ulp.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass
class Buffer:
    """Weighted running sums of the deltas accepted since the last version."""

    sums: dict[str, F64]
    total_samples: int = 0
    count: int = 0
    _scratch: dict[str, F64] = field(default_factory=dict, repr=False)

    @classmethod
    def empty(cls, shapes: Mapping[str, tuple[int, ...]]) -> Buffer:
        return cls({k: np.zeros(s, dtype=np.float64) for k, s in shapes.items()})

    def add(self, delta: Mapping[str, F32], weight: float, num_samples: int) -> None:
        """Fold ``weight * num_samples * delta``; ``delta`` must match the buffer's shapes."""
        if weight < 0 or num_samples < 1:
            raise ValueError("fold weight must be >= 0 and num_samples >= 1")
        c = float(weight) * num_samples
        for name, acc in self.sums.items():
            tmp = self._scratch.get(name)
            if tmp is None:
                tmp = self._scratch[name] = np.empty_like(acc)
            np.multiply(delta[name], c, out=tmp, dtype=np.float64)  # no allocation per update
            np.add(acc, tmp, out=acc)
        self.total_samples += num_samples
        self.count += 1

    def apply(self, params: Mapping[str, F32], lr: float) -> dict[str, F32]:
        """``params + lr * sums / total_samples`` as float32 (params if nothing is buffered)."""
        if self.total_samples == 0:
            return {k: np.array(v, dtype=np.float32, copy=True) for k, v in params.items()}
        scale = lr / self.total_samples
        return {
            name: (params[name].astype(np.float64) + acc * scale).astype(np.float32)
            for name, acc in self.sums.items()
        }

    def clear(self) -> None:
        for acc in self.sums.values():
            acc.fill(0.0)
        self.total_samples = 0
        self.count = 0
