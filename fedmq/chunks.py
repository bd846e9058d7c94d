"""Chunked transfer of models larger than a broker's packet limit.

When the encoded model is larger than ``max_packet`` bytes, the publisher
splits it into ``count`` pieces of ``chunk_size`` bytes (the last shorter),
publishes each retained on ``model/chunk/<index>`` and then a
:class:`ModelManifest` retained on ``model``. Chunks go first, so anyone who
sees the manifest can already fetch them. Retained chunks left over from an
earlier, longer model are then cleared with empty retained payloads
(:func:`stale_chunks`). PROTOCOL.md ("Chunked models") is the full scheme.

:class:`Reassembler` is the pure receiver: feed it whatever arrives on
``model`` and ``model/chunk/+`` in any order; it returns the full model
payload once every chunk of the newest manifest is in, the sha256 of the
joined bytes matches and they decode as that model. Chunks of older versions
are ignored; chunks ahead of their manifest wait in a byte-bounded pool.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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
    # max_packet bounds the whole MQTT packet (topic and headers too), hence the overhead
    if max_packet is not None and len(payload) > max_packet - CHUNK_OVERHEAD:
        chunk_size = max_packet - CHUNK_OVERHEAD
        if chunk_size < 1024:
            raise ConfigError(f"max_packet {max_packet} too small to carry chunks")
        count = -(-len(payload) // chunk_size)
        if count > DEFAULT_LIMITS.max_chunks:
            raise ConfigError(f"{count} chunks exceed the receivers' limit; raise max_packet")
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
            ModelManifest(
                model.task, model.version, model.created, sha, len(payload), chunk_size, count
            )
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


def stale_chunks(previous_count: int, count: int) -> range:
    """Indices whose retained chunks must be cleared (empty retained payload) after
    publishing ``count`` chunks where ``previous_count`` were retained before."""
    return range(count, max(count, previous_count))


class Reassembler:
    """Pure receiver of a possibly chunked model; see the module docstring.

    Memory is bounded: chunks of the current manifest must have exactly the
    length it implies (so they total at most its ``size``), and chunks that
    arrive before their manifest are kept up to ``max_pending_bytes`` in all
    (default ``limits.max_payload_bytes``), the oldest dropped first.
    """

    def __init__(
        self, limits: Limits = DEFAULT_LIMITS, *, max_pending_bytes: int | None = None
    ) -> None:
        self.limits = limits
        self.max_pending_bytes = (
            limits.max_payload_bytes if max_pending_bytes is None else max_pending_bytes
        )
        self.manifest: ModelManifest | None = None
        self._parts: dict[int, bytes] = {}
        self._pending: dict[tuple[bytes, int], ModelChunk] = {}  # chunks before their manifest
        self._pending_bytes = 0

    @property
    def pending_bytes(self) -> int:
        """Bytes held for chunks whose manifest has not arrived."""
        return self._pending_bytes

    def on_model(self, payload: bytes) -> bytes | None:
        """Feed a ``model`` payload; returns a full model payload when one is ready."""
        obj = codec.unpack(payload, self.limits)
        if obj.get("kind") != ModelManifest.KIND:
            model = codec.decode(payload, ModelMessage, self.limits)  # validate first
            self.manifest = None
            self._parts.clear()
            self._drop_pending(lambda c: c.version <= model.version)
            return payload
        manifest = codec.decode(payload, ModelManifest, self.limits)
        self.manifest = manifest
        self._parts.clear()
        for chunk in self._pending.values():
            if chunk.sha256 == manifest.sha256 and self._misfit(chunk) is None:
                self._parts[chunk.index] = chunk.data
        self._drop_pending(lambda c: c.sha256 == manifest.sha256 or c.version < manifest.version)
        return self._complete()

    def on_chunk(self, payload: bytes) -> bytes | None:
        """Feed a ``model/chunk/<i>`` payload (empty ones clear old chunks and are ignored)."""
        if not payload:
            return None
        chunk = codec.decode(payload, ModelChunk, self.limits)
        m = self.manifest
        if m is None or chunk.sha256 != m.sha256:
            if m is None or chunk.version >= m.version:
                self._hold(chunk)
            return None
        self._take(chunk)
        return self._complete()

    def _take(self, chunk: ModelChunk) -> None:
        problem = self._misfit(chunk)
        if problem is not None:
            raise ChunkError(problem, version=chunk.version)
        self._parts[chunk.index] = chunk.data

    def _misfit(self, chunk: ModelChunk) -> str | None:
        """Why ``chunk`` cannot be part of the current manifest's model, or None."""
        m = self.manifest
        assert m is not None
        if chunk.count != m.count or chunk.version != m.version or chunk.index >= m.count:
            return f"chunk {chunk.index}/{chunk.count} v{chunk.version} disagrees with manifest"
        last = m.size - m.chunk_size * (m.count - 1)
        want = m.chunk_size if chunk.index < m.count - 1 else last
        if len(chunk.data) != want:
            return f"chunk {chunk.index} has {len(chunk.data)} bytes, manifest implies {want}"
        return None

    def _hold(self, chunk: ModelChunk) -> None:
        key = (chunk.sha256, chunk.index)
        self._drop_pending(lambda c: (c.sha256, c.index) == key)
        if len(chunk.data) > self.max_pending_bytes:
            return
        while self._pending and (
            self._pending_bytes + len(chunk.data) > self.max_pending_bytes
            or len(self._pending) >= self.limits.max_chunks
        ):
            oldest = next(iter(self._pending))
            self._pending_bytes -= len(self._pending.pop(oldest).data)
        self._pending[key] = chunk
        self._pending_bytes += len(chunk.data)

    def _drop_pending(self, doomed: Callable[[ModelChunk], bool]) -> None:
        for key, chunk in list(self._pending.items()):
            if doomed(chunk):
                del self._pending[key]
                self._pending_bytes -= len(chunk.data)

    def _complete(self) -> bytes | None:
        m = self.manifest
        if m is None or len(self._parts) < m.count:
            return None
        payload = b"".join(self._parts[i] for i in range(m.count))
        self._parts.clear()
        self.manifest = None
        if len(payload) != m.size or hashlib.sha256(payload).digest() != m.sha256:
            raise ChunkError("reassembled model does not match its sha256", version=m.version)
        model = codec.decode(payload, ModelMessage, self.limits)
        if model.version != m.version or model.task != m.task:
            raise ChunkError(
                "reassembled model is not the one its manifest names", version=m.version
            )
        return payload
