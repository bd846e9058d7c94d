"""The state file: round trip, atomic replacement, refusal of junk."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import numpy as np
import pytest

from aggregator.dedup import PackedKeys
from aggregator.store import (
    FILENAME,
    PREFIX,
    SLOTS,
    State,
    Store,
    decode_state,
    encode_slot,
    encode_state,
)
from fedmq.errors import StateError


def state(version: int) -> State:
    return State(
        "fp", version, 123.5,
        {"w": np.full((2, 3), version, np.float32)}, {"w": np.ones((2, 3), np.float64)},
        7, 2, PackedKeys.of([("sim-1", "u1"), ("sim-2", "u9")]), {"accuracy": 0.5}, 1.5, 3,
    )


def test_round_trip(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    assert store.load() is None
    store.save(state(4))
    got = store.load()
    assert got is not None
    assert (got.version, tuple(got.dedup), got.metrics, got.interval, got.chunks) == (
        4, (("sim-1", "u1"), ("sim-2", "u9")), {"accuracy": 0.5}, 1.5, 3)
    np.testing.assert_array_equal(got.params["w"], state(4).params["w"])
    assert got.sums["w"].dtype == np.float64
    assert got.total_samples == 7
    assert got.count == 2


def test_slot_header_is_one_msgpack_map_with_the_dedup_window_inline() -> None:
    """The window is spliced in pre-encoded; the header must still be the plain map
    that any msgpack reader (and older fedmq) decodes."""
    data = b"".join(bytes(b) for b in encode_slot(state(4), seq=9))
    _, hlen, _, _ = PREFIX.unpack_from(data)
    header = msgpack.unpackb(data[PREFIX.size:PREFIX.size + hlen], raw=False)
    assert header["seq"] == 9
    assert header["dedup"] == [["sim-1", "u1"], ["sim-2", "u9"]]
    assert header["version"] == 4


def test_crash_mid_write_leaves_old_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store(tmp_path)
    store.save(state(1))

    def crash(*_: object) -> None:
        raise OSError("power cut before rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power cut"):
        store.save(state(2))
    monkeypatch.undo()
    tmp = tmp_path / (SLOTS[0] + ".tmp")  # the second save creates the second slot
    assert tmp.exists()  # the half-finished write is there...
    tmp.write_bytes(b"\x85truncated")
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


@pytest.mark.parametrize("cut", [0, 1, 20, 100, -1])
def test_torn_in_place_write_leaves_previous_state(tmp_path: Path, cut: int) -> None:
    store = Store(tmp_path)
    for v in (1, 2, 3):  # 3 overwrites slot b in place
        store.save(state(v))
    slot = tmp_path / SLOTS[1]
    data = bytearray(slot.read_bytes())
    data[cut] ^= 0xFF  # a page of the new write missing: the checksum tells
    slot.write_bytes(bytes(data))
    loaded = Store(tmp_path).load()
    assert loaded is not None
    assert loaded.version == 2
    store.save(state(4))  # the next save goes to the other slot, after the newest
    loaded = Store(tmp_path).load()
    assert loaded is not None
    assert loaded.version == 4


def test_save_without_load_never_goes_back(tmp_path: Path) -> None:
    for v in (1, 2, 3):
        Store(tmp_path).save(state(v))  # each a fresh Store, as after a restart
    loaded = Store(tmp_path).load()
    assert loaded is not None
    assert loaded.version == 3


def test_format_1_state_is_read_then_superseded(tmp_path: Path) -> None:
    (tmp_path / FILENAME).write_bytes(encode_state(state(5)))
    store = Store(tmp_path)
    loaded = store.load()
    assert loaded is not None
    assert loaded.version == 5
    store.save(state(6))
    loaded = Store(tmp_path).load()
    assert loaded is not None
    assert loaded.version == 6


def test_no_complete_slot_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / SLOTS[0]).write_bytes(b"FEDMQST2 torn")
    with pytest.raises(StateError, match="no complete state slot"):
        Store(tmp_path).load()
