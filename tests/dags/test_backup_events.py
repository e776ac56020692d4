"""A backup DAG's seal emits an Asset event with its extra (read back from the metadata DB), the prune
task that follows deletes an old backup in the same real run, and the example DAG waits on the assets."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.formats.layout import SIDECAR, SUCCESS
from dynamodb_backup.formats.sidecar import FileRecord, Sidecar

DAGS = Path(__file__).resolve().parents[2] / "dags"
DATE = datetime(2024, 6, 1, 2, 0, 0, tzinfo=UTC)
OLD = ["2024-01-01-00-00-00", "2024-02-01-00-00-00"]


def load(monkeypatch, backups_file: Path, name: str):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups_file))
    bag = DagBag(dag_folder=str(DAGS / name))
    assert not bag.import_errors, bag.import_errors
    return bag


def old_backup(s3, bucket: str, key: str) -> None:
    """A complete folder of ours, long past retention."""
    when = datetime.strptime(key.rsplit("/", 1)[-1], "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC).isoformat()
    sidecar = Sidecar(table={"TableName": "x"}, logical_date=when, snapshot_start=when, snapshot_end=when,
                      compression="gzip", total_segments=1, files=[FileRecord("a.gz", 0, 1, 1, "0")])
    for name, body in {"a.gz": b"x", SIDECAR: sidecar.to_json(), SUCCESS: b""}.items():
        s3.put_object(Bucket=bucket, Key=f"{key}/{name}", Body=body)


def test_seal_emits_the_backup_event_and_prune_runs_after_it(local_aws, airflow_db, s3_bucket, table_name, tmp_path,
                                                             monkeypatch):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, referrer_items(300))
    for name in OLD:
        old_backup(s3, s3_bucket, f"nightly/{table_name}/{name}")
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": s3_bucket, "prefix": "nightly",
                                                "retention": {"keep_days": 35, "keep_min": 2}},
                                   "backups": [{"table": table_name}]}))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    dag = load(monkeypatch, backups, "dynamodb_backup.py").dags[f"dynamodb_backup_{table_name}"]
    assert dag.get_task("prune").upstream_task_ids == {"plan", "seal"}  # plan: the folder it must not touch

    run = dag.test(logical_date=DATE, run_conf={"segments": 2, "max_workers": 1, "read_ratio": 1.0})

    assert run.state == "success"
    uri = f"s3://{s3_bucket}/nightly/{table_name}"
    with create_session() as session:
        events = session.scalars(select(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                 .where(AssetModel.uri == uri)).all()
        extras = [(e.extra, e.source_dag_id, e.source_run_id, e.source_task_id) for e in events]
    assert len(extras) == 1, extras
    extra, dag_id, run_id, task_id = extras[0]
    assert (dag_id, run_id, task_id) == (dag.dag_id, run.run_id, "seal")
    folder = f"{uri}/2024-06-01-02-00-00"
    assert extra["folder"] == folder and extra["items"] == 300 and extra["mode"] == "scan"
    assert extra["bytes"] > 0 and extra["files"] >= 1
    assert extra["logical_date"].startswith("2024-06-01T02:00:00")
    assert extra["snapshot_start"] <= extra["snapshot_end"]
    # keep_min 2: the new backup and the newer old one stay; the oldest went in the same run.
    names = {o["Key"].split("/")[2] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=f"nightly/{table_name}/")
             ["Contents"]} - {"_newest.json"}  # the seal's pointer for the console, not a folder
    assert names == {OLD[1], "2024-06-01-02-00-00"}


def test_example_dag_waits_on_every_configured_tables_backups(monkeypatch, tmp_path):
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": "my-bucket", "prefix": "p"},
                                   "backups": [{"table": "Orders"}, {"table": "Users", "prefix": "q"}]}))
    dag = load(monkeypatch, backups, "example_on_backup.py").dags["example_on_backup"]
    from airflow.sdk import AssetAny

    condition = dag.timetable.asset_condition
    assert isinstance(condition, AssetAny), condition  # any table's fresh backup triggers it
    assert {asset.uri for asset in condition.objects} == {"s3://my-bucket/p/Orders", "s3://my-bucket/q/Users"}
