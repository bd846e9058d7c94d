"""The device agent's settings and its one piece of carried state, the pending delta."""

from __future__ import annotations

from dataclasses import dataclass, field

from device_sim.policy import Policy
from device_sim.rounds import Rounds
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.tensors import EncodingSpec
from fedmq.topics import validate_id


@dataclass(frozen=True, slots=True)
class AgentConfig:
    device: str
    task: str
    device_index: int = 0  # selects the epoch-order seed (digits-100's device_id)
    prefix: str = "fedmq"
    encoding: EncodingSpec = field(default_factory=EncodingSpec)
    policy: Policy = field(default_factory=Policy)
    ack_timeout: float = 30.0  # seconds without an ack before the same update is resent
    fetch_timeout: float = 60.0  # seconds without a verified model before resubscribing
    limits: Limits = DEFAULT_LIMITS
    has_data: bool = True  # devices with no samples never train
    rounds: Rounds | None = None  # sync rounds: train only versions whose cohort has us

    def __post_init__(self) -> None:
        validate_id(self.device, "device id")


@dataclass(frozen=True, slots=True)
class Pending:
    """An encoded delta not yet acknowledged."""

    update_id: str
    base_version: int
    payload: bytes
    attempts: int = 0
    sent_at: float | None = None  # None: not (successfully) published yet
