"""A backup under the real scheduler; every task's log read back from the S3 logging location."""

from __future__ import annotations

import json
import time
import urllib.parse
from datetime import UTC, datetime

import pytest
from airflow_e2e import E2E_ACCESS_KEY, E2E_SECRET_KEY

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DATE = datetime(2024, 5, 4, 3, 2, 1, tzinfo=UTC)


def wait_for_logs(e2e, prefix: str, expected: set[str], timeout: float = 60.0) -> dict[str, str]:
    """Task logs are uploaded when each task's process ends: poll until all are there."""
    deadline = time.monotonic() + timeout
    while True:
        keys = e2e.keys(e2e.log_bucket, prefix)
        found = {k[len(prefix):]: k for k in keys}
        if expected <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def test_scheduled_backup_ships_every_task_log_to_s3(e2e):
    table, af = e2e.tables.logs, e2e.airflow
    dag_id = e2e.dag_id(table)

    run_id = af.trigger(dag_id, conf={"segments": 4, "max_workers": 2}, logical_date=DATE)
    run = af.wait_for_run(dag_id, run_id, timeout=180)
    assert run["state"] == "success"

    tis = af.task_instances(dag_id, run_id)
    # A scan run: the pitr path skips itself.
    assert {(ti["task_id"], ti["state"]) for ti in tis} == {
        ("plan", "success"), ("export_segments", "success"), ("seal", "success"),
        ("start_export", "skipped"), ("wait_for_export", "skipped"), ("convert", "skipped")}
    mapped = sorted(ti["map_index"] for ti in tis if ti["task_id"] == "export_segments")
    assert mapped == [0, 1]

    # 1. The backup itself.
    folder = f"{e2e.prefix}/{table}/{DATE:%Y-%m-%d-%H-%M-%S}/"
    backup_keys = e2e.keys(e2e.bucket, folder)
    assert folder + "_SUCCESS" in backup_keys
    sidecar = json.loads(e2e.read(e2e.bucket, folder + "_dynamodb_backup.json"))
    assert sidecar["logical_date"].startswith("2024-05-04T03:02:01")
    assert sidecar["snapshot_start"] <= sidecar["snapshot_end"]

    # 2. Each task's log, mapped workers included, in the logging location.
    prefix = f"{e2e.log_prefix}/dag_id={dag_id}/run_id={run_id}/"
    expected = {"task_id=plan/attempt=1.log", "task_id=seal/attempt=1.log",
                "task_id=export_segments/map_index=0/attempt=1.log",
                "task_id=export_segments/map_index=1/attempt=1.log"}
    found = wait_for_logs(e2e, prefix, expected)
    assert expected <= set(found), sorted(found)
    logs = {name: e2e.read(e2e.log_bucket, key).decode() for name, key in found.items()}

    assert f"plan for {table}: 4 segments over 2 workers" in logs["task_id=plan/attempt=1.log"]
    for worker in (0, 1):
        text = logs[f"task_id=export_segments/map_index={worker}/attempt=1.log"]
        assert "(finished)" in text, text[-2000:]  # the progress line of the worker's scan
        assert "items/s" in text
        assert f"worker {worker} wrote" in text
    assert "_SUCCESS" in logs["task_id=seal/attempt=1.log"] or "seal" in logs["task_id=seal/attempt=1.log"]

    # 3. No credential in any log, XCom or the sidecar.
    xcoms = []
    for ti in tis:
        quoted = urllib.parse.quote(run_id, safe="")
        entries = af.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{ti['task_id']}/xcomEntries"
                                f"?map_index={ti['map_index']}")["xcom_entries"]
        for entry in entries:
            full = af.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances/{ti['task_id']}/xcomEntries/"
                                 f"{entry['key']}?map_index={ti['map_index']}&deserialize=true")
            xcoms.append(json.dumps(full, default=str))
    assert xcoms, "no XCom read back"
    sidecar_text = e2e.read(e2e.bucket, folder + "_dynamodb_backup.json").decode()
    for secret in (E2E_ACCESS_KEY, E2E_SECRET_KEY):
        for name, text in logs.items():
            assert secret not in text, f"credential in log {name}"
        for text in xcoms:
            assert secret not in text, "credential in an XCom"
        assert secret not in sidecar_text, "credential in the sidecar"
