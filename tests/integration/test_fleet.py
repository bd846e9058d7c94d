"""The fleet simulator against a real mosquitto and a stand-in aggregator."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from prometheus_client import CollectorRegistry

from broker.mosquitto import Mosquitto
from device_sim.battery import BatteryModel
from device_sim.fleet import run_fleet
from device_sim.metrics import FleetMetrics, FleetView
from device_sim.network import NetworkModel
from device_sim.settings import FleetSettings
from fedmq.tensors import EncodingSpec
from tests.integration.test_fleet_standin import StandIn

pytestmark = pytest.mark.integration


def _run(standin: StandIn, settings: FleetSettings, registry: CollectorRegistry) -> FleetView:
    async def main() -> FleetView:
        stop = asyncio.Event()
        metrics = FleetMetrics(registry, settings.task)
        async with asyncio.TaskGroup() as tg:
            tg.create_task(standin.run(stop), name="standin")
            fleet = tg.create_task(
                run_fleet(settings, registry=registry, stop=stop, metrics=metrics), name="fleet"
            )
        return fleet.result()

    return asyncio.run(main())


def test_ideal_fleet_trains_and_model_improves(
    mosquitto: Mosquitto, registry: CollectorRegistry
) -> None:
    standin = StandIn(mosquitto.url, buffer=5, target_version=8)
    settings = FleetSettings.ideal(mosquitto.url, count=20, time_scale=200.0, tick=0.05)
    view = _run(standin, settings, registry)
    assert standin.version >= 8
    assert standin.accuracies[-1] > standin.accuracies[0] + 0.3
    assert view.updates_published >= 40
    assert registry.get_sample_value(
        "fedmq_sim_updates_published_total", {"task": "digits"}
    ) == view.updates_published
    # every device left the live counts on stop
    assert sum(view.states.values()) == 0


def test_chunked_model_and_lossy_encoding(
    mosquitto: Mosquitto, registry: CollectorRegistry
) -> None:
    standin = StandIn(mosquitto.url, buffer=3, target_version=3, max_packet=1536)
    settings = FleetSettings.ideal(
        mosquitto.url, count=6, time_scale=200.0, tick=0.05,
        encoding=EncodingSpec.parse("topk:0.1:q8+zlib"),
    )
    _run(standin, settings, registry)
    assert standin.version >= 3
    assert all(t.enc == "topk" for d in standin.deltas for t in d.tensors.values())


def test_flaky_low_battery_fleet_still_trains(
    mosquitto: Mosquitto, registry: CollectorRegistry
) -> None:
    standin = StandIn(mosquitto.url, buffer=4, target_version=6, max_staleness=3)
    battery = BatteryModel(capacity_j=2000.0, initial_low=0.0, mean_unplugged_s=600.0,
                           mean_charging_s=300.0, charge_watts=20.0)
    network = NetworkModel(mean_online_s=60.0, mean_offline_s=30.0)
    settings = dataclasses.replace(
        FleetSettings.ideal(mosquitto.url, count=20, time_scale=50.0, tick=0.05),
        battery=battery, network=network,
    )
    _run(standin, settings, registry)
    assert standin.version >= 6
    skipped = {
        r: registry.get_sample_value("fedmq_sim_skipped_total", {"task": "digits", "reason": r})
        for r in ("battery", "offline")
    }
    assert any(v for v in skipped.values()), skipped
