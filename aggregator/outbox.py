"""What the sender still has to send: every ack, in order, and only the newest model.

The worker hands each batch's result over without ever waiting (so a broker slow to
PUBACK our publishes cannot stop the worker from acknowledging deltas, which is what
lets the reader resume; see :mod:`aggregator.mqtt`). Acks are a few hundred bytes
each; models are coalesced: a version made while another was being published
replaces any older unpublished one, so at most one model publish is in flight and
it is always the newest.
"""

from __future__ import annotations

import asyncio

from aggregator.core import Verdict
from aggregator.publishing import ModelSnapshot
from aggregator.worker import BatchResult


class Outbox:
    def __init__(self) -> None:
        self._verdicts: list[Verdict] = []
        self._model: ModelSnapshot | None = None
        self._closed = False
        self._ready = asyncio.Event()

    def put(self, result: BatchResult) -> None:
        """Add a batch's acks; its model, if any, supersedes an unsent older one."""
        self._verdicts.extend(result.verdicts)
        if result.model is not None:
            self._model = result.model
        self._ready.set()

    def close(self) -> None:
        """No more results: :meth:`take` returns None once the rest is taken."""
        self._closed = True
        self._ready.set()

    async def take(self) -> BatchResult | None:
        """Everything not yet taken (waiting for something), or None when closed and empty."""
        while not (self._verdicts or self._model is not None or self._closed):
            self._ready.clear()
            await self._ready.wait()
        if not self._verdicts and self._model is None:
            return None
        result = BatchResult(tuple(self._verdicts), self._model)
        self._verdicts, self._model = [], None
        return result
