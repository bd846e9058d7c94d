"""Durable aggregator state: two checksummed slot files, written in turn, in place.

Each save writes the whole state to the slot *not* holding the newest state
(``state.a`` / ``state.b``, by sequence number) with ``pwrite`` straight from the
arrays' buffers, then calls ``fdatasync``. A slot is a fixed prefix (magic, lengths,
CRC-32 of the body) and a body (msgpack header with the scalars, a sequence number
and each array's name, shape and dtype, then the raw array bytes). After a crash
at any moment the slot being written is either torn (its CRC fails) or still
the previous-but-one state, and the other slot holds the newest complete state;
:meth:`Store.load` takes the valid slot with the higher sequence number.

Why not one file replaced by rename (format 1): that costs a fresh file per save
(allocation and journal commit), an fsync of the directory, and two Python copies
of every array (``tobytes`` and msgpack); with K=10 and batches of 32 deltas it
was most of the worker's time at 10k parameters. A slot is created the first time
by the old way (temporary file, fsync, rename, directory fsync), so a slot that
exists was complete once and at most one slot is ever torn. A format-1
``state.msgpack`` is still read when there is no slot yet (upgrade in place).

The state holds what must survive a crash: the version and parameters of the
newest model (with its created time and metrics, so it can be re-published
byte for byte), the buffered running sums of acknowledged updates, the dedup
window, and a fingerprint of the task and model spec it was written under.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import numpy.typing as npt

from aggregator.dedup import PackedKeys
from aggregator.folding import F32, F64
from fedmq.errors import StateError
from fedmq.modelspec import ModelSpec

log = logging.getLogger(__name__)

FORMAT = 1
FILENAME = "state.msgpack"  # format 1, read when there is no slot yet
SLOT_FORMAT = 2
SLOTS = ("state.a", "state.b")  # sequence number n lives in SLOTS[n % 2]
MAGIC = b"FEDMQST2"
PREFIX = struct.Struct("<8sQQI")  # magic, header length, body length, CRC-32 of the body


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
    dedup: PackedKeys = field(default_factory=PackedKeys)
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


def _scalars(state: State) -> dict[str, Any]:
    return {
        "fingerprint": state.fingerprint,
        "version": state.version,
        "created": state.created,
        "total_samples": state.total_samples,
        "count": state.count,
        "metrics": state.metrics,
        "interval": state.interval,
        "chunks": state.chunks,
        "staleness_sum": state.staleness_sum,
        "staleness_max": state.staleness_max,
    }


def _state(obj: dict[str, Any], params: dict[str, F32], sums: dict[str, F64]) -> State:
    return State(
        obj["fingerprint"], int(obj["version"]), float(obj["created"]), params, sums,
        int(obj["total_samples"]), int(obj["count"]),
        PackedKeys.of((str(d), str(u)) for d, u in obj["dedup"]),
        {str(k): float(v) for k, v in obj["metrics"].items()},
        None if obj["interval"] is None else float(obj["interval"]), int(obj["chunks"]),
        int(obj.get("staleness_sum", 0)), int(obj.get("staleness_max", 0)),  # added later
    )


def _pack_map(fields: dict[str, Any], **encoded: bytes) -> bytes:
    """One msgpack map of ``fields`` and of ``encoded`` values already in msgpack."""
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_map_header(len(fields) + len(encoded))]
    for key, value in fields.items():
        parts += (packer.pack(key), packer.pack(value))
    for key, blob in encoded.items():
        parts += (packer.pack(key), blob)
    return b"".join(parts)


def encode_state(state: State) -> bytes:
    """Format 1 (one msgpack document), kept for reading old state directories."""
    body = {"format": FORMAT, **_scalars(state), "dedup": [list(k) for k in state.dedup],
            "params": _arrays_to_wire(state.params),
            "sums": _arrays_to_wire(state.sums)}
    out: bytes = msgpack.packb(body, use_bin_type=True)
    return out


def decode_state(data: bytes) -> State:
    try:
        obj = msgpack.unpackb(data, raw=False)
        if obj.get("format") != FORMAT:
            raise StateError(f"state format {obj.get('format')!r} is not {FORMAT}")
        return _state(obj, _arrays_from_wire(obj["params"]), _arrays_from_wire(obj["sums"]))
    except StateError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as exc:
        raise StateError(f"state file is unreadable: {exc}") from exc


def encode_slot(state: State, seq: int) -> list[bytes | memoryview]:
    """Prefix, header and the arrays' own buffers (no copies), ready for ``pwrite``."""
    arrays: list[tuple[str, str, npt.NDArray[Any]]] = [("p", k, a) for k, a in state.params.items()]
    arrays += [("s", k, a) for k, a in state.sums.items()]
    views = [np.ascontiguousarray(a).data.cast("B") for _, _, a in arrays]
    header = _pack_map(
        {"format": SLOT_FORMAT, "seq": seq, **_scalars(state),
         "arrays": [[g, k, list(a.shape), a.dtype.str] for g, k, a in arrays]},
        dedup=state.dedup.blob)
    crc = zlib.crc32(header)
    for v in views:
        crc = zlib.crc32(v, crc)
    body = len(header) + sum(v.nbytes for v in views)
    return [PREFIX.pack(MAGIC, len(header), body, crc), header, *views]


def decode_slot(data: bytes) -> tuple[int, State] | None:
    """(sequence number, state) of a complete slot; None if torn or not a slot."""
    if len(data) < PREFIX.size:
        return None
    magic, hlen, blen, crc = PREFIX.unpack_from(data)
    end = PREFIX.size + blen
    if magic != MAGIC or len(data) < end or zlib.crc32(data[PREFIX.size:end]) != crc:
        return None
    try:
        obj = msgpack.unpackb(data[PREFIX.size:PREFIX.size + hlen], raw=False)
        groups: dict[str, dict[str, Any]] = {"p": {}, "s": {}}
        at = PREFIX.size + hlen
        for group, name, shape, dt in obj["arrays"]:
            dtype = np.dtype(dt)
            count = int(np.prod(shape, dtype=np.int64))
            a = np.frombuffer(data, dtype=dtype, count=count, offset=at)
            groups[group][name] = a.reshape(shape).copy()
            at += count * dtype.itemsize
        return int(obj["seq"]), _state(obj, groups["p"], groups["s"])
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as exc:
        raise StateError(f"state slot is unreadable: {exc}") from exc


class Store:
    """The state slots in one directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / FILENAME
        self._seq: int | None = None  # of the newest complete state (None: not looked yet)

    def load(self) -> State | None:
        """The saved state, or None if there is none yet."""
        newest: tuple[int, State] | None = None
        seen = False
        for name in SLOTS:
            data = self._read(self.directory / name)
            seen |= data is not None
            got = None if data is None else decode_slot(data)
            if got is not None and (newest is None or got[0] > newest[0]):
                newest = got
        if newest is not None:
            self._seq = newest[0]
            return newest[1]
        if seen:  # a slot exists only once written completely: both torn is not a crash
            raise StateError(f"no complete state slot in {self.directory}")
        self._seq = 0
        data = self._read(self.path)
        return None if data is None else decode_state(data)

    def _read(self, path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc

    def save(self, state: State) -> None:
        """Write ``state`` durably into the older slot (see the module docstring)."""
        if self._seq is None:
            self.load()  # never reuse a sequence number: it decides which slot is newest
        seq = (self._seq or 0) + 1
        path = self.directory / SLOTS[seq % 2]
        buffers = encode_slot(state, seq)
        if path.exists():
            _write(path, buffers, create=False)
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp")
            _write(tmp, buffers, create=True)
            os.replace(tmp, path)
            _fsync_dir(self.directory)  # make the new slot's name durable
        self._seq = seq


def _write(path: Path, buffers: list[bytes | memoryview], *, create: bool) -> None:
    flags = os.O_WRONLY | (os.O_CREAT | os.O_TRUNC if create else 0)
    fd = os.open(path, flags, 0o600)
    try:
        offset = 0
        for buf in buffers:
            view = memoryview(buf)
            while view:
                n = os.pwrite(fd, view, offset)
                offset, view = offset + n, view[n:]
        # In place, the size and data are all that changed: fdatasync covers both.
        if create:
            os.fsync(fd)
        else:
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    dfd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
