"""The msgpack envelope: every kind round-trips; untrusted bytes fail only as DecodeError."""

from __future__ import annotations

import hashlib
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fedmq import codec
from fedmq.errors import (
    DecodeError,
    LimitExceeded,
    MalformedMessage,
    RejectReason,
    TensorError,
    UnsupportedVersion,
)
from fedmq.limits import Limits
from fedmq.messages import (
    BY_KIND,
    DEVICE_STATES,
    MODES,
    NETWORKS,
    Ack,
    AggregatorStatus,
    Delta,
    DeviceStatus,
    Message,
    ModelChunk,
    ModelManifest,
    ModelMessage,
    ModelMeta,
)
from fedmq.modelspec import ModelSpec, ParamSpec, sgd_classifier_spec
from fedmq.tensors import Tensor

IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
U64 = st.integers(0, 2**64 - 1)
TIMES = st.floats(0, 4e9, allow_nan=False)
OPT_FLOAT = st.none() | st.floats(allow_nan=False, allow_infinity=False)
METRICS = st.dictionaries(st.text(max_size=20), st.floats(allow_nan=False, allow_infinity=False))
SHA = st.binary(min_size=32, max_size=32)
DEEP: Any = 1
for _ in range(20):
    DEEP = [DEEP]
ENCODINGS = st.sampled_from(["f32", "f16", "q8", "q8:3", "topk:0.5:f16", "topk:0.3:q8", "f32+zlib"])


@st.composite
def tensors(draw: st.DrawFn) -> dict[str, Tensor]:
    names = draw(st.lists(st.text(min_size=1, max_size=10), max_size=3, unique=True))
    spec = draw(ENCODINGS)
    return {
        n: Tensor.encode(np.linspace(-1, 1, draw(st.integers(0, 9)), dtype=np.float32), spec)
        for n in names
    }


@st.composite
def models(draw: st.DrawFn) -> ModelMessage:
    features = draw(st.integers(1, 5))
    spec = sgd_classifier_spec(features, [0, 1, 2], alpha=0.001)
    params = {p.name: Tensor.encode(np.ones(p.shape, np.float32)) for p in spec.params}
    return ModelMessage(draw(IDS), draw(U64), draw(TIMES), spec, params, draw(METRICS))


MESSAGES: st.SearchStrategy[Message] = st.one_of(
    models(),
    st.builds(ModelManifest, IDS, U64, TIMES, SHA, st.just(10), st.just(3), st.just(4)),
    st.builds(ModelChunk, IDS, U64, SHA, st.just(1), st.just(2), st.binary(max_size=64)),
    st.builds(
        ModelMeta,
        IDS,
        U64,
        TIMES,
        SHA,
        U64,
        st.integers(0, 100),
        METRICS,
        st.sampled_from(MODES),
        st.integers(1, 1000),
        U64,
        st.none() | TIMES,
    ),
    st.builds(
        Delta,
        IDS,
        IDS,
        IDS,
        U64,
        st.integers(1, 2**64 - 1),
        tensors(),
        TIMES,
        st.none() | st.floats(allow_nan=False),
    ),
    st.builds(Ack, IDS, IDS, IDS, st.just(True), U64, st.integers(0, 10**6), OPT_FLOAT),
    st.builds(
        Ack,
        IDS,
        IDS,
        IDS,
        st.just(False),
        U64,
        st.none() | st.integers(-5, 10**6),
        st.none(),
        st.sampled_from(list(RejectReason)),
        st.text(max_size=100),
    ),
    st.builds(
        DeviceStatus,
        IDS,
        IDS,
        st.booleans(),
        TIMES,
        st.sampled_from(DEVICE_STATES),
        st.none() | st.floats(0, 1),
        st.none() | st.booleans(),
        st.sampled_from(NETWORKS),
        st.none() | st.booleans(),
        st.none() | U64,
    ),
    st.builds(AggregatorStatus, IDS, st.booleans(), TIMES, st.none() | U64, st.sampled_from(MODES)),
)


@given(MESSAGES)
def test_every_message_round_trips(message: Message) -> None:
    payload = codec.encode(message)
    back = codec.decode(payload)
    assert back == message
    assert codec.encode(back) == payload  # deterministic: same message, same bytes
    assert codec.decode(payload, type(message)) == message


def test_every_kind_is_covered() -> None:
    assert set(BY_KIND) == {
        "model",
        "model_manifest",
        "model_chunk",
        "model_meta",
        "delta",
        "ack",
        "status",
        "aggregator_status",
    }


def sample_delta() -> Delta:
    tensors = {"w": Tensor.encode(np.arange(6, dtype=np.float32).reshape(2, 3), "q8:4")}
    return Delta("task", "dev", "u1", 3, 10, tensors, 1.5, 0.25)


def envelope(**changes: Any) -> dict[str, Any]:
    obj = codec.unpack(codec.encode(sample_delta()))
    obj.update(changes)
    return {k: v for k, v in obj.items() if v is not ...}


def pack(obj: Any) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def test_envelope_starts_with_version_and_kind() -> None:
    obj = codec.unpack(codec.encode(sample_delta()))
    assert list(obj)[:2] == ["v", "kind"]
    assert obj["v"] == 1
    assert obj["kind"] == "delta"


def test_unknown_fields_are_ignored() -> None:
    extra = envelope(future_field={"x": [1, 2]}, another=b"\x00")
    extra["tensors"]["w"]["future"] = 1
    assert codec.decode(pack(extra)) == sample_delta()


@pytest.mark.parametrize("v", [0, 2, 255, -1])
def test_unknown_major_version_is_rejected(v: int) -> None:
    with pytest.raises(UnsupportedVersion):
        codec.decode(pack(envelope(v=v)))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        b"\x92\x01\x02",
        pack([1, 2]),
        pack({"kind": "delta"}),
        pack({"v": True, "kind": "delta"}),
        pack({"v": "1", "kind": "delta"}),
        pack({"v": 1}),
        pack({"v": 1, "kind": "nope"}),
        pack({"v": 1, "kind": 7}),
        pack({1: 2}),
        pack(envelope()) + b"\x00",  # trailing bytes
        pack(envelope())[:-1],  # truncated
        pack(envelope(created=msgpack.ExtType(5, b"x"))),
        pack(envelope(created=msgpack.Timestamp(1, 0))),
        b"\x91" * 5000 + b"\x00",  # nesting deeper than msgpack's stack
        b"\x81\xa1v\xa2\xff\xfe",  # invalid utf-8
    ],
)
def test_malformed_payloads_raise_decode_errors(payload: bytes) -> None:
    with pytest.raises(DecodeError):
        codec.decode(payload)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("task", ...),
        ("task", "a/b"),
        ("task", 3),
        ("device", "+"),
        ("update_id", ""),
        ("update_id", "x" * 65),
        ("base_version", -1),
        ("base_version", 1.0),
        ("base_version", True),
        ("num_samples", 0),
        ("created", float("nan")),
        ("created", "now"),
        ("tensors", []),
        ("tensors", {"": {}}),
        ("tensors", {"w": 1}),
        ("loss", "low"),
    ],
)
def test_bad_fields_are_malformed(field: str, value: Any) -> None:
    with pytest.raises(DecodeError):
        codec.decode(pack(envelope(**{field: value})))


def test_nan_loss_is_allowed_and_null_means_absent() -> None:
    assert np.isnan(codec.decode(pack(envelope(loss=float("nan"))), Delta).loss or 0.0)
    assert codec.decode(pack(envelope(loss=None)), Delta).loss is None
    assert codec.decode(pack(envelope(loss=...)), Delta).loss is None


def test_expect_insists_on_the_kind() -> None:
    with pytest.raises(MalformedMessage):
        codec.decode(codec.encode(sample_delta()), Ack)


def test_non_bytes_payload_is_malformed() -> None:
    with pytest.raises(MalformedMessage):
        codec.decode("text")  # type: ignore[arg-type]
    assert codec.decode(bytearray(codec.encode(sample_delta()))) == sample_delta()


def test_payload_size_limit_is_checked_before_parsing() -> None:
    payload = codec.encode(sample_delta())
    with pytest.raises(LimitExceeded):
        codec.decode(payload, limits=Limits(max_payload_bytes=len(payload) - 1))


def test_tensor_count_and_element_limits() -> None:
    many = {f"t{i}": Tensor.encode([1.0]) for i in range(5)}
    payload = codec.encode(Delta("t", "d", "u", 0, 1, many, 0.0))
    with pytest.raises(LimitExceeded):
        codec.decode(payload, limits=Limits(max_tensors=4))
    with pytest.raises(LimitExceeded):
        codec.decode(payload, limits=Limits(max_elements=4))


def test_total_inflated_size_is_bounded_across_tensors() -> None:
    many = {f"t{i}": Tensor.encode(np.zeros(256), "f32+zlib") for i in range(4)}
    payload = codec.encode(Delta("t", "d", "u", 0, 1, many, 0.0))
    assert len(payload) < 1024
    with pytest.raises(LimitExceeded):  # each tensor is under the limit, together they are not
        codec.decode(payload, limits=Limits(max_decompressed_bytes=3 * 1024))


def test_tensor_errors_surface_as_decode_errors() -> None:
    bad = envelope()
    bad["tensors"]["w"]["data"] = b"\x00"
    with pytest.raises(TensorError):
        codec.decode(pack(bad))


def test_ack_rules() -> None:
    for bad in [
        {"accepted": True, "reason": "too_stale"},
        {"accepted": False, "reason": None},
        {"accepted": False, "reason": "bored"},
        {"accepted": "yes"},
    ]:
        obj = codec.unpack(codec.encode(Ack("t", "d", "u", True, 1, 0, 1.0)))
        obj.update(bad)
        with pytest.raises(MalformedMessage):
            codec.decode(pack(obj))
    assert [r.value for r in RejectReason] == [
        "malformed",
        "wrong_task",
        "wrong_device",
        "unknown_version",
        "too_stale",
        "shape_mismatch",
        "dtype_mismatch",
        "non_finite",
        "norm_bound",
        "duplicate",
        "too_large",
        "unsupported_version",
    ]


def test_status_ranges() -> None:
    base = codec.unpack(codec.encode(DeviceStatus("t", "d", True, 1.0, battery=0.5)))
    for field, value in [
        ("battery", 1.5),
        ("battery", -0.1),
        ("state", "dancing"),
        ("network", "5g"),
        ("online", 1),
    ]:
        with pytest.raises(MalformedMessage):
            codec.decode(pack({**base, field: value}))


def test_last_wills() -> None:
    will = DeviceStatus.last_will("t", "d", 5.0)
    assert (will.online, will.state, will.network, will.ts) == (False, "offline", "offline", 5.0)
    agg = AggregatorStatus.last_will("t", 5.0, 7)
    assert (agg.online, agg.version) == (False, 7)
    for m in (will, agg):
        assert codec.decode(codec.encode(m)) == m


def test_model_params_must_match_the_spec() -> None:
    spec = ModelSpec("generic", (ParamSpec("w", (2,)),))
    good = ModelMessage("t", 1, 0.0, spec, {"w": Tensor.encode([1.0, 2.0])})
    assert codec.decode(codec.encode(good)) == good
    for params in ({"w": Tensor.encode([1.0])}, {"v": Tensor.encode([1.0, 2.0])}, {}):
        bad = ModelMessage("t", 1, 0.0, spec, params)
        with pytest.raises(MalformedMessage):
            codec.decode(codec.encode(bad))


@pytest.mark.parametrize(
    "spec",
    [
        None,
        {"family": 1, "params": []},
        {"family": "g", "params": [["w", [2], "f64"]]},
        {"family": "g", "params": [["w", [-2], "f32"]]},
        {"family": "g", "params": [["", [2], "f32"]]},
        {"family": "g", "params": [["w", [2], "f32"], ["w", [2], "f32"]]},
        {"family": "g", "params": [], "config": {"a": msgpack.Timestamp(1, 0)}},
        {"family": "g", "params": [], "config": {"a": DEEP}},
        {"family": "g", "params": [], "config": [1]},
    ],
)
def test_bad_model_specs_are_malformed(spec: Any) -> None:
    obj = codec.unpack(codec.encode(ModelMessage("t", 1, 0.0, ModelSpec("g", ()), {})))
    obj["spec"] = spec
    with pytest.raises(MalformedMessage):
        codec.decode(pack(obj))


def test_manifest_and_chunk_consistency() -> None:
    sha = hashlib.sha256(b"x").digest()
    base = codec.unpack(codec.encode(ModelManifest("t", 1, 0.0, sha, 10, 4, 3)))
    for field, value in [("count", 2), ("size", 0), ("sha256", b"short"), ("chunk_size", 0)]:
        with pytest.raises(DecodeError):
            codec.decode(pack({**base, field: value}))
    with pytest.raises(LimitExceeded):
        codec.decode(pack({**base, "size": 10**12, "chunk_size": 10**6, "count": 10**6}))
    chunk = codec.unpack(codec.encode(ModelChunk("t", 1, sha, 0, 2, b"ab")))
    with pytest.raises(MalformedMessage):
        codec.decode(pack({**chunk, "index": 2}))
