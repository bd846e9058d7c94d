"""Staleness functions and the dedup window against hand-computed values."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aggregator.dedup import DedupWindow, PackedKeys, window_size
from aggregator.staleness import Staleness
from fedmq.errors import ConfigError


@pytest.mark.parametrize(
    ("spec", "s", "want"),
    [
        ("constant", 0, 1.0),
        ("constant", 7, 1.0),
        ("polynomial:0.5", 0, 1.0),
        ("polynomial:0.5", 3, 0.5),  # (1+3)^-0.5
        ("polynomial:2", 1, 0.25),
        ("hinge:0.5,2", 2, 1.0),  # s <= b
        ("hinge:0.5,2", 4, 0.5),  # 1/(0.5*(4-2)+1)
        ("hinge:1,0", 3, 0.25),
        ("fedbuff", 0, 1.0),
        ("fedbuff", 8, 1.0 / 3.0),  # (1+8)^-0.5
    ],
)
def test_weights_by_hand(spec: str, s: int, want: float) -> None:
    assert math.isclose(Staleness.parse(spec).weight(s), want, rel_tol=1e-12)


@pytest.mark.parametrize("spec", ["constant", "polynomial:0.5", "hinge:10,4", "fedbuff"])
def test_parse_round_trips(spec: str) -> None:
    assert str(Staleness.parse(spec)) == spec


@pytest.mark.parametrize("bad", ["", "linear", "polynomial", "hinge:1", "polynomial:-1",
                                 "hinge:a,b", "constant:1", "polynomial:nan"])
def test_bad_specs_are_config_errors(bad: str) -> None:
    with pytest.raises(ConfigError):
        Staleness.parse(bad)


@given(
    st.sampled_from(["constant", "polynomial:0.5", "polynomial:3", "hinge:0.5,4", "fedbuff"]),
    st.integers(0, 10_000),
)
def test_weights_in_unit_interval_and_non_increasing(spec: str, s: int) -> None:
    f = Staleness.parse(spec)
    assert 0.0 < f.weight(s) <= 1.0
    assert f.weight(s + 1) <= f.weight(s)


def test_negative_staleness_is_refused() -> None:
    with pytest.raises(ValueError, match="staleness"):
        Staleness().weight(-1)



def test_dedup_window_evicts_oldest_and_has_a_floor() -> None:
    w = DedupWindow(2, [("a", "1"), ("a", "2")])
    w.add(("b", "1"))
    assert ("a", "1") not in w
    assert ("a", "2") in w
    assert w.keys() == [("a", "2"), ("b", "1")]
    assert w.packed() == PackedKeys.of(w.keys())  # kept encoded, evictions included
    assert list(w.packed()) == [("a", "2"), ("b", "1")]
    assert list(DedupWindow(3).packed()) == []
    assert window_size(10, per_version=5, max_staleness=3) == 25
    assert window_size(100, per_version=5, max_staleness=3) == 100


@given(capacity=st.integers(1, 8),
       keys=st.lists(st.tuples(st.sampled_from("abc"), st.sampled_from("0123456789")),
                     max_size=60))
def test_dedup_window_matches_a_plain_list(capacity: int, keys: list[tuple[str, str]]) -> None:
    """Eviction, compaction and repeats keep the encoded window equal to a reference."""
    w, ref = DedupWindow(capacity), list[tuple[str, str]]()
    for key in keys:
        w.add(key)
        if key not in ref:
            ref = [*ref, key][-capacity:]
        assert w.keys() == ref
        assert list(w.packed()) == ref
        assert w.packed() == PackedKeys.of(ref)
