"""Chunked transfer of models larger than a broker's packet limit.

When the encoded model is larger than ``max_packet`` bytes, the publisher
splits it into ``count`` pieces of ``chunk_size`` bytes (the last shorter),
publishes each retained on ``model/chunk/<index>`` and then a
:class:`ModelManifest` retained on ``model``. Chunks go first, so anyone who
sees the manifest can already fetch them. Retained chunks left over from an
earlier, longer model are cleared with empty retained payloads.

:class:`Reassembler` is the pure receiver: feed it whatever arrives on
``model`` and ``model/chunk/+`` in any order; it returns the full model
payload once every chunk of the newest manifest is in and the sha256 of the
joined bytes matches. Chunks of other versions are ignored.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from fedmq import codec
from fedmq.errors import ChunkError, ConfigError
from fedmq.limits import DEFAULT_LIMITS, Limits
from fedmq.messages import ModelChunk, ModelManifest, ModelMessage, ModelMeta

#: Bytes of envelope around a chunk's data (task, version, sha256, index...), generous.
CHUNK_OVERHEAD = 512


@dataclass(frozen=True, slots=True)
class ModelPublication:
    """Everything to publish for one model version, in publish order."""

    model: bytes  # goes on ``model``: the model itself or a manifest
    chunks: tuple[bytes, ...]  # go on ``model/chunk/<i>`` before ``model``
    meta: ModelMeta
    payload_size: int  # size of the full (unchunked) model payload


def publication(
    model: ModelMessage,
    *,
    max_packet: int | None,
    mode: str = "async",
    buffer: int = 1,
    max_staleness: int = 0,
    interval: float | None = None,
) -> ModelPublication:
    """Encode ``model``; chunk it when its payload exceeds ``max_packet`` bytes."""
    payload = codec.encode(model)
    sha = hashlib.sha256(payload).digest()
    chunks: tuple[bytes, ...] = ()
    head = payload
    if max_packet is not None and len(payload) > max_packet:
        chunk_size = max_packet - CHUNK_OVERHEAD
        if chunk_size < 1024:
            raise ConfigError(f"max_packet {max_packet} too small to carry chunks")
        count = -(-len(payload) // chunk_size)
        chunks = tuple(
            codec.encode(
                ModelChunk(
                    model.task,
                    model.version,
                    sha,
                    i,
                    count,
                    payload[i * chunk_size : (i + 1) * chunk_size],
                )
            )
            for i in range(count)
        )
        head = codec.encode(
            ModelManifest(model.task, model.version, model.created, sha, len(payload),
                          chunk_size, count)
        )
    meta = ModelMeta(
        model.task,
        model.version,
        model.created,
        sha,
        len(payload),
        len(chunks),
        dict(model.metrics),
        mode,
        buffer,
        max_staleness,
        interval,
    )
    return ModelPublication(head, chunks, meta, len(payload))


class Reassembler:
    """Pure receiver of a possibly chunked model; see the module docstring."""

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.manifest: ModelManifest | None = None
        self._parts: dict[int, bytes] = {}
        self._pending: dict[tuple[bytes, int], bytes] = {}  # chunks before their manifest

    def on_model(self, payload: bytes) -> bytes | None:
        """Feed a ``model`` payload; returns a full model payload when one is ready."""
        obj = codec.unpack(payload, self.limits)
        if obj.get("kind") != ModelManifest.KIND:
            codec.decode(payload, ModelMessage, self.limits)  # validate before handing it on
            self.manifest = None
            self._parts.clear()
            return payload
        manifest = codec.decode(payload, ModelManifest, self.limits)
        self.manifest = manifest
        self._parts = {
            i: data for (sha, i), data in self._pending.items() if sha == manifest.sha256
        }
        self._pending.clear()
        return self._complete()

    def on_chunk(self, payload: bytes) -> bytes | None:
        """Feed a ``model/chunk/<i>`` payload (empty ones clear old chunks and are ignored)."""
        if not payload:
            return None
        chunk = codec.decode(payload, ModelChunk, self.limits)
        m = self.manifest
        if m is None or chunk.sha256 != m.sha256:
            if len(self._pending) < self.limits.max_chunks:
                self._pending[(chunk.sha256, chunk.index)] = chunk.data
            return None
        if chunk.count != m.count or chunk.version != m.version:
            raise ChunkError(f"chunk {chunk.index} disagrees with manifest", version=m.version)
        self._parts[chunk.index] = chunk.data
        return self._complete()

    def _complete(self) -> bytes | None:
        m = self.manifest
        if m is None or len(self._parts) < m.count:
            return None
        payload = b"".join(self._parts[i] for i in range(m.count))
        self._parts.clear()
        self.manifest = None
        if len(payload) != m.size or hashlib.sha256(payload).digest() != m.sha256:
            raise ChunkError("reassembled model does not match its sha256", version=m.version)
        return payload
