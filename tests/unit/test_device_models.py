"""Simulated battery and network, policy, backoff and the OS battery reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from device_sim.battery import Battery, BatteryModel
from device_sim.network import Link, NetworkModel, ideal_link
from device_sim.os_battery import sysfs_battery
from device_sim.policy import Conditions, Policy
from fedmq.errors import ConfigError


def test_policy() -> None:
    p = Policy(0.3)
    assert p.refusal(Conditions(battery=0.5)) is None
    assert p.refusal(Conditions(battery=0.3)) is None  # "at or above"
    assert p.refusal(Conditions(battery=0.2, charging=False)) == "battery"
    assert p.refusal(Conditions(battery=0.2, charging=True)) is None
    assert p.refusal(Conditions(battery=None)) is None  # no battery: mains powered
    assert p.refusal(Conditions(online=False)) == "offline"
    assert p.refusal(Conditions(), link_up=False) == "offline"
    assert p.refusal(Conditions(metered=True)) is None
    assert Policy(require_unmetered=True).refusal(Conditions(metered=True)) == "metered"
    with pytest.raises(ConfigError):
        Policy(1.5)


def test_battery_drains_charges_and_switches_sessions() -> None:
    model = BatteryModel(capacity_j=1000.0, joules_per_sample=1.0, joules_per_byte=0.001,
                         idle_watts=0.0, charge_watts=1.0, mean_unplugged_s=1e9,
                         mean_charging_s=1e9)
    b = Battery(0.5, False, 1e12, 0.0)
    assert b.drain(model, samples=100).level == pytest.approx(0.4)
    assert b.drain(model, nbytes=100_000).level == pytest.approx(0.4)
    assert b.drain(model, samples=10_000).level == 0.0
    charging = Battery(0.5, True, 1e12, 0.0).advance(model, 100.0, np.random.default_rng(0))
    assert charging.level == pytest.approx(0.6)
    assert Battery(0.5, True, 1e12, 0.0).advance(model, 1e6, np.random.default_rng(0)).level == 1
    # a session that ended switches to the other state
    switched = Battery(0.5, False, 10.0, 0.0).advance(model, 20.0, np.random.default_rng(0))
    assert switched.charging
    assert switched.level == pytest.approx(0.51)


def test_network_markov_chain_spends_the_right_fraction_online() -> None:
    model = NetworkModel(mean_online_s=30.0, mean_offline_s=10.0, metered_fraction=0.5)
    rng = np.random.default_rng(1)
    link = Link.initial(model, rng)
    online = 0
    for t in range(1, 20_001):
        link = link.advance(model, float(t), rng)
        online += link.online
    assert 0.7 < online / 20_000 < 0.8  # stationary: 30 / (30 + 10)
    assert link.transfer_seconds(1_000_000) == pytest.approx(8e6 / link.uplink_bps)
    assert ideal_link().transfer_seconds(10**9) == 0.0
    assert ideal_link().advance(model, 1e9, rng).online



def test_sysfs_battery(tmp_path: Path) -> None:
    assert sysfs_battery(tmp_path / "missing") is None
    bat, ac = tmp_path / "BAT0", tmp_path / "AC"
    bat.mkdir()
    ac.mkdir()
    (bat / "type").write_text("Battery\n")
    (bat / "capacity").write_text("42\n")
    (bat / "status").write_text("Discharging\n")
    (ac / "type").write_text("Mains\n")
    (ac / "online").write_text("0\n")
    assert sysfs_battery(tmp_path) == (0.42, False)
    (ac / "online").write_text("1\n")
    assert sysfs_battery(tmp_path) == (0.42, True)
