"""The state file: round trip, atomic replacement, refusal of junk."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from aggregator.store import FILENAME, State, Store, decode_state
from fedmq.errors import StateError


def state(version: int) -> State:
    return State(
        "fp", version, 123.5,
        {"w": np.full((2, 3), version, np.float32)}, {"w": np.ones((2, 3), np.float64)},
        7, 2, (("sim-1", "u1"), ("sim-2", "u9")), {"accuracy": 0.5}, 1.5, 3,
    )


def test_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    assert store.load() is None
    store.save(state(4))
    got = store.load()
    assert got is not None
    assert (got.version, got.dedup, got.metrics, got.interval, got.chunks) == (
        4, (("sim-1", "u1"), ("sim-2", "u9")), {"accuracy": 0.5}, 1.5, 3)
    np.testing.assert_array_equal(got.params["w"], state(4).params["w"])
    assert got.sums["w"].dtype == np.float64
    assert got.total_samples == 7
    assert got.count == 2


def test_crash_mid_write_leaves_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.save(state(1))

    def crash(*_: object) -> None:
        raise OSError("power cut before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.save(state(2))
    monkeypatch.undo()
    assert (tmp_path / (FILENAME + ".tmp")).exists()  # the half-finished write is there...
    (tmp_path / (FILENAME + ".tmp")).write_bytes(b"\x85truncated")
    loaded = store.load()  # ...and ignored
    assert loaded is not None
    assert loaded.version == 1
    store.save(state(3))
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 3


def test_junk_state_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(b"\x81\xa6format\x02")
    with pytest.raises(StateError, match="format"):
        Store(tmp_path).load()
    with pytest.raises(StateError, match="unreadable"):
        decode_state(b"\x92\x01")
