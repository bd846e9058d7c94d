"""The pure core: verdicts for every reason, flush rules in both modes, bit-identical rejects."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.core import Aggregator
from aggregator.settings import Settings
from aggregator.staleness import Staleness
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.errors import RejectReason, StateError
from fedmq.messages import Delta
from fedmq.modelspec import ModelSpec, ParamSpec
from fedmq.tensors import Tensor

SPEC = ModelSpec("generic", (ParamSpec("w", (4,)), ParamSpec("b", (2,))))
TASK = "toy"


def make(tmp: Path = Path("/nonexistent"), **kw: Any) -> Aggregator:
    s = Settings(BrokerURL.parse("mqtt://127.0.0.1:1"), TASK, tmp, **kw)
    params = {"w": np.arange(4, dtype=np.float32), "b": np.zeros(2, np.float32)}
    return Aggregator(s, SPEC, Aggregator.initial_state(TASK, SPEC, params, 1000.0))


def delta(uid: str = "u1", base: int = 0, n: int = 10, *, device: str = "sim-00001",
          task: str = TASK, w: Any = None, b: Any = None, enc: str = "f32") -> bytes:
    w = np.ones(4, np.float32) if w is None else w
    b = np.ones(2, np.float32) if b is None else b
    tensors = {"w": Tensor.encode(w, enc), "b": Tensor.encode(b, enc)}
    return codec.encode(Delta(task, device, uid, base, n, tensors, 1.0))


def reason(core: Aggregator, payload: bytes, device: str = "sim-00001") -> RejectReason | None:
    return core.offer(device, payload, 0.0).ack.reason


def test_accepts_and_folds_with_weight() -> None:
    core = make(buffer=2, staleness=Staleness("constant"))
    v = core.offer("sim-00001", delta(), 0.0)
    assert v.folded
    assert v.ack.accepted
    assert v.ack.staleness == 0
    assert v.ack.weight == 1.0
    assert core.buffer.count == 1
    assert not core.due(0.0)


def envelope(**changes: Any) -> bytes:
    obj = msgpack.unpackb(delta(), raw=False)
    obj.update(changes)
    return bytes(msgpack.packb(obj, use_bin_type=True))


def test_every_reject_reason() -> None:
    core = make(max_staleness=2, max_norm=10.0)
    assert core.offer("sim-00001", delta("u0"), 0.0).folded
    for _ in range(3):  # move to version 3 (buffer K=10; flush by hand)
        core.flush(0.0, 2000.0)
    bad_w = np.array([1, np.nan, 0, 0], np.float32)
    cases = {
        RejectReason.MALFORMED: b"\x93junk",
        RejectReason.WRONG_TASK: delta(task="other"),
        RejectReason.WRONG_DEVICE: delta(device="sim-00002"),
        RejectReason.UNKNOWN_VERSION: delta(base=4),
        RejectReason.TOO_STALE: delta(base=0),
        RejectReason.SHAPE_MISMATCH: codec.encode(Delta(TASK, "sim-00001", "u", 3, 1, {
            "w": Tensor.encode(np.ones(5)), "b": Tensor.encode(np.ones(2))}, 1.0)),
        RejectReason.NON_FINITE: delta(base=3, w=bad_w),
        RejectReason.NORM_BOUND: delta(base=3, w=np.full(4, 100, np.float32)),
        RejectReason.DUPLICATE: delta("u0", base=3),
        RejectReason.TOO_LARGE: b"\x00" * (core.limits.max_payload_bytes + 1),
        RejectReason.UNSUPPORTED_VERSION: envelope(v=2),
        RejectReason.DTYPE_MISMATCH: envelope(tensors={
            "w": {"enc": "f64", "shape": [4], "data": b"\x00" * 32},
            "b": {"enc": "f32", "shape": [2], "data": b"\x00" * 8}}),
    }
    assert set(cases) == set(RejectReason)
    before = {k: v.copy() for k, v in core.params.items()}
    sums = {k: v.copy() for k, v in core.buffer.sums.items()}
    for want, payload in cases.items():
        assert reason(core, payload) == want, want
    assert core.buffer.count == 0
    assert core.version == 3
    for k, old in before.items():
        assert core.params[k].tobytes() == old.tobytes()
        assert core.buffer.sums[k].tobytes() == sums[k].tobytes()


def test_unreadable_payload_is_acked_on_topic_device_with_unknown_id() -> None:
    ack = make().offer("sim-00009", b"\xc1", 0.0).ack
    assert (ack.device, ack.update_id, ack.reason) == ("sim-00009", "?", RejectReason.MALFORMED)
    ack = make().offer("sim-00009", envelope(num_samples="x"), 0.0).ack
    assert (ack.update_id, ack.reason) == ("u1", RejectReason.MALFORMED)


def test_flush_at_k_then_new_version() -> None:
    core = make(buffer=2, staleness=Staleness("fedbuff"), server_lr=1.0)
    core.offer("sim-00001", delta("a", n=1), 0.0)
    core.offer("sim-00002", delta("b", n=3, device="sim-00002", w=np.zeros(4, np.float32)), 0.0)
    assert core.due(0.0)
    assert core.flush(0.0, 2000.0) == 1
    # w + (1*1*ones + 1*3*zeros)/4 = w + 0.25
    np.testing.assert_array_equal(core.params["w"], np.arange(4, dtype=np.float32) + 0.25)
    v = core.offer("sim-00001", delta("c", base=0), 0.0)
    assert v.ack.staleness == 1
    assert v.ack.weight == pytest.approx(2**-0.5)


def test_async_timeout_needs_min_buffer() -> None:
    core = make(buffer=10, min_buffer=2, buffer_timeout=5.0)
    assert core.deadline(0.0) is None
    core.offer("sim-00001", delta("a"), 100.0)
    assert core.deadline(100.0) == 105.0
    assert not core.due(106.0)  # only one of K_min=2
    core.offer("sim-00001", delta("b"), 106.0)
    assert core.due(106.0)
    core.flush(106.0, 2000.0)
    assert core.deadline(107.0) is None


def test_sync_round_accepts_only_fresh_and_waits_for_cohort_or_deadline() -> None:
    core = make(mode="sync", cohort=2, round_deadline=10.0)
    assert core.deadline(50.0) == 60.0
    core.offer("sim-00001", delta("a"), 51.0)
    assert not core.due(55.0)
    assert core.due(60.0)  # deadline with one (>= K_min=1)
    core.flush(60.0, 2000.0)
    assert reason(core, delta("b", base=0)) == RejectReason.TOO_STALE
    assert core.offer("sim-00001", delta("c", base=1), 61.0).ack.weight == 1.0


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=300), st.integers(-3, 30), st.integers(-2, 5))
def test_rejections_leave_model_bit_identical(junk: bytes, base: int, n: int) -> None:
    core = make(max_staleness=3)
    core.offer("sim-00001", delta("keep"), 0.0)
    for _ in range(5):
        core.flush(0.0, 2000.0)
    before = (core.version, {k: v.tobytes() for k, v in core.params.items()},
              {k: v.tobytes() for k, v in core.buffer.sums.items()}, core.buffer.count)
    payloads = [junk, delta("keep", base=5)]
    if not 2 <= base <= 5 and n > 0:
        payloads.append(delta("x", base=base, n=n))
    for p in payloads:
        assert not core.offer("sim-00001", p, 0.0).folded
    after = (core.version, {k: v.tobytes() for k, v in core.params.items()},
             {k: v.tobytes() for k, v in core.buffer.sums.items()}, core.buffer.count)
    assert after == before


def test_state_of_other_spec_is_refused(tmp_path: Path) -> None:
    core = make(tmp_path)
    other = ModelSpec("generic", (ParamSpec("w", (5,)),))
    with pytest.raises(StateError, match="--state-dir"):
        Aggregator(core.settings, other, core.snapshot())


def test_snapshot_round_trip_keeps_buffer_and_dedup() -> None:
    core = make(buffer=5)
    core.offer("sim-00001", delta("a"), 0.0)
    again = Aggregator(core.settings, SPEC, core.snapshot())
    assert again.buffer.count == 1
    assert reason(again, delta("a")) == RejectReason.DUPLICATE
    assert again.deadline(time.monotonic()) is not None  # reloaded buffer re-arms the timer
