"""Planning a table-to-table copy: the request, and the plan every worker and section must agree on.

Why a plan: a copy split over several machines (sections) or mapped tasks only
adds up to the whole table if every share uses the same segment count and the
same destination. So the plan is fixed once, from both tables' descriptions,
and recorded; later shares check theirs against it instead of re-reading a
table that may have changed (recreated, say). Rates start from the plan and
then follow each table's capacity as it scales (:func:`rate_readers`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tablecreate import (
    check_same_keys,
    create_table_like,
    key_names,
    table_exists,
    wait_until_active,
)
from dynamodb_backup.aws.tableinfo import describe_table, read_table_info, table_identity
from dynamodb_backup.backup.plan import (
    DEFAULT_ON_DEMAND_CAPACITY,
    GIB,
    MAX_SEGMENTS,
    TableFacts,
    capacity_rate,
    check_ratio,
    index_write_scales,
    retune_index_scales,
    split_segments,
)
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import check_table_name

log = logging.getLogger(__name__)
RateReaders = tuple[Callable[[], float], Callable[[], float]]
"""(read units/s on the source, write units/s on the destination) for one share, as of now."""


def auto_segments(facts: TableFacts, on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY) -> int:
    """The archived tool's rule, 10 x max(ceil((RCU + 3 WCU) / 3000), ceil(GB) / 10), in integers.

    On-demand tables report no capacity, so the assumed capacity stands in for both.
    """
    rcu, wcu = ((on_demand_capacity, on_demand_capacity) if facts.on_demand
                else (facts.read_capacity, facts.write_capacity))
    by_capacity = 10 * math.ceil((rcu + 3 * wcu) / 3000)
    by_size = -(-facts.size_bytes // GIB)
    return max(1, min(MAX_SEGMENTS, max(by_capacity, by_size)))


def section_segments(total_segments: int, total_sections: int, section: int) -> list[int]:
    """The contiguous run of segments section ``section`` (0-based) of ``total_sections`` copies."""
    if total_sections < 1:
        raise ParameterError(f"--total-sections must be at least 1, got {total_sections}")
    if not 0 <= section < total_sections:
        raise ParameterError(f"--section must be between 0 and {total_sections - 1}, got {section}")
    if total_sections > total_segments:
        raise ParameterError(f"--total-sections ({total_sections}) cannot exceed --segments ({total_segments}): "
                             "each section needs at least one segment")
    return split_segments(total_segments, total_sections)[section]


@dataclass
class CopyRequest:
    source_table: str
    dest_table: str
    read_ratio: float = 0.25
    write_ratio: float = 0.5
    segments: int | None = None
    create_dest: bool = False
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY
    consistent_read: bool = False

    def check(self) -> None:
        check_table_name(self.source_table, "source_table")
        check_table_name(self.dest_table, "dest_table")
        check_ratio(self.read_ratio, "read_ratio")
        check_ratio(self.write_ratio, "write_ratio")
        if self.segments is not None and not 1 <= self.segments <= MAX_SEGMENTS:
            raise ParameterError(f"segments must be between 1 and {MAX_SEGMENTS}, got {self.segments}")
        if self.on_demand_capacity <= 0:
            raise ParameterError(f"on_demand_capacity must be positive, got {self.on_demand_capacity}")


@dataclass(frozen=True)
class CopyPlan:
    """What every worker of one copy must agree on."""

    source_table: str
    dest_table: str
    total_segments: int
    read_rate: float
    write_rate: float
    key_names: list[str]
    dest_was_empty: bool
    created_dest: bool
    source_items: int = 0
    """DescribeTable's ItemCount (hours stale): for progress estimates only."""
    dest_identity: str = ""
    """Which incarnation of the destination table this is (a recreated table is another)."""
    dest_index_scales: dict[str, float] = field(default_factory=dict)
    """The destination's global indexes, to keep within their share of capacity (``backup.plan.index_write_scales``)."""
    consistent_read: bool = False
    """Scan the source with strongly consistent reads (twice the read units)."""

    def rates(self, segments: Sequence[int]) -> tuple[float, float]:
        """(read, write) units per second for a share of the segments, in proportion to its size."""
        share = len(segments) / self.total_segments
        return self.read_rate * share, self.write_rate * share

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CopyPlan:
        return cls(**{**data, "key_names": list(data["key_names"])})


def prepare_copy(source: Any, dest: Any, request: CopyRequest) -> CopyPlan:
    """Check both tables, create the destination if asked, and fix segments and rates."""
    request.check()
    info = read_table_info(source, request.source_table)
    existing = table_exists(dest, request.dest_table)
    created = False
    if existing is None:
        if not request.create_dest:
            raise ParameterError(f"dest_table: table {request.dest_table!r} does not exist at the destination; "
                                 "create it, or ask for it to be created (--create-dest / create_dest)")
        try:
            create_table_like(dest, info.description, request.dest_table,
                              time_to_live=info.time_to_live, tags=info.tags)
            created = True
        except ClientError as exc:  # another section created it first
            if exc.response.get("Error", {}).get("Code") != "ResourceInUseException":
                raise
    wait_until_active(dest, request.dest_table)
    description = describe_table(dest, request.dest_table)
    check_same_keys(info.description, description, f"dest_table {request.dest_table!r}")
    if table_identity(info.description) == table_identity(description):
        raise ParameterError("dest_table: source and destination are the same table")
    source_facts, dest_facts = info.facts, TableFacts.from_description(description)
    total = request.segments or auto_segments(source_facts, request.on_demand_capacity)
    empty = call_with_retries(lambda: dest.scan(TableName=request.dest_table, Limit=1)).get("Count", 0) == 0
    plan = CopyPlan(
        source_table=request.source_table, dest_table=request.dest_table, total_segments=total,
        read_rate=capacity_rate(source_facts.read_capacity, source_facts.on_demand, request.read_ratio,
                                request.on_demand_capacity),
        write_rate=capacity_rate(dest_facts.write_capacity, dest_facts.on_demand, request.write_ratio,
                                 request.on_demand_capacity),
        key_names=key_names(info.description), dest_was_empty=empty, created_dest=created,
        source_items=source_facts.item_count, dest_identity=table_identity(description),
        dest_index_scales=index_write_scales(description), consistent_read=request.consistent_read,
    )
    log.info("copy plan %s -> %s: %d segments, %.1f read units/s, %.1f write units/s, destination %s",
             plan.source_table, plan.dest_table, total, plan.read_rate, plan.write_rate,
             "created" if created else ("empty" if empty else "NOT empty"))
    return plan


def rate_readers(source: Any, dest: Any, plan: CopyPlan, request: CopyRequest, segments: Sequence[int],
                 dest_index_scales: dict[str, float] | None = None) -> RateReaders:
    """Re-read each table's capacity (tables scale) and return this share's rates on both sides.

    ``dest_index_scales`` (the dict the writers pace by) is updated in place, since
    a table and its indexes scale separately.
    """
    share = len(segments) / plan.total_segments

    def rate(client: Any, table: str, ratio: float, write: bool) -> float:
        description = describe_table(client, table)
        facts = TableFacts.from_description(description)
        if write:
            retune_index_scales(dest_index_scales, description)
        capacity = facts.write_capacity if write else facts.read_capacity
        return capacity_rate(capacity, facts.on_demand, ratio, request.on_demand_capacity) * share

    return (lambda: rate(source, plan.source_table, request.read_ratio, False),
            lambda: rate(dest, plan.dest_table, request.write_ratio, True))
