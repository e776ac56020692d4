"""The backup DAGs: they import cleanly, validate their params, and a real dag.test() run seals a folder."""

from __future__ import annotations

import gzip
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.formats.codec import decode_line
from dynamodb_backup.formats.layout import SUCCESS
from dynamodb_backup.formats.manifest import parse_manifest
from dynamodb_backup.pitr.steps import check_restorable

DAGS = Path(__file__).resolve().parents[2] / "dags"
DATE = datetime(2024, 6, 1, 2, 0, 0, tzinfo=UTC)


def load_backup_dags(monkeypatch, backups_file: Path | None = None):
    from airflow.dag_processing.dagbag import DagBag

    if backups_file is not None:
        monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups_file))
    bag = DagBag(dag_folder=str(DAGS / "dynamodb_backup.py"))
    assert not bag.import_errors, bag.import_errors
    return bag


def test_one_dag_per_configured_table(monkeypatch):
    bag = load_backup_dags(monkeypatch)
    assert {"dynamodb_backup_ReferrerCounts", "dynamodb_backup_AllTypes"} <= set(bag.dags)
    dag = bag.dags["dynamodb_backup_ReferrerCounts"]
    assert [t.task_id for t in dag.topological_sort()] == [
        "plan", "export_segments", "start_export", "wait_for_export", "convert", "seal", "prune"]
    assert dag.task_dict["seal"].upstream_task_ids == {"plan", "export_segments", "convert"}
    assert dag.params["mode"] == "scan" and dag.params["format"] == "datapipeline"
    assert dag.params["read_ratio"] == 0.25
    assert bag.dags["dynamodb_backup_AllTypes"].params["read_ratio"] == 0.5


@pytest.mark.parametrize(("name", "value"), [("read_ratio", 5), ("read_ratio", 0.001), ("segments", 0),
                                             ("bucket", "Not_A_Bucket"), ("prefix", "a/../b"),
                                             ("table", "x"), ("compression", "lz4"), ("mode", "export"),
                                             ("format", "csv"), ("pitr_fallback", "none")])
def test_params_refuse_bad_values(monkeypatch, name, value):
    from airflow.sdk.exceptions import ParamValidationError

    param = load_backup_dags(monkeypatch).dags["dynamodb_backup_ReferrerCounts"].params.get_param(name)
    param.resolve(param.value)  # the default is valid
    with pytest.raises(ParamValidationError):
        param.resolve(value)


def test_dag_test_run_seals_a_complete_folder(local_aws, airflow_db, s3_bucket, table_name, tmp_path,
                                              monkeypatch):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, referrer_items(1200))
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": s3_bucket, "prefix": "nightly"},
                                   "backups": [{"table": table_name}]}))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    dag = load_backup_dags(monkeypatch, backups).dags[f"dynamodb_backup_{table_name}"]

    run = dag.test(logical_date=DATE, run_conf={"segments": 5, "max_workers": 2, "read_ratio": 1.0})

    assert run.state == "success"
    prefix = f"nightly/{table_name}/2024-06-01-02-00-00/"
    names = {o["Key"][len(prefix):] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"]}
    assert {SUCCESS, "manifest", "_dynamodb_backup.json"} <= names
    manifest = s3.get_object(Bucket=s3_bucket, Key=prefix + "manifest")["Body"].read()
    lines = []
    for entry in parse_manifest(manifest, "manifest"):
        body = s3.get_object(Bucket=s3_bucket, Key=entry.url.split("/", 3)[3])["Body"].read()
        lines += gzip.decompress(body).splitlines()
    keys = {(item["resource"]["S"], item["timestamp"]["S"]) for item in map(decode_line, lines)}
    assert len(lines) == len(keys) == 1200


def test_nightly_restore_and_failure_notice_are_wired_from_the_config(monkeypatch, tmp_path):
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({
        "defaults": {"bucket": "my-bucket", "failure_sns_topic_arn": "arn:aws:sns:us-east-1:123456789012:t"},
        "backups": [{"table": "Orders", "restore_to_table": "Orders-staging", "restore_write_ratio": 0.3,
                     "restore_replace": True, "sse_kms_key_id": "alias/backups"},
                    {"table": "Users", "failure_sns_topic_arn": None}],
    }))
    bag = load_backup_dags(monkeypatch, backups)
    orders, users = bag.dags["dynamodb_backup_Orders"], bag.dags["dynamodb_backup_Users"]
    restore_ids = [t for t in orders.task_ids if t.startswith("restore_to_Orders-staging")]
    assert restore_ids, orders.task_ids
    seal = orders.get_task("seal")
    assert any(t.startswith("restore_to_Orders-staging") for t in seal.downstream_task_ids)
    assert orders.get_task("restore_to_Orders-staging.ensure_table").replace_table is True
    # The restore's completion markers go beside the backup, so they take its bucket's write settings.
    assert orders.get_task("restore_to_Orders-staging.verify").put_extra == {
        "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": "alias/backups"}
    assert not [t for t in users.task_ids if t.startswith("restore_to")]
    assert orders.get_task("plan").on_failure_callback
    assert not users.get_task("plan").on_failure_callback


def test_export_workers_run_in_the_configured_pool(monkeypatch, tmp_path):
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": "my-bucket"},
                                   "backups": [{"table": "Orders", "pool": "dynamodb_export"}, {"table": "Users"}]}))
    bag = load_backup_dags(monkeypatch, backups)
    assert bag.dags["dynamodb_backup_Orders"].get_task("export_segments").pool == "dynamodb_export"
    assert bag.dags["dynamodb_backup_Users"].get_task("export_segments").pool == "default_pool"


def test_consistent_read_is_configured_per_table_and_rendered_into_the_export(monkeypatch, tmp_path):
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": "my-bucket"},
                                   "backups": [{"table": "Orders", "consistent_read": True}, {"table": "Users"}]}))
    bag = load_backup_dags(monkeypatch, backups)
    assert bag.dags["dynamodb_backup_Orders"].params["consistent_read"] is True
    assert bag.dags["dynamodb_backup_Users"].params["consistent_read"] is False
    assert bag.dags["dynamodb_backup_Users"].get_task("export_segments").partial_kwargs["consistent_read"] == (
        "{{ params.consistent_read }}")
    from dynamodb_backup.operators.backup import PlanBackupOperator

    for rendered, expected in (("True", True), ("False", False)):  # as a trigger's params render
        task = PlanBackupOperator(task_id=f"plan_{rendered}", table="Users", bucket="my-bucket", prefix="b",
                                  consistent_read=rendered)
        assert task.request({"logical_date": DATE}).settings.consistent_read is expected


def _pitr_dag(local_aws, monkeypatch, tmp_path, s3_bucket: str, table: str, **entry):
    backups = tmp_path / "backups.yaml"
    backups.write_text(json.dumps({"defaults": {"bucket": s3_bucket, "prefix": "nightly"},
                                   "backups": [{"table": table, "mode": "pitr", **entry}]}))
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    return load_backup_dags(monkeypatch, backups).dags[f"dynamodb_backup_{table}"]


def _task_states(run) -> dict[str, str]:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_dag_test_pitr_run_waits_for_its_moment_then_seals_the_table_as_it_was(
        local_aws, pitr_standin, airflow_db, s3_bucket, table_name, tmp_path, monkeypatch):
    """The run's moment is "now": it must wait (deferred) for the trailing window, then export and convert."""
    # A lag well beyond dag.test()'s own start-up (about 12 s here), so the plan surely finds "wait".
    standin = pitr_standin(lag_seconds=30, min_export_seconds=1)
    ddb, s3 = standin.client("dynamodb", region_name=local_aws.region), local_aws.s3_client()
    dag = _pitr_dag(local_aws, monkeypatch, tmp_path, s3_bucket, table_name, pitr_poll_seconds=1)
    conn = json.loads(local_aws.airflow_conn_env()["AIRFLOW_CONN_AWS_DEFAULT"])
    conn["extra"]["service_config"]["dynamodb"]["endpoint_url"] = standin.url
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    assert dag.task_dict["plan"].restorable_poll_seconds == dag.task_dict["wait_for_export"].poll_seconds == 1
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    put_items(ddb, table_name, referrer_items(300))
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)  # after every write so far
    while datetime.now(UTC) <= moment:  # and before every later one
        time.sleep(0.05)
    put_items(ddb, table_name, ({**item, "host": {"S": "after"}} for item in referrer_items(50, seed=3)))
    verdicts: list[tuple[str, str]] = []  # (who asked, the answer): the plan task, then its trigger

    def spy(who: str):
        def check(*args, **kwargs):
            verdict = check_restorable(*args, **kwargs)
            verdicts.append((who, verdict))
            return verdict
        return check

    monkeypatch.setattr("dynamodb_backup.operators.backup.check_restorable", spy("plan"))
    monkeypatch.setattr("dynamodb_backup.triggers.pitr.check_restorable", spy("trigger"))

    run = dag.test(logical_date=moment, run_conf={"max_workers": 2})

    states = _task_states(run)
    assert run.state == "success", states
    # The plan found "wait" and deferred; the trigger polled until "ready".
    assert verdicts[0] == ("plan", "wait") and verdicts[-1] == ("trigger", "ready"), verdicts
    assert states["export_segments"] == "skipped" and states["convert"] == "success" and states["seal"] == "success"
    prefix = f"nightly/{table_name}/{moment:%Y-%m-%d-%H-%M-%S}/"
    sidecar = json.loads(s3.get_object(Bucket=s3_bucket, Key=prefix + "_dynamodb_backup.json")["Body"].read())
    assert sidecar["source"]["mode"] == "pitr" and sidecar["item_count"] == 300
    manifest = s3.get_object(Bucket=s3_bucket, Key=prefix + "manifest")["Body"].read()
    hosts = set()
    for entry in parse_manifest(manifest, "manifest"):
        body = s3.get_object(Bucket=s3_bucket, Key=entry.url.split("/", 3)[3])["Body"].read()
        hosts |= {decode_line(line)["host"]["S"] for line in gzip.decompress(body).splitlines()}
    assert "after" not in hosts


def test_dag_test_pitr_off_with_fallback_scans_and_says_so(local_aws, airflow_db, s3_bucket, table_name, tmp_path,
                                                           monkeypatch):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, referrer_items(120))
    dag = _pitr_dag(local_aws, monkeypatch, tmp_path, s3_bucket, table_name, pitr_fallback="scan")

    run = dag.test(logical_date=DATE, run_conf={"read_ratio": 1.0})

    states = _task_states(run)
    assert run.state == "success", states
    assert states["start_export"] == "skipped" and states["export_segments"] == "success"
    key = f"nightly/{table_name}/2024-06-01-02-00-00/_dynamodb_backup.json"
    source = json.loads(s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read())["source"]
    assert source["mode"] == "scan" and source["fallback_from"] == "pitr"
    assert "point-in-time recovery off" in source["reason"]


def test_dag_test_pitr_off_without_fallback_fails_and_writes_nothing(local_aws, airflow_db, s3_bucket, table_name,
                                                                     tmp_path, monkeypatch):
    local_aws.create_table(table_name)
    dag = _pitr_dag(local_aws, monkeypatch, tmp_path, s3_bucket, table_name)

    run = dag.test(logical_date=DATE)

    assert run.state == "failed"
    assert _task_states(run)["plan"] == "failed"
    assert not local_aws.s3_client().list_objects_v2(Bucket=s3_bucket).get("Contents")
