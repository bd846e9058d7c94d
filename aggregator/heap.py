"""Large buffers out of glibc's heap, so the aggregator's RSS follows what it holds.

Each delta arrives in a buffer of its own (4 MB at 1M float32 parameters), freed
once folded. glibc serves blocks above ``M_MMAP_THRESHOLD`` with ``mmap`` and gives
them back on ``free``, but the threshold is dynamic: the first such block freed
raises it to that block's size (up to 32 MiB), so every later delta is carved from
the heap, whose freed space glibc keeps. The peak RSS then crept up with the number
of updates. Setting the threshold pins it (as ``MALLOC_MMAP_THRESHOLD_`` would) and
turns the adjustment off; measured figures are in docs/benchmarks.md.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number
THRESHOLD = 1 << 20  # deltas and models above 1 MiB get their own mapping
ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own switch: a user's setting wins


def pin_mmap_threshold(nbytes: int = THRESHOLD) -> bool:
    """Fix glibc's mmap threshold at ``nbytes``; False where that is not possible
    (not Linux, not glibc) or the user chose a value through the environment."""
    if sys.platform != "linux" or ENV in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(M_MMAP_THRESHOLD, nbytes))  # 1 on success (musl: 0, a stub)
    log.debug("glibc mmap threshold pinned at %d bytes: %s", nbytes, done)
    return done
