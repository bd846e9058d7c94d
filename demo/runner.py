"""``fedmq demo``: broker, aggregator and a simulated fleet in one process, with live progress.

Everything runs in one event loop: the embedded amqtt broker (unless a real
broker URL is given), the aggregator and the fleet simulator, each through its
in-process API. Progress is read as an operator would read it: versions and
accuracy from the retained ``model/meta``, counters from the Prometheus
registry the components write to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from prometheus_client import CollectorRegistry

from aggregator.service import run_aggregator
from aggregator.settings import Settings as AggregatorSettings
from aggregator.staleness import Staleness
from demo.embedded_broker import EmbeddedBroker
from demo.plot import plot_progress
from demo.progress import Point, RateMeter, Snapshot, device_states, read_counters, render
from device_sim.fleet import run_fleet
from device_sim.settings import FleetSettings
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.errors import DecodeError
from fedmq.messages import ModelMeta
from fedmq.tensors import EncodingSpec
from fedmq.topics import Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DemoSettings:
    devices: int = 30
    task: str = "digits"
    mode: str = "async"
    target_accuracy: float = 0.85
    timeout: float = 50.0
    broker: BrokerURL | None = None  # None: start the embedded broker
    buffer: int = 5
    staleness: str = "fedbuff"
    encoding: str = "f32"
    time_scale: float = 20.0
    concurrency: int = 10
    realistic: bool = True  # simulated batteries and flaky links
    out_dir: Path = Path("demo-out")
    seed: int = 0


@dataclass
class DemoResult:
    reached: bool
    elapsed: float
    points: list[Point] = field(default_factory=list)
    snapshot: Snapshot | None = None
    plot: Path | None = None


class Monitor:
    """Collects model versions from ``model/meta`` and renders progress lines."""

    def __init__(self, settings: DemoSettings, registry: CollectorRegistry, started: float) -> None:
        self.settings = settings
        self.registry = registry
        self.started = started
        self.points: list[Point] = []
        self.version = 0
        self.accuracy: float | None = None
        self._acc_rate, self._rej_rate = RateMeter(), RateMeter()

    def on_meta(self, meta: ModelMeta, now: float) -> None:
        if meta.version < self.version and self.points:
            return
        self.version = meta.version
        self.accuracy = meta.metrics.get("accuracy")
        self.points.append(Point(now - self.started, meta.version, self.accuracy))

    def snapshot(self, now: float) -> Snapshot:
        accepted, rejected, staleness = read_counters(self.registry, self.settings.task)
        return Snapshot(
            now - self.started, self.version, self.accuracy, accepted, rejected,
            self._acc_rate.update(now, accepted), self._rej_rate.update(now, rejected),
            staleness, device_states(self.registry),
        )

    @property
    def reached(self) -> bool:
        return self.accuracy is not None and self.accuracy >= self.settings.target_accuracy


async def _watch_meta(url: BrokerURL, topics: Topics, monitor: Monitor) -> None:
    async with aiomqtt.Client(url.host, url.port, username=url.username,
                              password=url.password, identifier="fedmq-demo-monitor") as client:
        await client.subscribe(topics.meta, qos=1)
        async for message in client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                monitor.on_meta(codec.decode(payload, ModelMeta), time.monotonic())
            except DecodeError as exc:
                log.warning("demo ignores a bad meta: %s", exc)


@contextlib.asynccontextmanager
async def _broker(settings: DemoSettings, emit: Callable[[str], None]) -> AsyncIterator[BrokerURL]:
    if settings.broker is not None:
        yield settings.broker
        return
    async with EmbeddedBroker() as broker:
        emit(f"embedded MQTT broker (amqtt, MQTT 3.1.1) listening on {broker.url}")
        yield BrokerURL.parse(broker.url)


def _component_settings(
    s: DemoSettings, url: BrokerURL, state_dir: Path
) -> tuple[AggregatorSettings, FleetSettings]:
    agg = AggregatorSettings(
        broker=url, task=s.task, state_dir=state_dir, mode=s.mode, buffer=s.buffer,
        staleness=Staleness.parse(s.staleness), cohort=min(s.buffer, s.devices),
        buffer_timeout=5.0, round_deadline=10.0, max_staleness=20,
        client_id=f"fedmq-demo-aggregator-{s.seed}",
        # amqtt speaks only MQTT 3.1.1: skip the MQTT 5 attempt against the embedded broker
        receive_maximum=128 if s.broker is not None else 0,
    )
    fleet_kwargs: dict[str, object] = {
        "task": s.task, "count": s.devices, "partitions": s.devices if s.task == "digits"
        else None, "time_scale": s.time_scale, "concurrency": s.concurrency,
        "encoding": EncodingSpec.parse(s.encoding), "seed": s.seed,
    }
    if s.mode == "sync":  # FedAvg: a random cohort per version, and the round waits for it
        fleet_kwargs.update(rounds=True, concurrency=agg.cohort)
    fleet = (FleetSettings(broker=url, **fleet_kwargs)  # type: ignore[arg-type]
             if s.realistic else FleetSettings.ideal(url, **fleet_kwargs))
    return agg, fleet


async def run_demo(settings: DemoSettings, emit: Callable[[str], None] = print,
                   live: bool = False) -> DemoResult:
    """Run until the target accuracy or the timeout; returns what was seen."""
    registry = CollectorRegistry()
    started = time.monotonic()
    monitor = Monitor(settings, registry, started)
    stop = asyncio.Event()
    with tempfile.TemporaryDirectory(prefix="fedmq-demo-") as tmp:
        async with _broker(settings, emit) as url, asyncio.TaskGroup() as tg:
            agg, fleet = _component_settings(settings, url, Path(tmp))
            ready = asyncio.Event()
            tg.create_task(run_aggregator(agg, registry=registry, stop=stop, ready=ready),
                           name="demo/aggregator")
            await ready.wait()
            watcher = tg.create_task(_watch_meta(url, Topics(settings.task), monitor),
                                     name="demo/monitor")
            tg.create_task(run_fleet(fleet, registry=registry, stop=stop), name="demo/fleet")
            emit(f"aggregator ({settings.mode}) and {settings.devices} simulated devices "
                 f"on task {settings.task!r}; target accuracy {settings.target_accuracy}")
            snap = await _progress(settings, monitor, emit, live)
            stop.set()
            watcher.cancel()
    result = DemoResult(monitor.reached, time.monotonic() - started, monitor.points, snap)
    if monitor.points:
        result.plot = plot_progress(
            monitor.points, settings.out_dir / "accuracy.png", target=settings.target_accuracy,
            title=f"fedmq demo: {settings.task}, {settings.devices} devices, {settings.mode}",
        )
    return result


async def _progress(settings: DemoSettings, monitor: Monitor, emit: Callable[[str], None],
                    live: bool) -> Snapshot:
    deadline = monitor.started + settings.timeout
    last_line = 0.0
    while True:
        await asyncio.sleep(0.25)
        now = time.monotonic()
        snap = monitor.snapshot(now)
        line = render(snap, settings.target_accuracy)
        if live:
            sys.stdout.write("\r\033[K" + line)
            sys.stdout.flush()
        elif now - last_line >= 2.0:
            emit(line)
            last_line = now
        if monitor.reached or now >= deadline:
            if live:
                sys.stdout.write("\n")
            return snap
