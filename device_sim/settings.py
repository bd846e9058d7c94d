"""The fleet simulator's settings: one frozen object built once by the CLI (or a benchmark)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from device_sim.battery import BatteryModel
from device_sim.network import NetworkModel
from device_sim.policy import Policy
from fedmq.brokerurl import BrokerURL
from fedmq.errors import ConfigError
from fedmq.tensors import EncodingSpec
from fedmq.topics import validate_id


@dataclass(frozen=True, slots=True)
class FleetSettings:
    """``battery``/``network`` None make the "ideal" fleet: always charged, always online."""

    broker: BrokerURL
    task: str = "digits"
    count: int = 100
    prefix: str = "fedmq"
    partitions: int | None = None  # task partitions N (None: the task's default)
    alpha: float = 0.5  # Dirichlet concentration of the partition
    time_scale: float = 1.0  # simulated seconds per wall second
    concurrency: int = 10  # devices training at once
    rounds: bool = False  # sync FedAvg rounds: `concurrency` devices drawn per version
    encoding: EncodingSpec = field(default_factory=EncodingSpec)
    seed: int = 0
    duration: float | None = None  # wall seconds, None = until stopped
    max_updates: int | None = None  # stop after this many published updates
    metrics_port: int = 0
    battery: BatteryModel | None = field(default_factory=BatteryModel)
    network: NetworkModel | None = field(default_factory=NetworkModel)
    policy: Policy = field(default_factory=Policy)
    tick: float = 0.5  # wall seconds between a device's condition checks
    ack_timeout: float = 30.0  # wall seconds
    connect_rate: float = 500.0  # new connections per wall second (avoids a connect storm)
    train_workers: int = 2  # threads running the actual sklearn training
    keepalive: int = 60
    id_prefix: str = "sim"  # device ids are <id_prefix>-00000..; unique per replica
    password_template: str | None = None  # e.g. "secret-{device}"; else the URL's password

    def __post_init__(self) -> None:
        validate_id(self.task, "task")
        self.device_id(self.count - 1)  # the longest id must be a valid topic level
        if self.count < 1 or self.concurrency < 1 or self.train_workers < 1:
            raise ConfigError("count, concurrency and train_workers must be >= 1")
        if self.time_scale <= 0 or self.tick <= 0 or self.connect_rate <= 0:
            raise ConfigError("time_scale, tick and connect_rate must be positive")
        if self.duration is not None and self.duration <= 0:
            raise ConfigError("duration must be positive")
        if self.max_updates is not None and self.max_updates < 1:
            raise ConfigError("max_updates must be >= 1")

    @classmethod
    def ideal(cls, broker: BrokerURL | str, **kwargs: object) -> FleetSettings:
        """No battery limits, always online: the fleet benchmarks compare against."""
        url = BrokerURL.parse(broker) if isinstance(broker, str) else broker
        base = cls(url, battery=None, network=None)
        return replace(base, **kwargs)  # type: ignore[arg-type]

    def device_id(self, k: int) -> str:
        return validate_id(f"{self.id_prefix}-{k:05d}", "device id")

    def password(self, device: str) -> str | None:
        if self.password_template is not None:
            return self.password_template.format(device=device)
        return self.broker.password
