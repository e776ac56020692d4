"""How long an export, a restore and a PITR conversion take with N workers: a model.

Why a model: what a team pays for is the number of workers it takes to stay within the night, and
that follows from two ceilings, whichever is lower:

* our CPU: a worker is one process, so at most one core. The work is ``items x s_item`` CPU-seconds,
  where the cost of an item depends on its size and shape (per-core figures at the bench's three
  shapes, :class:`CpuCost`: :data:`MEASURED`, or docs/bench-per-core.json when the bench has written
  it), spread over N workers;
* the table's capacity: a scan spends one read unit per 8 KB read (4 KB strongly consistent) at
  ``read_ratio x RCU`` units per second; a restore spends ``ceil(item / 1 KB)`` write units per item
  (from the average item size) at ``write_ratio x WCU``. On demand, the table's account limit stands
  in for the capacity (40,000 units per table by default). A PITR conversion reads S3, not the table.

So ``time(N) = max(cpu / N, capacity)``, and past ``N = ceil(cpu / capacity)`` more workers buy
nothing: raise the ratio or the capacity instead. Not modelled: start-up of a task, S3 and network
bandwidth, per-partition limits (3,000 RCU / 1,000 WCU per partition: a table with few partitions
or hot keys can fall short of its capacity), secondary indexes' writes, and AWS's own time to run
an ``ExportTableToPointInTime`` before a conversion starts.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MB = 1_000_000
KB = 1024
#: On demand, a table's default account limit: 40,000 read and 40,000 write request units per second.
ON_DEMAND_TABLE_LIMIT = 40_000.0
EXPORT, RESTORE, CONVERT = "export", "restore", "PITR conversion"
JOBS = (EXPORT, RESTORE, CONVERT)


@dataclass(frozen=True)
class CpuCost:
    """CPU-seconds one core spends per item of a job, measured at a few item sizes.

    ``points`` are ``(item bytes, CPU-seconds per item)``, one per bench shape. Between two points
    the cost per item is interpolated on log scales; below the smallest item the smallest's cost per
    item holds, above the largest the largest's cost per byte. A straight line (per item + per MB)
    cannot fit the shapes: nested maps cost per attribute value, so the 4 KB "wide" item costs as
    much as 100 KB of text. The model therefore takes a table's average item size as the shape, and
    is pessimistic for flat items between the measured sizes.
    """

    points: tuple[tuple[int, float], ...]

    def per_item(self, item_bytes: float) -> float:
        points = sorted(self.points)
        if item_bytes <= points[0][0]:
            return points[0][1]
        if item_bytes >= points[-1][0]:
            size, cost = points[-1]
            return cost * item_bytes / size
        for (low, low_cost), (high, high_cost) in itertools.pairwise(points):
            if item_bytes <= high:
                where = math.log(item_bytes / low) / math.log(high / low)
                return float(low_cost * (high_cost / low_cost) ** where)
        raise AssertionError("unreachable: item_bytes is within the points")

    def seconds(self, items: int, size_bytes: int) -> float:
        return items * self.per_item(size_bytes / max(items, 1))

    def describe(self) -> str:
        return ", ".join(f"{cost * 1e6:,.0f} µs per item of {size:,} B" for size, cost in sorted(self.points))


@dataclass(frozen=True)
class PerCore:
    export: CpuCost
    restore: CpuCost
    convert: CpuCost
    source: str

    def cost(self, job: str) -> CpuCost:
        return {EXPORT: self.export, RESTORE: self.restore, CONVERT: self.convert}[job]


#: Measured 2026-12-05 on the bench shapes (small 409 B of every type, wide 4 KB of nested maps, large
#: 100 KB of text), one worker in-process, gzip, CPU of all its threads, min of 2, against DynamoDB
#: Local and moto on a shared 2-core machine. The restore is as a user runs it: validation, load and
#: verification. The large shape was measured again with backup/heap.py's fixed mmap threshold (it
#: costs CPU on large items); the small and wide ones before it. Figures: docs/workers-per-terabyte.md.
MEASURED = PerCore(
    export=CpuCost(((409, 38.0e-6), (3_997, 585e-6), (100_027, 783e-6))),
    restore=CpuCost(((409, 202e-6), (3_997, 1_884e-6), (100_027, 1_474e-6))),
    convert=CpuCost(((409, 15.9e-6), (3_997, 202e-6), (100_027, 826e-6))),
    source="the constants measured for issue 24 (backup/sizing.py MEASURED)",
)


#: The bench's contender keys for our own runs (bench/percore.py's ``summary`` rows), by job.
BENCH_KEYS = {"export": "ours-export", "restore": "ours-restore", "convert": "ours-pitr"}


def load_per_core(path: Path, backend: str = "ddblocal") -> PerCore:
    """The bench's per-core figures from ``path`` if it holds them, else :data:`MEASURED`.

    Reads docs/bench-per-core.json as bench/percore.py writes it: its ``summary`` rows for our
    export, restore and PITR conversion on ``backend``, one point per shape (bytes / items, net
    µs per item). Also takes ``{"per_core": {"export": [{"item_bytes": 409, "cpu_s_per_item":
    3.8e-05}, ...], "restore": [...], "convert": [...]}}``. Anything else falls back to the constants.
    """
    try:
        raw: Any = json.loads(path.read_text())
        if "per_core" in raw:
            figures = {job: [(int(p["item_bytes"]), float(p["cpu_s_per_item"])) for p in raw["per_core"][job]]
                       for job in BENCH_KEYS}
        else:
            figures = {job: [(round(int(r["bytes"]) / int(r["items"])), float(r["us_per_item"]) / 1e6)
                             for r in raw["summary"]
                             if r.get("key") == key and r.get("backend") == backend and int(r.get("items") or 0) > 0
                             and r.get("us_per_item") is not None]
                       for job, key in BENCH_KEYS.items()}
        if not all(figures.values()):
            return MEASURED
        export, restore, convert = (CpuCost(tuple(sorted(figures[job]))) for job in BENCH_KEYS)
    except (OSError, ValueError, KeyError, TypeError):
        return MEASURED
    return PerCore(export, restore, convert, source=f"{path} ({backend})")


@dataclass(frozen=True)
class TableLoad:
    """What the model needs of a table: its size, items and capacity (0 capacity: on demand)."""

    size_bytes: int
    item_count: int
    read_capacity: float = 0.0
    write_capacity: float = 0.0
    on_demand_limit: float = ON_DEMAND_TABLE_LIMIT

    @property
    def item_bytes(self) -> float:
        return self.size_bytes / max(self.item_count, 1)

    def units_per_second(self, job: str, ratio: float) -> float | None:
        """Read (export) or write (restore) units per second the job may spend; None: no table capacity."""
        if job == CONVERT:
            return None
        capacity = self.read_capacity if job == EXPORT else self.write_capacity
        return max((capacity if capacity > 0 else self.on_demand_limit) * ratio, 1.0)

    def units(self, job: str, consistent: bool = False) -> float:
        """Capacity units the whole job consumes."""
        if job == EXPORT:
            return self.size_bytes / (4 * KB if consistent else 8 * KB)
        if job == RESTORE:
            return self.item_count * max(1, math.ceil(self.item_bytes / KB))
        return 0.0


@dataclass(frozen=True)
class Estimate:
    job: str
    workers: int
    cpu_seconds: float
    """CPU-seconds of the whole job (all workers)."""
    capacity_seconds: float | None
    """The time the table's capacity alone allows (None: the job spends none)."""

    @property
    def seconds(self) -> float:
        return max(self.cpu_seconds / self.workers, self.capacity_seconds or 0.0)

    @property
    def limit(self) -> str:
        """What bounds this run: "CPU" (more workers help) or "capacity" (they do not)."""
        return "capacity" if self.capacity_seconds and self.capacity_seconds >= self.cpu_seconds / self.workers \
            else "CPU"

    @property
    def workers_at_capacity(self) -> int | None:
        """The fewest workers at which the table's capacity, not our CPU, sets the time."""
        if not self.capacity_seconds:
            return None
        return max(1, math.ceil(self.cpu_seconds / self.capacity_seconds))


def estimate(job: str, table: TableLoad, workers: int, ratio: float, per_core: PerCore = MEASURED,
             consistent: bool = False) -> Estimate:
    """The model's time for ``job`` on ``table`` with ``workers`` processes at ``ratio`` of its capacity."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {JOBS}, got {job!r}")
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cpu = per_core.cost(job).seconds(table.item_count, table.size_bytes)
    rate = table.units_per_second(job, ratio)
    capacity = None if rate is None else table.units(job, consistent) / rate
    return Estimate(job, workers, cpu, capacity)


def workers_within(job: str, table: TableLoad, seconds: float, ratio: float, per_core: PerCore = MEASURED,
                   consistent: bool = False) -> int | None:
    """The fewest workers that finish within ``seconds``; None when the capacity alone takes longer."""
    one = estimate(job, table, 1, ratio, per_core, consistent)
    if one.capacity_seconds is not None and one.capacity_seconds > seconds:
        return None
    return max(1, math.ceil(one.cpu_seconds / seconds))


def duration(seconds: float) -> str:
    """A rounded human duration: 42 s, 17 min, 3.2 h, 2.5 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def schedule_warning(table: TableLoad, name: str, max_workers: int, period_seconds: float, read_ratio: float,
                     per_core: PerCore = MEASURED, consistent: bool = False) -> str | None:
    """One line when an export with ``max_workers`` cannot finish within the schedule's period, else None."""
    if period_seconds <= 0 or table.size_bytes <= 0:
        return None
    run = estimate(EXPORT, table, max_workers, read_ratio, per_core, consistent)
    if run.seconds <= period_seconds:
        return None
    size = f"{table.size_bytes / 1e9:,.1f} GB, {table.item_count:,} items"
    head = (f"{name} ({size}): the sizing model says an export takes {duration(run.seconds)} with "
            f"max_workers={max_workers}, longer than the schedule's period of {duration(period_seconds)}")
    needed = workers_within(EXPORT, table, period_seconds, read_ratio, per_core, consistent)
    if needed is None:
        return (f"{head}; the table's read capacity at read_ratio={read_ratio} alone takes "
                f"{duration(run.capacity_seconds or 0.0)}: raise read_ratio or the table's capacity, "
                "or schedule less often (docs/workers-per-terabyte.md)")
    return f"{head}; set max_workers to at least {needed} (docs/workers-per-terabyte.md)"
