"""Fleet scale: the largest simulated fleet one process keeps training and publishing.

For each fleet size N: a private mosquitto (fd limit raised), the real
aggregator in a child process (async, K=10), and N simulated devices in this
process, each with its own MQTT connection (the ideal fleet, real training).
Reports the seconds until all N are connected, the updates published per
second once they are, how many devices were online, and memory per device
(RSS growth of this process / N).
Usage: ``python -m bench.fleet_scale [--tiny] [--sizes 1000,5000,10000] [--window 20]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from bench.common import Emitter, add_output_args
from broker.mosquitto import Mosquitto
from device_sim.fleet import run_fleet
from device_sim.metrics import FleetMetrics
from device_sim.settings import FleetSettings
from fedmq.tasks import get_task

BENCH = "fleet_scale"
log = logging.getLogger(__name__)


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (children such as mosquitto inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def start_aggregator(url: str, state_dir: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aggregator", "--broker", url, "--task", "digits",
         "--mode", "async", "--buffer", "10", "--staleness", "fedbuff",
         "--state-dir", state_dir, "--metrics-port", "0"],
        start_new_session=True,
    )


async def measure(url: str, n: int, *, window: float, connect_timeout: float,
                  emit: Emitter) -> bool:
    settings = FleetSettings.ideal(url, count=n, concurrency=10, tick=5.0,
                                   connect_rate=1000.0, ack_timeout=120.0)
    registry = CollectorRegistry()
    metrics = FleetMetrics(registry, "digits")
    stop = asyncio.Event()
    await asyncio.to_thread(get_task, "digits")  # load data before measuring memory
    rss0, t0 = rss_bytes(), time.monotonic()
    fleet = asyncio.create_task(run_fleet(settings, registry=registry, stop=stop,
                                          metrics=metrics), name="fleet")
    view = metrics.view
    while view.online < n and time.monotonic() - t0 < connect_timeout and not fleet.done():
        await asyncio.wait({fleet}, timeout=0.5)
    connected, t_conn = view.online, time.monotonic() - t0
    u0, b0 = view.updates_published, view.bytes_published
    await asyncio.sleep(window)
    online_min = min(connected, view.online)
    rate = (view.updates_published - u0) / window
    rss = rss_bytes() - rss0
    stop.set()
    await fleet
    params = {"devices": n, "task": "digits", "window_s": window}
    emit("connected_devices", float(connected), "devices", **params)
    emit("connect_seconds", t_conn, "s", **params)
    emit("online_at_end", float(online_min), "devices", **params)
    emit("updates_per_second", rate, "updates/s", **params)
    emit("uplink_bytes_per_second", (view.bytes_published - b0) / window, "B/s", **params)
    emit("rss_per_device", rss / n, "bytes", **params)
    return connected == n and rate > 0


def run_size(n: int, *, window: float, connect_timeout: float, emit: Emitter) -> bool:
    extra = ["max_connections -1", "max_keepalive 600"]
    with Mosquitto(extra_config=extra) as broker, tempfile.TemporaryDirectory() as state:
        agg = start_aggregator(broker.url, str(Path(state)))
        try:
            return asyncio.run(measure(broker.url, n, window=window,
                                       connect_timeout=connect_timeout, emit=emit))
        finally:
            agg.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                agg.wait(10)
            if agg.poll() is None:
                agg.kill()
                agg.wait()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench.fleet_scale", description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="1000,2000,5000,10000", help="fleet sizes, ascending")
    p.add_argument("--window", type=float, default=20.0, help="seconds measured once connected")
    p.add_argument("--connect-timeout", type=float, default=120.0)
    p.add_argument("--tiny", action="store_true", help="one fleet of 50 for 3 s (smoke test)")
    add_output_args(p)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = [50] if args.tiny else [int(s) for s in args.sizes.split(",")]
    window = 3.0 if args.tiny else args.window
    emit = Emitter(BENCH, args.out)
    emit.environment()
    limit = raise_fd_limit()
    largest = 0
    for n in sizes:
        if n + 200 > limit:  # this process and mosquitto each hold n sockets
            log.warning("fleet of %d needs more than the %d open files allowed", n, limit)
            break
        if not run_size(n, window=window, connect_timeout=args.connect_timeout, emit=emit):
            break
        largest = n
    emit("largest_fleet", float(largest), "devices", task="digits", fd_limit=limit)
    return 0


if __name__ == "__main__":
    from bench.cli import run_module

    sys.exit(run_module(main))
