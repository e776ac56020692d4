"""`airflow backfill create` over three past days under the running scheduler.

A scan backfill reads the table as it is now: each dated folder is named after its logical date,
and its sidecar records when the data was really read (snapshot_start / snapshot_end).
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
from datetime import UTC, datetime

import pytest

from local_airflow import _airflow_bin

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DAYS = ["2024-03-01", "2024-03-02", "2024-03-03"]


def backfill(e2e, dag_id: str, from_date: str, to_date: str, *extra: str, timeout: float = 240.0) -> dict:
    """Run `airflow backfill create` against the shared Airflow; wait until the backfill completes."""
    af = e2e.airflow
    before = {b["id"] for b in af.api("GET", f"/backfills?dag_id={dag_id}")["backfills"]}
    cmd = [_airflow_bin(), "backfill", "create", "--dag-id", dag_id, "--from-date", from_date,
           "--to-date", to_date, "--max-active-runs", "3", *extra]
    # On Postgres the CLI and the scheduler write side by side: no retry for a locked database.
    result = subprocess.run(cmd, env=af.env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    deadline = time.monotonic() + timeout
    while True:
        new = [b for b in af.api("GET", f"/backfills?dag_id={dag_id}")["backfills"] if b["id"] not in before]
        if new and new[0].get("completed_at"):
            return new[0]
        assert time.monotonic() < deadline, f"backfill not complete after {timeout} s: {new}"
        time.sleep(1)


def runs_by_date(e2e, dag_id: str) -> dict[str, dict]:
    return {r["logical_date"][:10]: r for r in e2e.airflow.dag_runs(dag_id) if r["logical_date"]}


def folder_state(e2e, table: str, day: str) -> dict[str, datetime]:
    prefix = f"{e2e.prefix}/{table}/{day}-00-00-00/"
    return {k[len(prefix):]: o["LastModified"] for k, o in e2e.keys(e2e.bucket, prefix).items()}


def test_backfill_three_days_then_leave_complete_folders_alone(e2e):
    table = e2e.tables.backfill
    dag_id = e2e.dag_id(table)

    # 1. Three past days -> three complete folders, one per logical date.
    started = datetime.now(UTC)
    backfill(e2e, dag_id, DAYS[0], DAYS[-1])
    runs = runs_by_date(e2e, dag_id)
    assert all(runs[day]["state"] == "success" for day in DAYS), {d: runs.get(d) for d in DAYS}
    assert {runs[day]["run_type"] for day in DAYS} == {"backfill"}
    first = {}
    for day in DAYS:
        state = folder_state(e2e, table, day)
        assert {"_SUCCESS", "manifest", "_dynamodb_backup.json"} <= set(state), (day, sorted(state))
        sidecar = json.loads(e2e.read(e2e.bucket, f"{e2e.prefix}/{table}/{day}-00-00-00/_dynamodb_backup.json"))
        # Named after the logical date, but read now: the sidecar says both.
        assert sidecar["logical_date"].startswith(f"{day}T00:00:00")
        assert datetime.fromisoformat(sidecar["snapshot_start"]) >= started.replace(microsecond=0)
        first[day] = state

    # 2. The same dates again (re-running the completed runs): complete folders are left alone.
    backfill(e2e, dag_id, DAYS[0], DAYS[-1], "--reprocess-behavior", "completed")
    runs = runs_by_date(e2e, dag_id)
    assert all(runs[day]["state"] == "success" for day in DAYS)
    second = {day: folder_state(e2e, table, day) for day in DAYS}
    rewritten = sorted(f"{day}/{name}" for day in DAYS for name, when in second[day].items()
                       if first[day].get(name) != when)

    # 3. With {"overwrite": true} the folder is redone, data files included. Airflow 3.3.2 applies
    # --dag-run-conf only to the runs a backfill creates (a reprocessed run keeps its old conf), so
    # the run of that date is deleted first and the backfill creates it again with the conf.
    old_run = runs_by_date(e2e, dag_id)[DAYS[0]]
    e2e.airflow.api("DELETE", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(old_run['dag_run_id'], safe='')}")
    backfill(e2e, dag_id, DAYS[0], DAYS[0], "--dag-run-conf", json.dumps({"overwrite": True}))
    rerun = runs_by_date(e2e, dag_id)[DAYS[0]]
    assert rerun["state"] == "success" and rerun["conf"].get("overwrite") is True, rerun
    redone = folder_state(e2e, table, DAYS[0])
    assert redone["_SUCCESS"] > second[DAYS[0]]["_SUCCESS"], "overwrite did not redo the folder"
    data_files = [name for name in redone if not name.startswith("_") and name != "manifest"]
    assert data_files and all(redone[n] > first[DAYS[0]].get(n, redone[n]) or n not in first[DAYS[0]]
                              for n in data_files), "overwrite did not rewrite the data files"
    assert folder_state(e2e, table, DAYS[1]) == second[DAYS[1]]

    assert not rewritten, f"a re-run without overwrite rewrote complete folders: {rewritten}"
