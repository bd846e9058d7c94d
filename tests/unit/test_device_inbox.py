"""The simulated device's inbox: metas coalesced, a bounded queue, a wake-up without polling."""

from __future__ import annotations

import asyncio

from device_sim.events import LinkUp, Received
from device_sim.inbox import Inbox
from fedmq.topics import TopicKind


def test_metas_are_coalesced_to_the_newest_keeping_their_first_place() -> None:
    box = Inbox(limit=8)
    box.put_meta(b"v1")
    box.put(LinkUp(1.0))
    box.put_meta(b"v2")
    box.put_meta(b"v3")
    assert len(box) == 2
    first = box.pop()
    assert isinstance(first, Received)
    assert (first.kind, first.payload) == (TopicKind.META, b"v3")
    assert box.pop() == LinkUp(1.0)
    box.put_meta(b"v4")  # a meta after the last was handed over is queued again
    meta = box.pop()
    assert isinstance(meta, Received)
    assert meta.payload == b"v4"


def test_a_full_inbox_refuses_messages_but_not_forced_events() -> None:
    box = Inbox(limit=1)
    assert box.put(Received(1.0, TopicKind.ACK, b"a"))
    assert not box.put(Received(1.0, TopicKind.ACK, b"b"))
    assert box.put(LinkUp(1.0), force=True)
    box.put_meta(b"m")  # metas never count against the limit
    assert len(box) == 3


def test_wait_returns_when_an_event_arrives_or_at_the_deadline() -> None:
    async def scenario() -> None:
        box = Inbox(limit=4)
        loop = asyncio.get_running_loop()
        waiter = asyncio.create_task(box.wait(None))
        await asyncio.sleep(0)
        assert not waiter.done()
        box.put(LinkUp(1.0))
        await waiter  # woken by the put, no deadline needed
        await box.wait(None)  # something queued: returns at once
        box.pop()
        await box.wait(loop.time())  # deadline already passed: returns

    asyncio.run(scenario())
