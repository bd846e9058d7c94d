"""Durable aggregator state: one msgpack file replaced atomically.

A write goes to ``state.msgpack.tmp``, is fsynced, renamed over ``state.msgpack``
and the directory is fsynced, so after a crash at any moment the file is either
the old state or the new one, never a mix. A leftover ``.tmp`` is ignored.

The state holds what must survive a crash: the version and parameters of the
newest model (with its created time and metrics, so it can be re-published
byte for byte), the buffered running sums of acknowledged updates, the dedup
window, and a fingerprint of the task and model spec it was written under.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from aggregator.dedup import Key
from aggregator.folding import F32, F64
from fedmq.errors import StateError
from fedmq.modelspec import ModelSpec

log = logging.getLogger(__name__)

FORMAT = 1
FILENAME = "state.msgpack"


def fingerprint(task: str, spec: ModelSpec) -> str:
    """What must not change between runs sharing a state directory."""
    return json.dumps({"task": task, "spec": spec.to_wire()}, sort_keys=True)


@dataclass(frozen=True, slots=True)
class State:
    fingerprint: str
    version: int
    created: float
    params: dict[str, F32]
    sums: dict[str, F64]
    total_samples: int = 0
    count: int = 0
    dedup: tuple[Key, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    interval: float | None = None
    chunks: int = 0  # chunk count of the newest publication, to clear leftovers
    staleness_sum: int = 0  # of the buffered updates, for the next version's metrics
    staleness_max: int = 0


def _arrays_to_wire(arrays: dict[str, Any]) -> dict[str, Any]:
    return {k: [list(a.shape), a.dtype.str, a.tobytes()] for k, a in arrays.items()}


def _arrays_from_wire(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        k: np.frombuffer(data, dtype=np.dtype(dt)).reshape(shape).copy()
        for k, (shape, dt, data) in obj.items()
    }


def encode_state(state: State) -> bytes:
    body = {
        "format": FORMAT,
        "fingerprint": state.fingerprint,
        "version": state.version,
        "created": state.created,
        "params": _arrays_to_wire(state.params),
        "sums": _arrays_to_wire(state.sums),
        "total_samples": state.total_samples,
        "count": state.count,
        "dedup": [list(k) for k in state.dedup],
        "metrics": state.metrics,
        "interval": state.interval,
        "chunks": state.chunks,
        "staleness_sum": state.staleness_sum,
        "staleness_max": state.staleness_max,
    }
    out: bytes = msgpack.packb(body, use_bin_type=True)
    return out


def decode_state(data: bytes) -> State:
    try:
        obj = msgpack.unpackb(data, raw=False)
        if obj.get("format") != FORMAT:
            raise StateError(f"state format {obj.get('format')!r} is not {FORMAT}")
        return State(
            obj["fingerprint"], int(obj["version"]), float(obj["created"]),
            _arrays_from_wire(obj["params"]), _arrays_from_wire(obj["sums"]),
            int(obj["total_samples"]), int(obj["count"]),
            tuple((str(d), str(u)) for d, u in obj["dedup"]),
            {str(k): float(v) for k, v in obj["metrics"].items()},
            None if obj["interval"] is None else float(obj["interval"]), int(obj["chunks"]),
            int(obj.get("staleness_sum", 0)), int(obj.get("staleness_max", 0)),  # added later
        )
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as exc:
        raise StateError(f"state file is unreadable: {exc}") from exc


class Store:
    """The state file in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILENAME

    def load(self) -> State | None:
        """The saved state, or None if there is none yet."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc}") from exc
        return decode_state(data)

    def save(self, state: State) -> None:
        """Write ``state`` atomically and durably (see the module docstring)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(FILENAME + ".tmp")
        data = encode_state(state)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dfd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dfd)  # make the rename itself durable
        finally:
            os.close(dfd)
