"""The aggregator's pure core: verdicts on deltas, folding, versions. No IO, no clock.

The async shell (:mod:`aggregator.service`) owns one :class:`Aggregator`, feeds it
payloads with the current monotonic time, asks when the buffer is due, and
persists :meth:`Aggregator.snapshot` before it acknowledges anything. Everything
here is deterministic in its inputs, so tests drive it directly.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aggregator.dedup import DedupWindow
from aggregator.folding import F32, Buffer
from aggregator.settings import Settings
from aggregator.store import State, fingerprint
from aggregator.validate import (
    DeltaRejected,
    check_staleness,
    decode_arrays,
    delta_limits,
    read_delta,
)
from fedmq import codec
from fedmq.codec import Payload
from fedmq.errors import RejectReason, StateError
from fedmq.messages import Ack
from fedmq.modelspec import ModelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The ack to send, plus what metrics want to know about the update."""

    ack: Ack
    nbytes: int
    folded: bool = False  # True exactly when the update changed the buffer

    @property
    def payload(self) -> bytes:
        return codec.encode(self.ack)


class Aggregator:
    """Global model, buffer and dedup window of one task; see the module docstring."""

    def __init__(self, settings: Settings, spec: ModelSpec, state: State) -> None:
        self.settings = settings
        self.spec = spec
        want = fingerprint(settings.task, spec)
        if state.fingerprint != want:
            raise StateError(
                f"the state in {settings.state_dir} was written for another task or model "
                f"spec ({state.fingerprint[:200]}); point --state-dir at a new directory or "
                "delete this one to start again from version 0",
                task=settings.task, version=state.version,
            )
        self.shapes = spec.shapes()
        self.limits = delta_limits(spec)
        self.version = state.version
        self.created = state.created
        self.params: dict[str, F32] = dict(state.params)
        self.metrics = dict(state.metrics)
        self.interval = state.interval
        self.chunks = state.chunks
        self.buffer = Buffer(dict(state.sums), state.total_samples, state.count)
        self.staleness_sum = state.staleness_sum  # of the buffered updates
        self.staleness_max = state.staleness_max
        self.dedup = DedupWindow(settings.dedup_capacity, state.dedup)
        self.started: float | None = None  # monotonic start of the buffer (async) or round

    @staticmethod
    def initial_state(task: str, spec: ModelSpec, params: Mapping[str, F32],
                      created: float) -> State:
        """Version 0: the task's initial parameters and an empty buffer."""
        sums = Buffer.empty(spec.shapes()).sums
        return State(fingerprint(task, spec), 0, created, dict(params), sums)

    def snapshot(self) -> State:
        """The state to persist (arrays are shared, not copied: write it before mutating)."""
        return State(
            fingerprint(self.settings.task, self.spec), self.version, self.created,
            self.params, self.buffer.sums, self.buffer.total_samples, self.buffer.count,
            self.dedup.packed(), self.metrics, self.interval, self.chunks,
            self.staleness_sum, self.staleness_max,
        )

    def offer(self, topic_device: str, payload: Payload, now: float) -> Verdict:
        """Judge one delta payload from ``delta/<topic_device>``; fold it if accepted."""
        s = self.settings
        try:
            delta = read_delta(payload, topic_device, s.task, self.limits)
            if (delta.device, delta.update_id) in self.dedup:
                raise DeltaRejected(
                    RejectReason.DUPLICATE, "this update was already folded in",
                    device=delta.device, update_id=delta.update_id,
                )
            staleness = check_staleness(delta, self.version, s.effective_max_staleness)
            arrays = decode_arrays(delta, self.shapes, s.max_norm)
        except DeltaRejected as exc:
            ack = Ack(s.task, exc.device or topic_device, exc.update_id, False, self.version,
                      reason=exc.reason, detail=exc.message[:500])
            return Verdict(ack, len(payload))
        weight = 1.0 if s.sync else s.staleness.weight(staleness)
        self.buffer.add(arrays, weight, delta.num_samples)
        self.dedup.add((delta.device, delta.update_id))
        self.staleness_sum += staleness
        self.staleness_max = max(self.staleness_max, staleness)
        if self.buffer.count == 1 and not s.sync:
            self.started = now
        ack = Ack(s.task, delta.device, delta.update_id, True, self.version,
                  staleness=staleness, weight=weight)
        return Verdict(ack, len(payload), folded=True)

    def deadline(self, now: float) -> float | None:
        """Monotonic time at which the timer alone makes a flush due (None: not armed)."""
        s = self.settings
        if self.started is None:
            if not s.sync and self.buffer.count == 0:
                return None
            self.started = now  # a round, or a buffer reloaded from disk, starts now
        return self.started + s.wait_seconds

    def due(self, now: float) -> bool:
        count = self.buffer.count
        if count >= self.settings.k:
            return True
        at = self.deadline(now)
        return at is not None and now >= at and count >= self.settings.min_buffer

    def flush(self, now: float, wall: float) -> int:
        """Apply the buffer: new params, version + 1. Returns the new version.

        The new version's metrics start with what went into it: ``updates`` folded,
        and their ``staleness_mean`` and ``staleness_max`` (the shell adds accuracy).
        """
        count = self.buffer.count
        self.params = self.buffer.apply(self.params, self.settings.lr)
        self.buffer.clear()
        if self.created and wall > self.created:
            gap = wall - self.created
            self.interval = gap if self.interval is None else 0.8 * self.interval + 0.2 * gap
        self.version += 1
        self.created = wall
        self.metrics = {
            "updates": float(count),
            "staleness_mean": self.staleness_sum / count if count else 0.0,
            "staleness_max": float(self.staleness_max),
        }
        self.staleness_sum = self.staleness_max = 0
        self.started = now if self.settings.sync else None
        return self.version
