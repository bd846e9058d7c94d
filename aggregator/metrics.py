"""Every Prometheus metric the aggregator exports, against a registry passed in.

The names are a contract with the dashboards (dashboards/) and alert rules; every
metric carries the ``task`` label.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from fedmq.errors import RejectReason
from fedmq.messages import DEVICE_STATES

_BYTES = tuple(float(4**i) for i in range(5, 15))  # 1 KiB .. 256 MiB
_STALENESS = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
_SECONDS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)


class Metrics:
    """Labelled children for one task, ready to use."""

    def __init__(self, registry: CollectorRegistry, task: str) -> None:
        r, t = registry, ["task"]
        self.task = task
        self.received = Counter("fedmq_updates_received", "Delta messages received",
                                t, registry=r).labels(task)
        self.accepted = Counter("fedmq_updates_accepted", "Deltas folded into the buffer",
                                t, registry=r).labels(task)
        self._rejected = Counter("fedmq_updates_rejected", "Deltas refused, by reason",
                                 ["task", "reason"], registry=r)
        for reason in RejectReason:
            self._rejected.labels(task, reason.value)  # export zeros so rate() works at once
        self.staleness = Histogram("fedmq_update_staleness", "Staleness of accepted deltas",
                                   t, buckets=_STALENESS, registry=r).labels(task)
        self.update_bytes = Histogram("fedmq_update_bytes", "Size of delta payloads",
                                      t, buckets=_BYTES, registry=r).labels(task)
        self.version = Gauge("fedmq_model_version", "Newest durable model version",
                             t, registry=r).labels(task)
        self.published = Counter("fedmq_model_published", "Model versions published",
                                 t, registry=r).labels(task)
        self.model_bytes = Gauge("fedmq_model_bytes", "Size of the model payload",
                                 t, registry=r).labels(task)
        self.aggregation = Histogram(
            "fedmq_aggregation_seconds", "Decode, fold and persist time per batch of deltas",
            t, buckets=_SECONDS, registry=r).labels(task)
        self.buffered = Gauge("fedmq_buffer_updates", "Updates in the buffer",
                              t, registry=r).labels(task)
        self._devices = Gauge("fedmq_devices", "Devices by state (from retained status)",
                              ["task", "state"], registry=r)
        self.accuracy = Gauge("fedmq_global_accuracy", "Test accuracy of the newest model",
                              t, registry=r).labels(task)
        self.dropped = Counter("fedmq_queue_dropped",
            "Incoming messages discarded unread (topic not UTF-8; the inbox never drops)",
                               t, registry=r).labels(task)
        self.persist = Histogram("fedmq_state_persist_seconds", "Durable state write time",
                                 t, buckets=_SECONDS, registry=r).labels(task)

    def rejected(self, reason: RejectReason) -> None:
        self._rejected.labels(self.task, reason.value).inc()

    def devices(self, counts: Mapping[str, int]) -> None:
        for state in DEVICE_STATES:
            self._devices.labels(self.task, state).set(counts.get(state, 0))
