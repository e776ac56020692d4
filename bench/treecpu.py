"""The CPU of a contender's whole process tree, and the medians the per-core bench keeps.

A contender runs as a child of the bench. Its CPU is the growth of the bench's
``getrusage(RUSAGE_CHILDREN)`` across the run: the kernel adds a process's user and system time
to its parent's children-total when the parent reaps it, so every descendant that was waited for
is counted, however deep. One that was not (a daemon left running, a grandchild whose parent
exited first) would be lost to init: the bench makes itself a child subreaper
(``PR_SET_CHILD_SUBREAPER``), so such orphans are re-parented to the bench, which waits for them
(killing them after a grace period; the run records how many) before it reads the total.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import psutil

from .peakrss import PeakSampler

PR_SET_CHILD_SUBREAPER = 36


class Usage(Protocol):
    @property
    def ru_utime(self) -> float: ...

    @property
    def ru_stime(self) -> float: ...


@dataclass(frozen=True)
class CpuTimes:
    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system


def cpu_delta(before: Usage, after: Usage) -> CpuTimes:
    """User and system seconds added between two ``getrusage`` readings."""
    return CpuTimes(user=max(0.0, after.ru_utime - before.ru_utime),
                    system=max(0.0, after.ru_stime - before.ru_stime))


def become_subreaper() -> bool:
    """Make this process adopt its descendants' orphans (Linux); False where it cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def adopted(before: Iterable[int]) -> list[int]:
    """This process's children now that were not its children before the run: a contender's orphans."""
    known = set(before)
    return [p.pid for p in psutil.Process().children() if p.pid not in known]


def reap(pids: Sequence[int], grace: float = 10.0) -> int:
    """Wait for adopted orphans to end (SIGKILL after ``grace`` seconds); how many had to be killed."""
    deadline, killed = time.monotonic() + grace, 0
    pending = set(pids)
    while pending:
        for pid in list(pending):
            try:
                done, _status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                done = pid
            if done:
                pending.discard(pid)
        if pending and time.monotonic() > deadline:
            for pid in pending:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed += 1
                except ProcessLookupError:
                    pass
            deadline = float("inf")
        if pending:
            time.sleep(0.05)
    return killed


@dataclass
class TreeRun:
    seconds: float
    cpu: CpuTimes
    returncode: int
    peak_rss_mb: float
    orphans: int = 0
    orphans_killed: int = 0


def run_tree(command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
             log_path: Path | None = None, timeout: float = 1800.0,
             progress: Callable[[float], None] | None = None, every: float = 10.0) -> TreeRun:
    """Run ``command`` to its end and measure its whole process tree's CPU (see the module's docstring).

    ``progress`` is called with the seconds elapsed every ``every`` seconds while it runs.
    """
    children_before = [p.pid for p in psutil.Process().children()]
    usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out: Any = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), env=dict(env) if env else None, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline, report_at = start + timeout, start + every
        peak = PeakSampler(proc.pid)
        while True:
            peak.sample()
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if progress is not None and time.perf_counter() > report_at:
                progress(time.perf_counter() - start)
                report_at += every
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        orphans = adopted(children_before)
        killed = reap(orphans)
    finally:
        if log_path:
            out.close()
    cpu = cpu_delta(usage_before, resource.getrusage(resource.RUSAGE_CHILDREN))
    return TreeRun(seconds=seconds, cpu=cpu, returncode=proc.returncode, peak_rss_mb=peak.peak_mb(usage.ru_maxrss),
                   orphans=len(orphans), orphans_killed=killed)


def median(values: Sequence[float]) -> float | None:
    """The median of the values given (of 3 rounds: the middle one); None when there are none."""
    return statistics.median(values) if values else None


def per_item_us(cpu_seconds: float | None, items: int) -> float | None:
    """CPU microseconds per item."""
    return None if cpu_seconds is None or items <= 0 else cpu_seconds * 1e6 / items


def mb_per_cpu_second(nbytes: int, cpu_seconds: float | None) -> float | None:
    """Megabytes (10^6 bytes of DynamoDB item size) handled per CPU-second."""
    return None if not cpu_seconds or cpu_seconds <= 0 or nbytes <= 0 else nbytes / 1e6 / cpu_seconds


def net_of_startup(cpu_seconds: float | None, startup: float | None) -> float | None:
    """A run's CPU less the same contender's CPU on an empty table (its start-up), never below a tenth of it.

    The per-item figures of a terabyte are those of the work, not of starting Python; the gross figures
    are kept beside them.
    """
    if cpu_seconds is None:
        return None
    if startup is None:
        return cpu_seconds
    return max(cpu_seconds - startup, cpu_seconds * 0.1)


def better_by(theirs: float | None, ours: float | None) -> float | None:
    """How many times less CPU per item ours takes than theirs (above 1: ours is cheaper)."""
    if theirs is None or ours is None or ours <= 0:
        return None
    return theirs / ours
