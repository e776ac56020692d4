"""`airflow backfill create` in pitr mode: each past folder holds the table as it was at its date.

The test writes, updates and deletes items between minute boundaries, keeping its own record of
the table at each boundary, then backfills those three minutes under the real scheduler (the
entry's schedule is every minute, so its past dates lie inside the recovery window of a table
created a few minutes ago). Each folder must equal the test's own record, not the stand-in's journal.
"""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from airflow_e2e import SUFFIX
from test_backfill import backfill

from demo_data import TABLE_SPECS, create_table
from dynamodb_backup.formats.codec.datapipeline import decode_line

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

Key = tuple[str, str]


def next_minute() -> datetime:
    """Wait until the next minute boundary has passed; return it (writes from now on fall after it)."""
    boundary = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    while datetime.now(UTC) <= boundary:
        time.sleep(0.1)
    return boundary


def item(resource: str, version: int) -> dict[str, Any]:
    return {"resource": {"S": resource}, "timestamp": {"S": "2024-01-01T00:00:00Z"},
            "host": {"S": f"h{version % 3}"}, "version": {"N": str(10 ** 25 + version)}}


class History:
    """The table as the test wrote it: every write goes to DynamoDB and to ``state``."""

    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb, self.table, self.state = ddb, table, {}

    def put(self, resource: str, version: int) -> None:
        self.ddb.put_item(TableName=self.table, Item=item(resource, version))
        self.state[resource] = item(resource, version)

    def delete(self, resource: str) -> None:
        self.ddb.delete_item(TableName=self.table, Key={"resource": {"S": resource},
                                                        "timestamp": {"S": "2024-01-01T00:00:00Z"}})
        self.state.pop(resource, None)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.state.items()}


def folder_items(e2e, table: str, moment: datetime) -> dict[str, dict[str, Any]]:
    prefix = f"{e2e.prefix}/{table}/{moment:%Y-%m-%d-%H-%M-%S}/"
    found: dict[str, dict[str, Any]] = {}
    for key in e2e.keys(e2e.bucket, prefix):
        name = key[len(prefix):]
        if "/" in name or name.startswith("_") or name == "manifest":
            continue
        for line in gzip.decompress(e2e.read(e2e.bucket, key)).splitlines():
            decoded = decode_line(line)
            found[decoded["resource"]["S"]] = decoded
    return found


def test_pitr_backfill_folders_hold_the_table_at_their_dates(e2e):
    table = f"e2e-pitr-{SUFFIX}"
    ddb = e2e.local_aws.dynamodb_client()
    create_table(ddb, table, TABLE_SPECS["ReferrerCounts"])
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    history = History(ddb, table)
    expected: dict[datetime, dict[str, dict[str, Any]]] = {}

    next_minute()
    for i in range(40):
        history.put(f"r{i:02d}", 1)
    first = next_minute()
    expected[first] = history.snapshot()
    for i in range(0, 10):
        history.put(f"r{i:02d}", 2)          # updated
    for i in range(10, 15):
        history.delete(f"r{i:02d}")          # deleted
    for i in range(40, 50):
        history.put(f"r{i:02d}", 1)          # inserted
    second = next_minute()
    expected[second] = history.snapshot()
    for i in range(15, 40):
        history.delete(f"r{i:02d}")
    history.put("r00", 3)
    history.put("r12", 1)                    # deleted, then back
    third = next_minute()
    expected[third] = history.snapshot()
    history.put("r99", 1)                    # after the last date: in no folder
    for i in range(0, 5):
        history.delete(f"r{i:02d}")
    assert len({json.dumps(v, sort_keys=True) for v in expected.values()}) == 3, "the three states must differ"

    # Register the DAG only now, one boundary later, so the scheduler's own runs (every minute) start
    # after the backfilled dates and never take them.
    next_minute()
    doc = json.loads(e2e.backups_file.read_text())
    doc["backups"].append({"table": table, "mode": "pitr", "schedule": "* * * * *", "pitr_poll_seconds": 2})
    e2e.backups_file.write_text(json.dumps(doc))
    dag_id = e2e.dag_id(table)
    e2e.airflow.wait_for_dag(dag_id)

    backfill(e2e, dag_id, first.isoformat(), third.isoformat(), timeout=300.0)

    runs = {datetime.fromisoformat(r["logical_date"]): r for r in e2e.airflow.dag_runs(dag_id)
            if r["logical_date"] and r["run_type"] == "backfill"}
    assert set(runs) == {first, second, third}, sorted(runs)
    assert all(r["state"] == "success" for r in runs.values()), runs
    for moment in (first, second, third):
        assert folder_items(e2e, table, moment) == expected[moment], f"folder {moment:%H:%M} differs"
        sidecar = json.loads(e2e.read(e2e.bucket,
                                      f"{e2e.prefix}/{table}/{moment:%Y-%m-%d-%H-%M-%S}/_dynamodb_backup.json"))
        assert sidecar["source"]["mode"] == "pitr"
        assert sidecar["snapshot_start"].startswith(f"{moment:%Y-%m-%dT%H:%M:%S}")
