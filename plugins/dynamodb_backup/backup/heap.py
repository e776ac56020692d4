"""Keep a long export's memory flat: large buffers go back to the OS when freed.

Why: glibc's malloc serves blocks from 128 KB up with mmap, and gives them back when they are freed,
but each time it frees such a block it raises that threshold to the block's size. After the first
8 MB multipart part was freed, every scan page, 400 KB line and compressed chunk came from the heap
instead, and the heap kept what fragmentation left behind: one export worker on 400 KB items
peaked at 123 MB after 1,000 items, 136 MB after 10,000 and 159 MB after 100,000. With the threshold
fixed (which turns the adjustment off), the same 10,000 items peaked at 84 MB
(docs/workers-per-terabyte.md). Elsewhere than glibc (macOS, musl) this does nothing.

Why 1 MB and not glibc's 128 KB: every mmapped block is fresh memory, page-faulted and zeroed, and
unmapped again when freed. At 128 KB each 100 KB item's lines, compressed chunks and joined batches
took about 120 µs of CPU per item in page faults alone (the PITR conversion's decode, encode and
compress loop: 700 µs per item at 128 KB, 580 at 1 MB; docs/benchmarks-per-core.md). Below 1 MB
the heap reuses its blocks; scan pages, reads of 1 MB and the 8 MB parts still go back to the OS.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
#: Blocks from this size are mmapped, and unmapped when freed (kept fixed).
MMAP_THRESHOLD_BYTES = 1024 * 1024

_done: bool | None = None


def return_large_buffers_to_the_os() -> bool:
    """Fix glibc's mmap threshold for this process (once); True where it took effect."""
    global _done
    if _done is None:
        _done = False
        name = ctypes.util.find_library("c")
        try:
            mallopt = ctypes.CDLL(name).mallopt if name else None
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            _done = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
        log.debug("fixed malloc's mmap threshold at %d bytes: %s", MMAP_THRESHOLD_BYTES, _done)
    return _done
