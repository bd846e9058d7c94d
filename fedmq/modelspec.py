"""Model specs: which named float32 arrays make a model, and how to build an estimator.

A spec travels inside every model message so that any subscriber can turn
the parameters into a working scikit-learn estimator (:func:`to_estimator`),
and devices can pull parameters out of a trained one (:func:`from_estimator`).

Supported ``family`` values:

- ``sklearn.linear_model.SGDClassifier``: params ``coef`` (classes x features)
  and ``intercept`` (classes); config ``classes`` (list of ints) and the
  estimator's keyword arguments under ``kwargs``.
- ``generic``: just named arrays; no estimator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from fedmq.errors import ConfigError, MalformedMessage
from fedmq.limits import DEFAULT_LIMITS, Limits

SGD = "sklearn.linear_model.SGDClassifier"
GENERIC = "generic"
_SCALAR = (int, float, str, bool, type(None))
MAX_NAME = 128  # characters in a parameter name (same bound as tensor names)
MAX_CONFIG_DEPTH = 16


def _check_config(value: Any, depth: int) -> None:
    """Config is plain data: maps with string keys, lists, scalars and bytes, not too deep."""
    if depth > MAX_CONFIG_DEPTH:
        raise MalformedMessage(f"model spec config nested deeper than {MAX_CONFIG_DEPTH}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise MalformedMessage("model spec config keys must be strings")
            _check_config(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _check_config(v, depth + 1)
    elif not isinstance(value, (*_SCALAR, bytes)):
        raise MalformedMessage(f"model spec config holds a {type(value).__name__}")


@dataclass(frozen=True, slots=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str = "f32"

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    family: str
    params: tuple[ParamSpec, ...]
    config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise ConfigError(f"duplicate parameter names in model spec: {names}")

    @property
    def num_params(self) -> int:
        return sum(p.size for p in self.params)

    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {p.name: p.shape for p in self.params}

    def zeros(self) -> dict[str, npt.NDArray[np.float32]]:
        return {p.name: np.zeros(p.shape, dtype=np.float32) for p in self.params}

    def to_wire(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": [[p.name, list(p.shape), p.dtype] for p in self.params],
            "config": dict(self.config),
        }

    @classmethod
    def from_wire(cls, obj: Any, limits: Limits = DEFAULT_LIMITS) -> ModelSpec:
        if not isinstance(obj, dict):
            raise MalformedMessage("model spec must be a map")
        family = obj.get("family")
        raw = obj.get("params")
        config = obj.get("config", {})
        if not isinstance(family, str) or not isinstance(raw, list) or not isinstance(config, dict):
            raise MalformedMessage("model spec needs family (str), params (list), config (map)")
        if len(raw) > limits.max_tensors:
            raise MalformedMessage("model spec lists too many parameters")
        _check_config(config, 0)
        params = []
        for item in raw:
            ok = (
                isinstance(item, list)
                and len(item) == 3
                and isinstance(item[0], str)
                and 0 < len(item[0]) <= MAX_NAME
                and isinstance(item[1], list)
                and len(item[1]) <= limits.max_ndim
                and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in item[1])
                and item[2] == "f32"
            )
            if not ok:
                raise MalformedMessage(f"bad parameter entry in model spec: {item!r}")
            params.append(ParamSpec(item[0], tuple(item[1]), item[2]))
        try:
            return cls(family, tuple(params), config)
        except ConfigError as exc:
            raise MalformedMessage(str(exc)) from exc


def sgd_classifier_spec(
    n_features: int, classes: list[int], **kwargs: Any
) -> ModelSpec:
    """Spec of a multinomial-by-OvR linear classifier trained with SGDClassifier."""
    if not all(isinstance(v, _SCALAR) for v in kwargs.values()):
        raise ConfigError("SGDClassifier kwargs must be scalars to travel on the wire")
    n_out = len(classes) if len(classes) > 2 else 1
    return ModelSpec(
        SGD,
        (ParamSpec("coef", (n_out, n_features)), ParamSpec("intercept", (n_out,))),
        {"classes": list(classes), "kwargs": dict(kwargs)},
    )


def to_estimator(spec: ModelSpec, params: Mapping[str, npt.ArrayLike]) -> Any:
    """A scikit-learn estimator carrying ``params``, ready for ``predict``."""
    if spec.family != SGD:
        raise ConfigError(f"no estimator for model family {spec.family!r}")
    from sklearn.linear_model import SGDClassifier

    est = SGDClassifier(**spec.config.get("kwargs", {}))
    coef = np.asarray(params["coef"], dtype=np.float32)
    est.classes_ = np.asarray(spec.config["classes"])
    est.coef_ = coef.copy()
    est.intercept_ = np.asarray(params["intercept"], dtype=np.float32).copy()
    est.n_features_in_ = coef.shape[1]
    # partial_fit on a fitted estimator expects these bookkeeping attributes
    est.t_ = 1.0
    est._expanded_class_weight = np.ones(len(est.classes_), dtype=np.float64)
    return est


def from_estimator(spec: ModelSpec, est: Any) -> dict[str, npt.NDArray[np.float32]]:
    """The parameters of a fitted estimator as named float32 arrays of the spec's shapes."""
    if spec.family != SGD:
        raise ConfigError(f"no estimator for model family {spec.family!r}")
    return {
        "coef": np.asarray(est.coef_, dtype=np.float32).reshape(spec.shapes()["coef"]),
        "intercept": np.asarray(est.intercept_, dtype=np.float32).reshape(
            spec.shapes()["intercept"]
        ),
    }
