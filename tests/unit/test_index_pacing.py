"""Writes keep every global index within its own share of capacity, not only the table.

A narrow in-process fake stands in for DynamoDB here: neither local server
reports per-index consumed capacity (``ReturnConsumedCapacity=INDEXES``) as AWS does.
"""

from __future__ import annotations

from typing import Any

import pytest

from dynamodb_backup.aws.throttle import SimulatedClock, TokenBucket
from dynamodb_backup.backup.plan import index_write_scales
from dynamodb_backup.loading.fastwrite import WireBatchWriter
from dynamodb_backup.loading.load import BatchWriter, pacing_units
from dynamodb_backup.restore.steps import target_rate_reader
from dynamodb_backup.tablecopy.plan import CopyPlan, CopyRequest, rate_readers


def provisioned(table_wcu: int, **gsi_wcu: int) -> dict[str, Any]:
    return {
        "TableName": "T", "BillingModeSummary": {"BillingMode": "PROVISIONED"},
        "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": table_wcu},
        "GlobalSecondaryIndexes": [{"IndexName": name, "ProvisionedThroughput": {"WriteCapacityUnits": wcu}}
                                   for name, wcu in gsi_wcu.items()],
    }


def test_index_scales_put_each_index_in_the_tables_units():
    assert index_write_scales(provisioned(400, by_host=10, by_day=400)) == {"by_host": 40.0, "by_day": 1.0}
    assert index_write_scales(provisioned(400)) == {}
    on_demand = {**provisioned(0, by_host=0), "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}
    assert index_write_scales(on_demand) == {}


@pytest.mark.parametrize(("response", "scales", "units"), [
    ({"ConsumedCapacity": [{"TableName": "T", "CapacityUnits": 50.0}]}, {}, 50.0),
    # No breakdown from the server (dynalite answers INDEXES with the table only): the total.
    ({"ConsumedCapacity": [{"TableName": "T", "CapacityUnits": 50.0}]}, {"g": 40.0}, 50.0),
    # 25 puts: 25 table units, 25 in an index with a 40th of the capacity -> the index sets the pace.
    ({"ConsumedCapacity": [{"TableName": "T", "CapacityUnits": 50.0, "Table": {"CapacityUnits": 25.0},
                            "GlobalSecondaryIndexes": {"g": {"CapacityUnits": 25.0}}}]}, {"g": 40.0}, 1000.0),
    # Only 2 of the 25 items carried the index's key: the table sets the pace.
    ({"ConsumedCapacity": [{"TableName": "T", "CapacityUnits": 27.0, "Table": {"CapacityUnits": 25.0},
                            "GlobalSecondaryIndexes": {"g": {"CapacityUnits": 2.0}}}]}, {"g": 4.0}, 25.0),
    # Local indexes share the table's capacity.
    ({"ConsumedCapacity": [{"TableName": "T", "CapacityUnits": 35.0, "Table": {"CapacityUnits": 25.0},
                            "LocalSecondaryIndexes": {"l": {"CapacityUnits": 10.0}}}]}, {"g": 4.0}, 35.0),
    # PutItem answers with one entry, not a list.
    ({"ConsumedCapacity": {"TableName": "T", "CapacityUnits": 2.0, "Table": {"CapacityUnits": 1.0},
                           "GlobalSecondaryIndexes": {"g": {"CapacityUnits": 1.0}}}}, {"g": 40.0}, 40.0),
])
def test_pacing_units(response, scales, units):
    assert pacing_units(response, scales) == units


class IndexedTable:
    """Answers BatchWriteItem as AWS does for a table whose every item lands in index ``g``."""

    def __init__(self, clock: SimulatedClock) -> None:
        self.clock = clock
        self.calls: list[tuple[float, int]] = []
        self.modes: set[str] = set()
        self.meta = type("Meta", (), {"events": type("Events", (), {"register": lambda *a, **k: None})()})()

    def batch_write_item(self, RequestItems: dict[str, Any], ReturnConsumedCapacity: str) -> dict[str, Any]:
        self.modes.add(ReturnConsumedCapacity)
        (requests,) = RequestItems.values()
        n = len(requests)
        self.calls.append((self.clock.now, n))
        self.clock.now += 0.005
        entry: dict[str, Any] = {"TableName": "T", "CapacityUnits": 2.0 * n}
        if ReturnConsumedCapacity == "INDEXES":
            entry.update(Table={"CapacityUnits": float(n)}, GlobalSecondaryIndexes={"g": {"CapacityUnits": float(n)}})
        return {"UnprocessedItems": {}, "ConsumedCapacity": [entry]}


@pytest.mark.parametrize("fast", [False, True])
def test_a_thin_index_sets_the_pace_of_a_load(fast, monkeypatch):
    """Table 400 WCU, index 10 WCU, ratio 0.5: the index must see about 5 units/s, not 100."""
    clock = SimulatedClock()
    client = IndexedTable(clock)
    description = provisioned(400, g=10)
    bucket = TokenBucket(rate=0.5 * 400, clock=clock, sleep=clock.sleep)
    scales = index_write_scales(description)
    if fast:
        # The fast path swaps the request body in a botocore hook; here the fake sees the call's arguments.
        monkeypatch.setattr("dynamodb_backup.loading.fastwrite.batch_write_wire",
                            lambda c, t, items, mode: c.batch_write_item({t: items}, mode))
        writer: Any = WireBatchWriter(client, "T", ["pk"], bucket, index_scales=scales, sleep=clock.sleep)
        for i in range(3000):
            writer.put(b'{"pk":{"s":"k%d"}}' % i, f"f:{i + 1}")
    else:
        writer = BatchWriter(client, "T", ["pk"], bucket, index_scales=scales, sleep=clock.sleep)
        for i in range(3000):
            writer.put({"pk": {"S": f"k{i}"}}, f"f:{i + 1}")
    writer.flush()

    assert client.modes == {"INDEXES"}
    assert sum(n for _, n in client.calls) == 3000
    index_units_per_second = 3000 / clock.now
    assert 4.0 < index_units_per_second <= 5.0 * 1.1, index_units_per_second


def test_without_indexes_the_load_runs_at_the_tables_share():
    clock = SimulatedClock()
    client = IndexedTable(clock)
    bucket = TokenBucket(rate=0.5 * 400, clock=clock, sleep=clock.sleep)
    writer = BatchWriter(client, "T", ["pk"], bucket, index_scales=index_write_scales(provisioned(400)),
                         sleep=clock.sleep)
    for i in range(20_000):
        writer.put({"pk": {"S": f"k{i}"}}, f"f:{i + 1}")
    writer.flush()
    assert client.modes == {"TOTAL"}
    # TOTAL charges the table and index units together (2 per item): 100 items/s at 200 units/s.
    assert 90 < 20_000 / clock.now <= 110


class Described:
    """A narrow fake DynamoDB client: DescribeTable answers whatever ``table`` now says."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": self.table}


def test_capacity_re_reads_retune_the_index_scales_the_writers_share():
    """A table and its index scale separately: the scales follow, or a thin index would be overrun."""
    client = Described(provisioned(100, g=10))
    scales = index_write_scales(client.table)
    restore_rate = target_rate_reader(client, "T", 0.5, 10_000.0, 1.0, scales)
    plan = CopyPlan(source_table="S", dest_table="T", total_segments=4, read_rate=1.0, write_rate=1.0,
                    key_names=["pk"], dest_was_empty=True, created_dest=False, dest_index_scales=dict(scales))
    _, copy_rate = rate_readers(client, client, plan, CopyRequest("S", "T", write_ratio=0.5), [0, 1, 2, 3],
                                plan.dest_index_scales)
    assert scales == plan.dest_index_scales == {"g": 10.0}
    client.table = provisioned(1000, g=10)  # auto-scaling took the table up, not the index
    assert restore_rate() == copy_rate() == 500.0
    assert scales == plan.dest_index_scales == {"g": 100.0}
