"""A backup across Celery workers (Postgres, Redis) survives SIGKILLing a worker mid-share.

One stack (``include/local_celery.py``: Postgres, Redis, api-server, scheduler, dag-processor,
triggerer, two workers on the ``default`` and ``dynamodb`` queues) runs, in order:

1. a backup of 6 segments in 3 shares: the shares run on both workers (task instances' hostnames
   over REST). Once a share on one worker has checkpointed (an object in S3, not a timer), that
   worker's whole process group is SIGKILLed. The backup still ends with ``_SUCCESS``; which path
   recovered the share (the broker redelivering it, or the scheduler failing the silent task and
   retrying it) and how long that took are read from the task instance's tries;
2. a third worker started on the ``default`` queue only; then, together, a backup of a table routed
   to the ``dynamodb`` queue, a restore of the first backup and a copy of the table. The third
   worker takes restore/copy tasks and none of the routed backup's; the restored table and the copy
   equal the source by digest; task logs are in S3.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_e2e import SUFFIX, e2e_airflow_env
from celery_e2e import MemoryPeak, all_tries, mapped, tries, wait_for

from backup_folders import digest
from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.backup.export import CHECKPOINTS
from dynamodb_backup.backup.plan import split_segments
from local_aws import pid_alive
from local_celery import CeleryAirflow, Worker, start_celery

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE, ROUTED = f"celery-src-{SUFFIX}", f"celery-routed-{SUFFIX}"
RESTORED, COPY = f"celery-restored-{SUFFIX}", f"celery-copy-{SUFFIX}"
BUCKET, PREFIX = f"celery-backups-{SUFFIX}", "backups"
LOG_BUCKET, LOG_PREFIX = f"celery-logs-{SUFFIX}", "airflow"
SEGMENTS, SHARES = 6, 3
#: Items in the source, items per data file (a checkpoint follows each file), and the read ratio of its
#: 10 read units: each share reads about 1 unit a second, so a share lasts long after its first checkpoint.
ITEMS, FILE_ITEMS, READ_RATIO = 300, 10, 0.3
#: Seconds without a heartbeat before the scheduler fails a task instance (the DAG then retries it).
HEARTBEAT_TIMEOUT = 30
DATE = datetime(2024, 6, 1, 2, 0, 0, tzinfo=UTC)
SPEC = {**TABLE_SPECS["ReferrerCounts"], "ProvisionedThroughput": {"ReadCapacityUnits": 10,
                                                                   "WriteCapacityUnits": 400}}


@pytest.fixture(scope="module")
def stack(local_aws: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CeleryAirflow]:
    ddb = local_aws.dynamodb_client()
    for name in (SOURCE, ROUTED, RESTORED, COPY):
        create_table(ddb, name, SPEC)
    put_items(ddb, SOURCE, referrer_items(ITEMS))
    put_items(ddb, ROUTED, referrer_items(40, seed=3))
    work = tmp_path_factory.mktemp("celery")
    backups = work / "backups.yaml"
    backups.write_text(json.dumps({
        "defaults": {"bucket": BUCKET, "prefix": PREFIX, "schedule": None, "read_ratio": 1.0,
                     "segments": SEGMENTS, "max_workers": SHARES, "file_max_items": FILE_ITEMS},
        "backups": [{"table": SOURCE}, {"table": ROUTED, "queue": "dynamodb", "segments": 2, "max_workers": 2}],
    }))
    env = e2e_airflow_env(local_aws, backups, DYNAMODB_BACKUP_BUCKET=BUCKET, DYNAMODB_BACKUP_PREFIX=PREFIX)
    os.environ.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    # pytest's temporary folders are private to root; the postgres user needs a folder it can reach.
    pg_parent = Path(tempfile.mkdtemp(prefix="celery-e2e-pg-"))
    pg_parent.chmod(0o755)
    started = time.monotonic()
    af = start_celery(work / "stack", REPO_ROOT / "dags", env, log_uri=f"s3://{LOG_BUCKET}/{LOG_PREFIX}",
                      buckets=[BUCKET], heartbeat_timeout=HEARTBEAT_TIMEOUT, postgres_root=pg_parent / "postgres")
    print(f"\nCelery stack started in {time.monotonic() - started:.0f} s", file=sys.stderr)
    try:
        for table in (SOURCE, ROUTED):
            af.wait_for_dag(f"dynamodb_backup_{table}")
        yield af
    finally:
        af.stop()
        shutil.rmtree(pg_parent, ignore_errors=True)


def checkpoints(s3: Any, folder: str) -> dict[int, dict[str, Any]]:
    """The export's checkpoints in S3, by segment."""
    found = {}
    for obj in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{folder}{CHECKPOINTS}/").get("Contents", []):
        body = json.loads(s3.get_object(Bucket=BUCKET, Key=obj["Key"])["Body"].read())
        found[int(body["segment"])] = body
    return found


def test_backup_survives_a_killed_worker_and_queues_route(stack: CeleryAirflow, local_aws: Any) -> None:
    af, s3, ddb = stack, local_aws.s3_client(), local_aws.dynamodb_client()
    memory = MemoryPeak(af.memory_mb)
    dag_id = f"dynamodb_backup_{SOURCE}"
    folder = f"{PREFIX}/{SOURCE}/{DATE:%Y-%m-%d-%H-%M-%S}/"
    share_segments = split_segments(SEGMENTS, SHARES)

    # 1. The backup; kill the worker of the first share that is mid-way (checkpointed, not done).
    run_id = af.trigger(dag_id, conf={"read_ratio": READ_RATIO}, logical_date=DATE)

    def share_mid_way() -> tuple[int, str] | None:
        done = checkpoints(s3, folder)
        for ti in mapped(af, dag_id, run_id, "export_segments"):
            segments = share_segments[ti["map_index"]]
            if ti["state"] == "running" and ti["hostname"] and any(
                    s in done and not done[s]["done"] for s in segments):
                return ti["map_index"], ti["hostname"]
        return None

    victim_share, victim = wait_for("a share checkpointed mid-way on a worker", share_mid_way, 300, memory)
    victim_pids = af.worker_pids(victim)
    killed_at, killed_wall = time.monotonic(), time.time()
    af.kill_worker(victim)
    assert af.killed == [victim] and not any(pid_alive(pid) for pid in victim_pids), "the kill did not land"
    killed_try = tries(af, dag_id, run_id, "export_segments", victim_share)[-1]
    assert killed_try["hostname"] == victim and killed_try["state"] == "running"

    run = None
    while run is None or run["state"] not in ("success", "failed"):
        memory()
        time.sleep(1)
        run = af.dag_run(dag_id, run_id)
        assert time.monotonic() - killed_at < 600, f"backup still {run['state']} 600 s after the kill"
    assert run["state"] == "success", af._ti_summary(dag_id, run_id)
    assert f"{folder}_SUCCESS" in {o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=folder)["Contents"]}

    # Which path recovered the killed share, and when.
    share_tries = tries(af, dag_id, run_id, "export_segments", victim_share)
    first, last = share_tries[0], share_tries[-1]
    assert last["state"] == "success" and last["hostname"] != victim, share_tries
    if first["try_number"] != last["try_number"]:
        path = "scheduler: heartbeat timeout failed the try, the DAG's retry ran it"
        assert first["hostname"] == victim and first["state"] == "failed", share_tries
    else:
        path = "broker: the message was redelivered to another worker"
    recovered_after = datetime.fromisoformat(last["end_date"]).timestamp() - killed_wall
    hosts = {t["hostname"] for t in all_tries(af, dag_id, run_id) if t["task_id"] == "export_segments"}
    assert len(hosts) >= 2, f"the shares ran on {hosts} only"

    # 2. A worker without the dynamodb queue; a routed backup, a restore and a copy together.
    af.start_worker(Worker("celery-worker-3", queues=("default",)))
    routed_dag = f"dynamodb_backup_{ROUTED}"
    routed_run = af.trigger(routed_dag, logical_date=DATE)
    restore_run = af.trigger("dynamodb_restore", conf={"source": f"s3://{BUCKET}/{folder.rstrip('/')}",
                                                       "target_table": RESTORED, "write_ratio": 1.5, "workers": 3})
    copy_run = af.trigger("dynamodb_copy", conf={"source_table": SOURCE, "dest_table": COPY, "read_ratio": 1.5,
                                                 "write_ratio": 1.5, "segments": 4, "workers": 2})
    ended = {}
    for dag, rid in ((routed_dag, routed_run), ("dynamodb_restore", restore_run), ("dynamodb_copy", copy_run)):
        ended[dag] = wait_for(f"{dag} {rid}", lambda d=dag, r=rid: (
            lambda state: state if state in ("success", "failed") else None)(af.dag_run(d, r)["state"]), 600, memory)
    assert set(ended.values()) == {"success"}, {dag: af._ti_summary(dag, rid) for dag, rid in (
        (routed_dag, routed_run), ("dynamodb_restore", restore_run), ("dynamodb_copy", copy_run))}

    routed_hosts = [t["hostname"] for t in all_tries(af, routed_dag, routed_run) if t["state"] == "success"]
    default_hosts = [t["hostname"] for dag, rid in (("dynamodb_restore", restore_run), ("dynamodb_copy", copy_run))
                     for t in all_tries(af, dag, rid) if t["state"] == "success"]
    assert routed_hosts and "celery-worker-3" not in routed_hosts, routed_hosts
    assert default_hosts.count("celery-worker-3") >= 1, f"worker 3 took no default-queue task: {default_hosts}"

    source_digest = digest(ddb, SOURCE)
    assert source_digest[0] == ITEMS
    assert digest(ddb, RESTORED) == source_digest
    assert digest(ddb, COPY) == source_digest

    # Task logs in S3: the killed share's retry and the restore's tasks.
    logs = {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=LOG_BUCKET, Prefix=LOG_PREFIX)
            for o in page.get("Contents", [])}
    share_log = (f"{LOG_PREFIX}/dag_id={dag_id}/run_id={run_id}/task_id=export_segments/"
                 f"map_index={victim_share}/attempt={last['try_number']}.log")
    assert share_log in logs, sorted(logs)[:20]
    assert any(f"dag_id=dynamodb_restore/run_id={restore_run}/" in key for key in logs)

    memory()
    print(f"""
Celery e2e: shares' hosts {sorted(hosts)}; killed {victim} (share {victim_share}, try {killed_try['try_number']});
  recovered by {path}; the share's last try ended {recovered_after:.0f} s after the kill
  (try {last['try_number']} on {last['hostname']}); routed backup on {sorted(set(routed_hosts))};
  restore/copy on {sorted(set(default_hosts))} ({default_hosts.count('celery-worker-3')} tries on celery-worker-3);
  stack peak RSS {memory.peak_mb:.0f} MB over {memory.samples} samples""", file=sys.stderr)
