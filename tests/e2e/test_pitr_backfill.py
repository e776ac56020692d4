"""`airflow backfill create` in pitr mode: each past folder holds the table as it was at its date.

The session started a writer (``pitr_history.py``) that writes, updates and deletes items between
three minute boundaries, keeping its own record of the table at each. This test registers a pitr
entry with a schedule of every minute (so its past dates lie inside the recovery window of a table
created minutes ago), backfills those three minutes under the real scheduler, and holds each
folder against the writer's record, not against the stand-in's journal.
"""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from typing import Any

import pytest
from test_backfill import backfill

from dynamodb_backup.formats.codec.datapipeline import decode_line

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


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
    history = e2e.pitr_history
    table = history.table
    expected = history.wait()
    first, second, third = sorted(expected)
    assert len({json.dumps(v, sort_keys=True) for v in expected.values()}) == 3, "the three states must differ"

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
