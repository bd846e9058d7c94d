"""Aggregator memory: peak RSS against model size, for buffers K=10 and K=100.

Each point runs the aggregator alone in a child process (``--child``) against its own
fresh mosquitto. The parent sends U f32 deltas and waits for every ack; the child
reports its peak RSS when stopped. Running U=50 and U=500 shows that memory does not
grow with the number of updates (running sums, bounded in-flight deltas).

Two traps this avoids (both made earlier runs report the *parent's* memory):
``ru_maxrss`` of a child started by ``subprocess`` includes the parent's RSS at the
vfork/exec (Linux keeps the old mm's high-water mark), so the child reads ``VmHWM``
of its own address space instead, and the parent encodes deltas as it sends them
rather than holding all U of them. A fresh broker per point also keeps the retained
meta and persistent session of one point from leaking into the next.
Usage: ``python -m bench.memory [--tiny] [--sizes 10000,100000,1000000]``.
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


async def feed(port: int, n: int, count: int) -> None:
    """Publish ``count`` deltas of ``n`` params, encoded as sent, and wait for every ack."""
    async with aiomqtt.Client("127.0.0.1", port, socket_options=NODELAY) as c:
        c.pending_calls_threshold = 1 << 30
        await c.subscribe(TOPICS.base + "/ack/+", qos=1)
        await c.subscribe(TOPICS.meta, qos=1)
        async for _ in c.messages:  # the retained meta: the aggregator is up
            break
        for start in range(0, count, 50):  # bounded in flight: memory of this side
            items = payloads(n, min(50, count - start), first=start)
            await asyncio.gather(*(c.publish(TOPICS.delta(f"sim-{i % 100:05d}"), p, qos=1)
                                   for i, p in enumerate(items, start)))
        acks = 0
        async for m in c.messages:
            acks += m.topic.matches(TOPICS.base + "/ack/+")
            if acks == count:
                return


def measure(n: int, k: int, updates: int) -> int:
    with Mosquitto(max_queued_messages=1_000_000) as broker, \
            tempfile.TemporaryDirectory(prefix="fedmq-bench-mem-") as d:
        cmd = [sys.executable, "-m", "bench.memory", "--child", broker.url, str(n), str(k), d]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE)
        try:
            asyncio.run(asyncio.wait_for(feed(broker.port, n, updates), 600))
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    peak: int = json.loads(out.decode().strip().splitlines()[-1])["peak_rss_bytes"]
    return peak


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        url, size, buf, state_dir = argv[1:5]
        asyncio.run(child(url, int(size), int(buf), state_dir))
        return 0
    p = argparse.ArgumentParser(prog="bench.memory", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--updates", default="50,500")
    p.add_argument("--tiny", action="store_true", help="1k params, 5 and 20 updates, K=10")
    add_output_args(p)
    args = p.parse_args(argv)
    sizes = [1000] if args.tiny else [int(x) for x in args.sizes.split(",")]
    counts = [5, 20] if args.tiny else [int(x) for x in args.updates.split(",")]
    buffers = [10] if args.tiny else [10, 100]
    emit = Emitter("memory", args.out)
    emit.environment()
    for n in sizes:
        for k in buffers:
            peaks = {u: measure(n, k, u) for u in counts}
            for u, peak in peaks.items():
                emit("peak_rss", peak / 2**20, "MiB", params=n, buffer=k, updates=u,
                     model_mib=round(4 * n / 2**20, 3))
            emit("rss_growth", (peaks[counts[-1]] - peaks[counts[0]]) / 2**20, "MiB",
                 params=n, buffer=k, updates=f"{counts[0]}->{counts[-1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
