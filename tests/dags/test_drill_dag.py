"""Restore drills with dag.test(): a passing drill records its result beside the backup and leaves no
scratch table; a corrupted data file fails the drill, records why, and sends the failure notice (SNS->SQS)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from demo_data import put_items
from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.drill.record import KEYS, read_drill
from dynamodb_backup.formats.layout import S3Location, backup_folder

DAGS = Path(__file__).resolve().parents[2] / "dags"
OLD, NEW = datetime(2024, 5, 1, tzinfo=UTC), datetime(2024, 5, 2, tzinfo=UTC)


def items(n: int) -> list[dict]:
    return [{"pk": {"S": f"k{i}"}, "v": {"N": str(i)}} for i in range(n)]


def setup_backups(local_aws, bucket: str, table: str, n: int) -> S3Location:
    local_aws.create_table(table)
    put_items(local_aws.dynamodb_client(), table, items(n))
    for when in (OLD, NEW):
        run_backup(client_factory(), BackupRequest(table=table, destination=S3Location(bucket, "b"),
                                                   logical_date=when, read_ratio=1.0, segments=1,
                                                   settings=ExportSettings(file_max_items=100)))
    return backup_folder(S3Location(bucket, "b"), table, NEW)


def notice_queue(local_aws, table: str) -> tuple[str, str]:
    """A failure topic whose notices land in an SQS queue the test can read: (topic ARN, queue URL)."""
    sns, sqs = local_aws.sns_client(), local_aws.client("sqs")
    topic = sns.create_topic(Name=f"drill-{table}"[:250])["TopicArn"]
    queue = sqs.create_queue(QueueName=f"q-{table}"[:80])["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    return topic, queue


def drill_dag(monkeypatch, local_aws, tmp_path, bucket: str, table: str, **defaults):
    from airflow.dag_processing.dagbag import DagBag

    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": bucket, "prefix": "b", "drill": {"schedule": "@weekly"},
                                                **defaults},
                                   "backups": [{"table": table}]}))
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_restore_drill.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[f"dynamodb_restore_drill_{table}"]


def test_a_drill_restores_the_newest_backup_verifies_it_records_it_and_drops_the_scratch_table(
        local_aws, airflow_db, s3_bucket, table_name, tmp_path, monkeypatch):
    folder = setup_backups(local_aws, s3_bucket, table_name, 250)
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    dag = drill_dag(monkeypatch, local_aws, tmp_path, s3_bucket, table_name)
    assert dag.schedule == "@weekly" or str(dag.timetable.summary) == "@weekly"

    run = dag.test()

    assert run.state == "success"
    record = read_drill(s3, folder)
    assert record is not None and tuple(record) == KEYS
    assert record["result"] == "passed" and record["error"] is None
    assert record["folder"] == folder.uri and record["items"] == 250
    assert record["scratch_table"] == f"{table_name}-drill"
    assert record["duration_seconds"] > 0 and record["items_per_second"] > 0
    assert record["dag_id"] == dag.dag_id and record["run_id"] == run.run_id
    assert record["started"].endswith("Z") and record["started"] < record["finished"]
    assert table_exists(ddb, f"{table_name}-drill") is None, "the scratch table is deleted"
    assert read_drill(s3, backup_folder(S3Location(s3_bucket, "b"), table_name, OLD)) is None, "only the newest"


def test_a_corrupted_backup_fails_the_drill_records_why_and_sends_the_notice(
        local_aws, airflow_db, s3_bucket, table_name, tmp_path, monkeypatch):
    folder = setup_backups(local_aws, s3_bucket, table_name, 120)
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    data = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder.key(""))["Contents"]
            if o["Key"].endswith(".gz")]
    s3.put_object(Bucket=s3_bucket, Key=data[0], Body=b"not gzip at all")  # the damage the drill must find
    local_aws.create_table(f"{table_name}-drill")  # a scratch table an earlier, killed drill left behind
    sqs = local_aws.client("sqs")
    topic, queue = notice_queue(local_aws, table_name)
    dag = drill_dag(monkeypatch, local_aws, tmp_path, s3_bucket, table_name, failure_sns_topic_arn=topic)

    run = dag.test()

    assert run.state == "failed"
    record = read_drill(s3, folder)
    assert record is not None and record["result"] == "failed"
    # The damaged file is caught before anything is written (its size no longer matches the sidecar's).
    assert re.search(r"restore\.(inspect|validate) failed", record["error"]), record["error"]
    assert table_exists(ddb, f"{table_name}-drill") is None, "the leftover scratch table was deleted"
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    bodies = [json.loads(m["Body"]).get("Message", "") for m in messages]
    assert len(bodies) == 1 and "finish" in bodies[0] and dag.dag_id in bodies[0], bodies


def test_a_table_never_backed_up_skips_its_drill_without_a_record_or_a_notice(
        local_aws, airflow_db, s3_bucket, table_name, tmp_path, monkeypatch):
    """A new install's first drill (the weekly schedule fires at once) has nothing to prove yet: it skips."""
    local_aws.create_table(table_name)
    sqs = local_aws.client("sqs")
    topic, queue = notice_queue(local_aws, table_name)
    dag = drill_dag(monkeypatch, local_aws, tmp_path, s3_bucket, table_name, failure_sns_topic_arn=topic)

    run = dag.test()

    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["start"] == "skipped" and states["finish"] == "skipped", states
    assert not s3_keys(local_aws.s3_client(), s3_bucket), "no record, nothing written"
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []) == []
    assert table_exists(local_aws.dynamodb_client(), f"{table_name}-drill") is None


def s3_keys(s3, bucket: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
