"""One federated training run through the real components, traced version by version.

:func:`run_federation` starts a private mosquitto on a free loopback port, the
aggregator and the simulated fleet in one event loop (as ``demo.runner`` does),
and records, for every model version announced on the retained ``model/meta``,
the wall and simulated seconds since the fleet started, the accuracy the
aggregator measured, and the uplink bytes and updates the fleet had published
(read from its Prometheus counters). Simulated seconds are wall seconds times
the fleet's ``time_scale``, so the wall overhead of MQTT, folding and evaluation
counts against both modes alike.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt
from prometheus_client import CollectorRegistry

from aggregator.service import run_aggregator
from aggregator.settings import Settings as AggregatorSettings
from aggregator.staleness import Staleness
from broker.mosquitto import Mosquitto
from device_sim.fleet import run_fleet
from device_sim.settings import FleetSettings
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.errors import DecodeError
from fedmq.messages import ModelMeta
from fedmq.tensors import EncodingSpec
from fedmq.topics import Topics

log = logging.getLogger(__name__)
TASK = "digits"
FLEET_GRACE = 1.0  # wall seconds the fleet gets to stop before it is cancelled


@dataclass(frozen=True, slots=True)
class RunConfig:
    """One run: ``mode`` async (FedBuff) or sync (FedAvg rounds) on digits-100."""

    mode: str = "async"
    seed: int = 0
    encoding: str = "f32"
    devices: int = 100
    concurrency: int = 10  # devices training at once (the sync cohort)
    buffer: int = 10  # FedBuff K
    staleness: str = "fedbuff"
    server_lr: float = 1.0
    max_staleness: int = 20
    time_scale: float = 1.0  # simulated seconds per wall second
    stop_accuracy: float | None = 0.95  # stop once reached (None: run to a limit)
    max_sim_seconds: float = 120.0
    max_versions: int | None = None

    @property
    def max_wall_seconds(self) -> float:
        return self.max_sim_seconds / self.time_scale


@dataclass(frozen=True, slots=True)
class Point:
    """The state of the run when one model version was announced."""

    wall: float
    sim: float
    version: int
    accuracy: float
    uplink_bytes: float
    updates: float


@dataclass
class Trace:
    config: RunConfig
    points: list[Point] = field(default_factory=list)
    wall: float = 0.0

    @property
    def final(self) -> Point | None:
        return self.points[-1] if self.points else None

    def first_reaching(self, accuracy: float) -> Point | None:
        return next((p for p in self.points if p.accuracy >= accuracy), None)

    def done(self) -> bool:
        last, c = self.final, self.config
        if last is None:
            return False
        if c.stop_accuracy is not None and last.accuracy >= c.stop_accuracy:
            return True
        if c.max_versions is not None and last.version >= c.max_versions:
            return True
        return last.sim >= c.max_sim_seconds


def _counter(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name, {"task": TASK}) or 0.0


def fleet_settings(config: RunConfig, url: BrokerURL) -> FleetSettings:
    """The ideal fleet (no battery or network limits); sync mode gates training by round."""
    return FleetSettings.ideal(
        url, task=TASK, count=config.devices, partitions=config.devices,
        time_scale=config.time_scale, concurrency=config.concurrency,
        rounds=config.mode == "sync", encoding=EncodingSpec.parse(config.encoding),
        seed=config.seed,
    )


def aggregator_settings(config: RunConfig, url: BrokerURL, state_dir: Path) -> AggregatorSettings:
    return AggregatorSettings(
        broker=url, task=TASK, state_dir=state_dir, mode=config.mode, buffer=config.buffer,
        staleness=Staleness.parse(config.staleness), server_lr=config.server_lr,
        max_staleness=config.max_staleness, cohort=config.concurrency,
        buffer_timeout=600.0, round_deadline=600.0, client_id=f"bench-aggregator-{config.seed}",
    )


async def _watch(url: BrokerURL, registry: CollectorRegistry, trace: Trace, started: float,
                 finished: asyncio.Event) -> None:
    scale = trace.config.time_scale
    async with aiomqtt.Client(url.host, url.port, identifier="bench-monitor") as client:
        await client.subscribe(Topics(TASK).meta, qos=1)
        async for message in client.messages:
            wall = time.monotonic() - started
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                meta = codec.decode(payload, ModelMeta)
            except DecodeError as exc:
                log.warning("bench ignores a bad meta: %s", exc)
                continue
            last = trace.final
            if last is not None and meta.version <= last.version:
                continue  # a re-publication (reconnect) of a version already seen
            trace.points.append(Point(
                wall, wall * scale, meta.version, float(meta.metrics.get("accuracy", 0.0)),
                _counter(registry, "fedmq_sim_bytes_published_total"),
                _counter(registry, "fedmq_sim_updates_published_total"),
            ))
            log.debug("version %d at %.2f sim s: accuracy %.3f", meta.version, wall * scale,
                      trace.points[-1].accuracy)
            if trace.done():
                finished.set()


async def _run(config: RunConfig, url: BrokerURL, state_dir: Path) -> Trace:
    registry = CollectorRegistry()
    trace = Trace(config)
    stop_aggregator, stop_fleet = asyncio.Event(), asyncio.Event()
    ready, finished = asyncio.Event(), asyncio.Event()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(run_aggregator(aggregator_settings(config, url, state_dir),
                                      registry=registry, stop=stop_aggregator, ready=ready),
                       name="bench/aggregator")
        await ready.wait()
        started = time.monotonic()
        watcher = tg.create_task(_watch(url, registry, trace, started, finished),
                                 name="bench/monitor")
        fleet = tg.create_task(run_fleet(fleet_settings(config, url), registry=registry,
                                         stop=stop_fleet), name="bench/fleet")
        try:
            await asyncio.wait_for(finished.wait(), config.max_wall_seconds)
        except TimeoutError:
            log.info("run %s seed %d: %.1f simulated seconds without reaching its target",
                     config.mode, config.seed, config.max_sim_seconds)
        trace.wall = time.monotonic() - started
        stop_fleet.set()
        await _stop_fleet(fleet)
        stop_aggregator.set()
        watcher.cancel()
    return trace


async def _stop_fleet(fleet: asyncio.Task[object], grace: float = FLEET_GRACE) -> None:
    """Wait for the fleet to stop; after ``grace`` seconds cancel the device tasks still alive.

    Python 3.11's ``asyncio.wait_for`` can swallow a cancellation that arrives as its inner
    future completes; a device task that lost its cancellation that way then waits for
    aiomqtt's 30 s publish timeout on a closed connection, which would add 30 s to a run.
    """
    done, _ = await asyncio.wait({fleet}, timeout=grace)
    if done:
        return
    stuck = [t for t in asyncio.all_tasks()
             if not t.done() and t.get_name().endswith(("/drive", "/link"))]
    log.info("fleet still stopping after %.1f s: cancelling %d device tasks again",
             grace, len(stuck))
    for t in stuck:
        t.cancel()
    await fleet


async def run_federation(config: RunConfig) -> Trace:
    """Run ``config`` on a fresh private mosquitto; returns the per-version trace."""
    broker = await asyncio.to_thread(Mosquitto(persistence=False).start)
    try:
        with tempfile.TemporaryDirectory(prefix="fedmq-bench-") as tmp:
            return await _run(config, BrokerURL.parse(broker.url), Path(tmp))
    finally:
        await asyncio.to_thread(broker.close)
