"""The stream DAG: one per table asking for ``stream: true``, @continuous with one active run; its task tails
for a bounded time, resumes from S3 the next run, and a broken chain posts one notice to the webhook."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.streamprogress import read_gaps
from stream_tail_helpers import Workload, create_streamed_table, stream_hook
from webhook_receiver import WebhookReceiver

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load_stream_dags(monkeypatch: pytest.MonkeyPatch, backups: Path) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_stream.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_one_continuous_dag_per_table_asking_for_a_stream(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": "bkt", "schedule": None},
                                   "backups": [{"table": "Orders", "stream": True, "stream_run_seconds": 300},
                                               {"table": "Plain"}]}))
    bag = load_stream_dags(monkeypatch, backups)
    assert set(bag.dags) == {"dynamodb_stream_Orders"}
    dag = bag.dags["dynamodb_stream_Orders"]
    assert type(dag.timetable).__name__ == "ContinuousTimetable" and dag.max_active_runs == 1
    assert list(dag.task_dict) == ["tail"] and dag.params["run_seconds"] == 300
    backups.write_text(json.dumps({"defaults": {"bucket": "bkt"}, "backups": [{"table": "Orders", "stream": "yes"}]}))
    from airflow.dag_processing.dagbag import DagBag

    errors = DagBag(dag_folder=str(DAGS / "dynamodb_stream.py")).import_errors.values()
    assert any("backups[0]: stream must be true or false, got 'yes'" in str(e) for e in errors)


def test_the_task_tails_resumes_and_posts_one_notice_for_a_break(local_aws: Any, pitr_standin: Any,
                                                                 monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                 table_name: str, s3_bucket: str) -> None:
    from dynamodb_backup.operators.stream import StreamTailOperator

    server = pitr_standin(lag_seconds=2, streams="journal")
    extra = local_aws.connection_extra()
    extra["service_config"].update({"dynamodb": {"endpoint_url": server.url},
                                    "dynamodbstreams": {"endpoint_url": server.url}})
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps({
        "conn_type": "aws", "login": "testing", "password": "testing", "extra": extra}))
    ddb = server.client("dynamodb", region_name="us-east-1")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name)
    operator = StreamTailOperator(task_id="tail", table=table_name, bucket=s3_bucket, prefix="backups",
                                  run_seconds=1.0, flush_seconds=0.5, http_conn_id="stream_webhook")
    context: Any = {"ti": SimpleNamespace(dag_id=f"dynamodb_stream_{table_name}", task_id="tail"), "run_id": "r1"}
    with WebhookReceiver() as webhook:
        monkeypatch.setenv("AIRFLOW_CONN_STREAM_WEBHOOK", webhook.airflow_connection())
        workload.run(30)
        first = operator.execute(context)
        workload.run(30)
        second = operator.execute(context)  # resumes: no gap
        workload.run(20)
        stream_hook(server.server.url, "Trim", TableName=table_name)  # the 20 writes above are lost
        workload.run(20)
        third = operator.execute(context)
    assert (first["gaps"], second["gaps"], third["gaps"]) == ([], [], ["trimmed"])
    assert first["records"] > 0 and second["records"] > 0 and third["records"] > 0
    [notice] = webhook.received  # one break, one notice
    assert notice["event"] == "dynamodb_stream_gap" and notice["kind"] == "trimmed"
    assert notice["table"] == table_name and "chain broken (trimmed)" in notice["text"]
    s3 = local_aws.s3_client()
    gaps = read_gaps(s3, S3Location(s3_bucket, "backups"), table_name)
    assert [g.kind for g in gaps] == ["started", "trimmed"] and gaps[1].base["mode"] == "scan"
