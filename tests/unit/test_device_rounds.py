"""Sync rounds (``FleetSettings(rounds=True)``): a cohort per model version, FedAvg style."""

from __future__ import annotations

import pytest

from device_sim.agent import DeviceAgent
from device_sim.agent_config import AgentConfig
from device_sim.events import LinkUp, Received, Subscribe, Tick, Train
from device_sim.rounds import Rounds
from device_sim.settings import FleetSettings
from fedmq.errors import ConfigError
from fedmq.topics import TopicKind
from tests.unit.test_device_agent import OK, T0, meta, model, of, run


def test_cohort_is_sized_seeded_and_drawn_from_devices_with_data() -> None:
    rounds = Rounds.for_sizes(10, [5, 0, 3] * 40, seed=7)
    cohorts = [rounds.cohort(v) for v in range(20)]
    assert all(len(c) == 10 for c in cohorts)
    assert all(i % 3 != 1 for c in cohorts for i in c)  # index 1, 4, ... have no data
    assert cohorts == [Rounds.for_sizes(10, [5, 0, 3] * 40, seed=7).cohort(v) for v in range(20)]
    assert len(set(cohorts)) > 15  # a new random cohort per version
    assert Rounds.for_sizes(10, [5, 0, 3] * 40, seed=8).cohort(0) != cohorts[0]


def test_small_fleets_put_everyone_in_every_round() -> None:
    assert Rounds.for_sizes(10, [1, 1, 0, 1]).cohort(3) == {0, 1, 3}
    with pytest.raises(ConfigError):
        Rounds(0, (1, 2))


def _agent(index: int, rounds: Rounds) -> DeviceAgent:
    agent = DeviceAgent(AgentConfig("dev-1", "digits", device_index=index, rounds=rounds))
    run(agent, LinkUp(T0))
    return agent


def test_agent_trains_only_on_versions_whose_cohort_selects_it() -> None:
    rounds = Rounds(1, tuple(range(100)), seed=0)
    chosen = next(iter(rounds.cohort(0)))
    outsider = _agent((chosen + 1) % 100, rounds)
    acts = run(outsider, meta(model(0)), Tick(T0, OK))
    assert not of(acts, Subscribe)
    assert outsider.state == "idle"

    member = _agent(chosen, rounds)
    acts = run(member, meta(model(0)), Tick(T0, OK))
    assert of(acts, Subscribe)
    assert member.state == "fetching"
    acts = run(member, Received(T0, TopicKind.MODEL, model(0).model))
    assert [t.base_version for t in of(acts, Train)] == [0]


def test_fleet_settings_rounds_is_opt_in() -> None:
    assert FleetSettings.ideal("mqtt://127.0.0.1:1").rounds is False
    assert FleetSettings.ideal("mqtt://127.0.0.1:1", rounds=True).rounds is True


def test_cli_flag() -> None:
    import argparse

    from device_sim.cli import add_fleet_options, settings_from

    parser = argparse.ArgumentParser()
    add_fleet_options(parser)
    base = ["--broker", "mqtt://127.0.0.1:1"]
    assert settings_from(parser.parse_args(base)).rounds is False
    assert settings_from(parser.parse_args([*base, "--rounds"])).rounds is True
    assert settings_from(parser.parse_args([*base, "--rounds", "false"])).rounds is False
