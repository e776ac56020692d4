"""Failure notices: a backup of a missing table fails and a notice arrives (SNS -> SQS in moto).

The run goes through ``dag.test()`` in this process: task ``on_failure_callback``s run there as
under a scheduler (in the task's own process).
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.operators.notify import failure_notifier
from webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DAGS = Path(__file__).resolve().parents[2] / "dags"
DATE = datetime(2024, 7, 1, 0, 0, 0, tzinfo=UTC)


def topic_with_queue(local_aws, name: str) -> tuple[str, Any, str]:
    """An SNS topic in moto, subscribed by an SQS queue: (topic ARN, sqs client, queue URL)."""
    sns, sqs = local_aws.sns_client(), local_aws.client("sqs")
    topic_arn = sns.create_topic(Name=name)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=name)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    return topic_arn, sqs, queue_url


def receive_notices(sqs, queue_url: str, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
            "Messages", [])
        if messages:
            return [json.loads(m["Body"]) for m in messages]  # the SNS envelope: Subject, Message, ...
    return []


def test_notifier_publishes_to_sns_and_posts_to_a_webhook(local_aws, airflow_db, monkeypatch, table_name):
    topic_arn, sqs, queue_url = topic_with_queue(local_aws, f"notice-{table_name[-8:]}")
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    ti = SimpleNamespace(dag_id=f"dynamodb_backup_{table_name}", run_id="manual__2024-07-01", task_id="plan",
                         map_index=-1, try_number=3, log_url="http://127.0.0.1:8080/dags/x/runs/y/tasks/plan")
    context = {"ti": ti, "logical_date": DATE,
               "exception": ParameterError(f"table: DynamoDB table {table_name!r} does not exist")}
    with WebhookReceiver() as webhook:
        monkeypatch.setenv("AIRFLOW_CONN_BACKUP_WEBHOOK", webhook.airflow_connection())
        failure_notifier(sns_topic_arn=topic_arn, http_conn_id="backup_webhook")(context)

    [notice] = receive_notices(sqs, queue_url)
    assert notice["Subject"] == f"Backup failed: dynamodb_backup_{table_name} plan"
    assert f"DynamoDB table '{table_name}' does not exist" in notice["Message"]
    assert "log: http://127.0.0.1:8080/dags/x/runs/y/tasks/plan" in notice["Message"]
    assert "2024-07-01T00:00:00+00:00" in notice["Message"]
    [posted] = webhook.received
    assert posted["dag_id"] == f"dynamodb_backup_{table_name}" and posted["task_id"] == "plan"
    assert "does not exist" in posted["exception"] and posted["text"].startswith("DynamoDB backup failed")
    for text in (json.dumps(notice), json.dumps(posted)):
        assert "testing" not in text  # the connection's credentials (tests/conftest.py)


def test_missing_table_run_sends_a_notice(local_aws, airflow_db, monkeypatch, tmp_path, table_name, s3_bucket):
    from airflow.dag_processing.dagbag import DagBag

    topic_arn, sqs, queue_url = topic_with_queue(local_aws, f"failures-{table_name[-8:]}")
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": s3_bucket, "prefix": "nightly", "schedule": None},
                                   "backups": [{"table": table_name, "failure_sns_topic_arn": topic_arn}]}))
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_backup.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[f"dynamodb_backup_{table_name}"]
    plan = dag.task_dict["plan"]
    if not plan.on_failure_callback:
        pytest.fail("dags/dynamodb_backup.py does not wire failure_notifier(sns_topic_arn=backup.failure_sns_topic_arn)"
                    " as the tasks' on_failure_callback yet")
    for task in dag.tasks:
        task.retries = 0  # a missing table does not come back on retry; don't wait out the retry delays

    run = dag.test(logical_date=DATE)

    assert run.state == "failed"
    notices = receive_notices(sqs, queue_url)
    assert len(notices) == 1, notices  # plan failed; the tasks after it end upstream_failed and call nothing
    message = notices[0]["Message"]
    assert f"DynamoDB table '{table_name}' does not exist" in message
    assert f"dynamodb_backup_{table_name}" in message and "task: plan" in message
    assert "testing" not in message
