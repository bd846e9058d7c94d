"""The messages of the protocol as frozen dataclasses, and their msgpack wire maps.

Each class has ``KIND`` (the envelope's ``kind``), ``to_wire()`` giving the map
in a fixed key order (so encoding is deterministic), and ``from_wire(map)``
that validates an untrusted map. Byte-level encoding lives in :mod:`fedmq.codec`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from fedmq import PROTOCOL_MAJOR
from fedmq.errors import (
    ConfigError,
    DecodeError,
    DecompressionBomb,
    LimitExceeded,
    MalformedMessage,
    RejectReason,
)
from fedmq.fields import (
    metrics_map,
    opt_bool,
    opt_float,
    opt_int,
    opt_str,
    req_bool,
    req_bytes,
    req_float,
    req_int,
    req_map,
    req_str,
)
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.modelspec import ModelSpec
from fedmq.tensors import Tensor
from fedmq.topics import validate_id

DEVICE_STATES = ("idle", "fetching", "training", "publishing", "waiting", "offline")
NETWORKS = ("wifi", "cellular", "ethernet", "offline", "unknown")
MODES = ("async", "sync")
MAX_NAME = 128  # characters in a tensor or parameter name


def _ident(obj: dict[str, Any], key: str) -> str:
    value = req_str(obj, key, max_len=64)
    try:
        return validate_id(value, key)
    except ConfigError as exc:
        raise MalformedMessage(str(exc)) from exc


def _tensors(obj: dict[str, Any], key: str, limits: Limits) -> dict[str, Tensor]:
    raw = req_map(obj, key)
    if len(raw) > limits.max_tensors:
        raise LimitExceeded(f"{len(raw)} tensors exceed the limit of {limits.max_tensors}")
    out: dict[str, Tensor] = {}
    elements = limits.max_elements
    inflated = limits.max_decompressed_bytes  # over the whole message, not per tensor
    for name, value in raw.items():
        if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME:
            raise MalformedMessage(f"bad tensor name {name!r}")
        tensor = Tensor.from_wire(value, limits)
        elements -= tensor.size
        if elements < 0:
            raise LimitExceeded(f"tensors exceed {limits.max_elements} elements in total")
        inflated -= tensor.raw_len
        if inflated < 0:
            raise DecompressionBomb(
                f"tensors would decode to over {limits.max_decompressed_bytes} bytes in total"
            )
        out[name] = tensor
    return out


def _sha(obj: dict[str, Any]) -> bytes:
    return req_bytes(obj, "sha256", length=32)


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
        return {
            "task": self.task,
            "version": self.version,
            "created": self.created,
            "spec": self.spec.to_wire(),
            "params": {k: t.to_wire() for k, t in self.params.items()},
            "metrics": dict(self.metrics),
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelMessage:
        spec = ModelSpec.from_wire(obj.get("spec"), limits)
        params = _tensors(obj, "params", limits)
        want = spec.shapes()
        got = {k: t.shape for k, t in params.items()}
        if want != got:
            raise MalformedMessage(f"model params {got} do not match spec {want}")
        return cls(
            _ident(obj, "task"),
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
        return {
            "task": self.task,
            "version": self.version,
            "created": self.created,
            "sha256": self.sha256,
            "size": self.size,
            "chunk_size": self.chunk_size,
            "count": self.count,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelManifest:
        m = cls(
            _ident(obj, "task"),
            req_int(obj, "version"),
            req_float(obj, "created"),
            _sha(obj),
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
        return {
            "task": self.task,
            "version": self.version,
            "sha256": self.sha256,
            "index": self.index,
            "count": self.count,
            "data": self.data,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelChunk:
        c = cls(
            _ident(obj, "task"),
            req_int(obj, "version"),
            _sha(obj),
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
        return {
            "task": self.task,
            "version": self.version,
            "created": self.created,
            "sha256": self.sha256,
            "size": self.size,
            "chunks": self.chunks,
            "metrics": dict(self.metrics),
            "mode": self.mode,
            "buffer": self.buffer,
            "max_staleness": self.max_staleness,
            "interval": self.interval,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> ModelMeta:
        mode = req_str(obj, "mode", max_len=16)
        if mode not in MODES:
            raise MalformedMessage(f"unknown mode {mode!r}")
        return cls(
            _ident(obj, "task"),
            req_int(obj, "version"),
            req_float(obj, "created"),
            _sha(obj),
            req_int(obj, "size"),
            req_int(obj, "chunks"),
            metrics_map(obj, "metrics"),
            mode,
            req_int(obj, "buffer", minimum=1),
            req_int(obj, "max_staleness"),
            opt_float(obj, "interval"),
        )


@dataclass(frozen=True, slots=True)
class Delta:
    """One device update (topic ``delta/<device>``, QoS 1, not retained)."""

    KIND: ClassVar[str] = "delta"
    task: str
    device: str
    update_id: str
    base_version: int
    num_samples: int
    tensors: Mapping[str, Tensor]
    created: float
    loss: float | None = None

    def __post_init__(self) -> None:
        validate_id(self.device, "device id")
        if not 0 < len(self.update_id) <= 64:
            raise ConfigError("update_id must be 1-64 characters")

    def to_wire(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "device": self.device,
            "update_id": self.update_id,
            "base_version": self.base_version,
            "num_samples": self.num_samples,
            "created": self.created,
            "loss": self.loss,
            "tensors": {k: t.to_wire() for k, t in self.tensors.items()},
        }

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Delta:
        update_id = req_str(obj, "update_id", max_len=64)
        if not update_id:
            raise MalformedMessage("update_id must not be empty")
        return cls(
            _ident(obj, "task"),
            _ident(obj, "device"),
            update_id,
            req_int(obj, "base_version"),
            req_int(obj, "num_samples", minimum=1),
            _tensors(obj, "tensors", limits),
            req_float(obj, "created"),
            opt_float(obj, "loss", finite=False),
        )


@dataclass(frozen=True, slots=True)
class Ack:
    """The aggregator's verdict on one delta (topic ``ack/<device>``, QoS 1)."""

    KIND: ClassVar[str] = "ack"
    task: str
    device: str
    update_id: str
    accepted: bool
    version: int  # global version when the verdict was given
    staleness: int | None = None
    weight: float | None = None
    reason: RejectReason | None = None
    detail: str = ""

    def __post_init__(self) -> None:
        if self.accepted == (self.reason is not None):
            raise ConfigError("an ack has a reason exactly when it is a rejection")

    def to_wire(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "device": self.device,
            "update_id": self.update_id,
            "accepted": self.accepted,
            "version": self.version,
            "staleness": self.staleness,
            "weight": self.weight,
            "reason": None if self.reason is None else str(self.reason),
            "detail": self.detail,
        }

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Ack:
        accepted = req_bool(obj, "accepted")
        reason_text = opt_str(obj, "reason", max_len=64)
        try:
            reason = None if reason_text is None else RejectReason(reason_text)
            return cls(
                _ident(obj, "task"),
                _ident(obj, "device"),
                req_str(obj, "update_id", max_len=64),
                accepted,
                req_int(obj, "version"),
                opt_int(obj, "staleness", minimum=-(2**62)),
                opt_float(obj, "weight"),
                reason,
                opt_str(obj, "detail", max_len=limits.max_string_bytes) or "",
            )
        except ConfigError as exc:
            raise MalformedMessage(str(exc)) from exc
        except ValueError as exc:  # unknown RejectReason value
            if isinstance(exc, DecodeError):
                raise
            raise MalformedMessage(f"unknown reject reason {reason_text!r}") from exc


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """A device's state (topic ``status/<device>``, retained; the last will says offline)."""

    KIND: ClassVar[str] = "status"
    task: str
    device: str
    online: bool
    ts: float
    state: str = "idle"
    battery: float | None = None  # 0..1
    charging: bool | None = None
    network: str = "unknown"
    metered: bool | None = None
    model_version: int | None = None

    def to_wire(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "device": self.device,
            "online": self.online,
            "ts": self.ts,
            "state": self.state,
            "battery": self.battery,
            "charging": self.charging,
            "network": self.network,
            "metered": self.metered,
            "model_version": self.model_version,
        }

    @classmethod
    def last_will(cls, task: str, device: str, ts: float) -> DeviceStatus:
        """The will a device registers at connect (``ts`` is the connect time)."""
        return cls(task, device, False, ts, state="offline", network="offline")

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> DeviceStatus:
        state = req_str(obj, "state", max_len=16)
        network = req_str(obj, "network", max_len=16)
        battery = opt_float(obj, "battery")
        if state not in DEVICE_STATES or network not in NETWORKS:
            raise MalformedMessage(f"unknown state {state!r} or network {network!r}")
        if battery is not None and not 0.0 <= battery <= 1.0:
            raise MalformedMessage(f"battery {battery} outside 0..1")
        return cls(
            _ident(obj, "task"),
            _ident(obj, "device"),
            req_bool(obj, "online"),
            req_float(obj, "ts"),
            state,
            battery,
            opt_bool(obj, "charging"),
            network,
            opt_bool(obj, "metered"),
            opt_int(obj, "model_version"),
        )


@dataclass(frozen=True, slots=True)
class AggregatorStatus:
    """The aggregator's presence (topic ``aggregator/status``, retained, last will)."""

    KIND: ClassVar[str] = "aggregator_status"
    task: str
    online: bool
    ts: float
    version: int | None = None
    mode: str = "async"

    def to_wire(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "online": self.online,
            "ts": self.ts,
            "version": self.version,
            "mode": self.mode,
        }

    @classmethod
    def last_will(
        cls, task: str, ts: float, version: int | None = None, mode: str = "async"
    ) -> AggregatorStatus:
        """The will the aggregator registers at connect (``ts`` is the connect time)."""
        return cls(task, False, ts, version, mode)

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> AggregatorStatus:
        mode = req_str(obj, "mode", max_len=16)
        if mode not in MODES:
            raise MalformedMessage(f"unknown mode {mode!r}")
        return cls(
            _ident(obj, "task"),
            req_bool(obj, "online"),
            req_float(obj, "ts"),
            opt_int(obj, "version"),
            mode,
        )


Message = (
    ModelMessage | ModelManifest | ModelChunk | ModelMeta | Delta | Ack | DeviceStatus
    | AggregatorStatus
)
MESSAGE_TYPES: tuple[type[Message], ...] = (
    ModelMessage,
    ModelManifest,
    ModelChunk,
    ModelMeta,
    Delta,
    Ack,
    DeviceStatus,
    AggregatorStatus,
)
BY_KIND: dict[str, type[Message]] = {cls.KIND: cls for cls in MESSAGE_TYPES}
ENVELOPE_VERSION = PROTOCOL_MAJOR
