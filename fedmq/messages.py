"""The messages of the protocol as frozen dataclasses, and their msgpack wire maps.

Each class has ``KIND`` (the envelope's ``kind``), ``to_wire()`` giving the map
in a fixed key order (so encoding is deterministic), and ``from_wire(map)``
that validates an untrusted map. Byte-level encoding lives in :mod:`fedmq.codec`.
The classes live in three modules -- the model (:mod:`fedmq.model_messages`),
updates and verdicts (:mod:`fedmq.update_messages`), presence
(:mod:`fedmq.status_messages`) -- and are all importable from here.
"""

from __future__ import annotations

from fedmq import PROTOCOL_MAJOR
from fedmq.message_fields import MAX_NAME
from fedmq.model_messages import MODES, ModelChunk, ModelManifest, ModelMessage, ModelMeta
from fedmq.status_messages import DEVICE_STATES, NETWORKS, AggregatorStatus, DeviceStatus
from fedmq.update_messages import Ack, Delta

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

__all__ = [
    "BY_KIND",
    "DEVICE_STATES",
    "ENVELOPE_VERSION",
    "MAX_NAME",
    "MESSAGE_TYPES",
    "MODES",
    "NETWORKS",
    "Ack",
    "AggregatorStatus",
    "Delta",
    "DeviceStatus",
    "Message",
    "ModelChunk",
    "ModelManifest",
    "ModelMessage",
    "ModelMeta",
]
