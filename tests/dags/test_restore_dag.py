"""The restore DAG: imports cleanly, validates its params, and a real dag.test() run restores and verifies."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from backup_folders import all_types_backup, scan_all
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.restore.verify import table_digest
from incremental_history import create_table, digests

DAGS = Path(__file__).resolve().parents[2] / "dags"


def restore_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "dynamodb_restore.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["dynamodb_restore"]


def test_dag_reads_like_the_pipeline():
    dag = restore_dag()
    assert dag.schedule is None or str(dag.timetable.summary) in ("None", "")
    table = ["inspect", "validate", "validate_changes", "ensure_table", "load", "apply_changes", "verify"]
    assert [t.task_id for t in dag.topological_sort() if t.task_id in table] == table
    assert dag.get_task("choose").downstream_task_ids == {"inspect", "restore_items"}
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name


@pytest.mark.parametrize(("name", "value"), [
    ("write_ratio", 1.6), ("write_ratio", 0.001), ("source", "ftp://x/y"), ("source", "s3://Bad_Bucket/x"),
    ("target_table", "x"), ("key_schema", "pk:X"), ("workers", 0), ("source_table", "a"),
    ("target_region", "mars"), ("as_of", "yesterday"), ("as_of", "2026-11-25 06:00"),
])
def test_params_refuse_bad_values(name, value):
    from airflow.sdk.exceptions import ParamValidationError

    param = restore_dag().params.get_param(name)
    with pytest.raises(ParamValidationError):
        param.resolve(value)


@pytest.mark.parametrize(("name", "value"), [
    ("source", "latest"), ("source", "s3://bucket/backups/T/2024-03-05-04-10-22"), ("key_schema", "pk:S,sk:N"),
    ("key_schema", None), ("write_ratio", 1.5), ("target_region", "eu-west-1"), ("target_table", "Import-test"),
    ("as_of", "2026-11-25T06:00:00Z"), ("as_of", "2026-11-25T06:00:00.250+01:00"), ("as_of", None),
    ("keys", '{"pk": {"S": "a"}}\n{"pk": {"S": "b"}}'), ("partition_key", "user#1"),
])
def test_params_accept_good_values(name, value):
    restore_dag().params.get_param(name).resolve(value)


def test_source_and_target_must_be_given():
    from airflow.sdk.exceptions import ParamValidationError

    params = restore_dag().params
    for name in ("source", "target_table"):
        with pytest.raises(ParamValidationError):
            params.get_param(name).resolve()


def test_add_restore_tasks_wires_a_nightly_restore_after_the_backup():
    from airflow.sdk import DAG, BaseOperator

    from dynamodb_backup.operators.restore import add_restore_tasks

    with DAG("nightly_probe", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        seal = BaseOperator(task_id="seal")
        last = add_restore_tasks(dag, seal, seal.output, target_table="Users-staging", write_ratio=0.3)
    assert last.task_id == "restore_to_Users-staging.verify"
    assert [t.task_id for t in dag.topological_sort()] == [
        "seal", "restore_to_Users-staging.inspect", "restore_to_Users-staging.validate",
        "restore_to_Users-staging.ensure_table", "restore_to_Users-staging.load", "restore_to_Users-staging.verify"]
    assert dag.get_task("restore_to_Users-staging.inspect").upstream_task_ids == {"seal"}


def test_dag_test_run_restores_the_latest_backup_into_a_new_table(local_aws, airflow_db, s3_bucket, table_name,
                                                                    monkeypatch):
    all_types_backup(local_aws, s3_bucket, table_name)
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    target = table_name + "-dag"
    run = restore_dag().test(logical_date=datetime(2024, 6, 2, tzinfo=UTC), run_conf={
        "source": "latest", "source_table": table_name, "backup_bucket": s3_bucket, "backup_prefix": "backups",
        "target_table": target, "create_table": True, "write_ratio": 1.0, "workers": 2,
    })
    assert run.state == "success"
    items = scan_all(local_aws.dynamodb_client(), target)
    assert len(items) == 8
    s3 = local_aws.s3_client()
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=f"backups/{table_name}/_restore_checkpoints/")
            .get("Contents", [])]
    # Verified, so the run's finished-file markers were removed; each load worker's write-unit
    # record (the console's chart) stays beside where they were.
    assert left and all(".write-units/" in key for key in left), left


def test_dag_test_run_replaces_a_staging_table_so_it_holds_exactly_the_backup(local_aws, airflow_db, s3_bucket,
                                                                             table_name, monkeypatch):
    folder = all_types_backup(local_aws, s3_bucket, table_name)
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    target = table_name + "-staging"
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(target, range_key="sk", range_type="N")
    ddb.put_item(TableName=target, Item={"pk": {"S": "deleted-in-production"}, "sk": {"N": "1"}})
    run = restore_dag().test(logical_date=datetime(2024, 6, 3, tzinfo=UTC), run_conf={
        "source": folder.uri, "target_table": target, "replace_table": True, "write_ratio": 1.0, "workers": 2,
    })
    assert run.state == "success"
    items = scan_all(ddb, target)
    assert len(items) == 8
    assert all(item["pk"]["S"] != "deleted-in-production" for item in items)
    assert table_digest(ddb, target, 2).total() == table_digest(ddb, table_name, 2).total()


def _history_conf(history, target: str, **conf):
    return {"source": "latest", "source_table": history.table, "backup_bucket": history.base.bucket,
            "backup_prefix": history.base.prefix, "target_table": target, "write_ratio": 1.0, "workers": 2, **conf}


def test_dag_test_run_restores_a_table_as_of_a_moment(local_aws, airflow_db, history, monkeypatch):
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    target = history.table + "-dag-asof"
    run = restore_dag().test(logical_date=datetime(2024, 6, 4, tzinfo=UTC), run_conf=_history_conf(
        history, target, as_of=iso(history.times[4]), create_table=True))
    assert run.state == "success"
    assert digests(scan_all(local_aws.dynamodb_client(), target)) == digests(history.states[4])
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["apply_changes"] == "success" and states["restore_items"] == "skipped"


def test_dag_test_run_restores_a_few_items_as_of_a_moment(local_aws, airflow_db, history, monkeypatch):
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    ddb, target = local_aws.dynamodb_client(), history.table + "-dag-items"
    create_table(ddb, target)
    day2 = history.states[2]
    chosen = sorted(day2)[:3]
    keys = "\n".join(orjson.dumps({"pk": day2[k]["pk"], "sk": day2[k]["sk"]}).decode() for k in chosen)
    run = restore_dag().test(logical_date=datetime(2024, 6, 5, tzinfo=UTC), run_conf=_history_conf(
        history, target, as_of=iso(history.times[2]), keys=keys))
    assert run.state == "success"
    assert digests(scan_all(ddb, target)) == digests({k: day2[k] for k in chosen})
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["restore_items"] == "success" and states["inspect"] == "skipped"


def test_dag_test_run_loads_on_demand_then_settles_to_the_backups_capacities(local_aws, airflow_db, s3_bucket,
                                                                            table_name, monkeypatch, capfd):
    from capacity_backups import INDEX_WCU, TABLE_RCU, TABLE_WCU, gsi_bound_backup

    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 40)
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    target = table_name + "-dag-fast"
    run = restore_dag().test(logical_date=datetime(2024, 6, 6, tzinfo=UTC), run_conf={
        "source": folder.uri, "target_table": target, "create_table": True, "load_capacity": "on-demand",
        "workers": 2})
    assert run.state == "success"
    described = local_aws.dynamodb_client().describe_table(TableName=target)["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert (described["ProvisionedThroughput"]["ReadCapacityUnits"],
            described["ProvisionedThroughput"]["WriteCapacityUnits"]) == (TABLE_RCU, TABLE_WCU)
    assert described["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["WriteCapacityUnits"] == INDEX_WCU
    assert len(scan_all(local_aws.dynamodb_client(), target)) == 40
    logged = capfd.readouterr()
    said = logged.out + logged.err  # the task logs, as dag.test() prints them
    assert f"pace: table {target}" in said  # loaded on demand: the table, not the GSI, bound it
    assert f"settled {target}: provisioned {TABLE_RCU} RCU / {TABLE_WCU} WCU; GSI 'byStatus' {INDEX_WCU} WCU" in said
    assert "load 0: " in said and "(finished)" in said  # the load task's progress report
