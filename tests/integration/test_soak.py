"""Soak: twenty seeded trials of export -> restore and copy through the fault proxies.

Each trial: DynamoDB behind a ``DynamoDBFaultProxy`` (30% throttling, 5% 5xx,
2% dropped connections, partial batch writes, capacity enforced) and S3 behind
an ``S3FaultProxy`` (5xx and dropped connections on uploads). The export runs
as worker subprocesses (``python -m faultproxy.worker``, as Airflow runs mapped
tasks); one worker is SIGKILLed at a random moment and run again (Airflow's
retry), which resumes from its checkpoints. The sealed backup is restored (the
restore command) and the source copied (the copy command), both through the
proxies, and each result must have the source's digest.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.aws import clients
from dynamodb_backup.backup.export import CHECKPOINTS, ExportSettings, WorkerResult
from dynamodb_backup.backup.job import BackupRequest, plan_backup, seal_backup
from dynamodb_backup.formats.codec import TableDigest
from dynamodb_backup.formats.layout import SUCCESS, S3Location
from faultproxy import DynamoDBFaultProxy, DynamoFaults, S3FaultProxy, S3Faults

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ITEMS = 1000
TRIALS = 20
#: Trials run side by side: they wait on back-off far more than they compute.
PARALLEL = 10
DATE = datetime(2024, 9, 1, 0, 0, 0, tzinfo=UTC)
DYNAMO_FAULTS = DynamoFaults(throttling=0.3, internal_error=0.025, unavailable=0.025, drop_before=0.01,
                             drop_after=0.01, partial_batch=0.2)
S3_FAULTS = S3Faults(internal_error=0.05, unavailable=0.03, drop_before=0.02, drop_after=0.02,
                     operations=frozenset({"PutObject", "UploadPart", "CompleteMultipartUpload"}))


def digest(client, table: str) -> tuple[int, str]:
    total = TableDigest()
    kwargs: dict = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        for item in page["Items"]:
            total.add(item)
        if "LastEvaluatedKey" not in page:
            return total.count, total.hexdigest()
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@pytest.fixture(scope="module")
def source(local_aws) -> tuple[str, tuple[int, str]]:
    name = "soak-source"
    ddb = local_aws.dynamodb_client()
    create_table(ddb, name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, name, referrer_items(ITEMS, seed=99))
    return name, digest(ddb, name)


def worker_cmd(table: str, folder: S3Location, share: dict, out: Path, rate: float) -> list[str]:
    return [sys.executable, "-m", "faultproxy.worker", "--table", table, "--folder", folder.uri,
            "--share", json.dumps(share), "--settings", json.dumps({"file_max_items": 40}), "--out", str(out),
            "--read-rate", str(rate)]


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynamodb_backup", *argv], env=env, capture_output=True,
                          text=True, timeout=600)


def sigkill_once_progressed(env: dict[str, str], argv: tuple[str, ...], progressed: Callable[[], bool],
                            extra: float) -> bool:
    """Run the CLI; once ``progressed()`` (a checkpoint exists) and ``extra`` seconds more, SIGKILL it.

    Returns whether it was still running when killed. Killing after the first
    checkpoint, not at a random time, makes every kill land mid-run.
    """
    proc = subprocess.Popen([sys.executable, "-m", "dynamodb_backup", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    while proc.poll() is None and not progressed():
        time.sleep(0.05)
    time.sleep(extra)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def trial(local_aws, table: str, source_digest: tuple[int, str], bucket: str, seed: int,
          workdir: Path) -> tuple[bool, str]:
    """One trial; returns whether the killed worker resumed from a checkpoint, and what was injected.

    Everything but plan and seal runs in subprocesses, so trials can run side by side.
    """
    rng = random.Random(seed)
    workdir.mkdir()
    with DynamoDBFaultProxy(local_aws.dynamodb_url, seed=seed, faults=DYNAMO_FAULTS) as dproxy, \
            S3FaultProxy(local_aws.s3_url, seed=seed, faults=S3_FAULTS) as sproxy:
        env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=dproxy.url, AWS_ENDPOINT_URL_S3=sproxy.url,
                   PYTHONPATH=os.pathsep.join(str(REPO / p) for p in ("plugins", "include", "tests")))
        ddb, s3 = clients.client("dynamodb", endpoint_url=dproxy.url), clients.client("s3", endpoint_url=sproxy.url)
        request = BackupRequest(table=table, destination=S3Location(bucket, f"soak-{seed}"), logical_date=DATE,
                                read_ratio=1.0, segments=4, max_workers=2,
                                settings=ExportSettings(file_max_items=40))
        plan = plan_backup(ddb, s3, request)
        victim = rng.randrange(len(plan.shares))
        kill_after = rng.uniform(0.5, 3.0)
        outs = [workdir / f"worker-{i}.json" for i in range(len(plan.shares))]
        procs = [subprocess.Popen(worker_cmd(table, plan.folder, share.to_dict(), out, 20.0), env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
                 for share, out in zip(plan.shares, outs, strict=True)]
        time.sleep(kill_after)
        killed = procs[victim].poll() is None
        if killed:
            os.killpg(procs[victim].pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=300)
        resumed = False
        for i, (proc, out) in enumerate(zip(procs, outs, strict=True)):
            if i == victim and killed and proc.returncode == -signal.SIGKILL and out.exists():
                continue  # killed after it had written its result (atomically): the share is done
            if i == victim and killed and not out.exists():  # else the kill came too late
                retry = subprocess.run(worker_cmd(table, plan.folder, plan.shares[i].to_dict(), out, 1000.0),
                                       env=env, capture_output=True, text=True, timeout=300)
                assert retry.returncode == 0, retry.stderr[-3000:]
                resumed = "resuming after" in retry.stderr or "already exported" in retry.stderr
            else:
                assert proc.returncode == 0, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
        results = [WorkerResult.from_dict(json.loads(out.read_text())) for out in outs]
        sidecar = seal_backup(ddb, s3, request, plan, results)
        assert sidecar.item_count == ITEMS
        names = {o["Key"].rsplit("/", 1)[-1] for o in
                 local_aws.s3_client().list_objects_v2(Bucket=bucket, Prefix=plan.folder.key(""))["Contents"]}
        assert SUCCESS in names and not any(CHECKPOINTS in n for n in names)

        restored, copied = f"soak-r-{seed}", f"soak-c-{seed}"
        restore_args = ("restore", plan.folder.uri, "--table", restored, "--create-table", "--workers", "1",
                        "--write-ratio", "1.0", "--run-id", f"soak-{seed}")
        copy_args = ("copy", "--source-table", table, "--dest-table", copied, "--create-dest",
                     "--read-ratio", "1.0", "--write-ratio", "1.0", "--checkpoint-dir", str(workdir / "copy"))
        # The restore (even seeds) or the copy (odd seeds) is SIGKILLed too, then run again: it must
        # pick up from its checkpoints and still end with every item.
        second_victim = "restore" if seed % 2 == 0 else "copy"
        direct_s3, markers = local_aws.s3_client(), plan.folder.prefix.rsplit("/", 1)[0] + "/_restore_checkpoints/"

        def progressed() -> bool:
            if second_victim == "copy":
                return any((workdir / "copy").glob("segment-*.json"))
            return direct_s3.list_objects_v2(Bucket=bucket, Prefix=markers).get("KeyCount", 0) > 0

        second_kill = sigkill_once_progressed(env, restore_args if seed % 2 == 0 else copy_args, progressed,
                                              rng.uniform(0.0, 0.3))
        done = cli(env, *restore_args)
        assert done.returncode == 0, done.stderr[-3000:]
        restore_output = done.stdout
        done = cli(env, *copy_args)
        assert done.returncode == 0, done.stderr[-3000:]
        copy_output = done.stdout + done.stderr[-3000:]
        # What the rerun found done by the killed run: files (restore) or items (copy).
        picked_up = re.search(r"(\d+) skipped as already done" if seed % 2 == 0 else r"([\d,]+) of them by an earlier",
                              restore_output if seed % 2 == 0 else done.stdout)
        second_resumed = bool(picked_up and int(picked_up.group(1).replace(",", "")) > 0)
        # Killed after its first checkpoint, so the rerun must have found work done (not started over).
        assert second_resumed or not second_kill, f"seed {seed}: the {second_victim} rerun did not resume"
    direct = local_aws.dynamodb_client()
    assert digest(direct, restored) == source_digest, f"seed {seed}: restore differs"
    assert digest(direct, copied) == source_digest, f"seed {seed}: copy differs; its output:\n{copy_output}"
    assert dproxy.counters["throttling"] > 0
    injected = {k: v for k, v in dproxy.counters.items() if not k.startswith("op:")}
    return resumed, (f"seed {seed}: killed={killed} after {kill_after:.2f}s resumed={resumed}; "
                     f"{second_victim} killed={second_kill} resumed={second_resumed}; dynamodb {injected}; "
            f"s3 {dict((k, v) for k, v in sproxy.counters.items() if not k.startswith('op:'))}")


def test_twenty_trials(local_aws, source, s3_bucket, tmp_path):
    seeds = [int(s) for s in os.environ.get("SOAK_SEEDS", "").split(",") if s] or range(TRIALS)
    table, source_digest = source
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {seed: pool.submit(trial, local_aws, table, source_digest, s3_bucket, seed, tmp_path / str(seed))
                   for seed in seeds}
    failures, resumed = [], 0
    for seed, future in futures.items():
        try:
            did_resume, line = future.result()
            resumed += did_resume
            print(line)
        except Exception as exc:
            failures.append(f"seed {seed}: {exc!r}"[:2000])
    assert not failures, "\n".join(failures)
    assert len(futures) < TRIALS or resumed >= 3, f"only {resumed} killed workers resumed from a checkpoint; kill later"
