"""Fetching the global model: reassemble (possibly chunked), verify against meta, decode.

Pure helper of :class:`device_sim.agent.DeviceAgent` and of ``fedmq watch``
(:class:`demo.watch.Watcher`). A model whose sha256 does not match the newest
meta is held back (the meta for it may still be on its way) and re-checked
when the next meta arrives.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from fedmq import codec
from fedmq.chunks import Reassembler
from fedmq.errors import DecodeError
from fedmq.limits import Limits
from fedmq.messages import ModelMessage, ModelMeta
from fedmq.modelspec import ModelSpec
from fedmq.tasks import Params
from fedmq.topics import TopicKind


@dataclass(frozen=True, slots=True)
class Fetched:
    """A verified model. ``spec`` and the wire ``payload`` (the bytes that matched the
    meta's sha256) are kept for callers that store the model, like ``fedmq watch``."""

    version: int
    params: Params
    spec: ModelSpec
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class Refused:
    kind: str  # "malformed_model" | "hash_mismatch"
    detail: str


class ModelFetch:
    def __init__(self, task: str, limits: Limits) -> None:
        self.task = task
        self.limits = limits
        self._reasm = Reassembler(limits)
        self._unverified: bytes | None = None

    def feed(
        self, kind: TopicKind, payload: bytes, meta: ModelMeta | None
    ) -> Fetched | Refused | None:
        """A ``model`` or ``model/chunk/<i>`` payload; a result once a full model is in."""
        try:
            if kind is TopicKind.MODEL:
                full = self._reasm.on_model(payload)
            else:
                full = self._reasm.on_chunk(payload)
        except DecodeError as exc:
            return Refused("malformed_model", str(exc))
        return None if full is None else self._verify(full, meta)

    def on_meta(self, meta: ModelMeta) -> Fetched | Refused | None:
        """Re-check a held-back model against a newer meta."""
        held, self._unverified = self._unverified, None
        return None if held is None else self._verify(held, meta)

    def _verify(self, payload: bytes, meta: ModelMeta | None) -> Fetched | Refused:
        if meta is None or hashlib.sha256(payload).digest() != meta.sha256:
            self._unverified = payload
            return Refused("hash_mismatch", "model does not match meta; waiting for a newer one")
        try:
            model = codec.decode(payload, ModelMessage, self.limits)
            params = {k: t.decode() for k, t in model.params.items()}
        except DecodeError as exc:
            return Refused("malformed_model", str(exc))
        if model.task != self.task:
            return Refused("malformed_model", f"model of task {model.task!r}")
        return Fetched(model.version, params, model.spec, payload)
