"""Presence: a device's retained status and the aggregator's (both with a last will)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fedmq.errors import (
    MalformedMessage,
)
from fedmq.fields import (
    opt_bool,
    opt_float,
    opt_int,
    req_bool,
    req_float,
    req_str,
)
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.message_fields import ident, wire_fields
from fedmq.model_messages import MODES

DEVICE_STATES = ("idle", "fetching", "training", "publishing", "waiting", "offline")
NETWORKS = ("wifi", "cellular", "ethernet", "offline", "unknown")


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
        return wire_fields(self)

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
            ident(obj, "task"),
            ident(obj, "device"),
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
        return wire_fields(self)

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
            ident(obj, "task"),
            req_bool(obj, "online"),
            req_float(obj, "ts"),
            opt_int(obj, "version"),
            mode,
        )

