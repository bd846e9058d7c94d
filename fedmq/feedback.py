"""Error feedback: what a lossy encoding dropped goes into the device's next update."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt

from fedmq.encoding import EncodingSpec
from fedmq.tensors import F32Array, Tensor


class ErrorFeedback:
    """Carries what a lossy encoding dropped into the next update (EF-SGD).

    ``encode(delta)`` sends ``delta + residual`` and keeps the new residual
    ``(delta + residual) - decoded``. Summed over updates, what the receiver
    got differs from what the device meant to send by exactly the current
    residual, whose size is bounded by one encoding's error.
    """

    def __init__(self, spec: EncodingSpec | str) -> None:
        self.spec = EncodingSpec.parse(spec) if isinstance(spec, str) else spec
        self.residual: dict[str, F32Array] = {}

    def encode(self, delta: Mapping[str, npt.ArrayLike]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        residual: dict[str, F32Array] = {}
        for name, value in delta.items():
            x = np.asarray(value, dtype=np.float32)
            prev = self.residual.get(name)
            corrected = x + prev if prev is not None and prev.shape == x.shape else x
            tensor = Tensor.encode(corrected, self.spec)
            out[name] = tensor
            if self.spec.lossy:
                residual[name] = (corrected - tensor.decode()).astype(np.float32)
        self.residual = residual
        return out

    def reset(self) -> None:
        """Forget residuals (after a model shape change or a dropped update)."""
        self.residual = {}
