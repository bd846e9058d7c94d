"""Tensor encodings: round trips within the documented error bounds, and safe decoding."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from fedmq.errors import (
    ConfigError,
    DecodeError,
    DecompressionBomb,
    EncodeError,
    LimitExceeded,
    TensorError,
)
from fedmq.limits import Limits
from fedmq.tensors import F16_MAX, EncodingSpec, Tensor

F32 = np.float32


def arrays(max_abs: float = 1e6, allow_subnormal: bool = True) -> st.SearchStrategy[Any]:
    bound = float(np.float32(max_abs))  # hypothesis wants bounds exact in float32
    elements = st.floats(-bound, bound, width=32, allow_nan=False, allow_subnormal=allow_subnormal)
    shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=12)
    return hnp.arrays(np.float32, shapes, elements=elements)


def wire_round_trip(t: Tensor) -> Tensor:
    """What a receiver sees: the map, checked by from_wire."""
    return Tensor.from_wire(t.to_wire())


def f16_bound(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Documented worst case of f16: relative 2**-11 for normals, 2**-25 below 2**-14."""
    ax = np.abs(x.astype(np.float64))
    return np.where(ax >= 2.0**-14, ax * 2.0**-11, 2.0**-25)


def q8_bound(amax: float) -> float:
    """Documented worst case of q8 per block: max/254, plus float32 rounding terms."""
    return amax / 254 * (1 + 2.0**-20) + 2.0**-140


@given(arrays(max_abs=3e38), st.booleans())
def test_f32_is_exact(x: np.ndarray[Any, Any], compress: bool) -> None:
    spec = EncodingSpec("f32", compress=compress)
    got = wire_round_trip(Tensor.encode(x, spec)).decode()
    assert got.dtype == F32
    assert got.shape == x.shape
    assert got.tobytes() == x.tobytes()


def test_f32_carries_non_finite_values_exactly() -> None:
    x = np.array([np.nan, np.inf, -np.inf, -0.0], F32)
    got = Tensor.encode(x, "f32").decode()
    assert got.tobytes() == x.tobytes()


@given(arrays(max_abs=F16_MAX), st.booleans())
def test_f16_error_within_documented_bound(x: np.ndarray[Any, Any], compress: bool) -> None:
    got = wire_round_trip(Tensor.encode(x, EncodingSpec("f16", compress=compress))).decode()
    err = np.abs(got.astype(np.float64) - x)
    assert np.all(err <= f16_bound(x))


def test_f16_refuses_values_it_would_turn_into_infinity() -> None:
    with pytest.raises(EncodeError):
        Tensor.encode([70000.0], "f16")
    with pytest.raises(EncodeError):
        Tensor.encode([np.nan], "f16")


def test_f16_bound_is_tight() -> None:
    # 1 + 2**-11 lies exactly between two f16 neighbours: the error is the bound itself
    x = np.array([1 + 2.0**-11], F32)
    err = abs(float(Tensor.encode(x, "f16").decode()[0]) - float(x[0]))
    assert err == pytest.approx(float(f16_bound(x)[0]), rel=1e-3)


@given(arrays(max_abs=1e30), st.integers(0, 20), st.booleans())
def test_q8_error_within_half_a_step_per_block(
    x: np.ndarray[Any, Any], block: int, compress: bool
) -> None:
    t = wire_round_trip(Tensor.encode(x, EncodingSpec("q8", block=block, compress=compress)))
    got = t.decode()
    flat, dec = x.reshape(-1).astype(np.float64), got.reshape(-1).astype(np.float64)
    b = t.block or max(flat.size, 1)
    for start in range(0, flat.size, b):
        part = flat[start : start + b]
        amax = float(np.abs(part).max())
        assert np.all(np.abs(dec[start : start + b] - part) <= q8_bound(amax))


def test_q8_per_block_beats_per_tensor_on_mixed_scales() -> None:
    x = np.concatenate([np.full(64, 1e-3), np.full(64, 10.0)]).astype(F32)
    x[::3] *= -0.37
    per_tensor = np.abs(Tensor.encode(x, "q8:0").decode() - x)[:64].max()
    per_block = np.abs(Tensor.encode(x, "q8:64").decode() - x)[:64].max()
    assert per_block < per_tensor / 100


@given(arrays(max_abs=1e4), st.floats(0.01, 1.0), st.sampled_from(["f16", "q8"]), st.booleans())
def test_topk_keeps_the_largest_and_bounds_the_rest(
    x: np.ndarray[Any, Any], fraction: float, values: str, compress: bool
) -> None:
    spec = EncodingSpec("topk", fraction=fraction, values=values, compress=compress)
    t = wire_round_trip(Tensor.encode(x, spec))
    flat = x.reshape(-1).astype(np.float64)
    dec = t.decode().reshape(-1).astype(np.float64)
    n = flat.size
    assert t.k == (min(n, max(1, math.ceil(fraction * n))) if n else 0)
    if not n:
        return
    idx = np.frombuffer(t.raw(), "<u4", count=t.k).astype(np.int64)
    kept = np.zeros(n, bool)
    kept[idx] = True
    kth = float(np.abs(flat[kept]).min())
    # dropped: decoded as zero, and never larger than the smallest kept magnitude
    assert np.all(dec[~kept] == 0)
    assert np.all(np.abs(flat[~kept]) <= kth)
    if values == "f16":
        assert np.all(np.abs(dec[kept] - flat[kept]) <= f16_bound(flat[kept]))
    else:
        amax = float(np.abs(flat[kept]).max())
        assert np.all(np.abs(dec[kept] - flat[kept]) <= q8_bound(amax))


@pytest.mark.parametrize(
    "spec", ["f32", "f16", "q8", "q8:4", "topk", "topk:0.5:q8", "f32+zlib", "q8:2+zlib"]
)
@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 0, 2)])
def test_zero_size_tensors_round_trip(spec: str, shape: tuple[int, ...]) -> None:
    t = wire_round_trip(Tensor.encode(np.zeros(shape, F32), spec))
    got = t.decode()
    assert got.shape == shape
    assert got.dtype == F32


def test_scalar_tensor_round_trips() -> None:
    for spec in ("f32", "f16", "q8", "topk:1:q8"):
        got = Tensor.encode(np.float32(2.5), spec).decode()
        assert got.shape == ()
        assert float(got) == pytest.approx(2.5, rel=1e-2)


def test_encoding_is_deterministic() -> None:
    x = np.linspace(-1, 1, 1000, dtype=F32)
    for spec in ("f32", "f16", "q8:64", "topk:0.1:q8", "f16+zlib"):
        assert Tensor.encode(x, spec) == Tensor.encode(x.copy(), spec)


@pytest.mark.parametrize(
    "text",
    ["f32", "f16+zlib", "q8:0", "q8:256+zlib", "topk:0.01:f16", "topk:0.125:q8+zlib", "topk:1:f16"],
)
def test_encoding_spec_text_round_trips(text: str) -> None:
    spec = EncodingSpec.parse(text)
    assert EncodingSpec.parse(str(spec)) == spec


def test_encoding_spec_defaults_and_errors() -> None:
    assert EncodingSpec.parse("q8") == EncodingSpec("q8", block=0)
    assert EncodingSpec.parse("topk") == EncodingSpec("topk", fraction=0.01, values="f16")
    assert EncodingSpec.parse("topk:0.1234567891").fraction == 0.1234567891
    for bad in [
        "",
        "f64",
        "q8:-1",
        "q8:x",
        "topk:0",
        "topk:2",
        "topk:0.1:f32",
        "f32+zstd",
        "f32:1",
        "topk:nan",
    ]:
        with pytest.raises(ConfigError):
            EncodingSpec.parse(bad)


# -- untrusted tensor maps ------------------------------------------------------------


def good(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"enc": "f32", "shape": [2], "data": bytes(8)}
    base.update(over)
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize(
    "obj",
    [
        None,
        [],
        good(enc="f64"),
        good(shape=None),
        good(shape="2"),
        good(shape=[True]),
        good(shape=[-1]),
        good(shape=[2.0]),
        good(shape=[1] * 9),
        good(data="xx"),
        good(data=bytes(7)),
        good(data=bytes(9)),
        good(z="zstd"),
        good(z="zlib", data=b"not zlib"),
        good(enc="q8", block=0, data=bytes(2)),  # no scales
        good(enc="q8", block=0, scales=bytes(8), data=bytes(2)),
        good(enc="q8", block=-1, scales=bytes(4), data=bytes(2)),
        good(enc="q8", block=0, scales=np.float32([np.nan]).tobytes(), data=bytes(2)),
        good(enc="q8", block=0, scales=np.float32([-1]).tobytes(), data=bytes(2)),
        good(enc="q8", block=0, scales=np.float32([np.inf]).tobytes(), data=bytes(2)),
        good(enc="topk", k=3, values="f16", data=bytes(18)),
        good(enc="topk", k=1, values="f32", data=bytes(8)),
        good(enc="topk", k=1, values="q8", data=bytes(5)),  # no scale
        good(enc="topk", k=1, values="q8", scale=float("nan"), data=bytes(5)),
        good(enc="topk", k=1, values="q8", scale=1e39, data=bytes(5)),
        good(enc="topk", k=1, values="q8", scale=-1.0, data=bytes(5)),
        good(enc="topk", k=1, values="q8", scale=True, data=bytes(5)),
        good(enc="topk", k=True, values="f16", data=bytes(6)),
    ],
)
def test_from_wire_refuses_inconsistent_maps(obj: Any) -> None:
    with pytest.raises(DecodeError):
        Tensor.from_wire(obj).decode()


def test_huge_dimension_hidden_by_a_zero_is_refused() -> None:
    with pytest.raises(LimitExceeded):
        Tensor.from_wire(good(shape=[2**64 - 1, 0], data=b""))


def test_element_limit() -> None:
    with pytest.raises(LimitExceeded):
        Tensor.from_wire(good(shape=[5, 5], data=bytes(100)), Limits(max_elements=24))


def test_q8_block_longer_than_tensor_decodes_without_allocating_it() -> None:
    t = Tensor.from_wire(
        good(enc="q8", block=2**40, scales=np.float32([0.5]).tobytes(), data=bytes([2, 254]))
    )
    assert t.decode().tolist() == [1.0, -1.0]


@pytest.mark.parametrize("where", ["q8", "topk"])
def test_q8_code_minus_128_is_refused(where: str) -> None:
    if where == "q8":
        obj = good(enc="q8", block=0, scales=np.float32([1]).tobytes(), data=bytes([0x80, 1]))
    else:
        obj = good(enc="topk", k=1, values="q8", scale=1.0, data=bytes(4) + bytes([0x80]))
    with pytest.raises(TensorError):
        Tensor.from_wire(obj).decode()


@pytest.mark.parametrize(
    "idx", [[1, 1], [1, 0], [0, 2]], ids=["repeated", "descending", "out-of-range"]
)
def test_topk_indices_must_ascend_within_size(idx: list[int]) -> None:
    data = np.array(idx, "<u4").tobytes() + np.float16([1, 2]).tobytes()
    with pytest.raises(TensorError):
        Tensor.from_wire(good(enc="topk", k=2, values="f16", data=data)).decode()


def test_decompression_bomb_is_refused_before_inflating() -> None:
    bomb = zlib.compress(bytes(1 << 20), 9)
    # declared size over the limit: refused by from_wire without touching the data
    with pytest.raises(DecompressionBomb):
        Tensor.from_wire(
            good(shape=[1 << 18], z="zlib", data=bomb), Limits(max_decompressed_bytes=1 << 19)
        )
    # declared size small, data inflates further: inflation stops one byte past it
    t = Tensor.from_wire(good(shape=[256], z="zlib", data=bomb))
    with pytest.raises(DecompressionBomb):
        t.decode()


def test_zlib_stream_must_end_exactly() -> None:
    raw = np.float32([1, 2]).tobytes()
    with pytest.raises(TensorError):  # trailing garbage
        Tensor.from_wire(good(z="zlib", data=zlib.compress(raw) + b"x")).decode()
    with pytest.raises(TensorError):  # truncated stream
        Tensor.from_wire(good(z="zlib", data=zlib.compress(raw)[:-3])).decode()
    with pytest.raises(TensorError):  # inflates short
        Tensor.from_wire(good(shape=[3], z="zlib", data=zlib.compress(raw))).decode()


@settings(max_examples=50)
@given(arrays(max_abs=1e3), st.sampled_from(["f32", "f16", "q8:3", "topk:0.3:q8"]))
def test_compressed_and_plain_decode_identically(x: np.ndarray[Any, Any], spec: str) -> None:
    plain = Tensor.encode(x, spec).decode()
    packed = wire_round_trip(Tensor.encode(x, spec + "+zlib")).decode()
    assert plain.tobytes() == packed.tobytes()


@pytest.mark.parametrize("spec", ["q8", "q8:2", "topk:1:q8"])
def test_q8_extremes_stay_finite(spec: str) -> None:
    big = float(np.finfo(F32).max)
    x = np.array([big, -big, 1.0], F32)
    got = Tensor.from_wire(Tensor.encode(x, spec).to_wire()).decode()
    assert np.all(np.isfinite(got))
    assert np.all(np.abs(got.astype(np.float64) - x) <= q8_bound(big))


def test_q8_scale_whose_code_range_overflows_is_refused() -> None:
    scale = np.float32([np.finfo(F32).max]).tobytes()
    with pytest.raises(TensorError):
        Tensor.from_wire(good(enc="q8", block=0, scales=scale, data=bytes([127, 1])))
