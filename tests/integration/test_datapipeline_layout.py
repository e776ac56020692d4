"""A table's Data Pipeline output folders (``<output>/<date>/``, no table level) are its backups next to ours:
listed, restored with --latest, pruned with keep_min kept, and in the console's inventory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from backup_folders import datapipeline_folder, dp_lines, scan_all
from dynamodb_backup.cli import main
from dynamodb_backup.config import load_backups
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location
from dynamodb_backup.formats.sidecar import FileRecord, Sidecar
from dynamodb_backup.formats.tablebackups import DATAPIPELINE, OURS, TableBackups, backup_folders, newest_complete
from dynamodb_backup.retention.plan import KEEP, RetentionPolicy
from dynamodb_backup.retention.prune import prune_table

DAGS = Path(__file__).resolve().parents[2] / "dags"
DP_DATES = ["2024-03-01-04-10-22", "2024-03-02-04-10-19", "2024-03-03-04-10-25"]
DP_PARTIAL = "2024-03-04-04-10-21"  # the run that died: no _SUCCESS, never chosen
OURS_DATE = "2024-01-15-00-00-00"


def items_of(date: str) -> list[dict]:
    return [{"pk": {"S": f"{date}#{i}"}, "n": {"N": str(i)}} for i in range(3)]


def write_history(s3, bucket: str, table: str) -> tuple[S3Location, S3Location]:
    """Three complete Data Pipeline runs and a dead one under ``legacy/users-export/``, one of ours under ``b/``."""
    output = S3Location(bucket, "legacy/users-export")
    for date in [*DP_DATES, DP_PARTIAL]:
        # As Data Pipeline wrote it: a UUID-named data file, the v3 manifest naming it absolutely, then _SUCCESS.
        datapipeline_folder(s3, bucket, output.child(date).prefix,
                            {"5d9c2f0e-8a4b-4c1e-9a3e-2b7f1c0d4e6a": dp_lines(items_of(date))},
                            success=date != DP_PARTIAL)
    ours = S3Location(bucket, f"b/{table}/{OURS_DATE}")
    sidecar = Sidecar(table={"TableName": table}, logical_date="2024-01-15T00:00:00+00:00",
                      snapshot_start="2024-01-15T00:00:00+00:00", snapshot_end="2024-01-15T00:00:00+00:00",
                      compression="none", total_segments=1, files=[FileRecord("0a", 0, 3, 10, "00")],
                      source={"mode": "scan"})
    for name, body in {"0a": dp_lines(items_of(OURS_DATE)), MANIFEST: b"{}", SIDECAR: sidecar.to_json(),
                       SUCCESS: b""}.items():
        s3.put_object(Bucket=bucket, Key=ours.key(name), Body=body)
    return output, S3Location(bucket, "b")


def test_the_one_list_of_a_tables_backups_holds_both_layouts(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    output, base = write_history(s3, s3_bucket, table_name)
    backups = TableBackups(table_name, base, (output,))
    found = [(f.name, f.layout) for f in backup_folders(s3, backups)]
    assert found == [(OURS_DATE, OURS), *[(d, DATAPIPELINE) for d in DP_DATES], (DP_PARTIAL, DATAPIPELINE)]
    assert newest_complete(s3, backups) == output.child(DP_DATES[-1]), "the newest folder has no _SUCCESS"
    # Without the output folder named, the table's backups are only ours (nothing in S3 says whose they are).
    assert newest_complete(s3, TableBackups(table_name, base)) == base.child(table_name, OURS_DATE)


def test_ls_restore_latest_and_prune_see_data_pipeline_folders(local_aws, s3_bucket, table_name, capsys):
    s3 = local_aws.s3_client()
    output, base = write_history(s3, s3_bucket, table_name)
    dp = ["--datapipeline-output", output.uri + "/"]

    assert main(["ls", base.uri, "--table", table_name, *dp]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[1:]]
    assert [(r[0], r[-1]) for r in rows] == [
        ("complete", f"{base.uri}/{table_name}/{OURS_DATE}/"),
        *[("complete", f"{output.uri}/{d}/") for d in DP_DATES],
        ("PARTIAL", f"{output.uri}/{DP_PARTIAL}/")]

    target = f"{table_name}-r"
    assert main(["restore", "--latest", "--from", base.uri, "--source-table", table_name, *dp, "--table", target,
                 "--create-table", "--key-schema", "pk:S", "--workers", "1", "--no-checkpoints"]) == 0
    out = capsys.readouterr().out
    assert f"newest complete backup of {table_name}: {output.uri}/{DP_DATES[-1]}/" in out
    restored = sorted(i["pk"]["S"] for i in scan_all(local_aws.dynamodb_client(), target))
    assert restored == sorted(i["pk"]["S"] for i in items_of(DP_DATES[-1]))

    assert main(["prune", "--from", base.uri, "--table", table_name, *dp, "--keep-days", "30", "--keep-min", "2"]) == 0
    out = capsys.readouterr().out
    assert "5 folders: 2 to delete, 3 kept" in out, out
    left = {o["Key"].split("/")[-2] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket)
            for o in page.get("Contents", []) if o["Key"].endswith(("/manifest", "/_SUCCESS"))}
    # keep_min 2: the two newest complete (both Data Pipeline's) stay; the older ones really went; the dead run,
    # with no _SUCCESS, is never touched (we cannot tell an abandoned run from data we do not know).
    assert left == {DP_DATES[1], DP_DATES[2], DP_PARTIAL}
    assert f"DELETE {output.uri}/{DP_DATES[0]}/" in out and f"DELETE {base.uri}/{table_name}/{OURS_DATE}/" in out


def test_the_table_entry_names_its_output_folders(tmp_path):
    path = tmp_path / "backups.yaml"
    path.write_text("backups:\n- table: Users\n  bucket: new-bucket\n"
                    "  datapipeline_output: [s3://old-bucket/ddb/Users-2019/, s3://old-bucket/exports]\n")
    (entry,) = load_backups(path, environ={})
    assert entry.backups.roots == (S3Location("new-bucket", "dynamodb-backups/Users"),
                                   S3Location("old-bucket", "ddb/Users-2019"), S3Location("old-bucket", "exports"))
    path.write_text("backups:\n- table: Users\n  bucket: new-bucket\n  datapipeline_output: old-bucket/x\n")
    with pytest.raises(ParameterError, match=r"backups\[0\]: datapipeline_output: 'old-bucket/x' is not an s3://"):
        load_backups(path, environ={})



def test_console_inventory_pages_through_both_layouts(local_aws, s3_bucket, table_name):
    from dynamodb_backup.console.views import TableSource, backup_page, table_rows

    s3 = local_aws.s3_client()
    output, base = write_history(s3, s3_bucket, table_name)
    source = TableSource(table_name, base, None, datapipeline=(output,))
    first = backup_page(s3, source, size=3)
    assert [(r.folder.uri, r.status) for r in first.rows] == [
        (output.child(DP_PARTIAL).uri, "partial"), (output.child(DP_DATES[2]).uri, "complete"),
        (output.child(DP_DATES[1]).uri, "complete")]
    assert first.total == 5 and first.next_before == DP_DATES[1]
    second = backup_page(s3, source, before=first.next_before, size=3)
    assert [r.folder.uri for r in second.rows] == [output.child(DP_DATES[0]).uri, base.child(table_name, OURS_DATE).uri]
    assert second.next_before is None
    (row,) = table_rows(lambda conn: s3, [source])
    assert row.newest == DP_DATES[2] and row.listed, "no pointer: the folders are listed, the dead run skipped"


def test_the_restore_dags_latest_looks_in_the_tables_output_folders(local_aws, s3_bucket, table_name, tmp_path,
                                                                    monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    s3 = local_aws.s3_client()
    output, _ = write_history(s3, s3_bucket, table_name)
    backups = tmp_path / "backups.yaml"
    backups.write_text(f"backups:\n- table: {table_name}\n  bucket: {s3_bucket}\n  prefix: b\n"
                       f"  datapipeline_output: {output.uri}\n")
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_restore.py"))
    assert not bag.import_errors, bag.import_errors
    inspect = bag.dags["dynamodb_restore"].get_task("inspect")
    assert inspect.datapipeline_outputs == {table_name: [output.uri]}
    inspect.source, inspect.source_table, inspect.backup_bucket, inspect.backup_prefix = (
        "latest", table_name, s3_bucket, "b")
    assert inspect.folder(s3) == output.child(DP_DATES[-1])


def test_a_partial_data_pipeline_folder_is_never_pruned_however_old(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    output, base = write_history(s3, s3_bucket, table_name)
    later = datetime.now(UTC) + timedelta(days=400)  # every folder, the dead run's objects too, long past keep_days
    report = prune_table(s3, base, table_name, RetentionPolicy(keep_days=30, keep_min=1), dry_run=False, now=later,
                         datapipeline=(output,))
    by_name = {d.folder.name: d for d in report.decisions}
    assert by_name[DP_PARTIAL].action == KEEP and "never touched" in by_name[DP_PARTIAL].why
    assert by_name[DP_DATES[-1]].action == KEEP and "newest complete" in by_name[DP_DATES[-1]].why
    assert {d.folder.name for d in report.to_delete} == {OURS_DATE, *DP_DATES[:-1]}
    assert len([o for o in report.outcomes if o.gone]) == 3, "the deletes really happened"
    assert s3.list_objects_v2(Bucket=s3_bucket, Prefix=output.child(DP_PARTIAL).key(""))["KeyCount"] == 2
