"""Keep a long export's memory flat: large buffers go back to the OS when freed.

Why: glibc's malloc serves blocks from 128 KB up with mmap, and gives them back when they are freed,
but each time it frees such a block it raises that threshold to the block's size. After the first
8 MB multipart part was freed, every scan page, 400 KB line and compressed chunk came from the heap
instead, and the heap kept what fragmentation left behind: one export worker on 400 KB items
peaked at 123 MB after 1,000 items, 136 MB after 10,000 and 159 MB after 100,000. With the threshold
fixed (which turns the adjustment off), the same 10,000 items peaked at 84 MB
(docs/workers-per-terabyte.md). Elsewhere than glibc (macOS, musl) this does nothing.

Why the trim threshold and the top pad are set too: fixing the mmap threshold also fixes glibc's
trim threshold at 128 KB, so each time a page's 100 KB strings were freed the heap's top went back
to the OS, and the next page faulted it in again. A heap that keeps up to 16 MB of free top, and
grows 4 MB at a time, is reused page after page (docs/benchmarks-per-core.md): a Scan call of 11
items of 100 KB took 4.9 ms of CPU, now 2.6; the PITR conversion's decode, encode and compress
loop 600-700 µs per item, now about 550, its system time mostly gone. The peak stays where it was:
one worker on 400 KB items, 82 MB after 480 items and 86 MB after 4,000. (An mmap threshold of
1 MB saved 7-8 % more, but let 400 KB lines fragment the heap: 89 MB after 480, 97 after 4,000.)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

log = logging.getLogger(__name__)

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
M_MMAP_THRESHOLD = -3
#: Blocks from this size are mmapped, and unmapped when freed (glibc's own default, kept fixed).
MMAP_THRESHOLD_BYTES = 128 * 1024
#: mallopt's parameter numbers for the trim threshold and the top pad (glibc's malloc.h).
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
#: The heap's free top is given back to the OS only beyond this (glibc's default, 128 KB, once fixed).
TRIM_THRESHOLD_BYTES = 16 * 1024 * 1024
#: What the heap grows by beyond a request, so a page's strings do not grow it 100 KB at a time.
TOP_PAD_BYTES = 4 * 1024 * 1024

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
            _done = bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and _done
            _done = bool(mallopt(M_TOP_PAD, TOP_PAD_BYTES)) and _done
        log.debug("fixed malloc's mmap threshold at %d bytes, its trim threshold at %d, its top pad at %d: %s",
                  MMAP_THRESHOLD_BYTES, TRIM_THRESHOLD_BYTES, TOP_PAD_BYTES, _done)
    return _done
