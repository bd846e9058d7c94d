"""Aggregator ingest: deltas folded per second end to end through a real mosquitto.

For each model size, in the same run and against the same broker:

* ``e2e``: one publisher sends M f32 deltas at QoS 1; the aggregator (FedBuff, K=10),
  alone in a child process, decodes, folds, persists and acks them; the rate is M
  over the time from the first publish until a ``mosquitto_sub`` subscribed to
  ``ack/+``, as devices are, has received the last ack (an ack means durable).
* ``bare``: a plain aiomqtt subscriber (automatic PUBACK, does nothing), alone in a
  child process, receives the same M payloads: the rate the broker and one MQTT
  client can move them.

The publisher (this process) does the same work for both and never shares a
process (or a GIL) with the side measured. The broker routes the acks too, on the
same two cores: e2e pays for that, bare does not. Each aggregator's persistent
session is ended after its run, or the broker would queue later deltas for it.
* ``numpy``: ``Buffer.add`` over the same already-decoded arrays: the fold alone.

Reported as medians over repeats, with ``e2e/bare`` and ``e2e/numpy`` ratios.
Usage: ``python -m bench.ingest [--tiny] [--repeats R] [--sizes 10000,100000,1000000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import numpy as np
from prometheus_client import CollectorRegistry

from aggregator.folding import Buffer
from aggregator.service import NODELAY, run_aggregator
from aggregator.settings import Settings
from aggregator.staleness import Staleness
from bench.common import Emitter, add_output_args
from broker.mosquitto import Mosquitto
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.messages import Delta
from fedmq.modelspec import GENERIC, ModelSpec, ParamSpec
from fedmq.tasks import Dataset, Params
from fedmq.tensors import Tensor
from fedmq.topics import Topics

ROOT = Path(__file__).resolve().parents[1]
TASK = "bench"
TOPICS = Topics(TASK)


@dataclass(frozen=True)
class FlatModel:
    """A model of ``n`` float32 parameters and no evaluation data."""

    n: int

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(GENERIC, (ParamSpec("w", (self.n,)),))

    def initial_params(self) -> Params:
        return self.spec.zeros()

    def test_set(self) -> Dataset:
        return Dataset(np.zeros((0, 1), np.float32), np.zeros(0, np.int64))

    def evaluate(self, params: Params) -> float:
        raise NotImplementedError("no evaluation data")


def payloads(n: int, count: int, distinct: int = 4, first: int = 0) -> list[bytes]:
    """Deltas ``first .. first+count-1`` (ids ``u<i>``, devices round-robin over 100)."""
    rng = np.random.default_rng(0)
    tensors = [Tensor.encode(rng.normal(0, 0.01, n).astype(np.float32)) for _ in range(distinct)]
    return [codec.encode(Delta(TASK, f"sim-{i % 100:05d}", f"u{i}", 0, 10,
                               {"w": tensors[i % distinct]}, 1.0))
            for i in range(first, first + count)]


async def publish_all(port: int, items: list[bytes], done: Callable[[], Awaitable[None]]) -> float:
    """Publish ``items`` at QoS 1 and return the seconds until ``done()`` returns."""
    async with aiomqtt.Client("127.0.0.1", port, max_inflight_messages=100,
                              socket_options=NODELAY) as pub:
        pub.pending_calls_threshold = 1 << 30
        t0 = time.perf_counter()
        await asyncio.gather(*(pub.publish(TOPICS.delta(f"sim-{i % 100:05d}"), p, qos=1)
                               for i, p in enumerate(items)))
        await done()
        return time.perf_counter() - t0


@asynccontextmanager
async def spawn(*args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A ``--child`` of this module, started and ready (it printed a line), then stopped."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.ingest", "--child", *args, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        if not await proc.stdout.readline():
            raise RuntimeError(f"bench child {args[0]} died before it was ready")
        yield proc
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def e2e_rate(broker: Mosquitto, n: int, items: list[bytes], k: int) -> float:
    """The aggregator alone in a child process and a ``mosquitto_sub`` counting its acks;
    this process publishes, exactly as for ``bare``, until the counter has them all."""
    cid = f"bench-{time.monotonic_ns()}"
    with tempfile.TemporaryDirectory(prefix="fedmq-bench-") as d:
        try:
            async with ack_counter(broker, len(items), Path(d)) as all_acked, \
                    spawn("aggregator", broker.url, str(n), str(k), d, cid):
                elapsed = await publish_all(broker.port, items, all_acked)
        finally:
            await forget_session(broker.port, cid)
        return len(items) / elapsed


@asynccontextmanager
async def ack_counter(
    broker: Mosquitto, count: int, workdir: Path
) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """``mosquitto_sub`` subscribed to ``ack/+`` at QoS 1, as devices are; yields a wait
    that returns once it has received ``count`` acks. A C client stands in for the
    devices, which run elsewhere: a Python one cost the shared cores a sixth of a core."""
    log = workdir / "acks.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            "stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-q", "1",
            "-t", TOPICS.base + "/ack/+", "-C", str(count), "-d", "-F", "",
            stdout=out, stderr=asyncio.subprocess.STDOUT)
    try:
        while b"SUBACK" not in log.read_bytes():  # its debug output (line-buffered)
            if proc.returncode is not None:
                raise RuntimeError(f"mosquitto_sub exited: {log.read_text()[-500:]}")
            await asyncio.sleep(0.01)

        async def all_acked() -> None:
            if await proc.wait() != 0:
                raise RuntimeError(f"mosquitto_sub failed: {log.read_text()[-500:]}")

        yield all_acked
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def forget_session(port: int, identifier: str) -> None:
    """End the aggregator's persistent session, or the broker would keep queueing every
    later delta for it and slow down the runs that follow."""
    async with aiomqtt.Client("127.0.0.1", port, identifier=identifier, clean_session=True):
        pass


async def bare_rate(broker: Mosquitto, items: list[bytes]) -> float:
    """A plain subscriber alone in a child process; it prints a line when it has them all."""
    async with spawn("bare", broker.url, str(len(items))) as proc:
        elapsed = await publish_all(broker.port, items, finished(proc))
    return len(items) / elapsed


def finished(proc: asyncio.subprocess.Process) -> Callable[[], Awaitable[None]]:
    """Waits for the line a counting child prints when it has received them all."""
    async def wait() -> None:
        assert proc.stdout is not None
        if not await proc.stdout.readline():
            raise RuntimeError("bench child died before it had them all")

    return wait



async def child_aggregator(url: str, n: int, k: int, state_dir: str, cid: str) -> None:
    s = Settings(BrokerURL.parse(url), TASK, Path(state_dir), buffer=k,
                 staleness=Staleness("fedbuff"), max_staleness=10**6,
                 client_id=cid, buffer_timeout=3600)
    stop, ready = asyncio.Event(), asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_aggregator(s, registry=CollectorRegistry(), stop=stop, ready=ready,
                                      task=FlatModel(n)), name="aggregator")
        await ready.wait()
        print("ready", flush=True)


async def child_bare(url: str, count: int) -> None:
    """Subscribe to the deltas, print ``ready``, then ``done`` after ``count`` of them."""
    port = BrokerURL.parse(url).port
    async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare",
                              clean_session=True, socket_options=NODELAY) as sub:
        await sub.subscribe(TOPICS.delta_filter, qos=1)
        print("ready", flush=True)
        got = 0
        async for _ in sub.messages:
            got += 1
            if got == count:
                print("done", flush=True)
                return


def numpy_rate(n: int, items: list[bytes]) -> float:
    arrays = [codec.decode(p, Delta).tensors["w"].decode() for p in items[:4]]
    buf = Buffer.empty({"w": (n,)})
    t0 = time.perf_counter()
    for i in range(len(items)):
        buf.add({"w": arrays[i % len(arrays)]}, 0.5, 10)
    return len(items) / (time.perf_counter() - t0)


def count_for(n: int, tiny: bool) -> int:
    if tiny:
        return 40
    return max(100, min(3000, 400_000_000 // (4 * n) // 2))  # ~200 MB of deltas per run


async def run(emit: Emitter, sizes: Sequence[int], repeats: int, tiny: bool, k: int) -> None:
    with Mosquitto(max_queued_messages=1_000_000, extra_config=["set_tcp_nodelay true"]) as broker:
        for n in sizes:
            items = payloads(n, count_for(n, tiny))
            runs: dict[str, list[float]] = {"e2e": [], "bare": [], "numpy": []}
            for _ in range(repeats):
                runs["bare"].append(await bare_rate(broker, items))
                runs["e2e"].append(await e2e_rate(broker, n, items, k))
                runs["numpy"].append(numpy_rate(n, items))
            med = {key: statistics.median(v) for key, v in runs.items()}
            common = {"params": n, "deltas": len(items), "buffer": k, "repeats": repeats,
                      "payload_bytes": len(items[0])}
            for key in ("e2e", "bare", "numpy"):
                emit(f"{key}_rate", med[key], "deltas/s", **common)
            emit("e2e_over_bare", med["e2e"] / med["bare"], "ratio", **common)
            emit("e2e_over_numpy", med["e2e"] / med["numpy"], "ratio", **common)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:2] == ["--child", "aggregator"]:
        url, size, buf, state_dir, cid = argv[2:7]
        asyncio.run(child_aggregator(url, int(size), int(buf), state_dir, cid))
        return 0
    if argv[:2] == ["--child", "bare"]:
        asyncio.run(child_bare(argv[2], int(argv[3])))
        return 0
    p = argparse.ArgumentParser(prog="bench.ingest", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--buffer", type=int, default=10)
    p.add_argument("--tiny", action="store_true", help="1k params, 40 deltas, one repeat")
    add_output_args(p)
    args = p.parse_args(argv)
    sizes = [1000] if args.tiny else [int(x) for x in args.sizes.split(",")]
    emit = Emitter("ingest", args.out)
    emit.environment()
    asyncio.run(run(emit, sizes, 1 if args.tiny else args.repeats, args.tiny, args.buffer))
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    sys.exit(run_module(main))
