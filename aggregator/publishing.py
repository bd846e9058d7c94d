"""What to publish for the newest model: snapshot, encoded model or chunks, meta, leftovers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.core import Aggregator
from aggregator.folding import F32
from aggregator.settings import Settings
from fedmq import codec
from fedmq.chunks import ModelPublication, publication
from fedmq.messages import AggregatorStatus, ModelMessage
from fedmq.modelspec import ModelSpec
from fedmq.tensors import Tensor


@dataclass(frozen=True, slots=True)
class Release:
    """A publication plus the chunk indices a longer earlier model left behind."""

    publication: ModelPublication
    version: int
    stale_chunks: range


@dataclass(frozen=True, slots=True)
class ModelSnapshot:
    """One version as it was made: cheap to take (flushes replace ``params``, never
    mutate it), so the worker hands these over and only the newest is ever encoded."""

    version: int
    created: float
    params: Mapping[str, F32]
    metrics: Mapping[str, float]
    interval: float | None

    @classmethod
    def of(cls, core: Aggregator) -> ModelSnapshot:
        return cls(core.version, core.created, core.params, dict(core.metrics), core.interval)


def build_release(settings: Settings, spec: ModelSpec, snap: ModelSnapshot,
                  previous_chunks: int) -> Release:
    """Encode ``snap`` for publication (CPU-heavy: call it off the event loop)."""
    s = settings
    model = ModelMessage(
        s.task, snap.version, snap.created, spec,
        {k: Tensor.encode(v, "f32") for k, v in snap.params.items()}, dict(snap.metrics),
    )
    pub = publication(
        model, max_packet=s.max_packet, mode=s.mode, buffer=s.k,
        max_staleness=s.effective_max_staleness, interval=snap.interval,
    )
    return Release(pub, snap.version, range(len(pub.chunks), previous_chunks))


def status_payload(core: Aggregator, *, online: bool, ts: float) -> bytes:
    s = core.settings
    return codec.encode(AggregatorStatus(s.task, online, ts, core.version, s.mode))
