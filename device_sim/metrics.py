"""The fleet simulator's Prometheus metrics and the live counters a demo can read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PCounter

from fedmq.messages import DEVICE_STATES


@dataclass
class FleetView:
    """Live counts of the fleet (read by demos; updated only by the fleet's event loop)."""

    states: Counter[str] = field(default_factory=Counter)
    online: int = 0
    charging: int = 0
    updates_published: int = 0
    bytes_published: int = 0
    accepted: int = 0
    rejected: int = 0

    @property
    def training(self) -> int:
        return self.states["training"]


class FleetMetrics:
    """Every metric of the fleet, registered on ``registry``, labelled with the task."""

    def __init__(self, registry: CollectorRegistry, task: str) -> None:
        self.task = task
        self.view = FleetView()
        self.devices = Gauge(
            "fedmq_sim_devices", "Simulated devices by state", ["task", "state"],
            registry=registry,
        )
        self.updates = PCounter(
            "fedmq_sim_updates_published", "Deltas published (resends included)", ["task"],
            registry=registry,
        )
        self.bytes = PCounter(
            "fedmq_sim_bytes_published", "Delta payload bytes published", ["task"],
            registry=registry,
        )
        self.skipped = PCounter(
            "fedmq_sim_skipped", "Training opportunities skipped, by reason",
            ["task", "reason"], registry=registry,
        )
        self.problems = PCounter(
            "fedmq_sim_problems", "Malformed input, hash mismatches, rejections, timeouts",
            ["task", "kind"], registry=registry,
        )
        self.battery = Histogram(
            "fedmq_sim_battery_ratio", "Battery level, sampled at every device tick", ["task"],
            buckets=(0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0), registry=registry,
        )
        self.training_seconds = Histogram(
            "fedmq_sim_training_seconds", "Simulated seconds of one local training", ["task"],
            buckets=(0.01, 0.03, 0.1, 0.3, 1, 3, 10, 30, 100, 300), registry=registry,
        )
        for state in DEVICE_STATES:
            self.devices.labels(task, state).set(0)

    def moved(self, old: str | None, new: str | None) -> None:
        if old == new:
            return
        if old is not None:
            self.view.states[old] -= 1
            self.devices.labels(self.task, old).dec()
        if new is not None:
            self.view.states[new] += 1
            self.devices.labels(self.task, new).inc()

    def published(self, nbytes: int) -> None:
        self.view.updates_published += 1
        self.view.bytes_published += nbytes
        self.updates.labels(self.task).inc()
        self.bytes.labels(self.task).inc(nbytes)

    def skip(self, reason: str) -> None:
        self.skipped.labels(self.task, reason).inc()

    def problem(self, kind: str) -> None:
        self.problems.labels(self.task, kind).inc()
