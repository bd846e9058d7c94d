"""The aggregator's one frozen settings object, built once by the CLI (or a test)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from aggregator.dedup import window_size
from aggregator.staleness import Staleness
from fedmq.brokerurl import BrokerURL
from fedmq.errors import ConfigError
from fedmq.messages import MODES
from fedmq.topics import Topics


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the aggregator needs; see ``fedmq aggregator --help`` for meanings."""

    broker: BrokerURL
    task: str
    state_dir: Path
    prefix: str = "fedmq"
    mode: str = "async"
    buffer: int = 10  # K
    min_buffer: int = 1  # K_min, flush at the timeout only with at least this many
    buffer_timeout: float = 30.0
    staleness: Staleness = field(default_factory=lambda: Staleness("fedbuff"))
    max_staleness: int = 20
    server_lr: float = 1.0
    cohort: int = 10
    round_deadline: float = 60.0
    max_packet: int | None = None
    max_norm: float | None = None
    metrics_port: int = 0
    client_id: str | None = None  # default "fedmq-aggregator-<task>"
    dedup_window: int = 10_000
    queue_size: int = 256  # deltas between the MQTT reader and the folding worker
    batch_max: int = 128  # deltas folded per durable write at most
    keepalive: int = 30
    # MQTT 5 Receive Maximum: deltas the broker may have in flight to us, i.e. the most we
    # hold in memory at once (see aggregator.mqtt). 0 = speak MQTT 3.1.1 only.
    receive_maximum: int = 128
    # Delta bytes held (received, not yet PUBACKed) before we stop reading the socket.
    max_held_bytes: int = 64 * 2**20

    def __post_init__(self) -> None:
        Topics(self.task, self.prefix)  # validates both
        if self.mode not in MODES:
            raise ConfigError(f"--mode must be one of {MODES}, got {self.mode!r}")
        ints = {"buffer": self.buffer, "min-buffer": self.min_buffer, "cohort": self.cohort,
                "queue-size": self.queue_size, "batch-max": self.batch_max}
        for name, value in ints.items():
            if value < 1:
                raise ConfigError(f"--{name} must be >= 1, got {value}")
        if self.min_buffer > self.k:
            raise ConfigError(f"--min-buffer {self.min_buffer} exceeds the buffer size {self.k}")
        if not 0 <= self.receive_maximum <= 65535:
            raise ConfigError("--receive-maximum must be in 0..65535 (0 = MQTT 3.1.1 only)")
        if self.max_held_bytes < 1:
            raise ConfigError("--max-held-bytes must be >= 1")
        if self.max_staleness < 0:
            raise ConfigError("--max-staleness must be >= 0")
        if not (self.buffer_timeout > 0 and self.round_deadline > 0 and self.server_lr > 0):
            raise ConfigError("--buffer-timeout, --round-deadline and --server-lr must be > 0")
        if self.max_norm is not None and not self.max_norm > 0:
            raise ConfigError("--max-norm must be > 0")
        if self.max_packet is not None and self.max_packet < 1536:
            raise ConfigError("--max-packet must be at least 1536 bytes (or 0 for no limit)")

    @property
    def sync(self) -> bool:
        return self.mode == "sync"

    @property
    def k(self) -> int:
        """Updates per version: the cohort in sync mode, the buffer size K otherwise."""
        return self.cohort if self.sync else self.buffer

    @property
    def wait_seconds(self) -> float:
        """Round deadline (sync, from the round's start) or buffer timeout (async, from the
        first buffered update)."""
        return self.round_deadline if self.sync else self.buffer_timeout

    @property
    def lr(self) -> float:
        return 1.0 if self.sync else self.server_lr

    @property
    def effective_max_staleness(self) -> int:
        return 0 if self.sync else self.max_staleness

    @property
    def dedup_capacity(self) -> int:
        return window_size(self.dedup_window, self.k, self.effective_max_staleness)

    @property
    def topics(self) -> Topics:
        return Topics(self.task, self.prefix)

    @property
    def identifier(self) -> str:
        return self.client_id or f"fedmq-aggregator-{self.task}"
