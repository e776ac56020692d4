"""The run tab of a real restore run: dag.test() of the restore DAG, then the console's app reads what the run
recorded (its inspect and load XComs, the load workers' write-unit records in S3) and draws them."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from backup_folders import all_types_backup
from dynamodb_backup.console import app as console
from dynamodb_backup.console.views import restore_view
from dynamodb_backup.formats.layout import S3Location

DAGS = Path(__file__).resolve().parents[2] / "dags"


def test_a_restore_runs_tab_draws_the_write_units_its_load_recorded(local_aws, airflow_db, s3_bucket, table_name,
                                                                    monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    folder = all_types_backup(local_aws, s3_bucket, table_name)
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    console.s3_client.cache_clear()
    dag = DagBag(dag_folder=str(DAGS / "dynamodb_restore.py")).dags["dynamodb_restore"]
    target = table_name + "-tab"
    run = dag.test(logical_date=datetime(2024, 6, 6, tzinfo=UTC), run_conf={
        "source": folder.uri, "target_table": target, "create_table": True, "write_ratio": 1.0, "workers": 2})
    assert run.state == "success"

    # What the run recorded: the folder it inspected, and where each load worker saved its write units.
    inspection, loads, conf = console.restore_xcoms(dag.dag_id, run.run_id)
    assert inspection is not None and inspection["source"]["folder"] == folder.uri and conf["target_table"] == target
    assert len(loads) == 2 and len({r["write_units"] for r in loads}) == 1, loads
    record = S3Location.parse(loads[0]["write_units"])
    view = restore_view(local_aws.s3_client(), record, folder, target)
    assert sum(w.items for w in view.workers) == sum(r["items"] for r in loads) == 8
    assert abs(view.usage.total - sum(r["consumed_write_units"] for r in loads)) < 0.01 and view.usage.total > 0
    assert view.allowed_rate is not None and view.allowed_rate > 0

    # The tab itself, through the app's route (Airflow's auth is the one dependency left out here).
    app = console.create_app()
    app.dependency_overrides[console.authenticated] = lambda: None
    page = TestClient(app).get(f"/run/{dag.dag_id}/{run.run_id}")
    assert page.status_code == 200
    html = page.text
    assert f"into {target}" in html and "Write units consumed per second" in html, html
    assert "class='consumed'" in html and "class='allowed" in html and html.count("<tr><td>load_") == 2
    other = TestClient(app).get("/run/some_other_dag/manual__x").text
    assert "Not a backup or restore run" in other
