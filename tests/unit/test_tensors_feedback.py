"""Error feedback: what a lossy encoding drops is carried forward, so the error stays bounded."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmq.feedback import ErrorFeedback
from fedmq.tensors import EncodingSpec, Tensor

LOSSY = ["f16", "q8:0", "q8:8", "topk:0.1:f16", "topk:0.25:q8", "topk:0.05:q8+zlib"]


def run(spec: str, deltas: list[dict[str, np.ndarray[Any, Any]]]) -> tuple[Any, Any, Any]:
    """Sum of what was intended, sum of what the receiver decoded, and the final residual."""
    ef = ErrorFeedback(spec)
    intended = {k: np.zeros(v.shape, np.float64) for k, v in deltas[0].items()}
    received = {k: np.zeros(v.shape, np.float64) for k, v in deltas[0].items()}
    for delta in deltas:
        before = {k: v.copy() for k, v in ef.residual.items()}
        sent = ef.encode(delta)
        for k, tensor in sent.items():
            intended[k] += delta[k]
            received[k] += Tensor.from_wire(tensor.to_wire()).decode()
            # one step's error: the residual is exactly what this encoding lost
            corrected = delta[k] + before.get(k, 0)
            lost = corrected.astype(np.float32) - tensor.decode()
            np.testing.assert_array_equal(ef.residual[k], lost)
    return intended, received, ef.residual


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(LOSSY), st.integers(0, 2**32 - 1), st.integers(2, 40))
def test_sum_sent_equals_sum_intended_minus_residual(spec: str, seed: int, steps: int) -> None:
    rng = np.random.default_rng(seed)
    deltas = [
        {
            "w": rng.normal(0, 0.1, (6, 7)).astype(np.float32),
            "b": rng.normal(0, 1, 5).astype(np.float32),
        }
        for _ in range(steps)
    ]
    intended, received, residual = run(spec, deltas)
    for k in intended:
        scale = sum(float(np.abs(d[k]).max()) for d in deltas)
        # exact in real arithmetic; float32 rounding of each step is the only slack
        np.testing.assert_allclose(
            received[k], intended[k] - residual[k], rtol=0, atol=1e-6 * scale + 1e-30
        )


@pytest.mark.parametrize("spec", LOSSY)
def test_residual_stays_bounded_over_many_updates(spec: str) -> None:
    """Without feedback topk's error grows with the number of updates; with it, it does not."""
    rng = np.random.default_rng(7)
    n, steps = 400, 300
    bias = rng.normal(0, 1, n)  # a persistent direction: the worst case for dropping values
    deltas = [{"w": (bias + rng.normal(0, 0.5, n)).astype(np.float32) * 0.01} for _ in range(steps)]
    intended, received, residual = run(spec, deltas)
    one_step = max(float(np.linalg.norm(d["w"])) for d in deltas)
    parsed = EncodingSpec.parse(spec)
    # topk drops at most (1 - p) of the energy per step: |r| <= sqrt(1-p)/(1-sqrt(1-p)) |delta|
    keep = parsed.fraction if parsed.kind == "topk" else 0.5
    bound = np.sqrt(1 - keep) / (1 - np.sqrt(1 - keep)) * one_step * 1.01
    assert float(np.linalg.norm(residual["w"])) <= bound
    # the accumulated error of what was received is the residual, not steps x one error
    err = float(np.linalg.norm(received["w"] - intended["w"]))
    assert err <= bound * 1.01
    naive = sum(
        float(np.linalg.norm(d["w"] - Tensor.encode(d["w"], spec).decode())) for d in deltas
    )
    if parsed.kind == "topk":
        assert err < naive / 10


def test_lossless_encoding_keeps_no_residual() -> None:
    ef = ErrorFeedback("f32+zlib")
    ef.encode({"w": np.ones(3, np.float32)})
    assert ef.residual == {}


def test_shape_change_and_reset_drop_the_residual() -> None:
    ef = ErrorFeedback("topk:0.5:f16")
    ef.encode({"w": np.arange(4, dtype=np.float32)})
    assert float(np.abs(ef.residual["w"]).sum()) > 0
    out = ef.encode({"w": np.ones((2, 3), np.float32)})  # new shape: old residual ignored
    assert out["w"].shape == (2, 3)
    ef.reset()
    assert ef.residual == {}
