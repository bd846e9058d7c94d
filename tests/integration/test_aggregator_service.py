"""The aggregator in-process against a real mosquitto: exact models, every ack, resilience."""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from aggregator.service import run_aggregator
from aggregator.settings import Settings
from aggregator.staleness import Staleness
from broker.mosquitto import Mosquitto, free_port
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.chunks import Reassembler
from fedmq.errors import RejectReason
from fedmq.messages import Ack, Delta, DeviceStatus, ModelMessage, ModelMeta
from fedmq.tasks import get_task
from fedmq.tensors import Tensor
from fedmq.topics import Topics

pytestmark = pytest.mark.integration
TASK = "synthetic"
TOPICS = Topics(TASK)
SHAPES = get_task(TASK).spec.shapes()
F32 = npt.NDArray[np.float32]


def arrays(seed: int) -> dict[str, F32]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(0, 0.1, s).astype(np.float32) for k, s in SHAPES.items()}


def delta_payload(device: str, uid: str, base: int, n: int, seed: int, **kw: Any) -> bytes:
    tensors = {k: Tensor.encode(v) for k, v in arrays(seed).items()}
    fields: dict[str, Any] = {"task": TASK, "device": device, "update_id": uid,
                              "base_version": base, "num_samples": n,
                              "tensors": tensors, "created": 1.0}
    fields.update(kw)
    return codec.encode(Delta(**fields))


def settings(broker: Mosquitto, state_dir: Path, **kw: Any) -> Settings:
    kw.setdefault("staleness", Staleness("constant"))
    kw.setdefault("buffer_timeout", 600.0)
    return Settings(BrokerURL.parse(broker.url), TASK, state_dir, **kw)


@asynccontextmanager
async def aggregator(s: Settings, registry: CollectorRegistry | None = None
                     ) -> AsyncIterator[asyncio.Event]:
    """Run the aggregator for the block; yields its stop event."""
    stop, ready = asyncio.Event(), asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_aggregator(s, registry=registry or CollectorRegistry(), stop=stop,
                                      ready=ready), name="aggregator")
        await ready.wait()
        try:
            yield stop
        finally:
            stop.set()


class Watcher:
    """A test client that collects acks and metas."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self.client = client
        self.acks: list[Ack] = []
        self.metas: list[ModelMeta] = []

    async def until(self, done: Callable[[Watcher], bool]) -> None:
        if done(self):
            return
        async for m in self.client.messages:
            assert isinstance(m.payload, bytes)
            if m.topic.matches(TOPICS.meta):
                self.metas.append(codec.decode(m.payload, ModelMeta))
            elif m.topic.matches(TOPICS.base + "/ack/+"):
                self.acks.append(codec.decode(m.payload, Ack))
            if done(self):
                return

    async def publish(self, device: str, payload: bytes) -> None:
        await self.client.publish(TOPICS.delta(device), payload, qos=1)


@asynccontextmanager
async def watcher(broker: Mosquitto) -> AsyncIterator[Watcher]:
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:
        await c.subscribe(TOPICS.base + "/ack/+", qos=1)
        await c.subscribe(TOPICS.meta, qos=1)
        yield Watcher(c)


async def retained_model(broker: Mosquitto) -> ModelMessage:
    """Read the retained model (reassembling chunks if needed) with a fresh client."""
    r = Reassembler()
    async with aiomqtt.Client("127.0.0.1", broker.port) as c:
        await c.subscribe(TOPICS.model, qos=1)
        await c.subscribe(TOPICS.chunk_filter, qos=1)
        async for m in c.messages:
            assert isinstance(m.payload, bytes)
            fn = r.on_model if m.topic.matches(TOPICS.model) else r.on_chunk
            full = fn(m.payload)
            if full is not None:
                return codec.decode(full, ModelMessage)
    raise AssertionError("unreachable")


def run(coro: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))  # a hang fails instead of blocking CI


def fold(w: dict[str, F32], deltas: list[tuple[int, float, int]], lr: float) -> dict[str, F32]:
    """Reference: w + lr * sum f*n*D / sum n over (seed, f, n), in float64 like the fold."""
    total = sum(n for _, _, n in deltas)
    return {k: (w[k].astype(np.float64) + sum(
        f * n * arrays(seed)[k].astype(np.float64) for seed, f, n in deltas) * (lr / total)
    ).astype(np.float32) for k in w}


def test_known_staleness_gives_exact_models(mosquitto: Mosquitto, tmp_path: Path) -> None:
    s = settings(mosquitto, tmp_path, buffer=2, staleness=Staleness("polynomial", a=1.0),
                 server_lr=0.5)

    async def body() -> None:
        async with aggregator(s), watcher(mosquitto) as w:
            await w.publish("sim-00001", delta_payload("sim-00001", "a", 0, 10, 1))
            await w.publish("sim-00002", delta_payload("sim-00002", "b", 0, 30, 2))
            await w.until(lambda w: len(w.acks) == 2 and w.metas[-1:] != []
                          and w.metas[-1].version == 1)
            await w.publish("sim-00003", delta_payload("sim-00003", "c", 0, 20, 3))  # s=1
            await w.publish("sim-00001", delta_payload("sim-00001", "d", 1, 20, 4))  # s=0
            await w.until(lambda w: len(w.acks) == 4 and w.metas[-1].version == 2)
            assert [(a.update_id, a.staleness, a.weight) for a in w.acks] == [
                ("a", 0, 1.0), ("b", 0, 1.0), ("c", 1, 0.5), ("d", 0, 1.0)]
            model = await retained_model(mosquitto)
        w0 = get_task(TASK).initial_params()
        w1 = fold(w0, [(1, 1.0, 10), (2, 1.0, 30)], 0.5)
        w2 = fold(w1, [(3, 0.5, 20), (4, 1.0, 20)], 0.5)
        assert model.version == 2
        for k, v in w2.items():
            np.testing.assert_array_equal(model.params[k].decode(), v)
        assert 0.0 <= model.metrics["accuracy"] <= 1.0

    run(body)


def test_every_rejection_is_acknowledged(mosquitto: Mosquitto, tmp_path: Path) -> None:
    s = settings(mosquitto, tmp_path, buffer=1, max_staleness=1, max_norm=5.0)
    d = "sim-00007"
    big = {k: Tensor.encode(np.full(v, 10.0, np.float32)) for k, v in SHAPES.items()}
    nan = {k: Tensor.encode(np.full(v, np.nan, np.float32)) for k, v in SHAPES.items()}
    wrong = {"coef": Tensor.encode(np.zeros((2, 2))), "intercept": Tensor.encode(np.zeros(10))}
    env = codec.unpack(delta_payload(d, "x", 0, 1, 1))
    import msgpack

    def patched(**kw: Any) -> bytes:
        return bytes(msgpack.packb({**env, **kw}, use_bin_type=True))

    cases: list[tuple[str, bytes, RejectReason]] = [
        ("z0", b"not msgpack", RejectReason.MALFORMED),
        ("z1", delta_payload(d, "z1", 0, 1, 1, task="digits"), RejectReason.WRONG_TASK),
        ("z2", delta_payload("sim-00008", "z2", 0, 1, 1), RejectReason.WRONG_DEVICE),
        ("z3", delta_payload(d, "z3", 9, 1, 1), RejectReason.UNKNOWN_VERSION),
        ("z4", delta_payload(d, "z4", 0, 1, 1), RejectReason.TOO_STALE),
        ("z5", delta_payload(d, "z5", 2, 1, 1, tensors=wrong), RejectReason.SHAPE_MISMATCH),
        ("z6", patched(update_id="z6", base_version=2, tensors={
            k: {"enc": "bf16", "shape": list(v), "data": b""} for k, v in SHAPES.items()}),
         RejectReason.DTYPE_MISMATCH),
        ("z7", delta_payload(d, "z7", 2, 1, 1, tensors=nan), RejectReason.NON_FINITE),
        ("z8", delta_payload(d, "z8", 2, 1, 1, tensors=big), RejectReason.NORM_BOUND),
        ("ok1", delta_payload(d, "ok1", 2, 1, 1), RejectReason.DUPLICATE),
        ("z10", b"\xc4" + b"\x00" * 4_000_000, RejectReason.TOO_LARGE),
        ("z11", patched(v=7, update_id="z11"), RejectReason.UNSUPPORTED_VERSION),
    ]
    assert {c[2] for c in cases} == set(RejectReason)

    async def body() -> None:
        async with aggregator(s), watcher(mosquitto) as w:
            for i, uid in enumerate(["ok0", "ok1"]):  # versions 1, 2 (K=1)
                await w.publish(d, delta_payload(d, uid, i, 1, 9))
                await w.until(lambda w, i=i: len(w.acks) == i + 1)
            for _, payload, _ in cases:
                await w.publish(d, payload)
            await w.until(lambda w: len(w.acks) == 2 + len(cases))
        assert all(a.accepted for a in w.acks[:2])
        assert all(not a.accepted and a.device == d for a in w.acks[2:])
        unreadable = {"z0", "z10", "z11"}  # no trustworthy update_id: acked as "?"
        want = sorted(("?" if uid in unreadable else uid, r) for uid, _, r in cases)
        assert sorted((a.update_id, a.reason) for a in w.acks[2:]) == want

    run(body)


def test_duplicates_fold_once_and_broker_restart_is_survived(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    s = settings(mosquitto, tmp_path, buffer=1, max_staleness=100)

    async def body() -> None:
        async with aggregator(s):
            async with watcher(mosquitto) as w:
                p = delta_payload("sim-00001", "u1", 0, 5, 1)
                await w.publish("sim-00001", p)
                await w.publish("sim-00001", p)
                await w.until(lambda w: len(w.acks) == 2)
                assert [a.reason for a in w.acks] == [None, RejectReason.DUPLICATE]
            mosquitto.restart(hard=True)  # SIGKILL the broker mid-training
            async with watcher(mosquitto) as w:
                await w.until(lambda w: w.metas != [] and w.metas[-1].version == 1)
                await w.publish("sim-00002", delta_payload("sim-00002", "u2", 1, 5, 2))
                await w.until(lambda w: len(w.acks) == 1 and w.metas[-1].version == 2)
            model = await retained_model(mosquitto)
        want = fold(fold(get_task(TASK).initial_params(), [(1, 1.0, 5)], 1.0), [(2, 1.0, 5)], 1.0)
        for k, v in want.items():
            np.testing.assert_array_equal(model.params[k].decode(), v)

    run(body)


def test_chunked_models_and_stale_chunks_cleared(mosquitto: Mosquitto, tmp_path: Path) -> None:
    async def body() -> None:
        async with aggregator(settings(mosquitto, tmp_path, max_packet=1600)):
            model = await retained_model(mosquitto)  # 3 chunks of 1088 bytes
            assert model.version == 0
        async with aggregator(settings(mosquitto, tmp_path, max_packet=2600)):
            model = await retained_model(mosquitto)  # 2 chunks; chunk 2 must be cleared
            assert model.version == 0
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as c:
                await c.subscribe(TOPICS.chunk(2), qos=1)
                await c.subscribe(TOPICS.chunk(1), qos=1)
                async for m in c.messages:  # the cleared topic has no retained message,
                    assert m.topic.matches(TOPICS.chunk(1))  # so chunk 1 is all we get
                    break

    run(body)


NAMES = [
    "fedmq_updates_received_total", "fedmq_updates_accepted_total",
    "fedmq_updates_rejected_total", "fedmq_update_staleness_bucket", "fedmq_update_bytes_bucket",
    "fedmq_model_version", "fedmq_model_published_total", "fedmq_aggregation_seconds_bucket",
    "fedmq_buffer_updates", "fedmq_devices", "fedmq_global_accuracy",
    "fedmq_queue_dropped_total", "fedmq_model_bytes",
]


def test_metrics_endpoint_serves_the_contract_names(mosquitto: Mosquitto, tmp_path: Path) -> None:
    port = free_port()
    s = settings(mosquitto, tmp_path, buffer=1, metrics_port=port)
    from fedmq.messages import DeviceStatus

    async def body() -> None:
        async with aggregator(s), watcher(mosquitto) as w:
            status = DeviceStatus(TASK, "sim-00001", True, time.time(), state="training")
            await w.client.publish(TOPICS.status("sim-00001"), codec.encode(status), qos=1,
                                   retain=True)
            await w.publish("sim-00001", delta_payload("sim-00001", "u1", 0, 5, 1))
            await w.until(lambda w: len(w.acks) == 1)
            text = ""
            while 'fedmq_devices{state="training",task="synthetic"} 1.0' not in text:
                text = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
                await asyncio.sleep(0.05)
        for name in NAMES:
            assert f"\n{name}{{" in text, name
        assert 'fedmq_model_version{task="synthetic"} 1.0' in text
        assert 'fedmq_updates_accepted_total{task="synthetic"} 1.0' in text

    run(body)


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        body: bytes = r.read()
        return body.decode()


@pytest.mark.parametrize("receive_maximum", [32, 0], ids=["mqtt5", "mqtt311"])
def test_paused_reads_lose_nothing_and_meta_has_staleness(
    mosquitto: Mosquitto, tmp_path: Path, receive_maximum: int
) -> None:
    # A 1-byte budget pauses the socket after every delta: all must still be folded.
    s = settings(mosquitto, tmp_path, buffer=2, max_held_bytes=1, max_staleness=100,
                 receive_maximum=receive_maximum)

    async def body() -> None:
        async with aggregator(s), watcher(mosquitto) as w:
            for i in range(12):
                dev = f"sim-{i % 3:05d}"
                await w.publish(dev, delta_payload(dev, f"u{i}", 0, 5, i))
            await w.until(lambda w: len(w.acks) == 12 and w.metas[-1].version == 6)
        assert all(a.accepted for a in w.acks)
        meta = w.metas[-1]
        assert meta.metrics["updates"] == 2.0
        assert 0.0 <= meta.metrics["staleness_mean"] <= meta.metrics["staleness_max"] <= 5.0
        assert 0.0 <= meta.metrics["accuracy"] <= 1.0

    run(body)


@pytest.mark.parametrize("receive_maximum", [32, 0], ids=["mqtt5", "mqtt311"])
def test_a_burst_past_the_gate_is_all_folded(
    mosquitto: Mosquitto, tmp_path: Path, receive_maximum: int
) -> None:
    # paho parses every packet already in the socket buffer in one read, so a burst
    # overshoots the gate by far; a message dropped there would stay unacknowledged,
    # hold a slot of the broker's in-flight window, and stall the aggregator for good.
    s = settings(mosquitto, tmp_path, buffer=50, max_held_bytes=1, queue_size=1,
                 max_staleness=100, receive_maximum=receive_maximum)
    count = 300

    async def body() -> None:
        async with aggregator(s), watcher(mosquitto) as w:
            w.client.pending_calls_threshold = 10 * count
            statuses = [w.client.publish(TOPICS.status(f"sim-{i:05d}"), codec.encode(
                DeviceStatus(TASK, f"sim-{i:05d}", True, time.time(), state="idle")), qos=1)
                for i in range(count)]
            deltas = [w.publish(f"sim-{i % 7:05d}", delta_payload(f"sim-{i % 7:05d}", f"b{i}",
                                                                  0, 1, i % 5))
                      for i in range(count)]
            await asyncio.gather(*(x for pair in zip(statuses, deltas, strict=True) for x in pair))
            await w.until(lambda w: len(w.acks) == count)
        assert sorted(a.update_id for a in w.acks) == sorted(f"b{i}" for i in range(count))
        assert all(a.accepted for a in w.acks)

    run(body)


def test_a_backlog_past_the_gate_at_connect_is_folded(mosquitto: Mosquitto, tmp_path: Path) -> None:
    # The broker delivers a persistent session's queue right after CONNACK, before the
    # replies to our SUBSCRIBE and PUBLISH; with the gate shut by the backlog, those
    # replies arrive only if the worker is already folding (and acknowledging).
    s = settings(mosquitto, tmp_path, buffer=5, max_held_bytes=1, queue_size=1,
                 max_staleness=100)
    count = 40

    async def body() -> None:
        async with aggregator(s):
            pass  # creates the persistent session and its subscriptions
        async with watcher(mosquitto) as w:
            w.client.pending_calls_threshold = 10 * count
            await asyncio.gather(*(w.publish("sim-00001", delta_payload(
                "sim-00001", f"q{i}", 0, 1, i % 3)) for i in range(count)))
            async with aggregator(s):
                await w.until(lambda w: len(w.acks) == count)
        assert all(a.accepted for a in w.acks)

    run(body)
