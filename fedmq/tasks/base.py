"""What a federated task is: a model spec, per-device data, local training, evaluation.

Both sides use the same task objects: the aggregator for the initial model
and server-side evaluation, devices for their data and local training. Tasks
are deterministic functions of their seeds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from fedmq.modelspec import ModelSpec

Params = dict[str, npt.NDArray[np.float32]]


@dataclass(frozen=True, slots=True)
class Dataset:
    X: npt.NDArray[np.float32]
    y: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass(frozen=True, slots=True)
class TrainResult:
    params: Params  # locally trained parameters (not the delta)
    num_samples: int
    loss: float | None


class Task(Protocol):
    """A federated learning task; see :mod:`fedmq.tasks.linear` for the implementation."""

    @property
    def name(self) -> str: ...

    @property
    def spec(self) -> ModelSpec: ...

    @property
    def num_devices(self) -> int: ...

    def initial_params(self) -> Params: ...

    def device_data(self, index: int) -> Dataset: ...

    def test_set(self) -> Dataset: ...

    def evaluate(self, params: Mapping[str, npt.ArrayLike]) -> float: ...

    def train(
        self, params: Mapping[str, npt.ArrayLike], data: Dataset, *, seed: int
    ) -> TrainResult: ...
