"""The window of (device, update_id) pairs already folded, oldest evicted first.

Why a bounded window is enough: the aggregator makes at most ``K`` (cohort in sync
mode) accepted updates per version, so once ``K * (max_staleness + 2)`` newer updates
were accepted, the version has moved more than ``max_staleness`` past any evicted
update's base version, and a late copy of it is refused as too stale instead.
:func:`window_size` enforces that floor.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

Key = tuple[str, str]


def window_size(requested: int, per_version: int, max_staleness: int) -> int:
    """At least ``requested`` and never below the floor explained in the module docstring."""
    return max(requested, per_version * (max_staleness + 2))


class DedupWindow:
    """Remembers the last ``capacity`` keys in insertion order."""

    def __init__(self, capacity: int, keys: Iterable[Key] = ()) -> None:
        if capacity < 1:
            raise ValueError("dedup capacity must be >= 1")
        self.capacity = capacity
        self._keys: OrderedDict[Key, None] = OrderedDict()
        for key in keys:
            self.add(key)

    def __contains__(self, key: Key) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, key: Key) -> None:
        self._keys[key] = None
        self._keys.move_to_end(key)
        while len(self._keys) > self.capacity:
            self._keys.popitem(last=False)

    def keys(self) -> list[Key]:
        return list(self._keys)
