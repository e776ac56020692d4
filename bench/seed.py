"""Seeding the benchmark tables fast, and reusing them when already seeded.

dynalite started with ``--path`` keeps its tables, so a table whose item count
(counted with a parallel ``Select=COUNT`` scan: DescribeTable's ItemCount is
always 0 on dynalite) matches is reused as it is.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import boto3
from botocore.config import Config

from dynamodb_backup.formats.codec.wireform import wire_item_from_client
from dynamodb_backup.loading.fastwrite import batch_write_wire

from .items import TABLE_SPEC, make_item, split_range

log = logging.getLogger(__name__)
CONFIG = Config(retries={"mode": "standard", "max_attempts": 10}, max_pool_connections=16)


def client(endpoint: str) -> Any:
    return boto3.client("dynamodb", endpoint_url=endpoint, config=CONFIG)


def table_exists(ddb: Any, table: str) -> bool:
    try:
        ddb.describe_table(TableName=table)
        return True
    except ddb.exceptions.ResourceNotFoundException:
        return False


def delete_table(ddb: Any, table: str) -> None:
    if table_exists(ddb, table):
        ddb.delete_table(TableName=table)
        ddb.get_waiter("table_not_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def create_table(ddb: Any, table: str, spec: dict[str, Any] | None = None) -> None:
    ddb.create_table(TableName=table, **(spec or TABLE_SPEC))
    ddb.get_waiter("table_exists").wait(TableName=table, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})


def _count_segment(endpoint: str, table: str, segment: int, total: int) -> int:
    ddb = client(endpoint)
    count, kwargs = 0, {"TableName": table, "Select": "COUNT", "Segment": segment, "TotalSegments": total}
    while True:
        page = ddb.scan(**kwargs)
        count += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return count
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def count_items(endpoint: str, table: str, segments: int = 4) -> int:
    with ProcessPoolExecutor(segments) as pool:
        return sum(pool.map(_count_segment, [endpoint] * segments, [table] * segments,
                            range(segments), [segments] * segments))


def _write_range(endpoint: str, table: str, start: int, stop: int) -> int:
    ddb = client(endpoint)
    for lo in range(start, stop, 25):
        wire = [wire_item_from_client(make_item(i)) for i in range(lo, min(lo + 25, stop))]
        pending = batch_write_wire(ddb, table, wire).get("UnprocessedItems") or {}
        while pending:  # never on dynalite; kept for other servers
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return stop - start


def seed_table(endpoint: str, table: str, count: int, processes: int = 4) -> dict[str, Any]:
    """Make ``table`` hold exactly items 0..count-1; reuse it when it already does."""
    ddb = client(endpoint)
    started = time.perf_counter()
    if table_exists(ddb, table):
        found = count_items(endpoint, table)
        if found == count:
            log.info("reusing %s: %d items (counted in %.1f s)", table, found, time.perf_counter() - started)
            return {"table": table, "items": count, "reused": True, "seconds": time.perf_counter() - started}
        log.info("%s holds %d items, not %d: re-seeding", table, found, count)
        delete_table(ddb, table)
    create_table(ddb, table)
    runs = split_range(count, processes * 8)
    with ProcessPoolExecutor(processes) as pool:
        written = sum(pool.map(_write_range, [endpoint] * len(runs), [table] * len(runs),
                               [a for a, _ in runs], [b for _, b in runs]))
    seconds = time.perf_counter() - started
    log.info("seeded %s: %d items in %.1f s (%.0f items/s)", table, written, seconds, written / seconds)
    return {"table": table, "items": written, "reused": False, "seconds": seconds}
