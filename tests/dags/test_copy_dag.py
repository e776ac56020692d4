"""The copy DAG: it imports, validates its params, checkpoints in Variables, and really copies between servers."""

from __future__ import annotations

import copy
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.formats.codec.canonical import TableDigest
from dynamodb_backup.tablecopy.copier import SegmentState

DAGS = Path(__file__).resolve().parents[2] / "dags"


def load_copy_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS / "dynamodb_copy.py"))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["dynamodb_copy"]


def test_dag_reads_like_the_pipeline():
    dag = load_copy_dag()
    assert dag.schedule is None  # manual only
    assert [t.task_id for t in dag.topological_sort()] == ["plan", "copy_segments", "verify"]
    assert set(dag.params) == {"source_table", "source_aws_conn_id", "source_region", "dest_table",
                               "dest_aws_conn_id", "dest_region", "read_ratio", "write_ratio", "segments",
                               "workers", "create_dest", "consistent_read", "verify", "on_demand_capacity"}
    for name in dag.params:
        param = dag.params.get_param(name)
        assert param.schema.get("title") and param.description, name


@pytest.mark.parametrize(("name", "value"), [("read_ratio", 1.6), ("write_ratio", 0.001), ("segments", 0),
                                             ("workers", 0), ("source_table", "x"), ("dest_table", "a b c"),
                                             ("source_region", "not a region"), ("create_dest", "yes")])
def test_params_refuse_bad_values(name, value):
    from airflow.sdk.exceptions import ParamValidationError

    param = load_copy_dag().params.get_param(name)
    with pytest.raises(ParamValidationError):
        param.resolve(value)


def test_params_accept_good_values():
    params = load_copy_dag().params
    for name, value in [("read_ratio", 1.5), ("write_ratio", 0.01), ("segments", None), ("segments", 40),
                        ("source_region", "eu-west-1"), ("dest_region", None), ("source_table", "Kinesis-target-3")]:
        assert params.get_param(name).resolve(value) == value


class FakeVariables:
    def __init__(self):
        self.values, self.sets = {}, 0

    def get(self, key, default=None, deserialize_json=False):
        return json.loads(self.values[key]) if key in self.values else default

    def set(self, key, value, description=None, serialize_json=False):
        self.values[key], self.sets = json.dumps(value), self.sets + 1


def test_variable_checkpoints_are_throttled_but_never_lost(monkeypatch):
    from dynamodb_backup.operators import tablecopy as operators

    fake = FakeVariables()
    monkeypatch.setattr(operators, "Variable", fake)
    store = operators.VariableCheckpoints("k", every_seconds=3600)
    digest = TableDigest()
    digest.add({"pk": {"B": b"\x01"}})
    for page in range(1, 50):
        store.save(SegmentState(segment=4, total_segments=8, pages=page, last_key={"pk": {"B": b"\x01"}},
                                digest=digest))
    assert fake.sets == 0  # pages in between are not each a database write
    store.flush()  # what copy_segments does when a worker stops, by failure or not
    assert fake.sets == 1
    store.save(SegmentState(segment=5, total_segments=8, done=True))  # a finished segment is written at once
    assert fake.sets == 2
    again = operators.VariableCheckpoints("k")
    assert again.load(4, 8) == SegmentState(segment=4, total_segments=8, pages=49,
                                            last_key={"pk": {"B": b"\x01"}}, digest=digest)
    assert again.load(5, 8).done and again.load(6, 8) is None
    assert operators.checkpoint_key("manual__2024", [0, 1, 2]) != operators.checkpoint_key("manual__2025", [0, 1, 2])


def aws_conn(url: str) -> str:
    return json.dumps({"conn_type": "aws", "login": "testing", "password": "testing",
                       "extra": {"region_name": "us-east-1", "service_config": {"dynamodb": {"endpoint_url": url}}}})


def plugin_modules(plugins: Path) -> list[Path]:
    """The files Airflow's plugin loader imports as top-level modules named after the file."""
    from airflow._shared.module_loading.file_discovery import find_path_from_directory

    return [Path(p) for p in find_path_from_directory(plugins, ".airflowignore") if p.endswith(".py")]


def test_plugin_loader_skips_the_package():
    """Airflow execs every .py under plugins/ as a top-level module named after its stem and leaves it in
    sys.modules even when that fails: __main__.py would replace the process's ``__main__`` and run the
    CLI on Airflow's own argv (its SystemExit escapes the loader and ends the scheduler), and every other
    module would be imported again under a bare name (``config``, ``errors``, ``job``, ...). The package
    is importable anyway (the plugins folder is on sys.path), so plugins/.airflowignore should list it."""
    plugins = DAGS.parent / "plugins"
    loaded = sorted(str(p.relative_to(plugins)) for p in plugin_modules(plugins)
                    if p.is_relative_to(plugins / "dynamodb_backup"))
    assert not loaded, f"Airflow would exec {loaded} as plugins: add 'dynamodb_backup/' to plugins/.airflowignore"


def test_airflow_dags_test_copies_between_two_servers(local_aws, second_dynamodb, airflow_db, table_name,
                                                      tmp_path):
    source = local_aws.dynamodb_client()
    dest = second_dynamodb.client("dynamodb", region_name="us-east-1")
    # Provisioned 400/400 with a GSI, the GSI as big as the table: a put into the table also writes the
    # index, and on AWS a 10-WCU index (the demo's) throttles the table, so the copy keeps to 1.5 x 10
    # units/s (100 s for these items). DynamoDB Local reports the index's units and the copy paces by
    # them; dynalite reports none.
    spec = copy.deepcopy(TABLE_SPECS["ReferrerCounts"])
    for index in spec["GlobalSecondaryIndexes"]:
        index["ProvisionedThroughput"] = dict(spec["ProvisionedThroughput"])
    create_table(source, table_name, spec)
    put_items(source, table_name, referrer_items(1500))
    target = f"{table_name}-copy"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_ENDPOINT_URL")}
    env.update({"AIRFLOW_CONN_AWS_DEFAULT": aws_conn(local_aws.dynamodb_url),
                "AIRFLOW_CONN_AWS_DEST": aws_conn(second_dynamodb.url)})
    # The package behind an .airflowignore, as test_plugin_loader_skips_the_package asks of
    # the real plugins folder: Airflow still puts the folder on sys.path, but imports no file as a plugin.
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "dynamodb_backup").symlink_to(DAGS.parent / "plugins" / "dynamodb_backup")
    (plugins / ".airflowignore").write_text("dynamodb_backup/\n")
    assert plugin_modules(plugins) == []
    env["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(plugins)
    conf = {"source_table": table_name, "dest_table": target, "dest_aws_conn_id": "aws_dest",
            "read_ratio": 1.0, "write_ratio": 1.5, "segments": 6, "workers": 3, "create_dest": True,
            "verify": True, "on_demand_capacity": 40000}
    airflow = str(Path(sys.executable).parent / "airflow")
    run = subprocess.run([airflow, "dags", "test", "dynamodb_copy", "-c", json.dumps(conf)], env=env,
                         capture_output=True, text=True, timeout=300)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]

    with sqlite3.connect(airflow_db / "airflow.db") as db:
        states = dict(db.execute("select task_id || coalesce('#' || nullif(map_index, -1), ''), state "
                                 "from task_instance where dag_id = 'dynamodb_copy'").fetchall())
        leftover = db.execute("select key from variable where key like 'dynamodb_copy.%'").fetchall()
        run_state = db.execute("select state from dag_run where dag_id = 'dynamodb_copy'").fetchall()
    assert run_state == [("success",)], output[-5000:]
    assert states == {"plan": "success", "copy_segments#0": "success", "copy_segments#1": "success",
                      "copy_segments#2": "success", "verify": "success"}
    assert leftover == []  # checkpoints are dropped once every worker has finished

    def digest(client, table):
        total = TableDigest()
        for page in client.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                total.add(item)
        return total

    assert digest(dest, target) == digest(source, table_name) and digest(dest, target).count == 1500
    created = dest.describe_table(TableName=target)["Table"]
    assert [i["IndexName"] for i in created["GlobalSecondaryIndexes"]] == ["by-host"]
    assert created["ProvisionedThroughput"]["WriteCapacityUnits"] == 400
    assert f"verified: {target} holds exactly the 1,500 items copied" in output
