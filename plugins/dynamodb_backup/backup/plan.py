"""Export planning: how many scan segments, which worker scans which, at what rate.

Pure functions over a table description; no AWS calls.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from dynamodb_backup.aws.tableinfo import TableFacts
from dynamodb_backup.backup.sizing import TableLoad, schedule_warning
from dynamodb_backup.errors import ParameterError

__all__ = ["TableFacts"]  # re-exported: planning's callers know it from here

GIB = 1024**3
MAX_SEGMENTS = 1_000_000
#: The EMR connector assumed 40,000 units for on-demand tables; its maintainers
#: called 10,000 the safe figure for a new one. We default to the safe figure.
DEFAULT_ON_DEMAND_CAPACITY = 10_000.0
MIN_RATIO, MAX_RATIO = 0.01, 1.5


def index_write_scales(table: dict[str, Any]) -> dict[str, float]:
    """For a provisioned table: each GSI's name -> the table's write capacity / the index's.

    A put that lands in a global secondary index also consumes that index's own
    write capacity, and an index that runs out throttles writes to the table.
    Scaling an index's consumption by this factor puts it in the table's units,
    so one budget of ``ratio x table capacity`` keeps every index within
    ``ratio x its capacity`` too. On-demand tables have no per-index capacity: {}.
    """
    facts = TableFacts.from_description(table)
    if facts.on_demand or facts.write_capacity <= 0:
        return {}
    scales: dict[str, float] = {}
    for index in table.get("GlobalSecondaryIndexes") or []:
        capacity = float((index.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits") or 0)
        if capacity > 0:
            scales[index["IndexName"]] = facts.write_capacity / capacity
    return scales


def retune_index_scales(scales: dict[str, float] | None, table: dict[str, Any]) -> None:
    """Update in place the scales writers pace by: a table and its indexes scale separately."""
    if scales is not None:
        scales.clear()
        scales.update(index_write_scales(table))


def check_ratio(ratio: float, name: str = "read_ratio") -> float:
    if not MIN_RATIO <= ratio <= MAX_RATIO:
        raise ParameterError(f"{name} must be between {MIN_RATIO} and {MAX_RATIO}, got {ratio}")
    return ratio


def capacity_rate(capacity: float, on_demand: bool, ratio: float, on_demand_capacity: float) -> float:
    """Units per second the whole job may consume: ratio x capacity.

    On-demand tables have no provisioned figure, so an assumed capacity stands in.
    """
    base = on_demand_capacity if on_demand or capacity <= 0 else capacity
    return max(base * ratio, 1.0)


#: A segment's least share of a table whose size is known: one scan reads a 64 MiB segment at several hundred
#: units a second, so more segments than this only add files (50 items on an on-demand table made 21).
MIN_SEGMENT_BYTES = 64 * 1024**2


def choose_segments(size_bytes: int, read_rate: float) -> int:
    """Data Pipeline's rule: one segment per GiB, and one per 100 units of rate -- but no more than one per
    ``MIN_SEGMENT_BYTES`` of a table whose size DescribeTable reports (0 may be a stale figure: the rate rule)."""
    by_size = math.ceil(size_bytes / GIB)
    by_rate = math.ceil(read_rate / 100)
    if size_bytes > 0:
        by_rate = min(by_rate, math.ceil(size_bytes / MIN_SEGMENT_BYTES))
    return max(1, min(MAX_SEGMENTS, max(by_size, by_rate)))


def split_segments(total_segments: int, shares: int) -> list[list[int]]:
    """Split segments 0..total-1 into at most ``shares`` contiguous, near-equal runs."""
    if total_segments < 1 or total_segments > MAX_SEGMENTS:
        raise ParameterError(f"segments must be between 1 and {MAX_SEGMENTS}, got {total_segments}")
    if shares < 1:
        raise ParameterError(f"workers must be at least 1, got {shares}")
    shares = min(shares, total_segments)
    base, extra = divmod(total_segments, shares)
    runs: list[list[int]] = []
    start = 0
    for i in range(shares):
        size = base + (1 if i < extra else 0)
        runs.append(list(range(start, start + size)))
        start += size
    return runs


@dataclass(frozen=True)
class WorkerShare:
    """One worker's part of a parallel scan and its slice of the rate."""

    worker: int
    segments: list[int]
    total_segments: int
    read_rate: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerShare:
        return cls(
            worker=int(data["worker"]),
            segments=[int(s) for s in data["segments"]],
            total_segments=int(data["total_segments"]),
            read_rate=float(data["read_rate"]),
        )


@dataclass(frozen=True)
class ScanPlan:
    table: str
    total_segments: int
    read_rate: float
    shares: list[WorkerShare]


def plan_scan(
    facts: TableFacts,
    ratio: float,
    segments: int | None = None,
    max_workers: int = 4,
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY,
) -> ScanPlan:
    """Choose segments and worker shares; each share's rate is proportional to its segments."""
    check_ratio(ratio)
    rate = capacity_rate(facts.read_capacity, facts.on_demand, ratio, on_demand_capacity)
    total = segments if segments is not None else choose_segments(facts.size_bytes, rate)
    runs = split_segments(total, max_workers)
    shares = [
        WorkerShare(worker=i, segments=run, total_segments=total, read_rate=rate * len(run) / total)
        for i, run in enumerate(runs)
    ]
    return ScanPlan(table=facts.name, total_segments=total, read_rate=rate, shares=shares)


def schedule_fit_warning(
    facts: TableFacts, plan: ScanPlan, ratio: float, period_seconds: float | None,
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY, consistent: bool = False,
) -> str | None:
    """One line when the sizing model says this plan's workers cannot finish within the schedule's period.

    The model (:mod:`backup.sizing`) is paced as the plan is: at ``ratio`` of the provisioned
    capacity, or of ``on_demand_capacity`` for an on-demand table.
    """
    if not period_seconds:
        return None
    provisioned = not facts.on_demand
    table = TableLoad(facts.size_bytes, facts.item_count, facts.read_capacity if provisioned else 0.0,
                      facts.write_capacity if provisioned else 0.0, on_demand_limit=on_demand_capacity)
    return schedule_warning(table, facts.name, len(plan.shares), period_seconds, ratio, consistent=consistent)
