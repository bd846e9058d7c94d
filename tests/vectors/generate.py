"""Generate the wire test vectors: ``python tests/vectors/generate.py``.

Every vector is ``NAME.msgpack`` (the exact bytes on the wire) and ``NAME.json``:

- ``wire``: the decoded msgpack map. Binary (msgpack bin) values are written as
  ``{"hex": "..."}`` (lowercase hex); floats are JSON numbers that round-trip
  exactly to the float64 on the wire.
- ``tensors`` (messages with tensors): per tensor, ``spec`` (the encoding it was
  made with), ``input`` (the float32 values that were encoded) and ``decoded``
  (the float32 values a decoder must produce), both flat in C order, exact.
- ``deterministic``: whether ``Tensor.encode(input, spec)`` must reproduce the
  tensor bytes exactly (false only where zlib's output may differ between
  implementations; the decoded values are exact in every case).

``invalid/NAME.msgpack`` + ``invalid/NAME.json`` are payloads a decoder must
refuse; the JSON names the :mod:`fedmq.errors` class raised.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from fedmq import codec
from fedmq.errors import RejectReason
from fedmq.messages import (
    Ack,
    AggregatorStatus,
    Delta,
    DeviceStatus,
    Message,
    ModelMessage,
    ModelMeta,
)
from fedmq.modelspec import sgd_classifier_spec
from fedmq.tensors import Tensor, zlib_bound

HERE = Path(__file__).resolve().parent
TS = 1_700_000_000.25  # a fixed timestamp (float seconds since the epoch)
TASK = "digits"
DEVICE = "dev-007"

Files = dict[str, bytes]


def to_json(value: Any) -> Any:
    """A msgpack-decoded value as JSON: bytes become ``{"hex": ...}``."""
    if isinstance(value, bytes):
        return {"hex": value.hex()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    """Inverse of :func:`to_json`."""
    if isinstance(value, dict):
        if set(value) == {"hex"}:
            return bytes.fromhex(value["hex"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def _values(n: int, seed: int, scale: float = 1.0) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Distinct float32 values (no ties, so topk's choice is unambiguous)."""
    rng = np.random.default_rng(seed)
    x = (rng.permutation(n) + 1) * (1.0 + rng.random(n) * 0.01) * rng.choice([-1.0, 1.0], n)
    out: np.ndarray[Any, np.dtype[np.float32]] = (x * scale / n).astype(np.float32)
    return out


def _tensor_cases() -> dict[str, tuple[str, dict[str, np.ndarray[Any, Any]]]]:
    w = _values(12, 1, 0.05).reshape(3, 4)
    b = np.array([0.5, -0.25, 0.0], dtype=np.float32)
    return {
        "delta_f32": ("f32", {"w": w, "b": b}),
        "delta_f16": ("f16", {"w": w, "b": b}),
        "delta_q8_tensor": ("q8:0", {"w": w, "b": b}),
        "delta_q8_block": ("q8:4", {"w": _values(10, 2, 0.1), "b": b}),
        "delta_topk_f16": ("topk:0.25:f16", {"w": w}),
        "delta_topk_q8": ("topk:0.25:q8", {"w": w}),
        "delta_f32_zlib": ("f32+zlib", {"w": np.zeros((4, 8), np.float32) + b[0]}),
        "delta_q8_zlib": ("q8:8+zlib", {"w": _values(16, 3, 0.2).reshape(2, 8)}),
        "delta_empty_tensor": ("f32", {"w": np.zeros((0, 3), np.float32)}),
    }


def _delta(name: str, spec: str, arrays: dict[str, Any]) -> Delta:
    tensors = {k: Tensor.encode(v, spec) for k, v in arrays.items()}
    return Delta(TASK, DEVICE, f"{DEVICE}-{name}", 41, 17, tensors, TS, 0.6931471805599453)


def _model() -> ModelMessage:
    # big enough (about 1.5 KiB) to need two chunks under the vector's 1536-byte packet limit
    spec = sgd_classifier_spec(96, [0, 1, 2], alpha=0.0001, loss="log_loss")
    params = {
        "coef": Tensor.encode(_values(288, 4).reshape(3, 96)),
        "intercept": Tensor.encode(np.array([0.125, -0.5, 0.375], np.float32)),
    }
    return ModelMessage(TASK, 42, TS, spec, params, {"accuracy": 0.9375, "loss": 0.25})


def messages() -> dict[str, tuple[Message, dict[str, Any]]]:
    """Every valid vector: name -> (message, extra JSON: the tensor inputs)."""
    from fedmq.chunks import publication

    out: dict[str, tuple[Message, dict[str, Any]]] = {}
    model = _model()
    out["model"] = (model, {})
    pub = publication(model, max_packet=1536)  # tiny limit: the model needs two chunks
    out["model_manifest"] = (codec.decode(pub.model), {})
    out["model_chunk"] = (codec.decode(pub.chunks[-1]), {})
    out["model_meta"] = (
        ModelMeta(
            TASK,
            42,
            TS,
            pub.meta.sha256,
            pub.payload_size,
            2,
            {"accuracy": 0.9375},
            "async",
            10,
            20,
            3.5,
        ),
        {},
    )
    for name, (spec, arrays) in _tensor_cases().items():
        inputs = {
            k: {
                "spec": spec,
                "shape": list(v.shape),
                "input": [float(x) for x in np.asarray(v, np.float32).reshape(-1)],
            }
            for k, v in arrays.items()
        }
        out[name] = (_delta(name, spec, arrays), inputs)
    out["delta_example"] = (
        Delta(TASK, "d1", "u1", 3, 10, {"w": Tensor.encode([0.5, -1.25], "f32")}, 1.5),
        {"w": {"spec": "f32", "shape": [2], "input": [0.5, -1.25]}},
    )
    out["ack_accepted"] = (Ack(TASK, DEVICE, "u-1", True, 43, 2, 0.5773502691896258), {})
    out["ack_rejected"] = (
        Ack(TASK, DEVICE, "u-2", False, 43, 30, None, RejectReason.TOO_STALE, "s=30 > 20"),
        {},
    )
    out["status_online"] = (
        DeviceStatus(TASK, DEVICE, True, TS, "training", 0.8, False, "wifi", False, 42),
        {},
    )
    out["status_last_will"] = (DeviceStatus.last_will(TASK, DEVICE, TS), {})
    out["aggregator_status_online"] = (AggregatorStatus(TASK, True, TS, 42, "async"), {})
    out["aggregator_status_last_will"] = (AggregatorStatus.last_will(TASK, TS, 42), {})
    return out


def _pack(obj: Any) -> bytes:
    out: bytes = msgpack.packb(obj, use_bin_type=True)
    return out


def invalid() -> dict[str, tuple[bytes, str, str]]:
    """Payloads a decoder must refuse: name -> (bytes, error class, why)."""
    good = codec.unpack(codec.encode(messages()["delta_f32"][0]))

    def delta_with(**tensor: Any) -> bytes:
        return _pack({**good, "tensors": {"w": tensor}})

    bomb = zlib.compress(bytes(1024 * 1024), 9)  # 1 MiB of zeros in about 1 KiB
    assert len(bomb) <= zlib_bound(1024)
    return {
        "unsupported_version": (
            _pack({**good, "v": 2}),
            "UnsupportedVersion",
            "unknown major version",
        ),
        "unknown_kind": (_pack({"v": 1, "kind": "gossip"}), "MalformedMessage", "unknown kind"),
        "truncated_data": (
            delta_with(enc="f32", shape=[3], data=bytes(8)),
            "TensorError",
            "8 bytes for 3 f32",
        ),
        "topk_unsorted": (
            delta_with(
                enc="topk",
                shape=[4],
                k=2,
                values="f16",
                data=bytes.fromhex("0200000001000000003c003c"),
            ),
            "TensorError",
            "topk indices must ascend (checked by Tensor.decode)",
        ),
        "q8_minus_128": (
            delta_with(
                enc="q8",
                shape=[2],
                block=0,
                scales=bytes.fromhex("0000803f"),
                data=bytes.fromhex("807f"),
            ),
            "TensorError",
            "q8 code -128 (checked by Tensor.decode)",
        ),
        "zlib_bomb": (
            delta_with(enc="f32", shape=[256], z="zlib", data=bomb),
            "DecompressionBomb",
            "inflates past the 1024 bytes that shape [256] f32 implies",
        ),
        "zlib_overlong": (
            delta_with(enc="f32", shape=[16], z="zlib", data=bomb),
            "TensorError",
            "compressed data longer than zlib_bound(raw length)",
        ),
        "declared_bomb": (
            delta_with(enc="f32", shape=[8192, 8192], z="zlib", data=bomb),
            "LimitExceeded",
            "shape over max_elements: refused before inflating",
        ),
    }


def build() -> Files:
    """All vector files: relative path -> bytes."""
    files: Files = {}
    for name, (message, tensors) in messages().items():
        payload = codec.encode(message)
        doc: dict[str, Any] = {"kind": message.KIND, "wire": to_json(codec.unpack(payload))}
        if tensors:
            decoded = codec.decode(payload)
            assert isinstance(decoded, Delta)
            for k, info in tensors.items():
                info["decoded"] = [float(x) for x in decoded.tensors[k].decode().reshape(-1)]
                info["deterministic"] = "zlib" not in info["spec"]
            doc["tensors"] = tensors
        files[f"{name}.msgpack"] = payload
        files[f"{name}.json"] = (json.dumps(doc, indent=1) + "\n").encode()
    for name, (payload, error, why) in invalid().items():
        files[f"invalid/{name}.msgpack"] = payload
        doc = {"error": error, "why": why}
        files[f"invalid/{name}.json"] = (json.dumps(doc, indent=1) + "\n").encode()
    return files


def main() -> int:
    files = build()
    (HERE / "invalid").mkdir(exist_ok=True)
    for rel, data in files.items():
        (HERE / rel).write_bytes(data)
    stale = set(HERE.rglob("*.msgpack")) | set(HERE.rglob("*.json"))
    for path in stale - {HERE / rel for rel in files}:
        path.unlink()
    sys.stdout.write(f"wrote {len(files)} files to {HERE}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
