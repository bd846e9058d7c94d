"""Linear classifiers trained with scikit-learn's SGDClassifier, federated.

Local training follows digits-100: load the global parameters into the
estimator, then ``epochs`` calls of ``partial_fit`` over the local data, each
epoch in the order of a permutation drawn from the given seed. ``shuffle`` is
off so that order is exactly the stated one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fedmq.errors import ConfigError
from fedmq.modelspec import ModelSpec, sgd_classifier_spec, to_estimator
from fedmq.tasks.base import Dataset, Params, TrainResult

SGD_KWARGS: dict[str, Any] = {
    "loss": "log_loss",
    "alpha": 1e-4,
    "learning_rate": "constant",
    "eta0": 0.05,
    "random_state": 0,
    "shuffle": False,
}


@dataclass(frozen=True)
class LinearTask:
    """A task over fixed train partitions and a test set; see :class:`fedmq.tasks.base.Task`."""

    name: str
    partitions: Sequence[Dataset]
    test: Dataset
    classes: tuple[int, ...]
    epochs: int = 3
    sgd_kwargs: Mapping[str, Any] = field(default_factory=lambda: dict(SGD_KWARGS))

    @property
    def spec(self) -> ModelSpec:
        return sgd_classifier_spec(
            int(self.test.X.shape[1]), list(self.classes), **dict(self.sgd_kwargs)
        )

    @property
    def num_devices(self) -> int:
        return len(self.partitions)

    def initial_params(self) -> Params:
        return self.spec.zeros()

    def device_data(self, index: int) -> Dataset:
        if not 0 <= index < len(self.partitions):
            raise ConfigError(f"task {self.name} has devices 0..{len(self.partitions) - 1}")
        return self.partitions[index]

    def test_set(self) -> Dataset:
        return self.test

    def evaluate(self, params: Mapping[str, npt.ArrayLike]) -> float:
        est = to_estimator(self.spec, params)
        return float(np.mean(est.predict(self.test.X) == self.test.y))

    def train(
        self, params: Mapping[str, npt.ArrayLike], data: Dataset, *, seed: int
    ) -> TrainResult:
        if len(data) == 0:
            raise ConfigError(f"task {self.name}: cannot train on an empty data set")
        est = to_estimator(self.spec, params)
        classes = np.asarray(self.classes)
        order = np.random.default_rng(seed).permutation(len(data))
        X, y = data.X[order], data.y[order]
        for _ in range(self.epochs):
            est.partial_fit(X, y, classes=classes)
        proba = np.clip(est.predict_proba(data.X), 1e-12, 1.0)
        pos = np.searchsorted(classes, data.y)
        loss = float(-np.mean(np.log(proba[np.arange(len(data)), pos])))
        out: Params = {
            "coef": np.asarray(est.coef_, dtype=np.float32),
            "intercept": np.asarray(est.intercept_, dtype=np.float32),
        }
        return TrainResult(out, len(data), loss)


def local_seed(device_index: int, base_version: int) -> int:
    """The digits-100 epoch-order seed of a device training from ``base_version``."""
    return device_index * 100003 + base_version
