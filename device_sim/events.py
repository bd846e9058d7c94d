"""Events fed into :class:`device_sim.agent.DeviceAgent` and the actions it returns.

``now`` is the shell's clock in seconds (epoch time: it also stamps deltas
and statuses). The core never reads a clock itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from device_sim.policy import Conditions
from fedmq.tasks import TrainResult
from fedmq.topics import TopicKind

# -- events ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Tick:
    """Periodic: fresh conditions; lets the agent start work and run its timeouts."""

    now: float
    conditions: Conditions


@dataclass(frozen=True, slots=True)
class LinkUp:
    now: float


@dataclass(frozen=True, slots=True)
class LinkDown:
    now: float


@dataclass(frozen=True, slots=True)
class Received:
    """A message on one of our topics (``kind`` from :meth:`fedmq.topics.Topics.parse`)."""

    now: float
    kind: TopicKind
    payload: bytes


@dataclass(frozen=True, slots=True)
class Trained:
    now: float
    base_version: int
    result: TrainResult


@dataclass(frozen=True, slots=True)
class TrainingFailed:
    now: float
    base_version: int
    error: str


@dataclass(frozen=True, slots=True)
class PublishDone:
    now: float
    update_id: str


@dataclass(frozen=True, slots=True)
class PublishFailed:
    now: float
    update_id: str


Event = Tick | LinkUp | LinkDown | Received | Trained | TrainingFailed | PublishDone | PublishFailed

# -- actions ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribe:
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    topics: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Train:
    """Train ``params`` on the device's data with ``seed``; answer Trained/TrainingFailed."""

    base_version: int
    params: Mapping[str, npt.NDArray[np.float32]]
    seed: int


@dataclass(frozen=True, slots=True)
class SendDelta:
    """Publish QoS 1, not retained; answer PublishDone/PublishFailed with ``update_id``."""

    topic: str
    payload: bytes
    update_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class SendStatus:
    """Publish QoS 1, retained; nothing to answer."""

    topic: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Skip:
    """A training opportunity passed up (``reason`` in SKIP_REASONS), for counting."""

    reason: str


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth counting: malformed input, hash mismatch, rejection, retry."""

    kind: str
    detail: str = ""


Action = Subscribe | Unsubscribe | Train | SendDelta | SendStatus | Skip | Note
