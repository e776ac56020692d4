"""Export against real local servers: dynalite for DynamoDB, moto for S3, over HTTP."""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
import zstandard

from demo_data import TABLE_SPECS, all_types_items, create_table, put_items, referrer_items
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.export import ExportSettings, export_share
from dynamodb_backup.backup.job import BackupRequest, plan_backup, run_backup, seal_backup
from dynamodb_backup.backup.scan import _take_raw_body, install_raw_scan, scan_page, scan_segment
from dynamodb_backup.commands import client_factory
from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.codec import canonical_bytes, decode_line
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location
from dynamodb_backup.formats.manifest import parse_manifest
from dynamodb_backup.formats.sidecar import Sidecar

REPO = Path(__file__).resolve().parents[2]
DATE = datetime(2024, 3, 5, 4, 10, 22, tzinfo=UTC)


def make_table(client, name: str, kind: str, count: int = 0) -> list[dict]:
    spec = TABLE_SPECS["ReferrerCounts" if kind == "referrer" else "AllTypes"]
    create_table(client, name, spec)
    items = list(referrer_items(count)) if kind == "referrer" else all_types_items()
    put_items(client, name, items)
    return items


def read_folder(s3, folder: S3Location) -> tuple[dict[str, bytes], list[bytes]]:
    """All objects of the folder by name, and every data line listed in the manifest."""
    objects = {}
    for obj in s3.list_objects_v2(Bucket=folder.bucket, Prefix=folder.key(""))["Contents"]:
        objects[obj["Key"].rsplit("/", 1)[1]] = s3.get_object(Bucket=folder.bucket, Key=obj["Key"])["Body"].read()
    lines: list[bytes] = []
    for entry in parse_manifest(objects[MANIFEST], "manifest"):
        data = objects[entry.url.rsplit("/", 1)[1]]
        if entry.url.endswith(".gz"):
            data = gzip.decompress(data)
        elif entry.url.endswith(".zst"):
            data = zstandard.ZstdDecompressor().decompressobj().decompress(data)
        assert data.endswith(b"\n")
        lines.extend(data[:-1].split(b"\n"))
    return objects, lines


def request_for(table: str, bucket: str, **kwargs) -> BackupRequest:
    return BackupRequest(table=table, destination=S3Location(bucket, "backups"), logical_date=DATE,
                         read_ratio=1.0, **kwargs)


@pytest.mark.parametrize("compression", ["gzip", "none", "zstd"])
def test_all_types_round_trip_exactly(local_aws, s3_bucket, table_name, compression):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    make_table(ddb, table_name, "all")
    request = request_for(table_name, s3_bucket, segments=3, max_workers=2,
                          settings=ExportSettings(compression=compression))
    sidecar = run_backup(client_factory(), request)
    assert sidecar is not None
    folder = S3Location(s3_bucket, f"backups/{table_name}/2024-03-05-04-10-22")
    objects, lines = read_folder(s3, folder)
    assert objects[SUCCESS] == b""
    # What DynamoDB returns is what the backup holds, to the byte after decoding.
    scanned = ddb.scan(TableName=table_name)["Items"]
    assert sorted(canonical_bytes(decode_line(line)) for line in lines) == sorted(
        canonical_bytes(item) for item in scanned)
    assert {decode_line(line)["pk"]["S"]: decode_line(line) for line in lines}["numbers"]["big"] == {
        "N": "12345678901234567890123456789012345678"}
    assert sidecar.item_count == len(scanned) == len(lines)
    recorded = Sidecar.from_json(objects[SIDECAR], "sidecar")
    assert recorded.table["KeySchema"] == ddb.describe_table(TableName=table_name)["Table"]["KeySchema"]
    assert recorded.logical_date == "2024-03-05T04:10:22+00:00"


def test_raw_and_parsed_paths_write_identical_bytes(local_aws, s3_bucket, table_name):
    """The fast path (raw body + orjson) must write exactly what the parsed path writes."""
    ddb = local_aws.dynamodb_client()
    make_table(ddb, table_name, "all")
    outputs = {}
    for raw in (True, False):
        bucket = TokenBucket(rate=10_000)
        pages = list(scan_segment(local_aws.dynamodb_client(), table_name, 0, 1, bucket, raw=raw))
        from dynamodb_backup.formats.codec import encode_item, encode_wire_item

        encode = encode_wire_item if raw else encode_item
        outputs[raw] = [encode(item) for page in pages for item in page.items]
    assert outputs[True] == outputs[False]
    assert len(outputs[True]) == len(all_types_items())


def test_seven_segments_over_three_workers_hold_every_item_once(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    items = make_table(ddb, table_name, "referrer", 3000)
    request = request_for(table_name, s3_bucket, segments=7, max_workers=3,
                          settings=ExportSettings(file_max_items=250))
    plan = plan_backup(ddb, s3, request)
    assert [len(s.segments) for s in plan.shares] == [3, 2, 2]
    results = [export_share(ddb, s3, table_name, plan.folder, share, request.settings) for share in plan.shares]
    sidecar = seal_backup(ddb, s3, request, plan, results)
    _, lines = read_folder(s3, plan.folder)
    keys = Counter((d["resource"]["S"], d["timestamp"]["S"]) for d in map(decode_line, lines))
    assert len(keys) == len(items) == sidecar.item_count
    assert max(keys.values()) == 1
    assert sorted({f.segment for f in sidecar.files}) == list(range(7))
    assert all(f.items <= 250 for f in sidecar.files)


class FailingS3:
    """Passes calls through to a real S3 client, but fails the n-th object upload."""

    def __init__(self, real, fail_on: int) -> None:
        self.real, self.fail_on, self.calls = real, fail_on, 0

    def put_object(self, **kwargs):
        self.calls += 1
        if self.calls == self.fail_on:
            raise ConnectionError("simulated crash of the worker")
        return self.real.put_object(**kwargs)

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_failed_worker_leaves_no_success_and_its_retry_completes(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    items = make_table(ddb, table_name, "referrer", 2000)
    request = request_for(table_name, s3_bucket, segments=4, max_workers=2,
                          settings=ExportSettings(file_max_items=100, compression="none"))
    plan = plan_backup(ddb, s3, request)
    first = export_share(ddb, s3, table_name, plan.folder, plan.shares[0], request.settings)
    with pytest.raises(ConnectionError):
        export_share(ddb, FailingS3(s3, fail_on=2), table_name, plan.folder, plan.shares[1], request.settings)
    names = {o["Key"].rsplit("/", 1)[1] for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]}
    assert SUCCESS not in names and MANIFEST not in names
    # Sealing with a share missing is refused, and still no _SUCCESS.
    with pytest.raises(BackupFolderError, match="segments missing"):
        seal_backup(ddb, s3, request, plan, [first])
    # Plant a stray from "an earlier attempt": sealing must drop it from the folder.
    s3.put_object(Bucket=s3_bucket, Key=plan.folder.key("stray-file"), Body=b"{}\n")
    retry = export_share(ddb, s3, table_name, plan.folder, plan.shares[1], request.settings)
    seal_backup(ddb, s3, request, plan, [first, retry])
    objects, lines = read_folder(s3, plan.folder)
    assert SUCCESS in objects and "stray-file" not in objects
    assert len(lines) == len(set(lines)) == len(items)


def test_complete_folder_is_left_alone_unless_overwrite(local_aws, s3_bucket, table_name):
    ddb = local_aws.dynamodb_client()
    make_table(ddb, table_name, "all")
    assert run_backup(client_factory(), request_for(table_name, s3_bucket)) is not None
    assert run_backup(client_factory(), request_for(table_name, s3_bucket)) is None
    assert run_backup(client_factory(), request_for(table_name, s3_bucket, overwrite=True)) is not None


def test_missing_table_and_bucket_are_named(local_aws, s3_bucket, table_name):
    with pytest.raises(ParameterError, match=f"table: DynamoDB table '{table_name}' does not exist"):
        run_backup(client_factory(), request_for(table_name, s3_bucket))
    make_table(local_aws.dynamodb_client(), table_name, "all")
    with pytest.raises(ParameterError, match="bucket: S3 bucket 'no-such-bucket-xyz' does not exist"):
        run_backup(client_factory(), request_for(table_name, "no-such-bucket-xyz"))


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "dynamodb_backup", *args]


def test_killed_cli_export_leaves_no_success_and_rerun_completes(local_aws, s3_bucket, table_name):
    """SIGKILL a slow export mid-way (a low read ratio keeps it running), then run it again.

    The kill waits for an event, not a time: the first object the export writes (a finished
    segment's data file, then its checkpoint). The other worker is still scanning then.
    """
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    items = make_table(ddb, table_name, "referrer", 3000)
    env = dict(os.environ, PYTHONPATH=str(REPO / "plugins"))
    args = cli("export", "--table", table_name, "--to", f"s3://{s3_bucket}/backups", "--segments", "4",
               "--workers", "2", "--read-ratio", "0.02", "--date", DATE.isoformat())
    folder = S3Location(s3_bucket, f"backups/{table_name}/2024-03-05-04-10-22")
    proc = subprocess.Popen(args, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and not s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder.key("")).get("KeyCount"):
            assert time.monotonic() < deadline, "the export wrote nothing in 120 s"
            time.sleep(0.1)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the export finished before it could be killed; lower the ratio"
    listed = s3.list_objects_v2(Bucket=s3_bucket).get("Contents", [])
    assert listed and not any(o["Key"].endswith(SUCCESS) for o in listed)
    done = subprocess.run([*args[:-4], "--read-ratio", "1.0", "--date", DATE.isoformat()], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "already exported" in done.stderr or "resuming after" in done.stderr, done.stderr[-3000:]
    _, lines = read_folder(s3, folder)
    assert len(lines) == len(set(lines)) == len(items)


def test_cli_reports_bad_parameters_clearly(local_aws):
    env = dict(os.environ, PYTHONPATH=str(REPO / "plugins"))
    done = subprocess.run(cli("export", "--table", "T1x", "--to", "s3://bucket/a/../b"), env=env,
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert "--to" in done.stderr and ".." in done.stderr
    done = subprocess.run(cli("export", "--table", "T1x", "--to", "s3://bucket/p", "--read-ratio", "5"),
                          env=env, capture_output=True, text=True)
    assert done.returncode == 2 and "read_ratio must be between 0.01 and 1.5" in done.stderr


def test_consistent_read_reaches_every_scan_call(local_aws, s3_bucket, table_name):
    """dynalite accepts ConsistentRead on Scan but charges it as eventual, so check the calls themselves."""
    ddb = local_aws.dynamodb_client()
    make_table(ddb, table_name, "referrer", 300)
    make_client, seen = client_factory(), []

    def recording(service):
        client = make_client(service)
        client.meta.events.register("before-parameter-build.dynamodb.Scan",
                                    lambda params, **_: seen.append(params.get("ConsistentRead")))
        return client

    for consistent in (False, True):
        seen.clear()
        request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, f"consistent-{consistent}"),
                                logical_date=DATE, read_ratio=1.0, segments=3,
                                settings=ExportSettings(consistent_read=consistent))
        sidecar = run_backup(recording, request)
        assert sidecar is not None and sidecar.item_count == 300
        assert len(seen) >= 3 and set(seen) == {consistent}


def test_raw_scan_hook_installed_by_two_threads_still_reads_every_page(local_aws, table_name):
    """Threads share a client (a copy scans four segments at once) and may both install the raw-body
    hook; a second run of the hook used to parse the b"{}" the first left, and every Scan then failed
    as malformed. Found by the soak."""
    ddb = local_aws.dynamodb_client()
    items = make_table(ddb, table_name, "referrer", 50)
    install_raw_scan(ddb)
    delattr(ddb, "_dynamodb_backup_raw_scan_hook")  # as if a second thread had passed the check too
    install_raw_scan(ddb)  # botocore keeps one registration (same unique_id)
    ddb.meta.events.register("before-parse.dynamodb.Scan", _take_raw_body)  # and even a true duplicate
    page = scan_page(ddb, True, TableName=table_name)
    assert page.scanned == len(page.items) == len(items)
