"""The async shell: moves bytes between MQTT and the pure core, durably.

Delivery and durability, end to end
-----------------------------------
* One MQTT 3.1.1 session with a fixed client id and ``clean_session=False``,
  subscribed to ``delta/+`` and ``status/+`` at QoS 1: deltas published while
  the aggregator is down are queued by the broker and delivered when it returns.
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
* **Backpressure instead of drops.** Unacknowledged messages occupy the broker's
  in-flight window for this client (mosquitto ``max_inflight_messages``), so the
  broker stops sending while we are busy and queues the rest (up to its
  ``max_queued_messages``: size that for the fleet, past it mosquitto drops even
  QoS 1). Our queues are bounded; the reader blocks when the worker's queue is full.
  aiomqtt's own queue is bounded far above any in-flight window; if it ever
  overflows, the message is counted in ``fedmq_queue_dropped_total`` and, being
  unacknowledged, is redelivered on the next connect rather than lost.
* Latency: every socket sets TCP_NODELAY (paho does not), and a sender task publishes
  models and acks while the worker folds the next batch. Brokers should set
  ``set_tcp_nodelay true`` too (mosquitto's default leaves Nagle on for its PUBACKs).
* Decoding, folding, evaluation and the state write run in a worker thread
  (``asyncio.to_thread``); only the one worker task touches the core, and if it is
  cancelled mid-batch it waits for the thread to finish first.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import aiomqtt
from prometheus_client import CollectorRegistry, start_http_server

from aggregator.backoff import backoff_delay
from aggregator.core import Aggregator, Verdict
from aggregator.fleet import Fleet
from aggregator.metrics import Metrics
from aggregator.publishing import Release, status_payload
from aggregator.settings import Settings
from aggregator.store import Store
from aggregator.worker import BatchResult, ModelSource, Worker
from fedmq import codec
from fedmq.errors import DecodeError
from fedmq.tasks import get_task
from fedmq.topics import TopicKind

log = logging.getLogger(__name__)
T = TypeVar("T")
INCOMING_QUEUE = 10_000  # aiomqtt's queue: far above any broker in-flight window
# paho leaves Nagle on; small acks and PUBACKs then wait out delayed ACKs (~40 ms each).
OUTBOX = 8  # batches of acks waiting to be sent; the worker waits when it is full
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


async def finish_in_thread(fn: Callable[[], T]) -> T:
    """``asyncio.to_thread`` that, if cancelled, still waits for the thread to end, so
    the core is never touched by two sessions at once."""
    fut = asyncio.ensure_future(asyncio.to_thread(fn))
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        await asyncio.wait({fut})
        raise


def counting_queue(dropped: Callable[[], None]) -> type[asyncio.Queue[aiomqtt.Message]]:
    """An asyncio.Queue class for aiomqtt that counts what it has to refuse."""

    class CountingQueue(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            if self.full():
                dropped()  # aiomqtt logs and discards; unacked, so redelivered on reconnect
            super().put_nowait(item)

    return CountingQueue


@dataclass
class Connection:
    """What one connected session needs: reader -> queue -> worker -> outbox -> sender."""

    client: aiomqtt.Client
    queue: asyncio.Queue[aiomqtt.Message]
    outbox: asyncio.Queue[BatchResult | None]


class Service:
    def __init__(self, settings: Settings, worker: Worker, metrics: Metrics) -> None:
        self.settings = settings
        self.worker = worker
        self.core: Aggregator = worker.core
        self.metrics = metrics
        self.topics = settings.topics
        self.fleet = Fleet()
        self.release: Release | None = None

    def _client(self) -> aiomqtt.Client:
        s, b = self.settings, self.settings.broker
        will = aiomqtt.Will(self.topics.aggregator_status,
                            status_payload(self.core, online=False, ts=time.time()), 1, True)
        client = aiomqtt.Client(
            b.host, b.port, username=b.username, password=b.password,
            identifier=s.identifier, clean_session=False, will=will, keepalive=s.keepalive,
            tls_params=aiomqtt.TLSParameters() if b.tls else None,
            max_queued_incoming_messages=INCOMING_QUEUE,
            queue_type=counting_queue(self.metrics.dropped.inc),
            socket_options=NODELAY,
        )
        client.pending_calls_threshold = 1000  # acks go out concurrently by design
        # aiomqtt has no switch for this; see the module docstring for why we need it.
        client._client.manual_ack_set(True)
        return client

    async def run(self, stop: asyncio.Event, ready: asyncio.Event | None) -> None:
        """Connect, serve, reconnect with backoff, until ``stop`` is set."""
        self.release = await finish_in_thread(self.worker.initial_release)
        self.metrics.version.set(self.core.version)
        rng = random.Random()
        attempt = 0
        while not stop.is_set():
            try:
                async with self._client() as client:
                    attempt = 0
                    await self._session(client, stop, ready)
            except* aiomqtt.MqttError as group:  # raised bare, or from the session's TaskGroup
                log.warning("broker connection lost or refused: %s", group.exceptions[0])
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
        self, client: aiomqtt.Client, stop: asyncio.Event, ready: asyncio.Event | None
    ) -> None:
        await client.subscribe(self.topics.delta_filter, qos=1)
        await client.subscribe(self.topics.status_filter, qos=1)
        await self._publish_status(client, online=True)
        if self.release is not None:
            await self._publish_release(client, self.release)  # the broker may have lost it
        log.info("connected to %s as %s at version %d", self.settings.broker,
                 self.settings.identifier, self.core.version)
        if ready is not None:
            ready.set()
        conn = Connection(client, asyncio.Queue(maxsize=self.settings.queue_size),
                          asyncio.Queue(maxsize=OUTBOX))
        async with asyncio.TaskGroup() as tg:
            reader = tg.create_task(self._read(conn), name="aggregator-reader")
            tg.create_task(self._work(conn, stop, reader), name="aggregator-worker")
            tg.create_task(self._send(conn), name="aggregator-sender")
        await self._publish_status(client, online=False)

    async def _read(self, conn: Connection) -> None:
        async for message in conn.client.messages:
            parsed = self.topics.parse(message.topic.value)
            if parsed is not None and parsed.kind is TopicKind.DELTA:
                self.metrics.received.inc()
                await conn.queue.put(message)
                continue
            if parsed is not None and parsed.kind is TopicKind.STATUS and parsed.device:
                self._on_status(parsed.device, _payload(message))
            else:
                log.warning("ignoring message on unexpected topic %s", message.topic.value)
            _puback(conn.client, message)

    def _on_status(self, device: str, payload: bytes) -> None:
        try:
            self.fleet.on_status(device, payload)
        except DecodeError as exc:
            log.warning("bad status from %s: %s", device, exc)
            return
        self.metrics.devices(self.fleet.counts())

    async def _work(
        self, conn: Connection, stop: asyncio.Event, reader: asyncio.Task[None]
    ) -> None:
        while True:
            batch = await self._next_batch(conn.queue, stop)
            if batch is None:
                break
            items = [(_device(m), _payload(m)) for m in batch]
            result = await finish_in_thread(functools.partial(self.worker.process, items))
            for message in batch:
                _puback(conn.client, message)  # durable (or rejected): the broker may forget it
            await conn.outbox.put(result)
        reader.cancel()
        await conn.outbox.put(None)

    async def _send(self, conn: Connection) -> None:
        """Publish models and acks in order while the worker folds the next batch."""
        while (result := await conn.outbox.get()) is not None:
            verdicts = list(result.verdicts)
            release = result.release
            while not conn.outbox.empty():  # catch up: only the newest model matters
                more = conn.outbox.get_nowait()
                if more is None:
                    await conn.outbox.put(None)
                    break
                verdicts.extend(more.verdicts)
                release = more.release or release
            await self._deliver(conn.client, BatchResult(tuple(verdicts), release))

    async def _next_batch(
        self, queue: asyncio.Queue[aiomqtt.Message], stop: asyncio.Event
    ) -> list[aiomqtt.Message] | None:
        """Up to ``batch_max`` deltas; [] when the flush timer fired; None on stop."""
        now = time.monotonic()
        at = self.core.deadline(now)
        timeout = None if at is None else max(0.0, at - now)
        get = asyncio.ensure_future(queue.get())
        stopped = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({get, stopped}, timeout=timeout,
                                     return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if get not in done:
            get.cancel()
            return None if stopped in done else []
        batch = [get.result()]
        while len(batch) < self.settings.batch_max and not queue.empty():
            batch.append(queue.get_nowait())
        return batch

    async def _deliver(self, client: aiomqtt.Client, result: BatchResult) -> None:
        if result.release is not None:
            self.release = result.release
            await self._publish_release(client, result.release)
        await asyncio.gather(*(self._send_ack(client, v) for v in result.verdicts))

    async def _send_ack(self, client: aiomqtt.Client, verdict: Verdict) -> None:
        await client.publish(self.topics.ack(verdict.ack.device), verdict.payload, qos=1)

    async def _publish_release(self, client: aiomqtt.Client, release: Release) -> None:
        pub, t = release.publication, self.topics
        await asyncio.gather(*(client.publish(t.chunk(i), c, qos=1, retain=True)
                               for i, c in enumerate(pub.chunks)))
        await asyncio.gather(*(client.publish(t.chunk(i), b"", qos=1, retain=True)
                               for i in release.stale_chunks))
        await client.publish(t.model, pub.model, qos=1, retain=True)
        await client.publish(t.meta, codec.encode(pub.meta), qos=1, retain=True)
        self.metrics.published.inc()
        self.metrics.model_bytes.set(pub.payload_size)
        if "accuracy" in pub.meta.metrics:
            self.metrics.accuracy.set(pub.meta.metrics["accuracy"])

    async def _publish_status(self, client: aiomqtt.Client, *, online: bool) -> None:
        payload = status_payload(self.core, online=online, ts=time.time())
        await client.publish(self.topics.aggregator_status, payload, qos=1, retain=True)


def _payload(message: aiomqtt.Message) -> bytes:
    p = message.payload
    return bytes(p) if isinstance(p, bytes | bytearray) else str(p).encode()


def _device(message: aiomqtt.Message) -> str:
    return message.topic.value.rsplit("/", 1)[-1]


def _puback(client: aiomqtt.Client, message: aiomqtt.Message) -> None:
    if message.qos == 1:
        client._client.ack(message.mid, 1)


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
