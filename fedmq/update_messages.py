"""One device update and the aggregator's verdict on it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from fedmq.errors import (
    ConfigError,
    DecodeError,
    MalformedMessage,
    RejectReason,
)
from fedmq.fields import (
    opt_float,
    opt_int,
    opt_str,
    req_bool,
    req_float,
    req_int,
    req_str,
)
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.message_fields import ident, tensor_map, wire_fields
from fedmq.tensors import Tensor
from fedmq.topics import validate_id


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
            ident(obj, "task"),
            ident(obj, "device"),
            update_id,
            req_int(obj, "base_version"),
            req_int(obj, "num_samples", minimum=1),
            tensor_map(obj, "tensors", limits),
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
        return wire_fields(self, reason=None if self.reason is None else str(self.reason))

    @classmethod
    def from_wire(cls, obj: dict[str, Any], limits: Limits = DEFAULT_LIMITS) -> Ack:
        accepted = req_bool(obj, "accepted")
        reason_text = opt_str(obj, "reason", max_len=64)
        try:
            reason = None if reason_text is None else RejectReason(reason_text)
            return cls(
                ident(obj, "task"),
                ident(obj, "device"),
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


