"""How closely an export keeps to its read ratio, measured by the fault proxy.

``measure(ratio, ...)`` creates a provisioned table, fills it with enough data
that exporting it at ``ratio`` takes at least ``seconds``, exports it through a
``DynamoDBFaultProxy`` that enforces the table's capacity, and reports the read
units per second the proxy saw consumed against the target ``ratio x RCU``.

Two clocks:

* ``simulated=True`` (default, CI-cheap): the exporter's token bucket and the
  proxy share a ``SimulatedClock``; sleeping advances it instantly, so a
  60-second export takes a second or two of real time. Every page is a real
  Scan against dynalite, charged the ConsumedCapacity dynalite computes; what is
  simulated is only the passing of time. It checks the pacing arithmetic (page
  sizing, debt, charging) end to end, but not wall-clock effects.
* ``simulated=False``: real time; the export takes ``seconds`` for real (run
  several ratios in parallel threads to save time).

The result: ``{"ratio", "target", "achieved", "accuracy" (= achieved/target),
"seconds", "consumed", "pages", "throttled", "items", "simulated"}``.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.aws import clients
from dynamodb_backup.aws.throttle import SimulatedClock, TokenBucket
from dynamodb_backup.backup.export import ExportSettings, export_share
from dynamodb_backup.backup.job import BackupRequest, plan_backup
from dynamodb_backup.formats.layout import S3Location

from .dynamodb_proxy import DynamoDBFaultProxy

#: An item of about 1 KB: a scan of 8 of them costs 1 read unit (eventually consistent).
ITEM_PAYLOAD = 1000


def make_table(dynamodb: Any, name: str, rcu: float, items: int) -> None:
    dynamodb.create_table(
        TableName=name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        ProvisionedThroughput={"ReadCapacityUnits": int(rcu), "WriteCapacityUnits": 1000},
    )
    while dynamodb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)
    filler = "x" * ITEM_PAYLOAD
    for start in range(0, items, 25):
        pending: dict[str, Any] = {name: [{"PutRequest": {"Item": {"pk": {"S": f"item-{i:08d}"}, "v": {"S": filler}}}}
                                          for i in range(start, min(start + 25, items))]}
        while pending:
            pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}


def measure(
    ratio: float, *, dynamodb_url: str, s3_url: str, bucket: str | None = None, provisioned_rcu: float = 10.0,
    seconds: float = 60.0, simulated: bool = True, segments: int = 2, seed: int = 0,
) -> dict[str, Any]:
    """Export a table at ``ratio`` through a capacity-enforcing proxy; report achieved / target read units/s.

    ``dynamodb_url``: dynalite; ``s3_url``: moto (a bucket is created unless given).
    The table gets ``provisioned_rcu`` read units and enough ~1 KB items to last
    ``seconds`` at the target rate (plus 10%).
    """
    target = ratio * provisioned_rcu
    units = target * seconds * 1.1
    items = int(units * 8) + 8
    direct = clients.client("dynamodb", endpoint_url=dynamodb_url)
    s3 = clients.client("s3", endpoint_url=s3_url)
    table = f"rate-{uuid.uuid4().hex[:12]}"
    make_table(direct, table, provisioned_rcu, items)
    if bucket is None:
        bucket = f"rate-{uuid.uuid4().hex[:12]}"
        s3.create_bucket(Bucket=bucket)
    clock = SimulatedClock(1000.0) if simulated else None
    proxy = DynamoDBFaultProxy(dynamodb_url, seed=seed, initial_burst_seconds=1.0, clock=clock or time.monotonic)
    with proxy:
        dynamodb = clients.client("dynamodb", endpoint_url=proxy.url)
        request = BackupRequest(table=table, destination=S3Location(bucket, "rate"),
                                logical_date=datetime.now(UTC).replace(microsecond=0), read_ratio=ratio,
                                segments=segments, max_workers=1,
                                settings=ExportSettings(file_max_items=1_000_000))
        plan = plan_backup(dynamodb, s3, request)
        now = clock if clock else time.monotonic
        started = now()
        pages = 0
        exported = 0
        for share in plan.shares:
            tokens = (TokenBucket(rate=share.read_rate, clock=clock, sleep=clock.sleep) if clock
                      else TokenBucket(rate=share.read_rate))
            result = export_share(dynamodb, s3, table, plan.folder, share, request.settings, bucket=tokens)
            exported += result.items
        elapsed = now() - started
        state = proxy.tables[table]
        pages = len(state.read_timeline)
        consumed = state.consumed_read
        throttled = proxy.counters["capacity_exceeded"]
    direct.delete_table(TableName=table)
    achieved = consumed / elapsed if elapsed > 0 else float("inf")
    return {
        "ratio": ratio, "target": target, "achieved": achieved, "accuracy": achieved / target,
        "seconds": elapsed, "consumed": consumed, "pages": pages, "throttled": throttled,
        "items": exported, "simulated": simulated,
    }
