"""mode incremental in the backup DAG: the schedule check at parse time, the timetable, and the tasks.

The tasks run one after another with a hand-made context (as a worker would call them), against a
PITR stand-in that accepts windows of seconds: a real scheduler would need 15-minute intervals.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from dynamodb_backup.config import load_backups
from dynamodb_backup.errors import ParameterError

DAGS = Path(__file__).resolve().parents[2] / "dags"


def backups_file(tmp_path: Path, **entry: Any) -> Path:
    path = tmp_path / "backups.yaml"
    path.write_text(json.dumps({"defaults": {"bucket": "some-bucket", "prefix": "inc"},
                                "backups": [{"table": "Orders", "mode": "incremental", **entry}]}))
    return path


@pytest.mark.parametrize(("schedule", "why"), [
    ("*/5 * * * *", r"intervals from 5 min to 5 min, but DynamoDB exports the changes of a window of 15 min to 1 d"),
    ("@weekly", r"intervals from 7 d to 7 d"),
    ("0 0 */2 * *", r"intervals from 1 d to 2 d"),
    (None, r"mode incremental needs a cron schedule"),
])
def test_a_schedule_outside_15_minutes_to_24_hours_is_refused_at_parse_time(tmp_path, monkeypatch, schedule, why):
    path = backups_file(tmp_path, schedule=schedule)
    with pytest.raises(ParameterError, match=rf"backups\[0\]: schedule: .*{why}"):
        load_backups(path)
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(path))
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_backup.py"))
    assert any("15 min" in str(e) or "cron schedule" in str(e) for e in bag.import_errors.values())


def test_an_incremental_dag_has_tiling_data_intervals(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups_file(tmp_path, schedule="@daily", full_every=3)))
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_backup.py"))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["dynamodb_backup_Orders"]
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.params["mode"] == "incremental"
    assert dag.task_dict["plan"].full_every == timedelta(days=3)


class FakeTI:
    """XCom for tasks called by hand: what a task pushes, another pulls."""

    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value") -> Any:
        return self.pushed.get(key)


def tick() -> datetime:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.02)
    return moment


def first_event(deferred: Any) -> Any:
    """Run a deferred task's trigger to its first event, as the triggerer would."""
    async def run() -> Any:
        async for event in deferred.trigger.run():
            return event.payload
    return asyncio.run(run())


def run_interval(common: dict[str, Any], start: datetime, end: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """plan >> start_export >> wait_for_export >> convert >> seal for one data interval, by hand."""
    from airflow.sdk.exceptions import TaskDeferred

    from dynamodb_backup.operators.backup import PlanBackupOperator, SealBackupOperator
    from dynamodb_backup.operators.pitr import ConvertExportOperator, StartExportOperator, WaitForExportOperator

    ti = FakeTI()
    context: Any = {"logical_date": start, "data_interval_start": start, "data_interval_end": end, "ti": ti,
                    "dag": SimpleNamespace(dag_id="dynamodb_backup_t"), "run_id": f"scheduled__{start.isoformat()}"}
    plan_task = PlanBackupOperator(task_id="plan", restorable_poll_seconds=0.2, **common)
    try:
        assert plan_task.execute(context) == []
    except TaskDeferred as waiting:  # the interval's end is not restorable yet (a loaded machine): as the triggerer
        assert plan_task.resume_when_restorable(context, first_event(waiting)) == []
    plan = ti.pushed["plan"]
    arn = StartExportOperator(task_id="start_export", plan=plan, **common).execute(context)
    wait = WaitForExportOperator(task_id="wait_for_export", export_arn=arn, poll_seconds=0.2, **common)
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute(context)
    shares = wait.execute_complete(context, first_event(deferred.value))
    results = [ConvertExportOperator(task_id="convert", share=share, plan=plan, **common).execute(context)
               for share in shares]
    sealed = SealBackupOperator(task_id="seal", plan=plan, results=results, **common).execute(context)
    return plan, sealed


def test_incremental_tasks_make_a_full_then_a_link(local_aws, pitr_standin, s3_bucket, table_name, monkeypatch):
    standin = pitr_standin(lag_seconds=1, min_export_seconds=0, min_incremental_window_seconds=1)
    ddb, s3 = standin.client("dynamodb", region_name=local_aws.region), local_aws.s3_client()
    local_aws.create_table(table_name, client=ddb)
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    conn = json.loads(local_aws.airflow_conn_env()["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["extra"]["service_config"]["dynamodb"]["endpoint_url"] = standin.url
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    common = {"table": table_name, "bucket": s3_bucket, "prefix": "inc", "mode": "incremental", "max_workers": 2}
    for i in range(6):
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"k{i}"}, "n": {"N": "1"}})
    first = tick()

    plan, sealed = run_interval(common, first - timedelta(seconds=5), first)
    assert plan["since"] is None and plan["chain"]["role"] == "full" and sealed["mode"] == "pitr"
    assert sealed["items"] == 6

    ddb.put_item(TableName=table_name, Item={"pk": {"S": "k0"}, "n": {"N": "2"}})
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "k1"}})
    second = tick()
    plan, sealed = run_interval(common, first, second)
    assert plan["since"] == first.isoformat() and plan["chain"]["role"] == "incremental"
    assert sealed["mode"] == "incremental" and sealed["items"] == 2
    folder = f"inc/{table_name}/{second:%Y-%m-%d-%H-%M-%S}/"
    sidecar = orjson.loads(s3.get_object(Bucket=s3_bucket, Key=folder + "_dynamodb_backup.json")["Body"].read())
    assert sidecar["source"]["chain"]["full"].endswith(f"/{first:%Y-%m-%d-%H-%M-%S}")
    keys = set()
    for obj in s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder + "AWSDynamoDB/data/")["Contents"]:
        body = gzip.decompress(s3.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read())
        keys |= {orjson.loads(line)["Keys"]["pk"]["S"] for line in body.splitlines() if line.strip()}
    assert keys == {"k0", "k1"}


def test_a_nightly_restore_of_links_is_refused_until_it_exists(tmp_path):
    with pytest.raises(ParameterError, match=r"restore_to_table: a nightly restore of an incremental link is not "
                                             r"built yet"):
        load_backups(backups_file(tmp_path, schedule="@daily", restore_to_table="Orders-staging"))
