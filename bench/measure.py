"""Running one contender in a child process and measuring it.

``os.wait4`` returns the rusage of the child together with every descendant it
waited for (ProcessPoolExecutor and multiprocessing.Pool join their workers), so
CPU seconds cover the whole process tree. The peak RSS is the largest single
process's in it (the "per worker" peak), sampled from ``VmHWM`` while it runs
(``bench/peakrss.py``: ``ru_maxrss`` would carry this bench process's own peak).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .peakrss import PeakSampler

try:
    import psutil
except ImportError:  # pragma: no cover - psutil comes with the main venv
    psutil = None


@dataclass
class Measurement:
    name: str
    items: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    server_cpu_seconds: float | None = None
    s3_cpu_seconds: float | None = None
    """The local S3's (moto's) CPU: on two cores it competes with both the client and DynamoDB."""
    returncode: int = 0
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def items_per_second(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["items_per_second"] = round(self.items_per_second, 1)
        return data


def server_cpu(pids: Sequence[int]) -> float | None:
    """User+system CPU seconds used so far by the given server processes (and their children)."""
    if psutil is None:
        return None
    total = 0.0
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            for p in [proc, *proc.children(recursive=True)]:
                t = p.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total


def run_measured(
    name: str,
    command: Sequence[str],
    items: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    log_path: Path | None = None,
    server_pids: Sequence[int] = (),
    s3_pids: Sequence[int] = (),
    timeout: float = 3600.0,
) -> Measurement:
    """Run ``command``, wait for it with ``os.wait4``, and return its measurement."""
    before, s3_before = server_cpu(server_pids), server_cpu(s3_pids)
    out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        start = time.perf_counter()
        proc = subprocess.Popen(list(command), env=dict(env) if env else None, cwd=cwd,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = start + timeout
        peak = PeakSampler(proc.pid)
        while True:
            peak.sample()
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.02)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    after, s3_after = server_cpu(server_pids), server_cpu(s3_pids)
    return Measurement(
        name=name, items=items, seconds=seconds,
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=peak.peak_mb(usage.ru_maxrss),  # KiB
        server_cpu_seconds=(after - before) if before is not None and after is not None else None,
        s3_cpu_seconds=(s3_after - s3_before) if s3_pids and s3_before is not None and s3_after is not None else None,
        returncode=proc.returncode,
    )


def median_run(runs: Sequence[Measurement]) -> Measurement:
    """The run with the median wall time (of the successful ones, if any), with every run's figures in ``extra``.

    A failed run is never hidden: if any failed, the median's ``returncode`` is the first failure's.
    """
    ok = [m for m in runs if m.returncode == 0] or list(runs)
    chosen = sorted(ok, key=lambda m: m.seconds)[(len(ok) - 1) // 2]
    failed = [m.returncode for m in runs if m.returncode != 0]
    chosen.returncode = failed[0] if failed else 0
    chosen.extra["runs_seconds"] = [round(m.seconds, 2) for m in runs]
    chosen.extra["runs_items_per_second"] = [round(m.items_per_second, 1) for m in runs]
    return chosen
