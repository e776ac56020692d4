"""Soak: twenty seeded trials of export -> restore and copy through the fault proxies.

Each trial: DynamoDB behind a ``DynamoDBFaultProxy`` (30% throttling, 5% 5xx,
2% dropped connections, partial batch writes, capacity enforced with a spent
burst, so real capacity exhaustion happens) and S3 behind an ``S3FaultProxy``
(5xx and dropped connections on uploads and downloads: PutObject, UploadPart,
CompleteMultipartUpload and GetObject). Each phase (the export, the restore, the copy) has
proxies of its own, so their counters say which faults each phase met. The export runs as worker
subprocesses (``python -m faultproxy.worker``, as Airflow runs mapped tasks);
one worker is SIGKILLed once it has checkpointed its first, second or third
file (the seed chooses) and run again (Airflow's retry), which resumes from its
checkpoints. The sealed backup is restored (the restore command) and the source
copied (the copy command), both through the proxies; the restore or the copy is
SIGKILLed the same way, after its first, second or third checkpoint, and run
again. Each result must have the source's digest.

Every kill waits for an event (a checkpoint read from S3 or the checkpoint
directory, not through the proxies), never for a time, and the killed run is
slowed (a lower rate for it alone) so the kill always lands mid-run. Every kill
must land and every rerun must resume, in every trial; every phase must meet faults in every
trial, and across the trials each phase must have met every kind of fault it is exposed to, by
its proxies' counters (PHASE_KINDS).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest

from backup_folders import digest
from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.aws import clients
from dynamodb_backup.backup.export import CHECKPOINTS, ExportSettings, SegmentCheckpoint, WorkerResult, checkpoint_key
from dynamodb_backup.backup.job import BackupRequest, plan_backup, seal_backup
from dynamodb_backup.formats.layout import SUCCESS, S3Location
from faultproxy import DynamoDBFaultProxy, DynamoFaults, S3FaultProxy, S3Faults

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
ITEMS = 1000
TRIALS = 20
#: Trials run side by side, all at once: they wait on pacing and back-off far more than they compute.
PARALLEL = 20
DATE = datetime(2024, 9, 1, 0, 0, 0, tzinfo=UTC)
DYNAMO_FAULTS = DynamoFaults(throttling=0.3, internal_error=0.025, unavailable=0.025, drop_before=0.01,
                             drop_after=0.01, partial_batch=0.2)
S3_FAULTS = S3Faults(internal_error=0.05, unavailable=0.03, drop_before=0.02, drop_after=0.02,
                     operations=frozenset({"PutObject", "UploadPart", "CompleteMultipartUpload", "GetObject"}))
#: A busy table's burst: AWS banks up to 300 s of unused capacity, but a table that serves
#: traffic has spent it (and AWS may spend it on background work without notice). So every
#: table starts with none banked and banks at most one second, while the tool's own pacing
#: banks up to five: after a pause a client runs ahead of the table and meets a real
#: ProvisionedThroughputExceededException, not only the injected ThrottlingException.
BURST = {"burst_seconds": 1.0, "initial_burst_seconds": 0.0}
#: The source is provisioned for its size (1,000 items, about 28 read units to scan), as a real
#: table is, not with the demo's 400 units that nothing here could use up; its restore and its
#: copy are created alike.
SOURCE_SPEC = {**TABLE_SPECS["ReferrerCounts"], "ProvisionedThroughput": {"ReadCapacityUnits": 20,
                                                                          "WriteCapacityUnits": 50}}
#: Each kind of fault, by its proxy counter; each must have been injected in some trial.
DYNAMO_KINDS = ("throttling", "capacity_exceeded", "internal_error", "unavailable", "drop_before", "drop_after",
                "partial_batch")
S3_KINDS = ("internal_error", "unavailable", "drop_before", "drop_after")
PHASES = ("export", "restore", "copy")
#: What each phase is exposed to, as "<service> <counter>": the export scans (no batch writes) and
#: uploads; the restore reads the backup (GetObject) and writes; the copy scans and writes, and
#: keeps its checkpoints on local disk (no S3).
PHASE_KINDS = {
    "export": [f"dynamodb {k}" for k in DYNAMO_KINDS if k != "partial_batch"] + [f"s3 {k}" for k in S3_KINDS],
    "restore": [f"dynamodb {k}" for k in DYNAMO_KINDS] + [f"s3 {k}:GetObject" for k in S3_KINDS],
    "copy": [f"dynamodb {k}" for k in DYNAMO_KINDS],
}
#: Items per data file: a checkpoint follows each file. The table's segments are far from even
#: (its 1,000 items have few partition keys: by segment 358, 560, 53 and 29), and even the small
#: share must checkpoint three times before it is done.
FILE_ITEMS = 20
#: Read units per second of the export worker that is killed (the others, and its retry, read at
#: the plan's rate: 10 each). Below one unit a second each Scan call reads one item (a call costs
#: at least half a unit), so the victim reads under two items a second: the small share still has
#: its last segment (29 items, over 15 s) to read after its third checkpoint, so every kill lands.
VICTIM_READ_RATE = 0.9
#: The killed restore's and copy's write ratio (their reruns use 1.0), and the copy's read ratio
#: (small pages, so it checkpoints often): slow enough that the kill lands mid-run.
KILLED_WRITE_RATIO, KILLED_COPY_READ_RATIO = "0.25", "0.1"
#: How often a victim's checkpoints are looked at.
POLL_SECONDS = 0.2


@pytest.fixture(scope="module")
def source(local_aws) -> tuple[str, tuple[int, str]]:
    name = "soak-source"
    ddb = local_aws.dynamodb_client()
    create_table(ddb, name, SOURCE_SPEC)
    put_items(ddb, name, referrer_items(ITEMS, seed=99))
    return name, digest(ddb, name)


def worker_cmd(table: str, folder: S3Location, share: dict, out: Path, rate: float | None = None) -> list[str]:
    return [sys.executable, "-m", "faultproxy.worker", "--table", table, "--folder", folder.uri,
            "--share", json.dumps(share), "--settings", json.dumps({"file_max_items": FILE_ITEMS}), "--out", str(out),
            *(["--read-rate", str(rate)] if rate else [])]


def cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dynamodb_backup", *argv], env=env, capture_output=True,
                          text=True, timeout=600)


def sigkill_after(proc: subprocess.Popen, checkpoints: Callable[[], int], k: int, timeout: float = 300) -> bool:
    """Once ``checkpoints()`` reaches ``k``, SIGKILL ``proc`` (its process group); return whether it landed.

    The kill waits for an event, not a time. It landed when the process was
    still running: it died of the signal, not of its own accord.
    """
    deadline = time.monotonic() + timeout
    while proc.poll() is None and checkpoints() < k:
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise AssertionError(f"no {k} checkpoints within {timeout} s")
        time.sleep(POLL_SECONDS)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.returncode == -signal.SIGKILL


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def export_checkpointed_files(s3, folder: S3Location, segments: list[int]) -> Callable[[], int]:
    """Files in the checkpoints of ``segments`` (read from S3 directly): one more per checkpoint written."""
    seen: dict[str, tuple[str, int]] = {}  # key -> (ETag, files)

    def count() -> int:
        wanted = {checkpoint_key(folder, s) for s in segments}
        listed = s3.list_objects_v2(Bucket=folder.bucket, Prefix=folder.key(f"{CHECKPOINTS}/")).get("Contents", [])
        for obj in listed:
            if obj["Key"] in wanted and seen.get(obj["Key"], ("", 0))[0] != obj["ETag"]:
                body = s3.get_object(Bucket=folder.bucket, Key=obj["Key"])["Body"].read()
                seen[obj["Key"]] = (obj["ETag"], len(SegmentCheckpoint.from_json(body).files))
        return sum(files for _, files in seen.values())

    return count


@dataclass
class Outcome:
    seed: int
    export_k: int
    export_landed: bool
    export_resumed: bool
    second: str
    second_k: int
    second_landed: bool
    second_resumed: int
    #: Per phase, the proxies' counters as "dynamodb <counter>" and "s3 <counter>".
    faults: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        faults = {phase: {k: v for k, v in sorted(counts.items()) if " op:" not in k and not k.endswith("requests")}
                  for phase, counts in self.faults.items()}
        return (f"seed {self.seed} ({self.seconds:.0f} s): export worker killed after checkpoint {self.export_k} "
                f"landed={self.export_landed} resumed={self.export_resumed}; {self.second} killed after checkpoint "
                f"{self.second_k} landed={self.second_landed} resumed={self.second_resumed}; faults {faults}")


def phase_counters(dproxy: DynamoDBFaultProxy, sproxy: S3FaultProxy) -> Counter[str]:
    return Counter({**{f"dynamodb {k}": v for k, v in dproxy.counters.items()},
                    **{f"s3 {k}": v for k, v in sproxy.counters.items()}})


def trial(local_aws, table: str, source_digest: tuple[int, str], bucket: str, seed: int, workdir: Path) -> Outcome:
    """One trial: what its kills did and which faults were injected.

    Everything but plan and seal runs in subprocesses, so trials can run side by side.
    """
    rng, started = random.Random(seed), time.monotonic()
    workdir.mkdir()
    direct_s3 = local_aws.s3_client()  # the kills watch S3 itself, not through the fault proxy
    children: list[subprocess.Popen] = []
    # Each phase its own pair of proxies (same faults), so each phase's faults are counted apart.
    proxies = {phase: (DynamoDBFaultProxy(local_aws.dynamodb_url, seed=seed, faults=DYNAMO_FAULTS, **BURST),
                       S3FaultProxy(local_aws.s3_url, seed=seed, faults=S3_FAULTS)) for phase in PHASES}
    with contextlib.ExitStack() as cleanup:
        for pair in proxies.values():
            for proxy in pair:
                cleanup.enter_context(proxy)
        cleanup.callback(stop_all, children)  # a failed trial leaves no process behind (stopped first)
        envs = {phase: dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=dproxy.url, AWS_ENDPOINT_URL_S3=sproxy.url,
                            PYTHONPATH=os.pathsep.join(str(REPO / p) for p in ("plugins", "include", "tests")))
                for phase, (dproxy, sproxy) in proxies.items()}
        env = envs["export"]
        dproxy, sproxy = proxies["export"]
        ddb, s3 = clients.client("dynamodb", endpoint_url=dproxy.url), clients.client("s3", endpoint_url=sproxy.url)
        request = BackupRequest(table=table, destination=S3Location(bucket, f"soak-{seed}"), logical_date=DATE,
                                read_ratio=1.0, segments=4, max_workers=2,
                                settings=ExportSettings(file_max_items=FILE_ITEMS))
        plan = plan_backup(ddb, s3, request)
        victim = rng.randrange(len(plan.shares))
        export_k = rng.randint(1, 3)
        outs = [workdir / f"worker-{i}.json" for i in range(len(plan.shares))]
        logs = [workdir / f"worker-{i}.log" for i in range(len(plan.shares))]

        def start_worker(i: int, rate: float | None = None, log: Path | None = None) -> subprocess.Popen:
            with (log or logs[i]).open("w") as stderr:
                children.append(subprocess.Popen(
                    worker_cmd(table, plan.folder, plan.shares[i].to_dict(), outs[i], rate), env=env,
                    stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True))
            return children[-1]

        procs = [start_worker(i, VICTIM_READ_RATE if i == victim else None) for i in range(len(plan.shares))]
        export_landed = sigkill_after(
            procs[victim], export_checkpointed_files(direct_s3, plan.folder, list(plan.shares[victim].segments)),
            export_k)
        assert export_landed, f"seed {seed}: the export worker finished before its kill"
        assert not outs[victim].exists(), f"seed {seed}: the killed worker wrote its result"
        # Airflow's retry: the same share at the plan's rate, while the other worker goes on.
        retry_log = workdir / "retry.log"
        retry = start_worker(victim, log=retry_log)
        assert retry.wait(timeout=300) == 0, retry_log.read_text()[-3000:]
        retried = retry_log.read_text()
        export_resumed = "resuming after" in retried or "already exported" in retried
        for i, proc in enumerate(procs):
            if i != victim:
                assert proc.wait(timeout=300) == 0, logs[i].read_text()[-3000:]
        results = [WorkerResult.from_dict(json.loads(out.read_text())) for out in outs]
        sidecar = seal_backup(ddb, s3, request, plan, results)
        assert sidecar.item_count == ITEMS
        names = {o["Key"].rsplit("/", 1)[-1] for o in
                 direct_s3.list_objects_v2(Bucket=bucket, Prefix=plan.folder.key(""))["Contents"]}
        assert SUCCESS in names and not any(CHECKPOINTS in n for n in names)

        restored, copied = f"soak-r-{seed}", f"soak-c-{seed}"
        restore_args = ("restore", plan.folder.uri, "--table", restored, "--create-table", "--workers", "1",
                        "--run-id", f"soak-{seed}")
        copy_args = ("copy", "--source-table", table, "--dest-table", copied, "--create-dest",
                     "--checkpoint-dir", str(workdir / "copy"))
        # The restore (even seeds) or the copy (odd seeds) is SIGKILLed too, after its k-th checkpoint (a
        # restore's file marker in S3, a copy's page in its checkpoint directory), then run again: it must
        # pick up from its checkpoints and still end with every item.
        second = "restore" if seed % 2 == 0 else "copy"
        second_k = rng.randint(1, 3)
        markers = plan.folder.prefix.rsplit("/", 1)[0] + "/_restore_checkpoints/"

        def second_checkpoints() -> int:
            if second == "copy":
                return sum(json.loads(p.read_bytes())["pages"] for p in (workdir / "copy").glob("segment-*.json"))
            return int(direct_s3.list_objects_v2(Bucket=bucket, Prefix=markers).get("KeyCount", 0))

        if second == "restore":
            killed_args = (*restore_args, "--write-ratio", KILLED_WRITE_RATIO)
        else:
            killed_args = (*copy_args, "--read-ratio", KILLED_COPY_READ_RATIO, "--write-ratio", KILLED_WRITE_RATIO)
        killed = subprocess.Popen([sys.executable, "-m", "dynamodb_backup", *killed_args], env=envs[second],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        children.append(killed)
        second_landed = sigkill_after(killed, second_checkpoints, second_k)
        assert second_landed, f"seed {seed}: the {second} finished before its kill"
        # The restore and the copy (each the killed one's rerun, or its only run) side by side.
        with ThreadPoolExecutor(2) as pool:
            restoring = pool.submit(cli, envs["restore"], *restore_args, "--write-ratio", "1.0")
            copying = pool.submit(cli, envs["copy"], *copy_args, "--read-ratio", "1.0", "--write-ratio", "1.0")
            restore_done, copy_done = restoring.result(), copying.result()
        assert restore_done.returncode == 0, restore_done.stderr[-3000:]
        assert copy_done.returncode == 0, copy_done.stderr[-3000:]
        copy_output = copy_done.stdout + copy_done.stderr[-3000:]
        # What the rerun found done by the killed run: files (restore) or items (copy).
        picked_up = (re.search(r"(\d+) skipped as already done", restore_done.stdout) if second == "restore"
                     else re.search(r"([\d,]+) of them by an earlier", copy_done.stdout))
        second_resumed = int(picked_up.group(1).replace(",", "")) if picked_up else 0
        assert second_resumed > 0, f"seed {seed}: the {second} rerun did not resume"
    direct = local_aws.dynamodb_client()
    assert digest(direct, restored) == source_digest, f"seed {seed}: restore differs"
    assert digest(direct, copied) == source_digest, f"seed {seed}: copy differs; its output:\n{copy_output}"
    faults = {phase: phase_counters(*pair) for phase, pair in proxies.items()}
    for phase in PHASES:  # every phase met faults in this trial (which kinds: across the trials)
        assert sum(faults[phase][kind] for kind in PHASE_KINDS[phase]) > 0, f"seed {seed}: {phase} met no fault"
    assert faults["restore"]["s3 op:GetObject"] > 0, f"seed {seed}: the restore read nothing through its proxy"
    return Outcome(seed, export_k, export_landed, export_resumed, second, second_k, second_landed, second_resumed,
                   faults, time.monotonic() - started)


def test_twenty_trials(local_aws, source, s3_bucket, tmp_path):
    seeds = [int(s) for s in os.environ.get("SOAK_SEEDS", "").split(",") if s] or range(TRIALS)
    table, source_digest = source
    with ThreadPoolExecutor(PARALLEL) as pool:
        futures = {seed: pool.submit(trial, local_aws, table, source_digest, s3_bucket, seed, tmp_path / str(seed))
                   for seed in seeds}
    failures, outcomes = [], []
    for seed, future in futures.items():
        try:
            outcomes.append(future.result())
            print(outcomes[-1].line())
        except Exception as exc:
            text = f"seed {seed}: {exc!r}"
            failures.append(text if len(text) < 4000 else f"{text[:1000]} [...] {text[-3000:]}")
    assert not failures, "\n".join(failures)
    # Every kill landed mid-run and every rerun resumed from the killed run's checkpoints.
    assert all(o.export_landed and o.export_resumed for o in outcomes), [o.line() for o in outcomes]
    assert all(o.second_landed and o.second_resumed for o in outcomes), [o.line() for o in outcomes]
    per_phase = {phase: sum((o.faults[phase] for o in outcomes), Counter()) for phase in PHASES}
    totals = {phase: {kind: per_phase[phase][kind] for kind in PHASE_KINDS[phase]} for phase in PHASES}
    requests = {phase: (per_phase[phase]["dynamodb requests"], per_phase[phase]["s3 requests"]) for phase in PHASES}
    restores = [o for o in outcomes if o.second == "restore"]
    print(f"{len(outcomes)} trials: {sum(o.export_landed for o in outcomes)} export kills landed, "
          f"{sum(o.export_resumed for o in outcomes)} resumed; {sum(o.second_landed for o in restores)} restore "
          f"and {sum(o.second_landed for o in outcomes) - sum(o.second_landed for o in restores)} copy kills "
          f"landed, {sum(bool(o.second_resumed) for o in outcomes)} resumed; "
          f"requests (dynamodb, s3): {requests}; faults met per phase: {totals}")
    # Each phase met every kind of fault it is exposed to (and, as every trial passed, survived it);
    # a few SOAK_SEEDS may miss some.
    never = {phase: [kind for kind, n in kinds.items() if not n] for phase, kinds in totals.items()}
    assert len(outcomes) < TRIALS or not any(never.values()), f"faults a phase never met: {never}; {totals}"
