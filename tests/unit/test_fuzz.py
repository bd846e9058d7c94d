"""Fuzz every decoder entry point: each input either decodes or raises DecodeError.

Over 10,000 inputs, seeded so failures reproduce: byte-level mutations of every
vector, random bytes, and structurally valid msgpack whose fields carry the
wrong types. Each goes to ``codec.decode`` (and ``Tensor.decode`` for every
tensor that got through ``from_wire``), ``Reassembler.on_model`` and
``Reassembler.on_chunk``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack

from fedmq import codec
from fedmq.chunks import Reassembler
from fedmq.errors import DecodeError
from fedmq.limits import Limits
from fedmq.messages import Delta, ModelMessage
from tests.vectors import generate

HERE = Path(generate.__file__).parent
VECTORS = [p.read_bytes() for p in sorted(HERE.rglob("*.msgpack"))]
# small limits so that fuzzing also walks the limit checks, and quickly
LIMITS = Limits(max_payload_bytes=1 << 20, max_elements=1 << 16, max_decompressed_bytes=1 << 18)

WEIRD: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2**63,
    -(2**63),
    2**64 - 1,
    0.5,
    float("nan"),
    float("inf"),
    -0.0,
    "",
    "x",
    "f32",
    "zlib",
    "q8",
    "topk",
    "é" * 10,
    b"",
    b"\x00" * 7,
    b"\xff" * 32,
    [],
    [1, 2],
    [[]],
    [-1],
    [2**40, 0],
    {},
    {"a": 1},
    msgpack.ExtType(1, b"x"),
    msgpack.Timestamp(0, 5),
]


def mutate(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(5)
        pos = rng.randrange(len(b) + 1)
        if op == 0 and b:
            b[min(pos, len(b) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and b:
            b[min(pos, len(b) - 1)] = rng.randrange(256)
        elif op == 2:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 4)))
        elif op == 3:
            del b[pos : pos + rng.randint(1, 8)]
        else:
            b = b[:pos]
    return bytes(b)


def retype(obj: Any, rng: random.Random, depth: int = 0) -> Any:
    """The same structure with some values swapped for values of the wrong type."""
    if isinstance(obj, dict):
        out = {k: retype(v, rng, depth + 1) for k, v in obj.items()}
        if out and rng.random() < 0.3:
            key = rng.choice(list(out))
            if rng.random() < 0.5:
                del out[key]
            else:
                out[key] = rng.choice(WEIRD)
        return out
    if isinstance(obj, list):
        return [retype(v, rng, depth + 1) for v in obj]
    if isinstance(obj, bytes) and rng.random() < 0.3:  # reach the tensor decoders too
        return mutate(obj, rng)
    return rng.choice(WEIRD) if rng.random() < 0.15 else obj


def inputs(rng: random.Random) -> Iterator[bytes]:
    wires = [codec.unpack(v) for v in VECTORS if _decodable(v)]
    for _ in range(300):
        for v in VECTORS:
            yield mutate(v, rng)
    for _ in range(2000):
        yield bytes(rng.randrange(256) for _ in range(rng.randint(0, 64)))
    for _ in range(5000):
        obj = retype(rng.choice(wires), rng)
        try:
            yield msgpack.packb(obj, use_bin_type=True)
        except (TypeError, ValueError, OverflowError):
            continue


def _decodable(payload: bytes) -> bool:
    try:
        codec.unpack(payload)
    except DecodeError:
        return False
    return True


def check(entry: Callable[[bytes], object], payload: bytes) -> None:
    try:
        entry(payload)
    except DecodeError:
        pass
    except Exception as exc:  # anything else is an escape: fail loudly with the input
        raise AssertionError(f"{entry.__name__} raised {exc!r} on {payload.hex()}") from exc


def decode_all(payload: bytes) -> None:
    message = codec.decode(payload, limits=LIMITS)
    if isinstance(message, Delta | ModelMessage):
        tensors = message.tensors if isinstance(message, Delta) else message.params
        for t in tensors.values():
            t.decode()


def test_fuzz_every_entry_point() -> None:
    rng = random.Random(20240611)
    reassembler = Reassembler(LIMITS, max_pending_bytes=1 << 18)
    count = 0
    for payload in inputs(rng):
        check(decode_all, payload)
        check(reassembler.on_model, payload)
        check(reassembler.on_chunk, payload)
        count += 1
        assert reassembler.pending_bytes <= 1 << 18
    assert count >= 10_000
