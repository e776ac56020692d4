"""Peak resident memory of a process tree, sampled from ``/proc/<pid>/status`` (``VmHWM``) while it runs.

Why not ``ru_maxrss``: Linux keeps a process's largest RSS across ``exec`` (it is the process's, not
its address space's), so a contender started by a bench process that had itself grown big reported
the bench's peak, not its own: those figures were upper bounds. ``VmHWM`` belongs to the address
space, which ``exec`` replaces. Sampled every ``every`` seconds, the last reading before a process
ends can miss a peak reached in its final moments; the figure is the largest single process's.
"""

from __future__ import annotations

import time

import psutil


def vm_hwm_kib(pid: int) -> int | None:
    """A process's ``VmHWM`` in KiB (None if it is gone or has no address space)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


class PeakSampler:
    """Call :meth:`sample` as often as convenient; it reads the tree at most every ``every`` seconds."""

    def __init__(self, pid: int, every: float = 0.1) -> None:
        self.pid, self.every = pid, every
        self.peak_kib = 0
        self._next = 0.0

    def sample(self) -> None:
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.every
        try:
            pids = [self.pid, *(p.pid for p in psutil.Process(self.pid).children(recursive=True))]
        except psutil.Error:
            return
        for pid in pids:
            kib = vm_hwm_kib(pid)
            if kib is not None and kib > self.peak_kib:
                self.peak_kib = kib

    def peak_mb(self, fallback_kib: int) -> float:
        """The sampled peak in MB (KiB / 1024), or ``fallback_kib``'s when nothing was sampled."""
        return (self.peak_kib or fallback_kib) / 1024.0
