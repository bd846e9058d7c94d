"""The fleet simulator against the real aggregator (aggregator/) through a real mosquitto."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import aiomqtt
import pytest
from prometheus_client import CollectorRegistry

from aggregator.service import run_aggregator
from aggregator.settings import Settings
from broker.mosquitto import Mosquitto
from device_sim.battery import BatteryModel
from device_sim.fleet import run_fleet
from device_sim.network import NetworkModel
from device_sim.settings import FleetSettings
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.messages import ModelMeta
from fedmq.topics import Topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]


async def _watch(url: BrokerURL, task: str, *, target: float, max_version: int,
                 stop: asyncio.Event, seen: list[tuple[int, float]]) -> None:
    """Follow model/meta; stop everything at ``target`` accuracy or ``max_version``."""
    async with aiomqtt.Client(url.host, url.port, identifier="fleet-test-watch") as client:
        await client.subscribe(Topics(task).meta, qos=1)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            meta = codec.decode(message.payload, ModelMeta)
            seen.append((meta.version, meta.metrics.get("accuracy", 0.0)))
            if seen[-1][1] >= target or meta.version >= max_version:
                stop.set()
                return


def _train(fleet: FleetSettings, state_dir: Path, *, target: float,
           max_version: int) -> list[tuple[int, float]]:
    agg = Settings(fleet.broker, fleet.task, state_dir, mode="async", buffer=10,
                   buffer_timeout=2.0)
    seen: list[tuple[int, float]] = []

    async def main() -> None:
        stop, ready = asyncio.Event(), asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(run_aggregator(agg, registry=CollectorRegistry(), stop=stop,
                                          ready=ready), name="aggregator")
            await ready.wait()
            tg.create_task(_watch(fleet.broker, fleet.task, target=target, max_version=max_version,
                                  stop=stop, seen=seen),
                           name="watch")
            tg.create_task(run_fleet(fleet, registry=CollectorRegistry(), stop=stop),
                           name="fleet")

    asyncio.run(main())
    return seen


def test_digits_fleet_of_30_reaches_085(mosquitto: Mosquitto, tmp_path: Path) -> None:
    fleet = FleetSettings.ideal(mosquitto.url, count=30, partitions=30, time_scale=100.0,
                                tick=0.05)
    seen = _train(fleet, tmp_path, target=0.85, max_version=150)
    assert max(acc for _, acc in seen) >= 0.85, seen[-5:]


def test_flaky_low_battery_fleet_converges(mosquitto: Mosquitto, tmp_path: Path) -> None:
    battery = BatteryModel(capacity_j=3000.0, initial_low=0.0, mean_unplugged_s=900.0,
                           mean_charging_s=300.0, charge_watts=20.0)
    network = NetworkModel(mean_online_s=120.0, mean_offline_s=40.0)
    fleet = dataclasses.replace(
        FleetSettings.ideal(mosquitto.url, count=30, partitions=30, time_scale=40.0,
                            tick=0.05),
        battery=battery, network=network,
    )
    seen = _train(fleet, tmp_path, target=0.8, max_version=200)
    assert max(acc for _, acc in seen) >= 0.8, seen[-5:]


def test_synthetic_task_improves(mosquitto: Mosquitto, tmp_path: Path) -> None:
    fleet = FleetSettings.ideal(mosquitto.url, task="synthetic", count=30, time_scale=100.0,
                                tick=0.05)
    seen = _train(fleet, tmp_path, target=1.01, max_version=15)
    first, best = seen[0][1], max(acc for _, acc in seen)
    assert best > first + 0.1, seen
