"""``fedmq watch``: follow the global model as a device or an operator would see it.

Subscribes to the retained ``model/meta`` (tiny) and prints a line for each
new version. With ``save_dir`` it also fetches the full model as a device
does (:class:`device_sim.fetch.ModelFetch`: chunks reassembled, checked
against the meta's sha256, held back until its meta arrives) and stores it as
a pickled scikit-learn estimator plus the raw ``.msgpack`` payload.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiomqtt

from device_sim.fetch import Fetched, ModelFetch, Refused
from fedmq import codec
from fedmq.brokerurl import BrokerURL
from fedmq.errors import DecodeError
from fedmq.limits import DEFAULT_LIMITS
from fedmq.messages import ModelMeta
from fedmq.modelspec import to_estimator
from fedmq.topics import TopicKind, Topics

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class WatchSettings:
    broker: BrokerURL
    task: str
    prefix: str = "fedmq"
    save_dir: Path | None = None
    count: int = 0  # stop after this many versions (0 = run until stopped)
    timeout: float = 0.0  # give up after this many seconds without reaching count (0 = never)


def describe(meta: ModelMeta) -> str:
    """One human line for a model version."""
    m = meta.metrics
    parts = [f"v{meta.version:<5d}", f"size {meta.size / 1024:8.1f} KiB"]
    if "accuracy" in m:
        parts.append(f"accuracy {m['accuracy']:.4f}")
    if "updates" in m:
        parts.append(f"updates {int(m['updates'])}")
    if "staleness_mean" in m:
        mean, top = m["staleness_mean"], m.get("staleness_max", 0.0)
        parts.append(f"staleness mean {mean:.2f} max {top:.0f}")
    if meta.chunks:
        parts.append(f"{meta.chunks} chunks")
    parts.append(f"{meta.mode} K={meta.buffer}")
    return "  ".join(parts)


def save_model(model: Fetched, directory: Path) -> Path:
    """Store a model as ``model-vN.pkl`` (sklearn estimator) and its raw ``.msgpack``."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"model-v{model.version}.msgpack").write_bytes(model.payload)
    path = directory / f"model-v{model.version}.pkl"
    path.write_bytes(pickle.dumps(to_estimator(model.spec, model.params)))
    return path


class Watcher:
    """Pure-ish state: which versions were shown and the model being fetched.

    Both handlers raise :class:`DecodeError` for a malformed message.
    """

    def __init__(self, settings: WatchSettings, emit: Callable[[str], None]) -> None:
        self.settings = settings
        self.emit = emit
        self.last_version = -1
        self.shown = 0
        self.pending: ModelMeta | None = None
        self.saved_version = -1
        self.fetch = ModelFetch(settings.task, DEFAULT_LIMITS)

    def on_meta(self, payload: bytes) -> None:
        meta = codec.decode(payload, ModelMeta)
        if meta.version <= self.last_version:
            return
        self.last_version = meta.version
        self.shown += 1
        self.emit(describe(meta))
        self.pending = meta
        self._fetched(self.fetch.on_meta(meta))  # a model that came before its meta

    def on_model_part(self, kind: TopicKind, payload: bytes) -> None:
        if self.settings.save_dir is not None:
            self._fetched(self.fetch.feed(kind, payload, self.pending))

    def _fetched(self, got: Fetched | Refused | None) -> None:
        match got:
            case Fetched() if self.settings.save_dir is not None:
                path = save_model(got, self.settings.save_dir)
                self.saved_version = max(self.saved_version, got.version)
                self.emit(f"       saved {path}")
            case Refused(kind="hash_mismatch"):
                log.info("model payload does not match the newest meta yet; waiting")
            case Refused(detail=detail):
                raise DecodeError(detail)

    @property
    def done(self) -> bool:
        if not self.settings.count or self.shown < self.settings.count:
            return False
        # with --save, the last version counted must also be on disk
        return self.settings.save_dir is None or self.saved_version >= self.last_version


async def watch(settings: WatchSettings, emit: Callable[[str], None] = print) -> int:
    topics = Topics(settings.task, settings.prefix)
    watcher = Watcher(settings, emit)
    deadline = time.monotonic() + settings.timeout if settings.timeout else None
    b = settings.broker
    async with aiomqtt.Client(
        b.host, b.port, username=b.username, password=b.password,
        tls_params=aiomqtt.TLSParameters() if b.tls else None,
    ) as client:
        await client.subscribe(topics.meta, qos=1)
        if settings.save_dir is not None:
            await client.subscribe(topics.model, qos=1)
            await client.subscribe(topics.chunk_filter, qos=1)
        while not watcher.done:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                emit(f"timeout: saw {watcher.shown} of {settings.count} versions")
                return 1
            try:
                message = await asyncio.wait_for(anext(client.messages), remaining)
            except TimeoutError:
                continue
            parsed = topics.parse(message.topic.value)
            payload = message.payload if isinstance(message.payload, bytes) else b""
            try:
                if parsed is None:
                    continue
                if parsed.kind is TopicKind.META:
                    watcher.on_meta(payload)
                elif parsed.kind in (TopicKind.MODEL, TopicKind.CHUNK):
                    watcher.on_model_part(parsed.kind, payload)
            except DecodeError as exc:
                log.warning("ignoring bad message on %s: %s", message.topic, exc)
    return 0
