"""What limits a restore's load, and how long it should take, said before the first write.

A put consumes write units on the table (and on each local index, from the table's capacity)
and on each global index the item lands in, from that index's own capacity; on AWS an index
out of capacity throttles the table. The load keeps every one of them within ``write ratio x
its capacity`` (``load.pacing_units``), so the slowest of them sets the pace. This module finds
which, from the target's DescribeTable and the backup's own figures (items, bytes), and estimates
the time. Upper estimates: every item is taken to land in every index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dynamodb_backup.backup.plan import TableFacts, capacity_rate
from dynamodb_backup.repository.inspection import BackupSource

WRITE_UNIT_BYTES = 1024
COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2")


@dataclass(frozen=True)
class ItemSize:
    bytes: int
    """Average item size in bytes, as DynamoDB counts it (or an estimate of it)."""
    source: str
    """Where the figure comes from, said in the line (how far to trust it)."""

    @property
    def write_units(self) -> int:
        return max(1, math.ceil(self.bytes / WRITE_UNIT_BYTES))


def average_item_size(source: BackupSource, items: int) -> ItemSize:
    """From the sidecar's DescribeTable (ItemCount, TableSizeBytes) when it has both, else from the files."""
    table = source.table or {}
    count, size = int(table.get("ItemCount") or 0), int(table.get("TableSizeBytes") or 0)
    if count > 0 and size > 0:
        return ItemSize(size // count, "the source table's DescribeTable")
    stored = source.total_bytes
    if items <= 0 or stored <= 0:
        return ItemSize(0, "no figures")
    if any(f.key.endswith(COMPRESSED_SUFFIXES) for f in source.files):
        return ItemSize(stored // items, "the backup's compressed bytes, a low estimate")
    return ItemSize(stored // items, "the backup's JSON text, a high estimate")


@dataclass(frozen=True)
class Limit:
    """One capacity the load must keep within: the table's, or a global index's."""

    name: str
    capacity: float
    """Write units per second: provisioned, or assumed for an on-demand table."""
    units_per_item: int
    items_per_second: float
    assumed: bool = False
    """An on-demand table: the capacity is the assumed ``on_demand_capacity``, not a provisioned figure."""

    def describe(self, ratio: float) -> str:
        kind = "assumed on-demand capacity" if self.assumed else "WCU"
        return (f"{self.name} ({self.capacity:,.0f} {kind} x write ratio {ratio:g}, {self.units_per_item} write "
                f"unit{'s' if self.units_per_item != 1 else ''} per item: {self.items_per_second:,.1f} items/s)")


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass(frozen=True)
class LoadPace:
    table: str
    items: int
    stored_bytes: int
    ratio: float
    size: ItemSize
    limits: list[Limit]
    """Slowest first."""

    @property
    def bound(self) -> Limit:
        return self.limits[0]

    @property
    def seconds(self) -> float:
        return self.items / self.bound.items_per_second if self.bound.items_per_second > 0 else math.inf

    @property
    def bound_by_index(self) -> bool:
        return self.bound.name.startswith("GSI")

    def line(self) -> str:
        others = "; ".join(limit.describe(self.ratio) for limit in self.limits[1:])
        return (f"pace: {self.bound.name} limits this load: {self.bound.describe(self.ratio)}"
                + (f"; the others allow more: {others}" if others else "")
                + f". {self.items:,} items, {self.stored_bytes / 1e6:,.1f} MB stored, about {self.size.bytes:,} "
                  f"bytes an item (from {self.size.source}): about {duration(self.seconds)} to load")

    def advice(self, creating: bool, on_demand: bool) -> str | None:
        """How to load faster, when an index or a long estimate makes it worth saying."""
        if on_demand or (not self.bound_by_index and self.seconds < 600):
            return None
        if creating:
            return ("to load faster: load_capacity on-demand (CLI --load-capacity on-demand) creates the table on "
                    "demand, loads and verifies, then applies the backup's provisioned capacities")
        what = "the index's" if self.bound_by_index else "the table's"
        return (f"to load faster: raise {what} write capacity, or load_capacity on-demand (CLI --load-capacity "
                "on-demand) switches the table to on-demand for the load and back to its capacities afterwards")


def load_pace(description: dict[str, Any], source: BackupSource, items: int, ratio: float,
              on_demand_capacity: float) -> LoadPace:
    """The limits of loading ``items`` of ``source`` into the table ``description`` describes."""
    facts = TableFacts.from_description(description)
    size = average_item_size(source, items)
    lsis = len(description.get("LocalSecondaryIndexes") or [])
    table_units = size.write_units * (1 + lsis)  # local indexes consume the table's capacity
    table_rate = capacity_rate(facts.write_capacity, facts.on_demand, ratio, on_demand_capacity)
    name = f"table {facts.name}" + (f" (with its {lsis} local index{'es' if lsis != 1 else ''})" if lsis else "")
    capacity = on_demand_capacity if facts.on_demand or facts.write_capacity <= 0 else facts.write_capacity
    limits = [Limit(name, capacity, table_units, table_rate / table_units, assumed=facts.on_demand)]
    if not facts.on_demand:
        for index in description.get("GlobalSecondaryIndexes") or []:
            wcu = float((index.get("ProvisionedThroughput") or {}).get("WriteCapacityUnits") or 0)
            if wcu <= 0:
                continue
            projected = (index.get("Projection") or {}).get("ProjectionType", "ALL")
            units = 1 if projected == "KEYS_ONLY" else size.write_units
            limits.append(Limit(f"GSI {index['IndexName']!r}", wcu, units, max(wcu * ratio, 1.0) / units))
    limits.sort(key=lambda limit: limit.items_per_second)
    return LoadPace(facts.name, items, source.total_bytes, ratio, size, limits)
