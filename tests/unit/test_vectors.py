"""The wire test vectors in tests/vectors decode as their JSON says, and are up to date."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from fedmq import codec, errors
from fedmq.messages import BY_KIND
from fedmq.tensors import Tensor
from tests.vectors import generate

HERE = Path(generate.__file__).parent
VALID = sorted(p.stem for p in HERE.glob("*.msgpack"))
INVALID = sorted(p.stem for p in (HERE / "invalid").glob("*.msgpack"))
KINDS = {
    "model",
    "model_manifest",
    "model_chunk",
    "model_meta",
    "delta",
    "ack",
    "status",
    "aggregator_status",
}


def load(name: str) -> tuple[bytes, dict[str, Any]]:
    return (HERE / f"{name}.msgpack").read_bytes(), json.loads((HERE / f"{name}.json").read_text())


def test_vectors_cover_every_kind_and_encoding() -> None:
    kinds = {load(name)[1]["kind"] for name in VALID}
    assert kinds == KINDS
    specs = {info["spec"] for name in VALID for info in load(name)[1].get("tensors", {}).values()}
    assert {"f32", "f16", "q8:0", "q8:4", "topk:0.25:f16", "topk:0.25:q8", "f32+zlib"} <= specs


def test_generator_output_is_up_to_date() -> None:
    built = generate.build()
    on_disk = {
        str(p.relative_to(HERE)): p.read_bytes()
        for p in HERE.rglob("*")
        if p.suffix in (".msgpack", ".json")
    }
    assert sorted(on_disk) == sorted(built), "run: python tests/vectors/generate.py"
    stale = [name for name, data in built.items() if on_disk[name] != data]
    assert not stale, f"stale vectors {stale}; run: python tests/vectors/generate.py"


@pytest.mark.parametrize("name", VALID)
def test_vector_decodes_to_its_json(name: str) -> None:
    payload, doc = load(name)
    wire = generate.from_json(doc["wire"])
    assert codec.unpack(payload) == wire
    message = codec.decode(payload)
    assert message.KIND == doc["kind"] == wire["kind"]
    for tname, info in doc.get("tensors", {}).items():
        tensor = message.tensors[tname]  # type: ignore[union-attr]
        got = tensor.decode()
        assert list(got.shape) == info["shape"]
        want = np.array(info["decoded"], dtype=np.float64).astype(np.float32)
        assert np.array_equal(want, np.array(info["decoded"]))  # JSON floats are exact f32
        assert got.reshape(-1).tobytes() == want.tobytes()


@pytest.mark.parametrize("name", VALID)
def test_encoding_the_expected_content_gives_the_vector_bytes(name: str) -> None:
    payload, doc = load(name)
    wire = generate.from_json(doc["wire"])
    assert msgpack.packb(wire, use_bin_type=True) == payload
    cls = BY_KIND[doc["kind"]]
    assert codec.encode(cls.from_wire(wire)) == payload
    for tname, info in doc.get("tensors", {}).items():
        if not info["deterministic"]:
            continue
        x = np.array(info["input"], dtype=np.float32).reshape(info["shape"])
        assert Tensor.encode(x, info["spec"]).to_wire() == wire["tensors"][tname]


@pytest.mark.parametrize("name", INVALID)
def test_invalid_vector_is_refused(name: str) -> None:
    payload = (HERE / "invalid" / f"{name}.msgpack").read_bytes()
    doc = json.loads((HERE / "invalid" / f"{name}.json").read_text())
    expected = getattr(errors, doc["error"])
    assert issubclass(expected, errors.DecodeError)
    with pytest.raises(expected):
        decode_fully(payload)


def decode_fully(payload: bytes) -> None:
    """codec.decode, then the numeric decode of every tensor (where some checks live)."""
    message = codec.decode(payload)
    for tensor in getattr(message, "tensors", {}).values():
        tensor.decode()
