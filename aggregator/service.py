"""The async shell: moves bytes between MQTT and the pure core, durably.

Delivery and durability, end to end
-----------------------------------
* Two connections (see :mod:`aggregator.mqtt`). Inbound (MQTT 5 or 3.1.1): one
  persistent session with a fixed client id, subscribed to ``delta/+`` and
  ``status/+`` at QoS 1: deltas published while the aggregator is down are queued by
  the broker and delivered when it returns. Outbound (3.1.1, id + ``-out``, with the
  last will): models, acks and our status, whose PUBACKs must not queue behind the
  deltas in flight to us (see :func:`aggregator.mqtt.make_publisher`).
* **PUBACK after persistence.** paho normally sends the PUBACK of a QoS 1 message
  as soon as aiomqtt's callback has put it in a queue, i.e. before we looked at it;
  a SIGKILL then would lose it. We switch paho to ``manual_ack`` and send the PUBACK
  only once the batch containing the message is durable in the state file (or the
  message was rejected). A message received but not durable when the process dies
  is still unacknowledged at the broker, which redelivers it to the persistent
  session on reconnect. The dedup window catches a redelivery of an update whose
  PUBACK was lost after its state was written.
* **Device ack after persistence.** An ``ack/<device>`` saying *accepted* is sent
  only after the buffer sums and dedup window holding the update are on disk.
  A device that never sees its ack retries; the retry is acked *duplicate*.
* **Model after persistence.** A new version is written to the state file before
  its retained ``model``, chunks and ``model/meta`` go out, and the newest state is
  re-published on every connect, so the broker never shows a version the
  aggregator could lose, and a broker that lost its retained messages gets them back.
* **Backpressure instead of drops.** Every delta we hold is unacknowledged, so the
  broker's in-flight window for this client bounds how many we hold: MQTT 5
  ``Receive Maximum`` (``--receive-maximum``, declared at CONNECT) where the broker
  speaks 5, else its own per-client limit (mosquitto ``max_inflight_messages``); see
  :mod:`aggregator.mqtt`. The broker queues the rest (up to its
  ``max_queued_messages``: size that for the fleet, past it mosquitto drops even
  QoS 1), so our memory is O(window x delta + model), not O(backlog). The client's
  inbox is bounded by its gate (``queue_size`` messages, ``--max-held-mib``
  bytes): past either it stops reading the socket, and the broker holds the rest.
  Nothing is dropped, since a message never acknowledged would hold a slot of the
  broker's window until the next connect; ``fedmq_queue_dropped_total`` counts
  only messages with an undecodable topic, acknowledged and discarded.
* Latency: every socket sets TCP_NODELAY (paho does not), and a sender task publishes
  models and acks while the worker folds the next batch. Acks are handed to paho
  without waiting for the broker's PUBACK (see :func:`aggregator.mqtt.publish_nowait`).
  Brokers should set ``set_tcp_nodelay true`` too (mosquitto's default leaves
  Nagle on for its PUBACKs).
* Decoding, folding, evaluation and the state write run in a worker thread
  (``asyncio.to_thread``); only the one worker task touches the core, and if it is
  cancelled mid-batch it waits for the thread to finish first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiomqtt
from prometheus_client import CollectorRegistry, start_http_server

from aggregator.core import Aggregator
from aggregator.fleet import Fleet
from aggregator.metrics import Metrics
from aggregator.mqtt import (
    NODELAY,
    TIMEOUT,
    GatedClient,
    Incoming,
    ProtocolChoice,
    make_client,
    make_publisher,
    publish_nowait,
)
from aggregator.outbox import Outbox
from aggregator.publishing import ModelSnapshot, Release, build_release, status_payload
from aggregator.settings import Settings
from aggregator.store import Store
from aggregator.worker import ModelSource, Worker
from fedmq import codec
from fedmq.backoff import backoff_delay
from fedmq.codec import Payload
from fedmq.errors import DecodeError
from fedmq.tasks import get_task
from fedmq.topics import TopicKind

log = logging.getLogger(__name__)
T = TypeVar("T")
__all__ = ["NODELAY", "run_aggregator"]


async def finish_in_thread(fn: Callable[[], T]) -> T:
    """``asyncio.to_thread`` that, if cancelled, still waits for the thread to end, so
    the core is never touched by two sessions at once."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait({fut})
        raise


@dataclass
class Connection:
    """What one connected session needs: inbox -> worker -> outbox -> sender -> publisher."""

    client: GatedClient  # inbound: deltas and device status
    publisher: aiomqtt.Client  # outbound: models, acks, our status and will
    outbox: Outbox = field(default_factory=Outbox)
    synced: asyncio.Event = field(default_factory=asyncio.Event)  # newest model on the broker


class Service:
    def __init__(self, settings: Settings, worker: Worker, metrics: Metrics) -> None:
        self.settings = settings
        self.worker = worker
        self.core: Aggregator = worker.core
        self.metrics = metrics
        self.topics = settings.topics
        self.fleet = Fleet()
        self.release: Release | None = None  # the newest model encoded
        self.latest: ModelSnapshot | None = None  # the newest model made

    def _publisher(self) -> aiomqtt.Client:
        will = aiomqtt.Will(self.topics.aggregator_status,
                            status_payload(self.core, online=False, ts=time.time()), 1, True)
        return make_publisher(self.settings, will)

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
        """Connect, serve, reconnect with backoff, until ``stop`` is set."""
        self.release = await finish_in_thread(self.worker.initial_release)
        self.metrics.version.set(self.core.version)
        rng = random.Random()
        attempt = 0
        choice = ProtocolChoice.for_settings(self.settings)
        while not stop.is_set():
            connected = False
            try:
                async with make_client(self.settings, choice, self.metrics.dropped.inc) as client, \
                        self._publisher() as publisher:
                    connected, attempt = True, 0
                    client.timeout = TIMEOUT  # the short v5 probe timeout was for CONNECT only
                    await self._session(Connection(client, publisher), stop, ready)
            except* aiomqtt.MqttError as group:  # raised bare, or from the session's TaskGroup
                log.warning("broker connection lost or refused (MQTT %s): %s",
                            choice.current.name, group.exceptions[0])
            choice = choice.after(connected=connected)
            if stop.is_set():
                break
            delay = backoff_delay(attempt, u=rng.random())
            attempt += 1
            log.info("reconnecting in %.2f s", delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                continue

    async def _session(
        self, conn: Connection, stop: asyncio.Event, ready: asyncio.Event | None
    ) -> None:
        # A persistent session gets its queued deltas right after CONNACK, ahead of the
        # SUBACK: the worker must already be folding them (so reopening the gate).
        client, publisher = conn.client, conn.publisher
        async with asyncio.TaskGroup() as tg:
            watches = [tg.create_task(self._watch(c), name="aggregator-watch")
                       for c in (client, publisher)]
            tg.create_task(self._work(conn, stop, watches), name="aggregator-worker")
            tg.create_task(self._send(conn), name="aggregator-sender")
            await client.subscribe(self.topics.delta_filter, qos=1)
            await client.subscribe(self.topics.status_filter, qos=1)
            await self._publish_status(publisher, online=True)
            await conn.synced.wait()  # "ready" promises the broker shows our newest model
            log.info("connected to %s as %s at version %d", self.settings.broker,
                     self.settings.identifier, self.core.version)
            if ready is not None:
                ready.set()
        await self._publish_status(publisher, online=False)

    async def _watch(self, client: aiomqtt.Client) -> None:
        """Ends the session when a connection breaks (the worker may be idle then)."""
        async for _ in client.messages:  # never yields: nothing lands in aiomqtt's queue
            pass

    def _on_status(self, device: str, payload: Payload) -> None:
        try:
            self.fleet.on_status(device, payload)
        except DecodeError as exc:
            log.warning("bad status from %s: %s", device, exc)
            return
        self.metrics.devices(self.fleet.counts())

    async def _work(
        self, conn: Connection, stop: asyncio.Event, watches: list[asyncio.Task[None]]
    ) -> None:
        while True:
            batch = await self._next_batch(conn.client, stop)
            if batch is None:
                break
            items = [(m.device, m.payload) for m in batch]
            result = await finish_in_thread(functools.partial(self.worker.process, items))
            for message in batch:
                conn.client.puback(message)  # durable (or rejected): the broker may forget it
            if result.model is not None:
                self.latest = result.model
            conn.outbox.put(result)  # never waits: see aggregator.outbox
        for watch in watches:
            watch.cancel()
        conn.outbox.close()

    async def _send(self, conn: Connection) -> None:
        """Publish the newest model, then acks, while the worker folds the next batch.

        The sender is the only task that publishes models, so versions reach the
        broker in order; it starts with the newest one, which the last session may
        not have published, or the broker may have lost.
        """
        publisher = conn.publisher
        if self.latest is not None:
            await self._publish_model(publisher, self.latest)
        elif self.release is not None:
            await self._publish_release(publisher, self.release)
        conn.synced.set()
        while (result := await conn.outbox.take()) is not None:
            if result.model is not None:
                await self._publish_model(publisher, result.model)
            for verdict in result.verdicts:  # lost with the connection? the device retries
                publish_nowait(publisher, self.topics.ack(verdict.ack.device), verdict.payload)

    async def _next_batch(
        self, client: GatedClient, stop: asyncio.Event
    ) -> list[Incoming] | None:
        """Up to ``batch_max`` deltas; [] when the flush timer fired; None on stop.

        Device status messages met on the way are handled and released here.
        """
        inbox, batch = client.inbox, list[Incoming]()
        while not batch:
            now = time.monotonic()
            at = self.core.deadline(now)
            timeout = None if at is None else max(0.0, at - now)
            get = asyncio.ensure_future(inbox.get())
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({get, stopped}, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if get not in done:
                get.cancel()
                return None if stopped in done else []
            item = get.result()
            while True:
                if self._is_delta(client, item):
                    batch.append(item)
                if len(batch) >= self.settings.batch_max or inbox.empty():
                    break
                item = inbox.get_nowait()
        return batch

    def _is_delta(self, client: GatedClient, item: Incoming) -> bool:
        """True for a delta; anything else is dealt with and released here."""
        parsed = self.topics.parse(item.topic)
        if parsed is not None and parsed.kind is TopicKind.DELTA:
            self.metrics.received.inc()
            return True
        if parsed is not None and parsed.kind is TopicKind.STATUS and parsed.device:
            self._on_status(parsed.device, item.payload)
        else:
            log.warning("ignoring message on unexpected topic %s", item.topic)
        client.puback(item)
        return False

    async def _publish_model(self, client: aiomqtt.Client, snap: ModelSnapshot) -> None:
        if self.release is None or self.release.version != snap.version:
            previous = self.worker.published_chunks
            build = functools.partial(build_release, self.settings, self.core.spec, snap, previous)
            self.release = await asyncio.to_thread(build)  # reads only the frozen snapshot
            self.worker.published_chunks = len(self.release.publication.chunks)
        await self._publish_release(client, self.release)
        if self.latest is snap:
            self.latest = None  # published: a reconnect re-publishes self.release

    async def _publish_release(self, client: aiomqtt.Client, release: Release) -> None:
        pub, t = release.publication, self.topics
        # PROTOCOL.md order: chunks, the model (or manifest), stale chunks cleared, meta
        await asyncio.gather(*(client.publish(t.chunk(i), c, qos=1, retain=True)
                               for i, c in enumerate(pub.chunks)))
        await client.publish(t.model, pub.model, qos=1, retain=True)
        await asyncio.gather(*(client.publish(t.chunk(i), b"", qos=1, retain=True)
                               for i in release.stale_chunks))
        await client.publish(t.meta, codec.encode(pub.meta), qos=1, retain=True)
        self.metrics.published.inc()
        self.metrics.model_bytes.set(pub.payload_size)
        if "accuracy" in pub.meta.metrics:
            self.metrics.accuracy.set(pub.meta.metrics["accuracy"])

    async def _publish_status(self, client: aiomqtt.Client, *, online: bool) -> None:
        body = status_payload(self.core, online=online, ts=time.time())
        await client.publish(self.topics.aggregator_status, body, qos=1, retain=True)


async def run_aggregator(
    settings: Settings, *, registry: CollectorRegistry, stop: asyncio.Event,
    ready: asyncio.Event | None = None, task: ModelSource | None = None,
) -> None:
    """Run the aggregator until ``stop`` is set (the in-process API; the CLI wraps it).

    ``task`` overrides the model source named by ``settings.task`` (benchmarks use
    synthetic models of any size). Loads or creates the state (version 0 from the
    task's initial parameters), serves metrics on ``settings.metrics_port`` unless it
    is 0, and returns after a clean shutdown: state durable, offline status published.
    """
    metrics = Metrics(registry, settings.task)
    source = task if task is not None else get_task(settings.task)
    worker = await asyncio.to_thread(Worker.open, settings, source, Store(settings.state_dir),
                                     metrics)
    server = None
    if settings.metrics_port:
        server, _ = start_http_server(settings.metrics_port, registry=registry)
    try:
        await Service(settings, worker, metrics).run(stop, ready)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
