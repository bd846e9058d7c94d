"""Chunked models: publication splits, the Reassembler joins in any order and stays bounded."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedmq import codec
from fedmq.chunks import CHUNK_OVERHEAD, Reassembler, publication, stale_chunks
from fedmq.errors import ChunkError, ConfigError, DecodeError
from fedmq.messages import ModelChunk, ModelManifest, ModelMessage
from fedmq.modelspec import ModelSpec, ParamSpec
from fedmq.tensors import Tensor


def model(version: int = 1, n: int = 5000, task: str = "t") -> ModelMessage:
    spec = ModelSpec("generic", (ParamSpec("w", (n,)),))
    w = np.random.default_rng(version).normal(size=n).astype(np.float32)
    return ModelMessage(task, version, 1.0, spec, {"w": Tensor.encode(w)}, {"accuracy": 0.5})


def test_small_models_travel_whole() -> None:
    m = model(n=10)
    pub = publication(m, max_packet=None)
    assert pub.chunks == ()
    assert pub.model == codec.encode(m)
    assert pub.meta.size == pub.payload_size == len(pub.model)
    assert pub.meta.sha256 == hashlib.sha256(pub.model).digest()
    assert pub.meta.chunks == 0
    assert publication(m, max_packet=10_000).chunks == ()


def test_large_models_are_chunked_under_the_packet_limit() -> None:
    m = model(n=5000)
    whole = codec.encode(m)
    pub = publication(m, max_packet=4096)
    manifest = codec.decode(pub.model, ModelManifest)
    assert manifest.size == len(whole) == pub.payload_size
    assert manifest.sha256 == hashlib.sha256(whole).digest() == pub.meta.sha256
    assert manifest.chunk_size == 4096 - CHUNK_OVERHEAD
    assert pub.meta.chunks == manifest.count
    assert len(pub.chunks) == manifest.count == -(-len(whole) // manifest.chunk_size)
    joined = b""
    for i, payload in enumerate(pub.chunks):
        assert len(payload) < 4096 - 200  # room for topic and MQTT headers
        chunk = codec.decode(payload, ModelChunk)
        assert (chunk.index, chunk.count, chunk.version) == (i, manifest.count, 1)
        joined += chunk.data
    assert joined == whole


def test_a_model_just_under_the_limit_is_chunked_too() -> None:
    m = model(n=1000)
    size = len(codec.encode(m))
    assert publication(m, max_packet=size + CHUNK_OVERHEAD).chunks == ()
    assert publication(m, max_packet=size + 10).chunks != ()


def test_tiny_packet_limit_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        publication(model(), max_packet=1000)


def test_stale_chunks() -> None:
    assert list(stale_chunks(5, 3)) == [3, 4]
    assert list(stale_chunks(3, 5)) == []
    assert list(stale_chunks(4, 0)) == [0, 1, 2, 3]


@settings(max_examples=30, deadline=None)
@given(st.randoms(use_true_random=False), st.integers(0, 12))
def test_any_arrival_order_reassembles(rnd: object, manifest_at: int) -> None:
    m = model(n=3000)
    pub = publication(m, max_packet=2048)
    chunks = list(pub.chunks)
    rnd.shuffle(chunks)  # type: ignore[attr-defined]
    r = Reassembler()
    results = []
    for i, payload in enumerate(chunks):
        if i == manifest_at:
            results.append(r.on_model(pub.model))
        results.append(r.on_chunk(payload))
    if manifest_at >= len(chunks):
        results.append(r.on_model(pub.model))
    done = [x for x in results if x is not None]
    assert done == [codec.encode(m)]
    assert r.pending_bytes == 0


def test_unchunked_model_passes_through_after_validation() -> None:
    r = Reassembler()
    payload = codec.encode(model(n=10))
    assert r.on_model(payload) == payload
    with pytest.raises(DecodeError):
        r.on_model(codec.encode(codec.decode(publication(model(), max_packet=4096).chunks[0])))


def test_empty_chunk_payloads_are_clearing_markers() -> None:
    assert Reassembler().on_chunk(b"") is None


def test_newer_version_replaces_an_incomplete_one() -> None:
    old = publication(model(1), max_packet=4096)
    new = publication(model(2), max_packet=4096)
    r = Reassembler()
    assert r.on_model(old.model) is None
    assert r.on_chunk(old.chunks[0]) is None
    for c in new.chunks:  # the new version's chunks arrive while the old one is incomplete
        assert r.on_chunk(c) is None
    out = r.on_model(new.model)
    assert out is not None
    assert codec.decode(out, ModelMessage).version == 2


def test_chunks_of_an_older_version_are_ignored() -> None:
    old = publication(model(1), max_packet=4096)
    new = publication(model(2), max_packet=4096)
    r = Reassembler()
    r.on_model(new.model)
    for c in old.chunks:
        assert r.on_chunk(c) is None
    assert r.pending_bytes == 0


def test_chunk_for_a_newer_model_survives_a_retained_older_manifest() -> None:
    old = publication(model(1), max_packet=4096)
    new = publication(model(2), max_packet=4096)
    r = Reassembler()
    r.on_chunk(new.chunks[0])  # retained delivery may interleave versions
    r.on_model(old.model)
    for c in new.chunks[1:]:
        r.on_chunk(c)
    assert r.on_model(new.model) == codec.encode(model(2))


def test_wrong_chunk_length_is_refused() -> None:
    pub = publication(model(), max_packet=4096)
    m = codec.decode(pub.model, ModelManifest)
    c = codec.decode(pub.chunks[0], ModelChunk)
    longer = ModelChunk(c.task, c.version, c.sha256, c.index, c.count, c.data + b"x")
    r = Reassembler()
    r.on_model(pub.model)
    with pytest.raises(ChunkError):
        r.on_chunk(codec.encode(longer))
    assert r.manifest == m  # the receiver keeps going: the right chunk can still come


def test_hash_mismatch_is_a_chunk_error() -> None:
    pub = publication(model(), max_packet=4096)
    r = Reassembler()
    r.on_model(pub.model)
    for payload in pub.chunks[:-1]:
        r.on_chunk(payload)
    c = codec.decode(pub.chunks[-1], ModelChunk)
    forged = ModelChunk(c.task, c.version, c.sha256, c.index, c.count, bytes(len(c.data)))
    with pytest.raises(ChunkError):
        r.on_chunk(codec.encode(forged))


def test_pending_chunks_are_bounded_by_bytes() -> None:
    r = Reassembler(max_pending_bytes=10_000)
    for v in range(1, 30):
        pub = publication(model(v), max_packet=4096)
        for c in pub.chunks:
            r.on_chunk(c)
            assert r.pending_bytes <= 10_000
    assert r.pending_bytes > 0
    big = ModelChunk("t", 99, bytes(32), 0, 1, bytes(20_000))
    r.on_chunk(codec.encode(big))  # larger than the whole pool: dropped
    assert r.pending_bytes <= 10_000


def test_chunk_disagreeing_with_its_manifest() -> None:
    pub = publication(model(), max_packet=4096)
    c = codec.decode(pub.chunks[0], ModelChunk)
    r = Reassembler()
    r.on_model(pub.model)
    with pytest.raises(ChunkError):
        r.on_chunk(codec.encode(ModelChunk(c.task, 7, c.sha256, 0, c.count, c.data)))
