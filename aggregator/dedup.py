"""The window of (device, update_id) pairs already folded, oldest evicted first.

Why a bounded window is enough: the aggregator makes at most ``K`` (cohort in sync
mode) accepted updates per version, so once ``K * (max_staleness + 2)`` newer updates
were accepted, the version has moved more than ``max_staleness`` past any evicted
update's base version, and a late copy of it is refused as too stale instead.
:func:`window_size` enforces that floor.

Why keys are kept encoded: the window is saved with every durable batch, and a full
window (10,000 keys by default) re-encoded each time cost milliseconds per save.
Each key is encoded once, on insertion, so a save costs one copy of contiguous bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import msgpack

Key = tuple[str, str]
_PACKER = msgpack.Packer(use_bin_type=True)


def window_size(requested: int, per_version: int, max_staleness: int) -> int:
    """At least ``requested`` and never below the floor explained in the module docstring."""
    return max(requested, per_version * (max_staleness + 2))


def _pack_key(key: Key) -> bytes:
    return _PACKER.pack(list(key))


@dataclass(frozen=True, slots=True)
class PackedKeys:
    """Keys, oldest first, as one msgpack array of ``[device, update_id]`` pairs: the
    bytes the state file holds. Iterating decodes them (only a load needs that)."""

    blob: bytes = b"\x90"  # the empty array

    @classmethod
    def of(cls, keys: Iterable[Key]) -> PackedKeys:
        packed = [_pack_key(k) for k in keys]
        return cls(_PACKER.pack_array_header(len(packed)) + b"".join(packed))

    def __iter__(self) -> Iterator[Key]:
        for device, update_id in msgpack.unpackb(self.blob, raw=False):
            yield str(device), str(update_id)


class DedupWindow:
    """Remembers the last ``capacity`` keys in insertion order.

    The keys' encodings live back to back in one buffer, oldest first, so a save
    copies one contiguous run of bytes; evicting moves a start offset, and the
    buffer is compacted once half of it is dead.
    """

    def __init__(self, capacity: int, keys: Iterable[Key] = ()) -> None:
        if capacity < 1:
            raise ValueError("dedup capacity must be >= 1")
        self.capacity = capacity
        self._keys: OrderedDict[Key, int] = OrderedDict()  # key -> length of its encoding
        self._blob = bytearray()
        self._start = 0  # where the oldest live encoding begins in _blob
        for key in keys:
            self.add(key)

    def __contains__(self, key: Key) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Key) -> None:
        """Remember ``key`` (a key already remembered keeps its place)."""
        if key in self._keys:
            return
        encoded = _pack_key(key)
        self._keys[key] = len(encoded)
        self._blob += encoded
        while len(self._keys) > self.capacity:
            _, size = self._keys.popitem(last=False)
            self._start += size
        if self._start > len(self._blob) // 2:
            del self._blob[:self._start]
            self._start = 0

    def keys(self) -> list[Key]:
        return list(self._keys)

    def packed(self) -> PackedKeys:
        """The window as saved: an array header and the live run of encodings."""
        head = _PACKER.pack_array_header(len(self._keys))
        return PackedKeys(b"".join((head, memoryview(self._blob)[self._start:])))
