"""The console's views over real backups in moto: tables, pages of folders, drills, a run's read units."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from demo_data import put_items
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.console import render
from dynamodb_backup.console.views import RunRef, TableSource, backup_page, restore_view, run_view, table_rows
from dynamodb_backup.formats.catalog import DRILLS, read_newest, write_newest
from dynamodb_backup.formats.layout import SIDECAR, SUCCESS, S3Location, backup_folder
from dynamodb_backup.retention.inventory import table_folders

DAYS = [datetime(2024, 5, d, tzinfo=UTC) for d in (1, 2, 3)]


def counting(s3: Any) -> tuple[Any, Counter[str]]:
    """``s3`` with a count of the S3 operations it calls."""
    calls: Counter[str] = Counter()
    s3.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    return s3, calls


def items(n: int) -> list[dict]:
    return [{"pk": {"S": f"k{i}"}, "v": {"N": str(i)}} for i in range(n)]


def test_pages_drills_and_read_units_of_real_backups(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, items(300))
    base = S3Location(s3_bucket, "b")
    sidecars = []
    for day in DAYS:
        request = BackupRequest(table=table_name, destination=base, logical_date=day, read_ratio=1.0, segments=4,
                                max_workers=2, settings=ExportSettings(file_max_items=100))
        sidecars.append(run_backup(client_factory(), request))
    # The seal pointed the table's _newest.json at each folder in turn; the tables page reads it and HEADs its
    # _SUCCESS (no listing), lists only when the pointer is overdue, and retention never sees it as a folder.
    source = TableSource(table_name, base, "@daily", configured=True)
    table_base = base.child(table_name)
    assert read_newest(s3, table_base) == "2024-05-03-00-00-00"
    assert not write_newest(s3, table_base.child("2024-05-01-00-00-00"))  # a backfill never moves it back
    counted, calls = counting(local_aws.s3_client())
    row = table_rows(lambda conn: counted, [source])[0]
    assert (row.newest, row.listed, row.stale) == ("2024-05-03-00-00-00", False, False)
    assert calls == {"GetObject": 1, "HeadObject": 1}, calls
    calls.clear()
    overdue = table_rows(lambda conn: counted, [source], now=datetime.now(UTC) + timedelta(hours=37))[0]
    assert overdue.listed and overdue.stale and overdue.newest == "2024-05-03-00-00-00" and calls["ListObjectsV2"]
    assert [f.uri for f in table_folders(s3, base, table_name)] == [
        backup_folder(base, table_name, d).uri for d in DAYS]

    # The newest night died before its seal (no _SUCCESS, no sidecar); a foreign key sits beside the folders.
    newest = backup_folder(base, table_name, DAYS[2])
    s3.delete_object(Bucket=s3_bucket, Key=newest.key(SUCCESS))
    s3.delete_object(Bucket=s3_bucket, Key=newest.key(SIDECAR))
    drills = base.child(table_name, DRILLS)
    s3.put_object(Bucket=s3_bucket, Key=drills.key("2024-05-02-00-00-00.json"), Body=orjson.dumps(
        {"folder": "x", "result": "passed", "duration_seconds": 3.5, "items": 300}))
    s3.put_object(Bucket=s3_bucket, Key=drills.key("2024-05-01-00-00-00.json"), Body=b"{not json")

    # The seal kept each worker's read units per 5 s; together they are the run's total.
    sidecar = sidecars[0]
    assert sidecar is not None and len(sidecar.workers) == 2 and sidecar.read_rate
    for worker in sidecar.workers:
        assert worker["usage"]["interval_seconds"] == 5.0 and worker["usage"]["units"], worker
        assert abs(sum(worker["usage"]["units"]) - worker["consumed_read_units"]) < 0.01
    view = run_view(s3, backup_folder(base, table_name, DAYS[0]))
    assert view.complete and [w.items for w in view.workers] == [w["items"] for w in sidecar.workers]
    assert sum(w.items for w in view.workers) == 300
    assert abs(view.usage.total - sidecar.consumed_read_units) < 0.01 and view.allowed_rate == sidecar.read_rate
    assert view.series and all(v >= 0 for _, v in view.series)
    html = render.run_html(view, "dag", "run")
    assert "<svg" in html and "class='allowed" in html and "class='consumed'" in html

    # A page of two, newest first, then the rest through the cursor.
    running = {"2024-05-03-00-00-00": RunRef(source.dag_id or "", "manual__x", "running")}
    page = backup_page(s3, source, size=2, runs=lambda dag_id, names: {n: running[n] for n in names if n in running})
    assert [(r.name, r.status) for r in page.rows] == [("2024-05-03-00-00-00", "running"),
                                                       ("2024-05-02-00-00-00", "complete")]
    assert page.total == 3 and page.next_before == "2024-05-02-00-00-00"
    assert page.rows[1].items == 300 and page.rows[1].mode == "scan" and page.rows[1].files == 4
    assert page.rows[1].drill is not None and page.rows[1].drill["result"] == "passed"
    assert page.rows[0].drill is None and page.rows[0].items is None
    rest = backup_page(s3, source, before=page.next_before, size=2)
    assert [(r.name, r.status) for r in rest.rows] == [("2024-05-01-00-00-00", "complete")]
    assert rest.next_before is None and rest.rows[0].drill == {"result": "unreadable", "error": rest.rows[0].drill[
        "error"]}
    html = render.backups_html(page, "/dynamodb-backups", "")
    assert "Restore&hellip;" in html and "/dags/dynamodb_backup_" in html and "drill-passed" in html

    # Overview: the pointer names the 3rd, which has no _SUCCESS now, so the listing finds the 2nd; stale once a
    # day and a half passed.
    fresh = table_rows(lambda conn: s3, [source])[0]
    assert fresh.newest == "2024-05-02-00-00-00" and fresh.listed and not fresh.stale, fresh
    late = table_rows(lambda conn: s3, [source], now=datetime.now(UTC) + timedelta(hours=37))[0]
    assert late.stale
    unscheduled = table_rows(lambda conn: s3, [TableSource(table_name, base, None)],
                             now=datetime.now(UTC) + timedelta(days=30))[0]
    assert not unscheduled.stale
    assert "class='stale'" in render.tables_html([late], "/dynamodb-backups")


def test_a_restore_records_its_write_units_beside_its_checkpoints(local_aws, s3_bucket, table_name):
    from dynamodb_backup.loading.checkpoint import default_checkpoint_base
    from dynamodb_backup.restore.job import RestoreRequest, run_restore

    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, items(200))
    base = S3Location(s3_bucket, "b")
    run_backup(client_factory(), BackupRequest(table=table_name, destination=base, logical_date=DAYS[0],
                                               read_ratio=1.0, segments=2, max_workers=2))
    folder = backup_folder(base, table_name, DAYS[0])
    outcome = run_restore(client_factory(), RestoreRequest(folder=folder, table=f"{table_name}-r", write_ratio=1.0,
                                                           workers=2, create_table=True, run_id="run-1"))
    assert outcome.load.items == 200
    prefix = default_checkpoint_base(folder).key("")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=prefix).get("Contents", [])
            if ".write-units/" in o["Key"]]
    assert keys, f"no write units recorded under {prefix}"
    records = [orjson.loads(s3.get_object(Bucket=s3_bucket, Key=k)["Body"].read()) for k in keys]
    recorded = sum(sum(r["usage"]["units"]) for r in records)
    assert abs(recorded - outcome.load.consumed_write_units) < 0.01, (recorded, outcome.load.consumed_write_units)
    assert all(r["write_rate"] > 0 and r["usage"]["interval_seconds"] == 5.0 for r in records)

    # The run tab's view, from the location the load returned: per-worker figures and the chart.
    assert outcome.load.write_units is not None
    view = restore_view(s3, S3Location.parse(outcome.load.write_units), folder, f"{table_name}-r")
    assert view.kind == "write" and view.complete and len(view.workers) == len(records) == 2
    assert sum(w.items for w in view.workers) == 200 and all(w.bytes > 0 and w.seconds is not None
                                                             for w in view.workers)
    assert abs(view.usage.total - outcome.load.consumed_write_units) < 0.01
    assert view.allowed_rate == sum(r["write_rate"] for r in records)
    html = render.run_html(view, "dynamodb_restore", "run-1")
    assert "Write units consumed per second" in html and "class='allowed" in html and "write units/s" in html
