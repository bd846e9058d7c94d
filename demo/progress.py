"""What the demo shows while it runs: a pure snapshot-to-text renderer.

The demo reads its numbers the way an operator would: the model version and
accuracy from the retained ``model/meta``, counters from the Prometheus
registry the in-process aggregator and fleet write to. Rendering is pure so
it is tested without a terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry


@dataclass(frozen=True, slots=True)
class Point:
    """One model version as the demo saw it arrive."""

    elapsed: float
    version: int
    accuracy: float | None


@dataclass(frozen=True, slots=True)
class Snapshot:
    elapsed: float
    version: int
    accuracy: float | None
    accepted: float
    rejected: float
    accepted_rate: float
    rejected_rate: float
    staleness_mean: float | None
    devices: dict[str, float] = field(default_factory=dict)


def _sample(registry: CollectorRegistry, name: str, labels: dict[str, str]) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def _by_label(registry: CollectorRegistry, metric: str, label: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for family in registry.collect():
        for s in family.samples:
            if s.name == metric and label in s.labels:
                out[s.labels[label]] = out.get(s.labels[label], 0.0) + s.value
    return out


def read_counters(registry: CollectorRegistry, task: str) -> tuple[float, float, float | None]:
    """(accepted, rejected, mean staleness) from the aggregator's metrics."""
    labels = {"task": task}
    accepted = _sample(registry, "fedmq_updates_accepted_total", labels)
    rejected = sum(_by_label(registry, "fedmq_updates_rejected_total", "reason").values())
    count = _sample(registry, "fedmq_update_staleness_count", labels)
    total = _sample(registry, "fedmq_update_staleness_sum", labels)
    return accepted, rejected, (total / count if count else None)


def device_states(registry: CollectorRegistry) -> dict[str, float]:
    return _by_label(registry, "fedmq_sim_devices", "state")


def render(s: Snapshot, target: float | None) -> str:
    acc = "  -   " if s.accuracy is None else f"{s.accuracy:.4f}"
    goal = f"/{target:g}" if target is not None else ""
    stale = "-" if s.staleness_mean is None else f"{s.staleness_mean:.2f}"
    devices = " ".join(f"{k} {int(v)}" for k, v in sorted(s.devices.items()) if v)
    return (
        f"[{s.elapsed:6.1f}s] v{s.version:<4d} acc {acc}{goal}  "
        f"updates +{int(s.accepted)} ({s.accepted_rate:.1f}/s) "
        f"-{int(s.rejected)} ({s.rejected_rate:.1f}/s)  staleness {stale}  "
        f"devices: {devices or '-'}"
    )


class RateMeter:
    """Per-second rate of a growing counter between successive reads."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None

    def update(self, now: float, value: float) -> float:
        last, self._last = self._last, (now, value)
        if last is None or now <= last[0]:
            return 0.0
        return (value - last[1]) / (now - last[0])
