from __future__ import annotations

import pytest

from device_sim.cli import settings_from
from device_sim.settings import FleetSettings
from fedmq.cli import build_parser
from fedmq.errors import ConfigError


def test_device_ids_carry_the_replica_prefix() -> None:
    s = FleetSettings.ideal("mqtt://127.0.0.1:1", count=3, id_prefix="sim-3f2a9c")
    assert [s.device_id(k) for k in range(3)] == [
        "sim-3f2a9c-00000", "sim-3f2a9c-00001", "sim-3f2a9c-00002",
    ]


def test_an_id_prefix_that_is_not_a_topic_level_is_refused() -> None:
    with pytest.raises(ConfigError):
        FleetSettings.ideal("mqtt://127.0.0.1:1", count=3, id_prefix="a/b")


def test_cli_reads_the_id_prefix_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDMQ_ID_PREFIX", "replica7")
    args = build_parser(["devices"]).parse_args(["devices", "--broker", "mqtt://127.0.0.1:1"])
    assert settings_from(args).device_id(0) == "replica7-00000"


def test_switches_work_alone_with_a_value_and_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = build_parser(["devices"])
    assert parser.parse_args(["devices", "--ideal"]).ideal is True
    assert parser.parse_args(["devices", "--ideal", "false"]).ideal is False
    assert parser.parse_args(["devices"]).ideal is False
    monkeypatch.setenv("FEDMQ_IDEAL", "1")
    assert build_parser(["devices"]).parse_args(["devices"]).ideal is True
