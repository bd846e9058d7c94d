"""The blocking half of the shell: one batch of deltas in, durable state and verdicts out.

:class:`Worker` runs in a thread (the service calls it through ``asyncio.to_thread``)
and is the only code that touches the core. It folds a batch, flushes whenever the
buffer is due, evaluates the newest model, and writes the state once per batch
*before* returning, so whatever it returns is safe to acknowledge. It does not
encode models: it returns a :class:`ModelSnapshot` and the sender encodes only the
newest one it has not published yet, so versions superseded while a publish was
in flight cost nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from aggregator.core import Aggregator, Verdict
from aggregator.metrics import Metrics
from aggregator.publishing import ModelSnapshot, Release, build_release
from aggregator.settings import Settings
from aggregator.store import Store
from fedmq.codec import Payload
from fedmq.modelspec import ModelSpec
from fedmq.tasks import Dataset, Params

log = logging.getLogger(__name__)


class ModelSource(Protocol):
    """What the aggregator needs of a task (:class:`fedmq.tasks.Task` has all of it)."""

    @property
    def spec(self) -> ModelSpec: ...

    def initial_params(self) -> Params: ...

    def test_set(self) -> Dataset: ...

    def evaluate(self, params: Params) -> float: ...


@dataclass(frozen=True, slots=True)
class BatchResult:
    verdicts: tuple[Verdict, ...]
    model: ModelSnapshot | None  # the newest version, if the batch made one


class Worker:
    def __init__(self, core: Aggregator, task: ModelSource, store: Store, metrics: Metrics) -> None:
        self.core = core
        self.task = task
        self.store = store
        self.metrics = metrics
        # Chunk count of the newest publication the sender built; saved with the next
        # state so that a restart clears chunks a longer model left retained.
        self.published_chunks = core.chunks

    @classmethod
    def open(cls, settings: Settings, task: ModelSource, store: Store, metrics: Metrics) -> Worker:
        """Load the state, or create and persist version 0 from the task."""
        state = store.load()
        fresh = state is None
        if state is None:
            state = Aggregator.initial_state(settings.task, task.spec, task.initial_params(),
                                             time.time())
        worker = cls(Aggregator(settings, task.spec, state), task, store, metrics)
        if fresh:
            worker.core.metrics = worker.evaluate()
            worker.save()
            log.info("created version 0 of %s in %s", settings.task, settings.state_dir)
        else:
            log.info("resuming %s at version %d with %d buffered updates", settings.task,
                     state.version, state.count)
        metrics.buffered.set(worker.core.buffer.count)
        return worker

    def evaluate(self) -> dict[str, float]:
        """The core's metrics for its version plus test accuracy, if there is a test set."""
        if len(self.task.test_set()) == 0:
            return dict(self.core.metrics)
        return {**self.core.metrics, "accuracy": self.task.evaluate(self.core.params)}

    def save(self) -> None:
        t0 = time.perf_counter()
        self.core.chunks = self.published_chunks
        self.store.save(self.core.snapshot())
        self.metrics.persist.observe(time.perf_counter() - t0)

    def initial_release(self) -> Release:
        """The publication of the loaded state, to (re-)publish on connect."""
        core = self.core
        release = build_release(core.settings, core.spec, ModelSnapshot.of(core), core.chunks)
        if len(release.publication.chunks) != core.chunks:
            self.published_chunks = len(release.publication.chunks)
            self.save()  # remember how many chunks may be retained, to clear them later
        return release

    def process(self, items: list[tuple[str, Payload]]) -> BatchResult:
        """Judge and fold ``items`` ((topic device, payload) pairs), flushing when due; an
        empty list just checks the flush timer. State is durable when this returns."""
        t0 = time.perf_counter()
        core, m = self.core, self.metrics
        verdicts: list[Verdict] = []
        flushed = False
        for device, payload in items:
            verdict = core.offer(device, payload, time.monotonic())
            verdicts.append(verdict)
            self._count(verdict)
            if core.due(time.monotonic()):
                core.flush(time.monotonic(), time.time())
                flushed = True
        if not items and core.due(time.monotonic()):
            core.flush(time.monotonic(), time.time())
            flushed = True
        model = None
        if flushed:  # only the batch's last version is evaluated: the others are superseded
            core.metrics = self.evaluate()
            model = ModelSnapshot.of(core)
        if flushed or any(v.folded for v in verdicts):
            self.save()
        m.version.set(core.version)
        m.buffered.set(core.buffer.count)
        if items:
            m.aggregation.observe(time.perf_counter() - t0)
        return BatchResult(tuple(verdicts), model)

    def _count(self, verdict: Verdict) -> None:
        m, ack = self.metrics, verdict.ack
        m.update_bytes.observe(verdict.nbytes)
        if ack.accepted:
            m.accepted.inc()
            m.staleness.observe(ack.staleness or 0)
        elif ack.reason is not None:
            m.rejected(ack.reason)
