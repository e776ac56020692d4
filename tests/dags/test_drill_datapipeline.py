"""A drill of a table whose only backups are Data Pipeline folders (``datapipeline_output``): the newest complete
one is restored into the scratch table (made from the table's own keys: such a folder has no sidecar), verified,
and recorded beside the folder."""

from __future__ import annotations

import json
from pathlib import Path

from backup_folders import datapipeline_folder, dp_lines
from demo_data import put_items
from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.drill.record import read_drill
from dynamodb_backup.formats.layout import S3Location

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_a_drill_picks_the_newest_complete_data_pipeline_folder(local_aws, airflow_db, s3_bucket, table_name,
                                                               tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, [{"pk": {"S": "live"}}])  # the live table: only its key schema is used
    output = S3Location(s3_bucket, "legacy/export")
    items = {date: [{"pk": {"S": f"{date}#{i}"}, "n": {"N": str(i)}} for i in range(count)]
             for date, count in (("2024-03-01-04-10-22", 3), ("2024-03-02-04-10-19", 5), ("2024-03-03-04-10-25", 2))}
    for date, rows in items.items():
        datapipeline_folder(s3, s3_bucket, output.child(date).prefix, {"5d9c2f0e": dp_lines(rows)},
                            success=date != "2024-03-03-04-10-25")  # the newest never completed
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": s3_bucket, "prefix": "b", "drill": {"schedule": "@weekly"}},
                                   "backups": [{"table": table_name, "datapipeline_output": output.uri}]}))
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_restore_drill.py"))
    assert not bag.import_errors, bag.import_errors

    run = bag.dags[f"dynamodb_restore_drill_{table_name}"].test()

    assert run.state == "success", {ti.task_id: ti.state for ti in run.get_task_instances()}
    record = read_drill(s3, output.child("2024-03-02-04-10-19"))
    assert record is not None and record["result"] == "passed" and record["items"] == 5
    assert read_drill(s3, output.child("2024-03-03-04-10-25")) is None, "a folder without _SUCCESS is never chosen"
    assert table_exists(ddb, f"{table_name}-drill") is None, "the scratch table is deleted"
