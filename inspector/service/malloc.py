"""Keep glibc from mmapping and unmapping every 1 MiB chunk buffer of a streamed result.

By default glibc serves allocations of 128 KiB and more with fresh mmaps, so each chunk's bytes
pay page faults on first touch (measured here: 17 MB of chunks in 10-12 ms steady state, 2.5 ms
with these settings). The server raises the mmap and trim thresholds once at start; elsewhere
(non-glibc) this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
log = logging.getLogger("inspector.service")


def tune_malloc(mmap_threshold: int = 32 << 20, trim_threshold: int = 256 << 20) -> bool:
    """Raise glibc's mmap/trim thresholds; True when applied."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = mallopt(M_MMAP_THRESHOLD, mmap_threshold) == 1 and mallopt(M_TRIM_THRESHOLD, trim_threshold) == 1
    if not ok:
        log.debug("mallopt refused the thresholds; large results stream a little slower")
    return ok
