"""Folding maths: hand examples and Hypothesis properties (FedAsync, FedAvg, no-op rejects)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aggregator.folding import Buffer
from aggregator.staleness import Staleness

SHAPES = {"w": (3,)}
F = npt.NDArray[np.float32]


def arr(*xs: float) -> F:
    return np.array(xs, dtype=np.float32)


def test_fedbuff_by_hand() -> None:
    # w + lr * (f(s1) n1 d1 + f(s2) n2 d2) / (n1 + n2) with fedbuff f(0)=1, f(3)=1/2
    f = Staleness("fedbuff")
    b = Buffer.empty(SHAPES)
    b.add({"w": arr(1, 2, 3)}, f.weight(0), 10)
    b.add({"w": arr(4, 0, -2)}, f.weight(3), 30)
    out = b.apply({"w": arr(1, 1, 1)}, lr=0.5)
    # sums: 10*[1,2,3] + 15*[4,0,-2] = [70, 20, 0]; /40 = [1.75, .5, 0]; *.5 + 1
    np.testing.assert_array_equal(out["w"], arr(1.875, 1.25, 1.0))
    assert b.count == 2
    assert b.total_samples == 40


def test_sync_fedavg_by_hand() -> None:
    w = arr(1, 0, 0)
    b = Buffer.empty(SHAPES)
    b.add({"w": arr(1, 1, 1)}, 1.0, 1)
    b.add({"w": arr(-1, 3, 0)}, 1.0, 3)
    # FedAvg of the local models [2,1,1] (n=1) and [0,3,0] (n=3): [0.5, 2.5, 0.25]
    np.testing.assert_array_equal(b.apply({"w": w}, lr=1.0)["w"], arr(0.5, 2.5, 0.25))


def test_clear_and_empty_apply_keep_params() -> None:
    b = Buffer.empty(SHAPES)
    b.add({"w": arr(1, 1, 1)}, 1.0, 1)
    b.clear()
    w = arr(1, 2, 3)
    out = b.apply({"w": w}, lr=1.0)
    np.testing.assert_array_equal(out["w"], w)
    assert out["w"] is not w


finite = st.floats(-1e3, 1e3, allow_nan=False, width=32)
vec = hnp.arrays(np.float32, (3,), elements=finite)


@settings(max_examples=60, deadline=None)
@given(vec, vec, st.integers(0, 50), st.integers(1, 1000), st.floats(0.01, 1.0))
def test_k1_is_fedasync(w: F, d: F, s: int, n: int, alpha: float) -> None:
    f = Staleness("polynomial", a=0.5)
    b = Buffer.empty(SHAPES)
    b.add({"w": d}, f.weight(s), n)
    got = b.apply({"w": w}, lr=alpha)["w"]
    want = (w.astype(np.float64) + alpha * f.weight(s) * d.astype(np.float64)).astype(np.float32)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


@settings(max_examples=60, deadline=None)
@given(vec, st.lists(st.tuples(vec, st.integers(1, 500)), min_size=1, max_size=8))
def test_sync_equals_fedavg(w: F, updates: list[tuple[F, int]]) -> None:
    b = Buffer.empty(SHAPES)
    for d, n in updates:
        b.add({"w": d}, 1.0, n)
    got = b.apply({"w": w}, lr=1.0)["w"]
    total = sum(n for _, n in updates)
    want = sum(n * (w.astype(np.float64) + d) for d, n in updates) / total
    np.testing.assert_allclose(got, want.astype(np.float32), rtol=1e-5, atol=1e-4)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(vec, st.integers(1, 100)), min_size=2, max_size=6), st.randoms())
def test_order_does_not_matter(updates: list[tuple[F, int]], rnd: object) -> None:
    w = arr(0, 0, 0)
    a, b = Buffer.empty(SHAPES), Buffer.empty(SHAPES)
    for d, n in updates:
        a.add({"w": d}, 0.5, n)
    shuffled = list(updates)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    for d, n in shuffled:
        b.add({"w": d}, 0.5, n)
    np.testing.assert_allclose(a.apply({"w": w}, 1.0)["w"], b.apply({"w": w}, 1.0)["w"],
                               rtol=1e-6, atol=1e-6)
