"""What to publish for the newest model: encoded model or chunks, meta, leftovers to clear."""

from __future__ import annotations

from dataclasses import dataclass

from aggregator.core import Aggregator
from fedmq import codec
from fedmq.chunks import ModelPublication, publication
from fedmq.messages import AggregatorStatus, ModelMessage
from fedmq.tensors import Tensor


@dataclass(frozen=True, slots=True)
class Release:
    """A publication plus the chunk indices a longer earlier model left behind."""

    publication: ModelPublication
    version: int
    stale_chunks: range


def build_release(core: Aggregator, previous_chunks: int) -> Release:
    """Encode the core's current model (CPU-heavy: call it off the event loop)."""
    s = core.settings
    model = ModelMessage(
        s.task, core.version, core.created, core.spec,
        {k: Tensor.encode(v, "f32") for k, v in core.params.items()}, dict(core.metrics),
    )
    pub = publication(
        model, max_packet=s.max_packet, mode=s.mode, buffer=s.k,
        max_staleness=s.effective_max_staleness, interval=core.interval,
    )
    return Release(pub, core.version, range(len(pub.chunks), previous_chunks))


def status_payload(core: Aggregator, *, online: bool, ts: float) -> bytes:
    s = core.settings
    return codec.encode(AggregatorStatus(s.task, online, ts, core.version, s.mode))
