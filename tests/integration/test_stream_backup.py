"""Stream backup: a workload tailed into segments replays to the table; shards in lineage order; SIGKILL mid-segment.

Two stream servers, the same tests: DynamoDB Local's own Streams (one shard that never splits;
only when the backend is DynamoDB Local) and the PITR stand-in's Streams over its journal, whose
shards rotate and split on demand. Every call goes through the strict front door.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.segments import list_segments, read_segment
from dynamodb_backup.repository.streamprogress import progress_key, read_gaps, read_progress
from stream_tail_helpers import RULES, Workload, create_streamed_table, replay, scan_all, stream_hook, tail

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["ddblocal-streams", "journal-streams"])
def streams_server(request: pytest.FixtureRequest, local_aws: Any, pitr_standin: Any) -> Iterator[Any]:
    """(name, fronted server): DynamoDB Local's Streams through the session's stand-in, or the journal's."""
    if request.param == "ddblocal-streams":
        if not local_aws.is_ddblocal:
            pytest.skip("dynalite has no Streams API; the journal's streams run on it instead")
        yield request.param, local_aws.dynamodb
    else:
        yield request.param, pitr_standin(lag_seconds=3, streams="journal")


def test_a_workload_tailed_into_segments_replays_to_the_table(streams_server: Any, s3_bucket: str,
                                                              table_name: str, local_aws: Any) -> None:
    name, server = streams_server
    ddb, s3 = server.client("dynamodb", region_name="us-east-1"), local_aws.s3_client()
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name)
    workload.run(60)
    first = tail(server.url, table_name, base, 1.0)
    assert [m.kind for m in first.markers] == ["started"] and first.markers[0].base["mode"] == "scan"
    workload.run(60)
    if name == "journal-streams":
        stream_hook(server.server.url, "RotateShards", TableName=table_name, Children=2)  # a split
        workload.run(60)
        stream_hook(server.server.url, "RotateShards", TableName=table_name, Children=1)  # each child rotates
    workload.run(60)
    second = tail(server.url, table_name, base, 1.5)
    assert second.markers == [] and second.stored == second.records
    state, seen = replay(s3, base, table_name)
    assert state == scan_all(ddb, table_name)
    assert len(seen) == len(set(seen)) == first.records + second.records
    assert first.records + second.records <= workload.writes  # a no-op write makes no record
    progress = read_progress(s3, base, table_name)
    if name == "journal-streams":
        # 1 root, split in 2, each rotated once: 5 shards, the first 3 closed and read to their end.
        assert len(progress) == 5 and sum(p.finished for p in progress.values()) == 3
        order = [s.shard_id for s in list_segments(s3, base, table_name)]
        links = [(s.parent_shard_id, s.shard_id) for s in progress.values() if s.parent_shard_id in progress]
        assert len(links) == 4, links  # every shard but the root has its parent stored: none left unchecked
        assert all(order.index(parent) < order.index(child) for parent, child in links)
    else:
        assert len(progress) == 1  # DynamoDB Local: one shard that never closes


def test_a_view_without_the_new_image_is_refused_naming_the_setting(streams_server: Any, s3_bucket: str,
                                                                   table_name: str) -> None:
    _, server = streams_server
    create_streamed_table(server.client("dynamodb", region_name="us-east-1"), table_name, view="KEYS_ONLY")
    run = subprocess.run(_cli(table_name, s3_bucket, "2s"), env=_env(server.url), capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1] == (
        f"error: table {table_name!r}: its stream's StreamViewType is KEYS_ONLY, which lacks the new image a "
        "backup needs: set StreamViewType to NEW_AND_OLD_IMAGES (a view cannot be edited: disable the stream, "
        "then enable it with that view)")


def _env(endpoint: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"AWS_ENDPOINT_URL_DYNAMODB": endpoint, "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": endpoint,
                "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO / "include")])})
    return env


def _cli(table: str, bucket: str, duration: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "dynamodb_backup", "stream", "--table", table, "--to", f"s3://{bucket}/backups",
            "--for", duration, *extra]


def _stored_records(s3: Any, base: S3Location, table: str) -> list[str]:
    """Every line of every stored segment as ``shard/sequence number`` (a record stored twice shows twice)."""
    return [f"{shard.shard_id}/{change.sequence}" for shard in list_segments(s3, base, table)
            for ref in shard.segments for _, change in read_segment(s3, base.bucket, ref.key, RULES)]


LINE = re.compile(r"stream \S+: ([\d,]+) records \(([\d,]+) stored\)")


def test_a_sigkill_mid_segment_loses_nothing_and_stores_nothing_twice(streams_server: Any, s3_bucket: str,
                                                                     table_name: str, local_aws: Any) -> None:
    """The CLI is killed when its progress line shows records read beyond those stored (a segment half
    made, with segments already stored); the next run resumes from S3's progress."""
    name, server = streams_server
    ddb, s3 = server.client("dynamodb", region_name="us-east-1"), local_aws.s3_client()
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name, seed=7)
    workload.run(30)
    stop = threading.Event()
    writer_ddb = server.client("dynamodb", region_name="us-east-1")
    writer = Workload(writer_ddb, table_name, seed=8)

    def keep_writing() -> None:
        while not stop.is_set():
            writer.one()

    process = subprocess.Popen(_cli(table_name, s3_bucket, "120s", "--flush-every", "1s", "--progress-every",
                                    "0.1s"), env=_env(server.url), stderr=subprocess.PIPE, text=True)
    thread = threading.Thread(target=keep_writing, daemon=True)
    killed_at: tuple[int, int] | None = None
    try:
        assert process.stderr is not None
        thread.start()
        for line in process.stderr:
            match = LINE.search(line)
            if match:
                read, stored = (int(g.replace(",", "")) for g in match.groups())
                if stored > 0 and read > stored:
                    process.send_signal(signal.SIGKILL)  # the event: records buffered past stored segments
                    killed_at = (read, stored)
                    break
        process.wait(timeout=60)
    finally:
        stop.set()
        thread.join(timeout=30)
        if process.poll() is None:
            process.kill()
            process.wait()
    assert killed_at is not None and process.returncode == -signal.SIGKILL  # the kill happened, mid-segment
    if name == "journal-streams":
        stream_hook(server.server.url, "RotateShards", TableName=table_name, Children=2)
        workload.run(20)
    rerun = subprocess.run(_cli(table_name, s3_bucket, "3s", "--flush-every", "1s"), env=_env(server.url),
                           capture_output=True, text=True, timeout=180)
    assert rerun.returncode == 0, rerun.stderr
    assert "notice:" not in rerun.stderr
    state, seen = replay(s3, base, table_name)
    assert state == scan_all(ddb, table_name)
    # No record twice: every line of every stored segment is a distinct (shard, sequence number).
    lines = _stored_records(s3, base, table_name)
    assert len(lines) == len(set(lines)) == len(seen)
    assert [g.kind for g in read_gaps(s3, base, table_name)] == ["started"]


def test_a_crash_between_a_segment_and_its_progress_rewrites_the_same_segment(
        streams_server: Any, s3_bucket: str, table_name: str, local_aws: Any) -> None:
    """The state a kill between the two PUTs leaves (a segment stored, the progress before it), made exactly:
    the progress objects are put back as they were before the last run. The next run resumes before that
    segment and must replace it under its name, not add a second copy of its records."""
    _, server = streams_server
    ddb, s3 = server.client("dynamodb", region_name="us-east-1"), local_aws.s3_client()
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name, seed=9)
    workload.run(25)
    tail(server.url, table_name, base, 0.8, take_base=False)
    before = {p.shard_id: p for p in read_progress(s3, base, table_name).values()}
    workload.run(25)
    tail(server.url, table_name, base, 0.8, take_base=False)
    orphans = [ref.key for shard in list_segments(s3, base, table_name) for ref in shard.segments
               if ref.first_sequence > (before[shard.shard_id].last_sequence or "").zfill(40)]
    assert orphans  # the second run stored segments beyond the progress put back below
    for progress in before.values():
        s3.put_object(Bucket=s3_bucket, Key=progress_key(base, table_name, progress.shard_id),
                      Body=progress.to_json())
    workload.run(25)  # so the rerun's first segment holds more than the orphan did
    tail(server.url, table_name, base, 0.8, take_base=False)
    lines = _stored_records(s3, base, table_name)
    assert len(lines) == len(set(lines))
    state, _ = replay(s3, base, table_name)
    assert state == scan_all(ddb, table_name)
