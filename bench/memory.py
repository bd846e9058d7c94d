"""Aggregator memory: peak RSS against model size, for buffers K=10 and K=100.

Each point runs the aggregator alone in a child process (``--child``) against its own
fresh mosquitto. The parent sends U f32 deltas, waits for every ack, and samples the
child's RSS every 10 ms: ``peak_rss`` is the highest RSS seen by the time u of them
were acked (for each checkpoint u), ``vmhwm`` the child's own high-water mark over the
run, and ``rss_growth`` the peak over the second half of the updates minus the peak
over the first: memory that does not grow with the number of updates gives ~0.

Two traps this avoids (both made earlier runs report the *parent's* memory):
``ru_maxrss`` of a child started by ``subprocess`` includes the parent's RSS at the
vfork/exec (Linux keeps the old mm's high-water mark), so the child reads ``VmHWM``
of its own address space instead, and the parent encodes deltas as it sends them
rather than holding all U of them. A fresh broker per point also keeps the retained
meta and persistent session of one point from leaking into the next.
Usage: ``python -m bench.memory [--tiny] [--sizes 10000,100000,1000000]
[--updates 100,500,1000,2000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import aiomqtt
from prometheus_client import CollectorRegistry

from aggregator.service import NODELAY, run_aggregator
from aggregator.settings import Settings
from aggregator.staleness import Staleness
from bench.common import Emitter, add_output_args
from bench.ingest import TASK, TOPICS, FlatModel, payloads
from broker.mosquitto import Mosquitto
from fedmq.brokerurl import BrokerURL

ROOT = Path(__file__).resolve().parents[1]


async def child(url: str, n: int, k: int, state_dir: str) -> None:
    s = Settings(BrokerURL.parse(url), TASK, Path(state_dir), buffer=k,
                 staleness=Staleness("fedbuff"), max_staleness=10**6, buffer_timeout=3600,
                 client_id="bench-memory")
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await run_aggregator(s, registry=CollectorRegistry(), stop=stop, task=FlatModel(n))
    print(json.dumps({"peak_rss_bytes": peak_rss_bytes()}), flush=True)


def peak_rss_bytes() -> int:
    """This address space's high-water RSS (VmHWM), not inherited from the parent."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for row in f:
                if row.startswith("VmHWM:"):
                    return int(row.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # not Linux


def rss_bytes(pid: int) -> int:
    """Current RSS (VmRSS) of process ``pid``; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for row in f:
                if row.startswith("VmRSS:"):
                    return int(row.split()[1]) * 1024
    except OSError:
        pass
    return 0


async def feed(port: int, n: int, count: int, pid: int, trace: list[tuple[int, int]]) -> None:
    """Publish ``count`` deltas of ``n`` params, encoded as sent, until every one is acked,
    appending (acks so far, RSS of ``pid``) to ``trace`` every 10 ms."""
    acked = 0

    async def sample() -> None:
        while True:
            trace.append((acked, rss_bytes(pid)))
            await asyncio.sleep(0.01)

    async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as c:
        c.pending_calls_threshold = 1 << 30
        await c.subscribe(TOPICS.base + "/ack/+", qos=1)
        await c.subscribe(TOPICS.meta, qos=1)
        async for _ in c.messages:  # the retained meta: the aggregator is up
            break

        async def count_acks() -> None:
            nonlocal acked
            async for m in c.messages:
                acked += m.topic.matches(TOPICS.base + "/ack/+")
                if acked == count:
                    return

        sampler = asyncio.create_task(sample())
        acks = asyncio.create_task(count_acks())
        for start in range(0, count, 50):  # bounded in flight: memory of this side
            items = payloads(n, min(50, count - start), first=start)
            await asyncio.gather(*(c.publish(TOPICS.delta(f"sim-{i % 100:05d}"), p, qos=1)
                                   for i, p in enumerate(items, start)))
        await acks
        sampler.cancel()
        trace.append((acked, rss_bytes(pid)))


def peak_until(trace: list[tuple[int, int]], lo: int, hi: int) -> int:
    """The highest RSS sampled while the acks so far were in ``[lo, hi]``."""
    return max((rss for acked, rss in trace if lo <= acked <= hi), default=0)


def measure(n: int, k: int, updates: int) -> tuple[int, list[tuple[int, int]]]:
    """(VmHWM of the aggregator over ``updates`` deltas, its RSS trace by acks)."""
    trace: list[tuple[int, int]] = []
    with Mosquitto(max_queued_messages=1_000_000) as broker, \
            tempfile.TemporaryDirectory(prefix="fedmq-bench-mem-") as d:
        cmd = [sys.executable, "-m", "bench.memory", "--child", broker.url, str(n), str(k), d]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        try:
            asyncio.run(asyncio.wait_for(feed(broker.port, n, updates, proc.pid, trace), 600))
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    peak: int = json.loads(out.decode().strip().splitlines()[-1])["peak_rss_bytes"]
    return peak, trace


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        url, size, buf, state_dir = argv[1:5]
        asyncio.run(child(url, int(size), int(buf), state_dir))
        return 0
    p = argparse.ArgumentParser(prog="bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--updates", default="100,500,1000,2000",
                   help="checkpoints: one run per point sends the largest number")
    p.add_argument("--tiny", action="store_true", help="1k params, 5 and 20 updates, K=10")
    add_output_args(p)
    args = p.parse_args(argv)
    sizes = [1000] if args.tiny else [int(x) for x in args.sizes.split(",")]
    marks = [5, 20] if args.tiny else sorted(int(x) for x in args.updates.split(","))
    buffers = [10] if args.tiny else [10, 100]
    emit = Emitter("memory", args.out)
    emit.environment()
    total = marks[-1]
    for n in sizes:
        for k in buffers:
            hwm, trace = measure(n, k, total)
            common = {"params": n, "buffer": k, "model_mib": round(4 * n / 2**20, 3)}
            for u in marks:
                emit("peak_rss", peak_until(trace, 0, u) / 2**20, "MiB", updates=u, **common)
            emit("vmhwm", hwm / 2**20, "MiB", updates=total, **common)
            first, second = peak_until(trace, 0, total // 2), peak_until(trace, total // 2, total)
            emit("rss_growth", (second - first) / 2**20, "MiB",
                 updates=f"first {total // 2} -> last {total - total // 2}", **common)
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    sys.exit(run_module(main))
