"""What the aggregator publishes about the global model: model, manifest, chunks, meta."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fedmq.errors import (
    LimitExceeded,
    MalformedMessage,
)
from fedmq.fields import (
    metrics_map,
    opt_float,
    req_bytes,
    req_float,
    req_int,
    req_str,
)
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.message_fields import ident, sha256, tensor_map, wire_fields
from fedmq.modelspec import ModelSpec
from fedmq.tensors import Tensor

MODES = ("async", "sync")


@dataclass(frozen=True, slots=True)
class ModelMessage:
    """The full global model (topic ``model``, retained)."""

    KIND: ClassVar[str] = "model"
    task: str
    version: int
    created: float
    spec: ModelSpec
    params: Mapping[str, Tensor]
    metrics: Mapping[str, float] = field(default_factory=dict)

    def to_wire(self) -> dict[str, Any]:
        return wire_fields(self, spec=self.spec.to_wire(), metrics=dict(self.metrics),
                           params={k: t.to_wire() for k, t in self.params.items()})

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelMessage:
        spec = ModelSpec.from_wire(obj.get("spec"), limits)
        params = tensor_map(obj, "params", limits)
        want = spec.shapes()
        got = {k: t.shape for k, t in params.items()}
        if want != got:
            raise MalformedMessage(f"model params {got} do not match spec {want}")
        return cls(
            ident(obj, "task"),
            req_int(obj, "version"),
            req_float(obj, "created"),
            spec,
            params,
            metrics_map(obj, "metrics"),
        )


@dataclass(frozen=True, slots=True)
class ModelManifest:
    """Stands on ``model`` instead of the model when it travels in chunks."""

    KIND: ClassVar[str] = "model_manifest"
    task: str
    version: int
    created: float
    sha256: bytes
    size: int
    chunk_size: int
    count: int

    def to_wire(self) -> dict[str, Any]:
        return wire_fields(self)

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelManifest:
        m = cls(
            ident(obj, "task"),
            req_int(obj, "version"),
            req_float(obj, "created"),
            sha256(obj),
            req_int(obj, "size", minimum=1),
            req_int(obj, "chunk_size", minimum=1),
            req_int(obj, "count", minimum=1),
        )
        if m.size > limits.max_payload_bytes or m.count > limits.max_chunks:
            raise LimitExceeded(f"chunked model of {m.size} bytes in {m.count} chunks too large")
        if m.count != -(-m.size // m.chunk_size):
            raise MalformedMessage("manifest count does not match size and chunk_size")
        return m


@dataclass(frozen=True, slots=True)
class ModelChunk:
    """One piece of a chunked model (topic ``model/chunk/<index>``, retained)."""

    KIND: ClassVar[str] = "model_chunk"
    task: str
    version: int
    sha256: bytes
    index: int
    count: int
    data: bytes

    def to_wire(self) -> dict[str, Any]:
        return wire_fields(self)

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelChunk:
        c = cls(
            ident(obj, "task"),
            req_int(obj, "version"),
            sha256(obj),
            req_int(obj, "index"),
            req_int(obj, "count", minimum=1),
            req_bytes(obj, "data"),
        )
        if c.index >= c.count or c.count > limits.max_chunks:
            raise MalformedMessage(f"chunk index {c.index} out of range for count {c.count}")
        return c


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """Tiny description of the newest model (topic ``model/meta``, retained)."""

    KIND: ClassVar[str] = "model_meta"
    task: str
    version: int
    created: float
    sha256: bytes
    size: int
    chunks: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)
    mode: str = "async"
    buffer: int = 1
    max_staleness: int = 0
    interval: float | None = None  # pacing hint: recent mean seconds between versions

    def to_wire(self) -> dict[str, Any]:
        return wire_fields(self, metrics=dict(self.metrics))

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelMeta:
        mode = req_str(obj, "mode", max_len=16)
        if mode not in MODES:
            raise MalformedMessage(f"unknown mode {mode!r}")
        return cls(
            ident(obj, "task"),
            req_int(obj, "version"),
            req_float(obj, "created"),
            sha256(obj),
            req_int(obj, "size"),
            req_int(obj, "chunks"),
            metrics_map(obj, "metrics"),
            mode,
            req_int(obj, "buffer", minimum=1),
            req_int(obj, "max_staleness"),
            opt_float(obj, "interval"),
        )


