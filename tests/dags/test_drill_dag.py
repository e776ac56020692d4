"""Restore drills with dag.test(): a passing drill records its result beside the backup and leaves no
scratch table; a corrupted data file fails the drill, records why, and sends the failure notice (SNS->SQS).

A drill deletes only a scratch table a drill made (tagged ``dynamodb-backup:drill``): a tagged table an
earlier drill left is replaced, an untagged table of that name fails the drill and keeps its items. A
drill suffix that would name a configured table fails the DAG file's parsing.
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from demo_data import put_items
from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.drill.record import KEYS, read_drill
from dynamodb_backup.drill.scratch import DRILL_TAG, ScratchTableError, claim_scratch, delete_scratch, table_tags
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


def parse_drill_dags(monkeypatch, local_aws, tmp_path, bucket: str, entries: list[dict], **defaults):
    from airflow.dag_processing.dagbag import DagBag

    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": bucket, "prefix": "b", "drill": {"schedule": "@weekly"},
                                                **defaults},
                                   "backups": entries}))
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return DagBag(dag_folder=str(DAGS / "dynamodb_restore_drill.py"))


def drill_dag(monkeypatch, local_aws, tmp_path, bucket: str, table: str, **defaults):
    bag = parse_drill_dags(monkeypatch, local_aws, tmp_path, bucket, [{"table": table}], **defaults)
    assert not bag.import_errors, bag.import_errors
    return bag.dags[f"dynamodb_restore_drill_{table}"]


def leftover_scratch(local_aws, table: str, n: int, tag: str | None) -> None:
    """A scratch-named table holding ``n`` items, tagged as a drill's (``tag``) or not."""
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table)
    put_items(ddb, table, [{"pk": {"S": f"junk{i}"}, "v": {"N": "-1"}} for i in range(n)])
    if tag is not None:
        arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
        ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": DRILL_TAG, "Value": tag}])
        while table_tags(ddb, arn).get(DRILL_TAG) != tag:  # AWS applies tags asynchronously
            time.sleep(0.2)


def count_items(ddb, table: str) -> int:
    return sum(page["Count"] for page in ddb.get_paginator("scan").paginate(TableName=table, Select="COUNT"))


def test_a_drill_restores_the_newest_backup_verifies_it_records_it_and_drops_the_scratch_table(
        local_aws, airflow_db, s3_bucket, table_name, tmp_path, monkeypatch):
    folder = setup_backups(local_aws, s3_bucket, table_name, 250)
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    # A scratch table an earlier drill left (tagged as a drill's), holding items the backup has not.
    leftover_scratch(local_aws, f"{table_name}-drill", 7, "dynamodb_restore_drill_x/an-earlier-run")
    dag = drill_dag(monkeypatch, local_aws, tmp_path, s3_bucket, table_name)
    assert dag.schedule == "@weekly" or str(dag.timetable.summary) == "@weekly"

    run = dag.test()

    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    # The leftover was replaced: restoring into it would have found it not empty and not the drill's own.
    assert states["claim_scratch"] == "success", states
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
    leftover_scratch(local_aws, f"{table_name}-drill", 2, "dynamodb_restore_drill_x/killed")  # an earlier drill's
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


def test_an_untagged_table_with_the_scratch_name_is_kept_and_fails_the_drill(
        local_aws, airflow_db, s3_bucket, table_name, tmp_path, monkeypatch):
    """Someone's own ``<table>-drill``: the drill refuses to delete it, says why, and restores nothing into it."""
    setup_backups(local_aws, s3_bucket, table_name, 40)
    ddb, sqs = local_aws.dynamodb_client(), local_aws.client("sqs")
    scratch = f"{table_name}-drill"
    leftover_scratch(local_aws, scratch, 5, tag=None)
    topic, queue = notice_queue(local_aws, table_name)
    dag = drill_dag(monkeypatch, local_aws, tmp_path, s3_bucket, table_name, failure_sns_topic_arn=topic)

    run = dag.test()

    assert run.state == "failed"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["start"] == "failed" and states["restore.load"] != "success", states
    assert count_items(ddb, scratch) == 5, "the table and its items are still there"
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2).get("Messages", [])
    bodies = [json.loads(m["Body"]).get("Message", "") for m in messages]
    assert len(bodies) == 1, bodies
    assert f"refusing to delete DynamoDB table '{scratch}': it has no tag '{DRILL_TAG}'" in bodies[0], bodies[0]


def test_delete_and_claim_scratch_go_by_the_tag(local_aws, table_name):
    """The rules under the tasks, against the local server (its tags through ListTagsOfResource)."""
    ddb = local_aws.dynamodb_client()
    scratch = f"{table_name}-drill"
    assert delete_scratch(ddb, scratch) is None, "no table: nothing to delete"
    leftover_scratch(local_aws, scratch, 3, tag=None)
    with pytest.raises(ScratchTableError, match=f"refusing to delete DynamoDB table '{scratch}': it has no tag"):
        delete_scratch(ddb, scratch)
    # A table older than the drill's start, not created by its restore, is not claimed (so never deletable).
    with pytest.raises(ScratchTableError, match="was there before this drill's restore created it"):
        claim_scratch(ddb, scratch, "dag/run", created_after=datetime.now(UTC) + timedelta(hours=1))
    assert DRILL_TAG not in table_tags(ddb, ddb.describe_table(TableName=scratch)["Table"]["TableArn"])
    assert count_items(ddb, scratch) == 3
    claim_scratch(ddb, scratch, "dag/run", created=True)
    assert delete_scratch(ddb, scratch) == "dag/run"
    assert table_exists(ddb, scratch) is None
    # Tags go with the table, as on AWS: a table created again under the name has none.
    local_aws.create_table(scratch)
    assert table_tags(ddb, ddb.describe_table(TableName=scratch)["Table"]["TableArn"]) == {}
    with pytest.raises(ScratchTableError, match="it has no tag"):
        delete_scratch(ddb, scratch)


def test_a_drill_suffix_naming_a_configured_table_fails_the_dag_file(local_aws, s3_bucket, tmp_path, monkeypatch):
    """orders' drill would restore into, then delete, orders-drill: a table the same file backs up."""
    bag = parse_drill_dags(monkeypatch, local_aws, tmp_path, s3_bucket,
                           [{"table": "orders"}, {"table": "orders-drill", "drill": None}])
    assert not bag.dags, "no drill DAG from a file that would delete a configured table"
    (error,) = bag.import_errors.values()
    assert (f"{tmp_path / 'backups.yaml'}: backups[0]: the drill of table 'orders' would use 'orders-drill' as its "
            f"scratch table (deleted after every drill), which is backups[1] (table 'orders-drill')") in error, error


def test_claim_tags_a_table_made_after_start_even_when_ensure_table_failed(local_aws, table_name, monkeypatch):
    """ensure_table may fail after creating the table (or die before saying so): the table is younger
    than start's check, so it is the drill's, and claimed (finish can delete it). No table: nothing to do."""
    from dynamodb_backup.operators.drill import ClaimScratchOperator

    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    ddb, scratch = local_aws.dynamodb_client(), f"{table_name}-drill"
    start = {"folder": "s3://bkt/b/t/2024-05-02-00-00-00", "scratch_table": scratch,
             "started": (datetime.now(UTC) - timedelta(seconds=5)).isoformat()}
    claim = ClaimScratchOperator(task_id="claim_scratch", start=start, target=None, table=table_name, bucket="bkt",
                                 prefix="b", scratch_table=scratch)
    assert claim.execute({"run_id": "r1"}) is None, "no table was created: nothing to claim"
    local_aws.create_table(scratch)
    arn = claim.execute({"run_id": "r1"})
    assert table_tags(ddb, arn)[DRILL_TAG].endswith("/r1")
    assert delete_scratch(ddb, scratch).endswith("/r1")


def test_the_local_server_answers_tagging_as_aws_does(local_aws, table_name):
    """The drill's check is only as good as the server's tags. dynalite keeps tags; DynamoDB Local has
    none ("Tagging is not currently supported"), so the stand-in in front of it answers, as AWS would."""
    from botocore.exceptions import ClientError

    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    arn = ddb.describe_table(TableName=table_name)["Table"]["TableArn"]
    missing = arn.rsplit("/", 1)[0] + "/" + f"{table_name}-gone"
    with pytest.raises(ClientError) as caught:
        ddb.list_tags_of_resource(ResourceArn=missing)
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    with pytest.raises(ClientError) as caught:
        ddb.tag_resource(ResourceArn=arn, Tags=[])
    assert caught.value.response["Error"]["Code"] == "ValidationException"
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": DRILL_TAG, "Value": "x"}])
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "2"}])  # the same key: its value replaced
    ddb.untag_resource(ResourceArn=arn, TagKeys=[DRILL_TAG])
    assert table_tags(ddb, arn) == {"a": "2"}
