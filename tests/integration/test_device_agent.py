"""The paho real-device agent against a real mosquitto and the stand-in aggregator."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import numpy as np
import pytest

from broker.mosquitto import Mosquitto
from device_sim.agent_cli import build
from device_sim.agent_config import AgentConfig
from device_sim.paho_agent import AgentSettings, PahoAgent
from device_sim.policy import Conditions
from fedmq.brokerurl import BrokerURL
from fedmq.cli import build_parser
from fedmq.tasks import get_task
from tests.integration.test_fleet_standin import StandIn

pytestmark = pytest.mark.integration


def _serve(standin: StandIn, agents: list[PahoAgent]) -> None:
    stop = threading.Event()
    threads = [threading.Thread(target=a.run, args=(stop,), name=a.agent.config.device)
               for a in agents]
    for t in threads:
        t.start()
    try:
        # a deadline turns a stuck run into a failure with context instead of a hang
        asyncio.run(asyncio.wait_for(standin.run(asyncio.Event()), timeout=90))
    finally:
        stop.set()
        for t in threads:
            t.join()


def test_paho_agents_train_until_the_model_moves(mosquitto: Mosquitto) -> None:
    task = get_task("digits")
    standin = StandIn(mosquitto.url, buffer=2, target_version=3)
    agents = [
        PahoAgent(
            AgentSettings(BrokerURL.parse(mosquitto.url),
                          AgentConfig(f"board-{k}", "digits", device_index=k), tick=0.05),
            task, task.device_data(k), lambda: Conditions(battery=None),
        )
        for k in (1, 2, 3)
    ]
    _serve(standin, agents)
    assert standin.version >= 3
    assert {d.device for d in standin.deltas} <= {"board-1", "board-2", "board-3"}
    assert sum(a.counts.get("accepted", 0) for a in agents) >= 4


def test_device_cli_with_npz_data(mosquitto: Mosquitto, tmp_path: Path) -> None:
    data = get_task("digits").device_data(5)
    path = tmp_path / "local.npz"
    np.savez(path, X=data.X, y=data.y)
    args = build_parser(["device"]).parse_args([
        "device", "--broker", mosquitto.url, "--task", "digits", "--device-id", "pi-1",
        "--data", str(path), "--tick", "0.05",
    ])
    agent = build(args)
    assert len(agent.data) == len(data)
    standin = StandIn(mosquitto.url, buffer=1, target_version=2)
    _serve(standin, [agent])
    assert {d.device for d in standin.deltas} == {"pi-1"}
    assert standin.deltas[0].num_samples == len(data)


def test_low_battery_device_does_not_train(mosquitto: Mosquitto) -> None:
    task = get_task("digits")
    low = PahoAgent(
        AgentSettings(BrokerURL.parse(mosquitto.url), AgentConfig("low-1", "digits"), tick=0.05),
        task, task.device_data(1), lambda: Conditions(battery=0.05, charging=False),
    )
    ok = PahoAgent(
        AgentSettings(BrokerURL.parse(mosquitto.url), AgentConfig("ok-1", "digits"), tick=0.05),
        task, task.device_data(2), lambda: Conditions(battery=0.9, charging=False),
    )
    _serve(StandIn(mosquitto.url, buffer=1, target_version=2), [low, ok])
    assert low.counts.get("skipped_battery", 0) >= 1
    assert "published" not in low.counts
    assert ok.counts["published"] >= 2
