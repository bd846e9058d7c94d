"""The aggregator's MQTT session: client options, flow control, manual PUBACKs.

Flow control: what bounds the aggregator's memory
-------------------------------------------------
paho reads every PUBLISH the broker sends and we queue it, so the only real
bound on how many deltas sit in this process is how many the broker lets be *in
flight* (sent, not yet PUBACKed) to us. With manual PUBACKs (see
:mod:`aggregator.service`) every delta we hold is in flight, so:

* **MQTT 5** (mosquitto 2, EMQX, HiveMQ): we declare CONNECT ``Receive Maximum`` =
  ``settings.receive_maximum``; a compliant broker then holds the rest of the
  backlog itself. Memory is about ``receive_maximum x delta size + O(model)``,
  whatever the number of updates. A session expiry of "never" gives the same
  persistent session as 3.1.1's ``clean_session=False``.
* **MQTT 3.1.1** (the demo's amqtt, or ``receive_maximum = 0``): the broker's own
  per-client window bounds it (mosquitto ``max_inflight_messages``; size it with
  the delta size in mind).
* **Our own byte budget**, because neither window is to be trusted alone: mosquitto
  2.0.11 (Debian's) lets both be exceeded, measured here at 84 unacked deltas for a
  Receive Maximum of 32 and 180 for ``max_inflight_messages 100``. :class:`GatedClient`
  stops reading the socket while the deltas received and not yet PUBACKed exceed
  ``settings.max_held_bytes``, or while ``settings.queue_size`` of them wait for the
  worker; TCP flow control then makes the broker hold the rest.
  Reading resumes as soon as the worker acknowledges a batch, which never waits for
  the socket, so the pause cannot deadlock.

A broker that does not speak MQTT 5 (amqtt hangs on a v5 CONNECT rather than
refusing it) is detected by a short connect timeout; attempts then alternate
between 5 and 3.1.1 until one connects, and the process keeps the one that did.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import aiomqtt
from paho.mqtt import client as mqtt
from paho.mqtt.client import MQTT_CLEAN_START_FIRST_ONLY
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from aggregator import paho_publish
from aggregator.paho_publish import OwnedPacket
from aggregator.settings import Settings
from fedmq.codec import Payload

# paho asks recv() for all that is left of a packet; CPython allocates that much and
# shrinks it to what arrived (~100 KiB), so a 4 MB delta cost dozens of 4 MB
# allocations: page faults, and a heap fragmented in step with the number of updates
# (bench/memory, 1M params, K=10: peak RSS 590 -> 366 MiB at 500 updates).
RECV_CHUNK = 256 * 1024
# paho leaves Nagle on; small acks and PUBACKs then wait out delayed ACKs (~40 ms each).
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
PROBE_TIMEOUT = 3.0  # seconds a v5 CONNECT may take before we try 3.1.1
TIMEOUT = 10.0  # aiomqtt's default for every other operation
NEVER_EXPIRES = 0xFFFFFFFF  # MQTT 5 session expiry interval meaning "never"
PUBLISHER_SUFFIX = "-out"  # client id of the outbound connection: the inbound id plus this

V5, V311 = aiomqtt.ProtocolVersion.V5, aiomqtt.ProtocolVersion.V311


@dataclass(frozen=True, slots=True)
class ProtocolChoice:
    """Which MQTT version to try next (pure; the service feeds it each attempt's outcome)."""

    order: tuple[aiomqtt.ProtocolVersion, ...]
    index: int = 0
    settled: bool = False  # a version connected once: keep it for good

    @classmethod
    def for_settings(cls, settings: Settings) -> ProtocolChoice:
        return cls((V5, V311) if settings.receive_maximum else (V311,))

    @property
    def current(self) -> aiomqtt.ProtocolVersion:
        return self.order[self.index]

    @property
    def probing(self) -> bool:
        """True while an MQTT 5 attempt may hang on a 3.1.1-only broker."""
        return not self.settled and self.current is V5

    def after(self, *, connected: bool) -> ProtocolChoice:
        if connected:
            return replace(self, settled=True)
        if self.settled:
            return self
        return replace(self, index=(self.index + 1) % len(self.order))


@dataclass(frozen=True, slots=True)
class Incoming:
    """One PUBLISH as the service needs it: aiomqtt's ``Message`` without the ``Topic``
    object and the second queue it costs per message."""

    topic: str
    payload: Payload
    mid: int
    qos: int

    @property
    def device(self) -> str:
        """The last topic level: the device id of ``delta/<device>`` and ``status/<device>``."""
        return self.topic.rsplit("/", 1)[-1]


class GatedClient(aiomqtt.Client):
    """An aiomqtt client that queues what it receives in :attr:`inbox` and stops
    reading its socket while it holds too much.

    It holds a message from its arrival until :meth:`puback`; while more than
    ``max_held_bytes`` of payload or ``max_held`` messages wait, the socket's reader
    is off the event loop. One read may overshoot: paho parses every packet already
    in the kernel's receive buffer (up to one per message it has in flight), so the
    bound is the limit plus one socket buffer. Nothing is ever dropped: a message
    left unacknowledged would hold a slot of the broker's in-flight window until
    the next connect. Resuming installs :meth:`_read_socket`, which does what
    aiomqtt 2.5's own reader does; aiomqtt's ``messages`` iterator is unused.
    """

    def __init__(self, *args: Any, max_held_bytes: int, max_held: int,
                 dropped: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_held_bytes = max_held_bytes
        self.max_held = max_held
        self.inbox: asyncio.Queue[Incoming] = asyncio.Queue()  # bounded by the gate
        self.dropped = dropped
        self.held = 0  # payload bytes received and not yet released by puback
        self._fd = -1
        self._paused = False
        paho, recv = self._client, self._client._sock_recv

        def capped(bufsize: int) -> bytes:
            state = paho._in_packet
            if type(state["packet"]) is bytearray:  # a new packet: read it into one we keep
                state["packet"] = OwnedPacket()
            return recv(min(bufsize, RECV_CHUNK))

        self._client._sock_recv = capped  # type: ignore[method-assign]  # see RECV_CHUNK

    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        super()._on_socket_open(client, userdata, sock)
        # Runs after aiomqtt's add_reader, which it schedules the same way.
        self._loop.call_soon_threadsafe(self._opened, sock.fileno())

    def _opened(self, fd: int) -> None:
        self._fd = fd
        self._gate()

    def _on_message(self, client: mqtt.Client, userdata: Any,
                    message: mqtt.MQTTMessage) -> None:
        try:
            topic = message.topic
        except UnicodeDecodeError:  # brokers refuse such topics; never leave it in flight
            self.dropped()
            self._client.ack(message.mid, message.qos)
            return
        body = message.payload  # paho's own packet buffer (see paho_publish): no copy
        item = Incoming(topic, body, message.mid, message.qos)
        self.inbox.put_nowait(item)
        self.held += len(item.payload)
        self._gate()

    def puback(self, item: Incoming) -> None:
        """Acknowledge ``item`` to the broker (QoS 1) and release what it held."""
        if item.qos == 1:
            self._client.ack(item.mid, 1)
        self.held -= len(item.payload)
        self._gate()

    def _gate(self) -> None:
        if self._fd < 0:
            return
        full = self.held > self.max_held_bytes or self.inbox.qsize() >= self.max_held
        if not self._paused and full:
            self._loop.remove_reader(self._fd)
            self._paused = True
        elif self._paused and not full:
            self._loop.add_reader(self._fd, self._read_socket)
            self._paused = False

    def _read_socket(self) -> None:
        try:
            while True:
                self._client.loop_read()
                sock = self._client.socket()
                if isinstance(sock, ssl.SSLSocket) and sock.pending() > 0:
                    continue  # decoded TLS bytes the selector will not report
                break
        except Exception as exc:  # as in aiomqtt: a broken socket ends the session
            if not self._disconnected.done():
                self._disconnected.set_exception(exc)


def make_client(settings: Settings, choice: ProtocolChoice,
                dropped: Callable[[], None]) -> GatedClient:
    """The inbound connection: a persistent session with manual PUBACKs, gated."""
    paho_publish.install()  # one copy of each delta instead of five
    b, v5 = settings.broker, choice.current is V5
    props = None
    if v5:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]  # paho: untyped
        props.ReceiveMaximum = settings.receive_maximum
        props.SessionExpiryInterval = NEVER_EXPIRES
    client = GatedClient(
        b.host, b.port, username=b.username, password=b.password,
        identifier=settings.identifier, protocol=choice.current,
        clean_session=None if v5 else False,  # 3.1.1's persistent session...
        clean_start=False if v5 else MQTT_CLEAN_START_FIRST_ONLY,  # ...and MQTT 5's
        properties=props, keepalive=settings.keepalive,
        timeout=PROBE_TIMEOUT if choice.probing else TIMEOUT,
        tls_params=aiomqtt.TLSParameters() if b.tls else None,
        socket_options=NODELAY, max_held_bytes=settings.max_held_bytes,
        max_held=settings.queue_size, dropped=dropped,
    )
    # aiomqtt has no switch for this; see aggregator.service for why we need it.
    client._client.manual_ack_set(True)
    return client


def make_publisher(settings: Settings, will: aiomqtt.Will) -> aiomqtt.Client:
    """The outbound connection: models, acks and status, and the last will.

    Apart from the inbound one because replies share a connection's byte stream:
    here a PUBACK would queue behind every delta the broker had in flight to us,
    and with paho's in-flight window full of acks waiting for theirs, a model
    publish waited for seconds, timed out, and cost a reconnect. It speaks MQTT
    3.1.1, which every broker does: it needs nothing of 5, and paho decodes a 3.1.1
    PUBACK (one per ack) at a fraction of the cost of a 5 one.
    """
    b = settings.broker
    client = aiomqtt.Client(
        b.host, b.port, username=b.username, password=b.password,
        identifier=f"{settings.identifier}{PUBLISHER_SUFFIX}", protocol=V311,
        will=will, clean_session=True, keepalive=settings.keepalive, timeout=TIMEOUT,
        tls_params=aiomqtt.TLSParameters() if b.tls else None, socket_options=NODELAY,
    )
    client.pending_calls_threshold = 1000  # chunks go out concurrently by design
    return client


def publish_nowait(client: aiomqtt.Client, topic: str, body: bytes, qos: int = 1) -> None:
    """Hand a message to paho and return without waiting for the broker's PUBACK.

    paho sends it within its in-flight window and resends it until acknowledged,
    for as long as the connection lasts. For acks, one per delta: aiomqtt's
    ``publish`` costs a future, a timer and a scan of every pending call per
    message, a quarter of the aggregator's CPU at 10k parameters.
    """
    info = client._client.publish(topic, body, qos)
    if info.rc != mqtt.MQTT_ERR_SUCCESS:
        raise aiomqtt.MqttCodeError(info.rc, "could not publish message")
