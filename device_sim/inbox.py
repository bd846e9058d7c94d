"""A simulated device's inbox: events for its agent, filled from paho's read callback.

Cheaper than an ``asyncio.Queue`` waited on with a timeout (a task and a
timer per wait, ten thousand devices over): a list, and one future that
exists only while the device sleeps. The model meta is retained
latest-state, so a device still busy with an older one only needs the
newest: metas are coalesced and never pile up in, or overflow, the inbox.
"""

from __future__ import annotations

import asyncio
import time

from device_sim.events import Event, Received
from fedmq.topics import TopicKind


class _MetaArrived:
    """Queue marker: a meta arrived; the newest payload is in ``Inbox._meta``."""


_META = _MetaArrived()


class Inbox:
    def __init__(self, limit: int) -> None:
        self.limit = limit  # events kept besides the meta; put() refuses the rest
        # a list, not a deque: an empty deque costs ~700 bytes, x 10,000 devices, and
        # the inbox holds a handful of events at most (pop(0) on those is nothing)
        self._queue: list[Event | _MetaArrived] = []
        self._meta: bytes | None = None  # newest meta not yet popped
        self._wake: asyncio.Future[None] | None = None  # exists while wait() sleeps

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, event: Event, *, force: bool = False) -> bool:
        """Queue ``event``; False if the inbox is full (link events pass ``force``)."""
        if not force and len(self._queue) >= self.limit:
            return False
        self._push(event)
        return True

    def put_meta(self, payload: bytes) -> None:
        if self._meta is None:
            self._push(_META)
        self._meta = payload

    def pop(self) -> Event:
        event = self._queue.pop(0)
        if isinstance(event, _MetaArrived):
            assert self._meta is not None
            meta, self._meta = self._meta, None
            return Received(time.time(), TopicKind.META, meta)
        return event

    async def wait(self, deadline: float | None) -> None:
        """Sleep until something is queued or the loop time ``deadline`` (None: no limit)."""
        if self._queue:
            return
        self._wake = asyncio.get_running_loop().create_future()
        try:
            async with asyncio.timeout_at(deadline):
                await self._wake
        except TimeoutError:
            pass
        finally:
            self._wake = None

    def _push(self, event: Event | _MetaArrived) -> None:
        self._queue.append(event)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
