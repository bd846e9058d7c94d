"""Retained models through a real mosquitto: late subscribers get them, whole or in chunks."""

from __future__ import annotations

import hashlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from broker.mosquitto import Mosquitto
from fedmq import codec
from fedmq.chunks import Reassembler, publication, stale_chunks
from fedmq.messages import ModelMessage, ModelMeta
from fedmq.modelspec import ModelSpec, ParamSpec, sgd_classifier_spec
from fedmq.tensors import Tensor
from fedmq.topics import Topics

pytestmark = pytest.mark.integration

WAIT = 30.0  # seconds to wait for the broker before calling it lost (liveness, not speed)
MiB = 1024 * 1024
TOPICS = Topics("digits")


class Client:
    """A paho client on its own network thread, with blocking helpers for tests."""

    def __init__(self, broker: Mosquitto, name: str, protocol: Any = mqtt.MQTTv311) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self._acks: dict[int, threading.Event] = {}
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, protocol=protocol)
        self.paho.on_connect = lambda *a: self.connected.set()
        self.paho.on_disconnect = lambda *a: self.disconnected.set()
        self.paho.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.paho.on_subscribe = lambda _c, _u, mid, *a: self._ack(mid)
        self.paho.connect("127.0.0.1", broker.port)
        self.paho.loop_start()
        assert self.connected.wait(WAIT), "no CONNACK"

    def _ack(self, mid: int) -> None:
        self._acks.setdefault(mid, threading.Event()).set()

    def subscribe(self, *filters: str) -> None:
        for f in filters:  # one SUBSCRIBE each: retained messages arrive in this order
            _, mid = self.paho.subscribe(f, qos=1)
            assert self._acks.setdefault(mid, threading.Event()).wait(WAIT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, retain: bool = True) -> None:
        info = self.paho.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(WAIT)
        assert info.is_published(), f"publish to {topic} not acknowledged"

    def next(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=WAIT)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(broker: Mosquitto, name: str, protocol: Any = mqtt.MQTTv311) -> Client:
        made.append(Client(broker, name, protocol))
        return made[-1]

    yield make
    for c in made:
        c.close()


def small_model(version: int = 1) -> ModelMessage:
    spec = sgd_classifier_spec(64, list(range(10)), alpha=1e-4)
    rng = np.random.default_rng(version)
    params = {p.name: Tensor.encode(rng.normal(size=p.shape)) for p in spec.params}
    return ModelMessage(TOPICS.task, version, 1.7e9, spec, params, {"accuracy": 0.5})


def big_model(version: int = 1) -> ModelMessage:
    n = 1_100_000  # 4.4 MB of float32: over 4 MiB
    spec = ModelSpec("generic", (ParamSpec("w", (n,)),))
    w = np.random.default_rng(version).normal(size=n).astype(np.float32)
    return ModelMessage(TOPICS.task, version, 1.7e9, spec, {"w": Tensor.encode(w)})


def publish_model(
    pub: Client, model: ModelMessage, max_packet: int | None, previous: int = 0
) -> int:
    """The publish order of PROTOCOL.md: chunks, model (or manifest), clear stale chunks, meta."""
    p = publication(model, max_packet=max_packet)
    for i, chunk in enumerate(p.chunks):
        pub.publish(TOPICS.chunk(i), chunk)
    pub.publish(TOPICS.model, p.model)
    for i in stale_chunks(previous, len(p.chunks)):
        pub.publish(TOPICS.chunk(i), b"")
    pub.publish(TOPICS.meta, codec.encode(p.meta))
    return len(p.chunks)


def test_late_subscriber_gets_the_retained_model(
    mosquitto: Mosquitto, clients: Callable[..., Client]
) -> None:
    model = small_model(3)
    pub = clients(mosquitto, "aggregator")
    publish_model(pub, model, max_packet=None)
    pub.close()

    late = clients(mosquitto, "late-device", mqtt.MQTTv5)
    late.subscribe(TOPICS.meta, TOPICS.model)
    meta_msg, model_msg = late.next(), late.next()
    assert (meta_msg.topic, model_msg.topic) == (TOPICS.meta, TOPICS.model)
    assert meta_msg.retain
    assert model_msg.retain
    meta = codec.decode(meta_msg.payload, ModelMeta)
    assert meta.version == 3
    assert meta.sha256 == hashlib.sha256(model_msg.payload).digest()
    got = codec.decode(Reassembler().on_model(model_msg.payload) or b"", ModelMessage)
    assert got == model
    assert got.params["coef"].decode().tobytes() == model.params["coef"].decode().tobytes()


def test_big_model_travels_in_chunks_through_a_1_mib_broker(
    mosquitto_factory: Callable[..., Mosquitto], clients: Callable[..., Client]
) -> None:
    broker = mosquitto_factory(max_packet_size=MiB)
    pub = clients(broker, "aggregator")
    old = publish_model(pub, big_model(1), max_packet=MiB)
    model = big_model(2)
    count = publish_model(pub, model, max_packet=MiB, previous=old)
    assert count >= 5  # 4.4 MB in chunks of just under 1 MiB
    pub.close()

    late = clients(broker, "late-device")
    late.subscribe(TOPICS.meta, TOPICS.model, TOPICS.chunk_filter)
    meta = codec.decode(late.next().payload, ModelMeta)
    assert (meta.version, meta.chunks) == (2, count)
    reassembler = Reassembler()
    payload = None
    while payload is None:
        msg = late.next()
        parsed = TOPICS.parse(msg.topic)
        assert parsed is not None
        feed = reassembler.on_model if msg.topic == TOPICS.model else reassembler.on_chunk
        payload = feed(msg.payload)
    assert len(payload) > 4 * MiB
    assert hashlib.sha256(payload).digest() == meta.sha256
    got = codec.decode(payload, ModelMessage)
    assert got == model


def test_unchunked_4_mib_model_is_refused_by_that_broker(
    mosquitto_factory: Callable[..., Mosquitto], clients: Callable[..., Client]
) -> None:
    broker = mosquitto_factory(max_packet_size=MiB)
    payload = codec.encode(big_model(1))
    assert len(payload) > 4 * MiB
    pub = clients(broker, "aggregator")
    pub.paho.publish(TOPICS.model, payload, qos=1, retain=True)
    assert pub.disconnected.wait(WAIT), "broker kept a client that sent an oversized packet"

    # nothing was retained: a sentinel subscribed after the model topic arrives first
    late = clients(broker, "late-device")
    sentinel = clients(broker, "sentinel")
    sentinel.publish(TOPICS.base + "/sentinel", b"x")
    late.subscribe(TOPICS.model, TOPICS.base + "/sentinel")
    assert late.next().topic == TOPICS.base + "/sentinel"
