"""Pure checks that turn an untrusted delta payload into arrays fit to fold, or a rejection.

Checks run cheapest first, so a flood of junk costs little: envelope and fields
(:func:`read_delta`), then staleness (:func:`check_staleness`), then the numeric
decoding, finiteness and norm (:func:`decode_arrays`). Nothing here touches the
model; a rejection leaves the aggregator exactly as it was.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from aggregator.folding import F32
from fedmq import codec
from fedmq.codec import Payload
from fedmq.errors import (
    DecodeError,
    LimitExceeded,
    RejectReason,
    TensorError,
    UnsupportedVersion,
    UpdateRejected,
)
from fedmq.limits import Limits
from fedmq.messages import Delta
from fedmq.modelspec import ModelSpec
from fedmq.tensors import ENCODINGS

UNKNOWN_UPDATE = "?"


class DeltaRejected(UpdateRejected):
    """An :class:`UpdateRejected` that also names the update, so it can be acked."""

    def __init__(
        self, reason: RejectReason, message: str, *, device: str, update_id: str,
        task: str | None = None, version: int | None = None,
    ) -> None:
        super().__init__(reason, message, device=device, task=task, version=version)
        self.update_id = update_id


def delta_limits(spec: ModelSpec) -> Limits:
    """Decoder limits for deltas of ``spec``: a little over a raw float32 copy of the model.

    Twice the element count leaves room for a wrongly shaped delta to be reported as a
    shape mismatch instead of as too large.
    """
    n = max(spec.num_params, 1)
    return Limits(
        max_payload_bytes=4 * n + n // 8 + 64 * 1024,
        max_elements=2 * n + 1024,
        max_decompressed_bytes=8 * n + 4096,
    )


def _reason_of(exc: DecodeError) -> RejectReason:
    if isinstance(exc, UnsupportedVersion):
        return RejectReason.UNSUPPORTED_VERSION
    if isinstance(exc, LimitExceeded):
        return RejectReason.TOO_LARGE
    return RejectReason.MALFORMED


def _ids(obj: Mapping[str, Any], topic_device: str) -> tuple[str, str]:
    """Best-effort (device, update_id) of a broken delta, for its ack."""
    uid = obj.get("update_id")
    if isinstance(uid, str) and 0 < len(uid) <= 64:
        return topic_device, uid
    return topic_device, UNKNOWN_UPDATE


def _bad_encoding(obj: Mapping[str, Any]) -> str | None:
    tensors = obj.get("tensors")
    if not isinstance(tensors, dict):
        return None
    for name, t in tensors.items():
        if isinstance(t, dict) and t.get("enc") not in ENCODINGS:
            return f"tensor {name!r} has element encoding {t.get('enc')!r}, not one of {ENCODINGS}"
    return None


def read_delta(payload: Payload, topic_device: str, task: str, limits: Limits) -> Delta:
    """The delta in ``payload`` sent on ``delta/<topic_device>``; raises DeltaRejected."""
    try:
        obj = codec.unpack(payload, limits)
    except DecodeError as exc:
        raise DeltaRejected(
            _reason_of(exc), str(exc), device=topic_device, update_id=UNKNOWN_UPDATE
        ) from exc
    device, uid = _ids(obj, topic_device)
    bad = _bad_encoding(obj)
    if bad is not None:
        raise DeltaRejected(RejectReason.DTYPE_MISMATCH, bad, device=device, update_id=uid)
    try:
        delta = codec.from_envelope(obj, Delta, limits)  # parsed once, above
    except DecodeError as exc:
        raise DeltaRejected(_reason_of(exc), str(exc), device=device, update_id=uid) from exc
    if delta.device != topic_device:
        raise DeltaRejected(
            RejectReason.WRONG_DEVICE,
            f"delta names device {delta.device!r} but came on the topic of {topic_device!r}",
            device=topic_device, update_id=delta.update_id,
        )
    if delta.task != task:
        raise DeltaRejected(
            RejectReason.WRONG_TASK, f"delta is for task {delta.task!r}, this is {task!r}",
            device=device, update_id=delta.update_id,
        )
    return delta


def check_staleness(delta: Delta, version: int, max_staleness: int) -> int:
    """Staleness ``version - base_version``; raises DeltaRejected when it is unusable."""
    s = version - delta.base_version
    if s < 0 or delta.base_version < 0:
        raise DeltaRejected(
            RejectReason.UNKNOWN_VERSION,
            f"base version {delta.base_version} is not one this aggregator published "
            f"(newest is {version})",
            device=delta.device, update_id=delta.update_id, version=version,
        )
    if s > max_staleness:
        raise DeltaRejected(
            RejectReason.TOO_STALE, f"staleness {s} exceeds the maximum of {max_staleness}",
            device=delta.device, update_id=delta.update_id, version=version,
        )
    return s


def decode_arrays(
    delta: Delta, shapes: Mapping[str, tuple[int, ...]], max_norm: float | None
) -> dict[str, F32]:
    """The delta as float32 arrays of ``shapes``; checks names, shapes, finiteness, norm."""
    dev, uid = delta.device, delta.update_id
    got = {k: t.shape for k, t in delta.tensors.items()}
    if got != dict(shapes):
        raise DeltaRejected(
            RejectReason.SHAPE_MISMATCH, f"delta tensors {got} do not match the model {shapes}",
            device=dev, update_id=uid,
        )
    try:
        arrays = {k: t.decode() for k, t in delta.tensors.items()}
    except DecodeError as exc:
        reason = RejectReason.MALFORMED if isinstance(exc, TensorError) else _reason_of(exc)
        raise DeltaRejected(reason, str(exc), device=dev, update_id=uid) from exc
    for name, a in arrays.items():
        if not np.isfinite(a).all():
            raise DeltaRejected(RejectReason.NON_FINITE, f"tensor {name!r} is not finite",
                                device=dev, update_id=uid)
    if max_norm is None:
        return arrays  # the norm costs a float64 copy of every delta: only when bounded
    sq = 0.0
    for a in arrays.values():
        flat = a.reshape(-1).astype(np.float64)
        sq += float(np.dot(flat, flat))
    if math.sqrt(sq) > max_norm:
        raise DeltaRejected(
            RejectReason.NORM_BOUND, f"L2 norm {math.sqrt(sq):.6g} exceeds {max_norm:g}",
            device=dev, update_id=uid,
        )
    return arrays
