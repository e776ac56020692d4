"""Export resume: segment checkpoints let a killed worker's retry carry on where it stopped."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.aws import clients
from dynamodb_backup.backup.export import (
    CHECKPOINTS,
    ExportSettings,
    SegmentCheckpoint,
    WorkerResult,
    checkpoint_key,
    export_share,
)
from dynamodb_backup.backup.job import BackupRequest, plan_backup, seal_backup
from dynamodb_backup.formats.codec import decode_line
from dynamodb_backup.formats.layout import MANIFEST, SUCCESS, S3Location
from dynamodb_backup.formats.manifest import parse_manifest
from faultproxy import S3FaultProxy, S3Faults

REPO = Path(__file__).resolve().parents[2]
DATE = datetime(2024, 6, 1, 0, 0, 0, tzinfo=UTC)


def referrer_table(ddb, name: str, count: int) -> list[dict]:
    create_table(ddb, name, TABLE_SPECS["ReferrerCounts"])
    items = list(referrer_items(count))
    put_items(ddb, name, items)
    return items


def all_keys(s3, folder: S3Location) -> list[str]:
    listed = s3.list_objects_v2(Bucket=folder.bucket, Prefix=folder.key(""))
    return [o["Key"][len(folder.key("")):] for o in listed.get("Contents", [])]


def backup_lines(s3, folder: S3Location) -> list[bytes]:
    manifest = s3.get_object(Bucket=folder.bucket, Key=folder.key(MANIFEST))["Body"].read()
    lines: list[bytes] = []
    for entry in parse_manifest(manifest, "manifest"):
        data = s3.get_object(Bucket=folder.bucket, Key=folder.key(entry.url.rsplit("/", 1)[1]))["Body"].read()
        if entry.url.endswith(".gz"):
            data = gzip.decompress(data)
        lines.extend(data[:-1].split(b"\n"))
    return lines


def assert_exactly_once(s3, folder: S3Location, items: list[dict], key=("resource", "timestamp")) -> None:
    lines = backup_lines(s3, folder)
    seen = Counter(tuple(decode_line(line)[k]["S"] for k in key) for line in lines)
    assert max(seen.values()) == 1, [k for k, n in seen.items() if n > 1][:5]
    assert len(seen) == len(items)
    names = all_keys(s3, folder)
    assert SUCCESS in names
    assert not any(n.startswith(CHECKPOINTS) for n in names), "checkpoints must be gone before _SUCCESS"


class CrashingS3:
    """A real S3 client that 'dies' (raises a non-retryable error) on the n-th data file upload."""

    def __init__(self, real, crash_on_file: int = 0, after_checkpoint: tuple[str, int] | None = None) -> None:
        self.real, self.crash_on_file, self.files = real, crash_on_file, 0
        self.after_checkpoint = after_checkpoint
        self.checkpoints: Counter[str] = Counter()
        self.data_puts: list[str] = []

    def put_object(self, **kwargs):
        name = kwargs["Key"].rsplit("/", 1)[-1]
        if f"/{CHECKPOINTS}/" in kwargs["Key"]:
            self.checkpoints[name] += 1
        else:
            self.files += 1
            if self.files == self.crash_on_file or (
                    self.after_checkpoint and self.checkpoints[self.after_checkpoint[0]] >= self.after_checkpoint[1]):
                raise KeyboardInterrupt("simulated SIGKILL of the worker")
            self.data_puts.append(kwargs["Key"])
        return self.real.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def request_for(table: str, bucket: str, segments: int, file_max_items: int, workers: int = 1) -> BackupRequest:
    return BackupRequest(table=table, destination=S3Location(bucket, "bk"), logical_date=DATE, read_ratio=1.0,
                         segments=segments, max_workers=workers,
                         settings=ExportSettings(file_max_items=file_max_items))


def test_retry_resumes_after_the_last_checkpointed_file(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    items = referrer_table(ddb, table_name, 1500)
    request = request_for(table_name, s3_bucket, segments=2, file_max_items=70)
    plan = plan_backup(ddb, s3, request)
    share = plan.shares[0]
    crashing = CrashingS3(s3, after_checkpoint=("segment-1.json", 2))  # segment 0 done, segment 1 part-way
    with pytest.raises(KeyboardInterrupt):
        export_share(ddb, crashing, table_name, plan.folder, share, request.settings)
    checkpoints = [n for n in all_keys(s3, plan.folder) if n.startswith(CHECKPOINTS)]
    assert len(checkpoints) == 2
    seg1 = SegmentCheckpoint.from_json(
        s3.get_object(Bucket=s3_bucket, Key=checkpoint_key(plan.folder, 1))["Body"].read())
    assert not seg1.done and seg1.files and seg1.last_key

    counting = CrashingS3(s3)
    result = export_share(ddb, counting, table_name, plan.folder, share, request.settings)
    # Nothing already checkpointed is written again: only the rest of segment 1.
    assert not set(counting.data_puts) & set(crashing.data_puts[: len(crashing.data_puts) - 1])
    assert len(counting.data_puts) < len(crashing.data_puts)
    assert result.items == len(items)
    seal_backup(ddb, s3, request, plan, [result])
    assert_exactly_once(s3, plan.folder, items)


def test_checkpoint_from_other_settings_is_not_used(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    items = referrer_table(ddb, table_name, 600)
    request = request_for(table_name, s3_bucket, segments=1, file_max_items=50)
    plan = plan_backup(ddb, s3, request)
    with pytest.raises(KeyboardInterrupt):
        export_share(ddb, CrashingS3(s3, 5), table_name, plan.folder, plan.shares[0], request.settings)
    other = ExportSettings(file_max_items=80)
    result = export_share(ddb, s3, table_name, plan.folder, plan.shares[0], other)
    assert {f.items for f in result.files[:-1]} == {80}
    request.settings = other
    seal_backup(ddb, s3, request, plan, [result])
    assert_exactly_once(s3, plan.folder, items)


def test_binary_keys_resume(local_aws, s3_bucket, table_name):
    """The checkpoint stores a binary key as base64 text and gives it back to Scan as bytes."""
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name, hash_key="k", hash_type="B")
    items = [{"k": {"B": i.to_bytes(2, "big") + b"\xff\x00"}, "v": {"N": str(i)}} for i in range(400)]
    put_items(ddb, table_name, items)
    for raw in (True, False):
        settings = ExportSettings(file_max_items=30, raw_scan=raw)
        request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, f"raw{raw}"),
                                logical_date=DATE, read_ratio=1.0, segments=1, settings=settings)
        plan = plan_backup(ddb, s3, request)
        with pytest.raises(KeyboardInterrupt):
            export_share(ddb, CrashingS3(s3, 6), table_name, plan.folder, plan.shares[0], settings)
        result = export_share(ddb, s3, table_name, plan.folder, plan.shares[0], settings)
        seal_backup(ddb, s3, request, plan, [result])
        lines = backup_lines(s3, plan.folder)
        values = sorted(int(decode_line(line)["v"]["N"]) for line in lines)
        assert values == list(range(400))


def test_finished_worker_rerun_reuses_its_files(local_aws, s3_bucket, table_name):
    """A worker whose task succeeded but is run again (e.g. XCom lost) returns the same files."""
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    referrer_table(ddb, table_name, 300)
    request = request_for(table_name, s3_bucket, segments=2, file_max_items=100)
    plan = plan_backup(ddb, s3, request)
    first = export_share(ddb, s3, table_name, plan.folder, plan.shares[0], request.settings)
    counting = CrashingS3(s3)
    again = export_share(ddb, counting, table_name, plan.folder, plan.shares[0], request.settings)
    assert counting.data_puts == []
    assert again.files == first.files


def test_s3_faults_are_retried(local_aws, s3_bucket, table_name):
    """500s, 503s and dropped connections on PutObject/UploadPart/Complete: the export still completes."""
    ddb = local_aws.dynamodb_client()
    items = referrer_table(ddb, table_name, 1200)
    faults = S3Faults(internal_error=0.15, unavailable=0.1, drop_before=0.05, drop_after=0.1,
                      operations=frozenset({"PutObject", "UploadPart", "CompleteMultipartUpload"}))
    with S3FaultProxy(local_aws.s3_url, seed=11, faults=faults) as proxy:
        s3 = clients.client("s3", endpoint_url=proxy.url)
        request = request_for(table_name, s3_bucket, segments=3, file_max_items=60)
        plan = plan_backup(ddb, s3, request)
        results = [export_share(ddb, s3, table_name, plan.folder, share, request.settings)
                   for share in plan.shares]
        seal_backup(ddb, s3, request, plan, results)
    assert proxy.counters["internal_error"] + proxy.counters["unavailable"] > 0
    assert proxy.counters["drop_after"] > 0
    assert_exactly_once(local_aws.s3_client(), plan.folder, items)


def test_multipart_complete_whose_answer_is_lost_is_recognised(local_aws, s3_bucket):
    from dynamodb_backup.aws.s3writer import S3ObjectWriter

    faults = S3Faults(drop_after=1.0, operations=frozenset({"CompleteMultipartUpload"}))
    with S3FaultProxy(local_aws.s3_url, seed=1, faults=faults) as proxy:
        s3 = clients.client("s3", endpoint_url=proxy.url)
        writer = S3ObjectWriter(s3, s3_bucket, "big", "none", part_size=5 * 1024 * 1024)
        writer.write(b"x" * (5 * 1024 * 1024 + 10), 1)
        writer.write(b"y" * 100, 1)
        calls = {"n": 0}  # every answer to the first Complete call (and botocore's own retries) is lost
        real_complete = s3.complete_multipart_upload

        def complete_once_lost(**kwargs):
            calls["n"] += 1
            if calls["n"] > 1:
                proxy.faults = S3Faults()
            return real_complete(**kwargs)

        s3.complete_multipart_upload = complete_once_lost
        written = writer.close()
    head = local_aws.s3_client().head_object(Bucket=s3_bucket, Key="big")
    assert head["ContentLength"] == written.bytes == 5 * 1024 * 1024 + 110
    assert proxy.counters["drop_after"] >= 1


def worker_cmd(table: str, folder: S3Location, share: dict, settings: dict, out: Path, rate: float) -> list[str]:
    return [sys.executable, "-m", "faultproxy.worker", "--table", table, "--folder", folder.uri,
            "--share", json.dumps(share), "--settings", json.dumps(settings), "--out", str(out),
            "--read-rate", str(rate)]


def worker_env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(str(REPO / p) for p in ("plugins", "include", "tests")))


def test_sigkilled_worker_process_resumes(local_aws, s3_bucket, table_name, tmp_path):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    items = referrer_table(ddb, table_name, 2500)
    request = request_for(table_name, s3_bucket, segments=2, file_max_items=60)
    plan = plan_backup(ddb, s3, request)
    share = plan.shares[0].to_dict()
    settings = {"file_max_items": 60}
    out = tmp_path / "result.json"
    proc = subprocess.Popen(worker_cmd(table_name, plan.folder, share, settings, out, 3.0), env=worker_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = all_keys(s3, plan.folder)
            if sum(n.startswith(CHECKPOINTS) for n in names) and len(names) >= 6:
                break
            assert proc.poll() is None, "worker finished before it could be killed"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert not out.exists()
    done = subprocess.run(worker_cmd(table_name, plan.folder, share, settings, out, 10_000), env=worker_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "resuming after" in done.stderr
    result = WorkerResult.from_dict(json.loads(out.read_text()))
    seal_backup(ddb, s3, request, plan, [result])
    assert_exactly_once(s3, plan.folder, items)
    assert not s3.list_multipart_uploads(Bucket=s3_bucket).get("Uploads")



def test_a_worker_killed_mid_file_leaves_an_open_upload_that_the_seal_aborts(local_aws, s3_bucket, table_name,
                                                                             tmp_path, caplog):
    """Items of ~300 KB, uncompressed: a file passes the 5 MB part size after ~17 items, so an upload is open."""
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    blob = os.urandom(300 * 1024)
    put_items(ddb, table_name, ({"pk": {"S": f"big-{i:02d}"}, "b": {"B": blob[i:] + blob[:i]}} for i in range(40)))
    settings_used = ExportSettings(file_max_items=1000, compression="none")
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "bk"), logical_date=DATE,
                            read_ratio=1.0, segments=1, settings=settings_used)
    plan = plan_backup(ddb, s3, request)
    share, settings = plan.shares[0].to_dict(), {"file_max_items": 1000, "compression": "none"}
    out = tmp_path / "result.json"
    proc = subprocess.Popen(worker_cmd(table_name, plan.folder, share, settings, out, 40.0), env=worker_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not s3.list_multipart_uploads(Bucket=s3_bucket, Prefix=plan.folder.key("")).get("Uploads"):
            assert proc.poll() is None, "the worker finished before an upload was open"
            assert time.monotonic() < deadline, "no multipart upload opened"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL and not out.exists()
    left_open = s3.list_multipart_uploads(Bucket=s3_bucket, Prefix=plan.folder.key(""))["Uploads"]
    assert len(left_open) == 1, left_open
    done = subprocess.run(worker_cmd(table_name, plan.folder, share, settings, out, 10_000), env=worker_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    with caplog.at_level("INFO"):
        seal_backup(ddb, s3, request, plan, [WorkerResult.from_dict(json.loads(out.read_text()))])
    assert any("aborted 1 multipart uploads" in r.getMessage() for r in caplog.records)
    assert not s3.list_multipart_uploads(Bucket=s3_bucket, Prefix=plan.folder.key("")).get("Uploads")
    assert SUCCESS in {k.rsplit("/", 1)[-1] for k in all_keys(s3, plan.folder)}
