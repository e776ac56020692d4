"""Gaps are never silent: a trimmed stream, a vanished shard, a stream turned off and on, progress older than
24 hours each write a gap marker, take a new base at once and send a notice; an expired iterator is no gap.

Each test counts that its fault happened (the stand-in's hook answered, the marker names the error) and
that the base is whole again: the new base plus the records stored after the break equal the table.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.streamprogress import progress_key, read_gaps, read_progress
from stream_tail_helpers import (
    Workload,
    base_items,
    create_streamed_table,
    replay,
    scan_all,
    stream_hook,
    tail,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def journal_streams(pitr_standin: Any) -> Any:
    """A stand-in serving Streams over its journal: shards rotate, split and trim on its hooks."""
    return pitr_standin(lag_seconds=2, min_export_seconds=0.5, streams="journal")


def _clients(server: Any, local_aws: Any) -> tuple[Any, Any]:
    return server.client("dynamodb", region_name="us-east-1"), local_aws.s3_client()


def _folders(s3: Any, bucket: str, table: str) -> list[str]:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=f"backups/{table}/", Delimiter="/")
    return [p["Prefix"] for p in listing.get("CommonPrefixes", []) if p["Prefix"][-20:-1].count("-") == 5]


def test_a_trimmed_stream_is_marked_the_base_retaken_by_pitr_and_a_notice_sent(
        journal_streams: Any, s3_bucket: str, table_name: str, local_aws: Any) -> None:
    ddb, s3 = _clients(journal_streams, local_aws)
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    workload = Workload(ddb, table_name)
    workload.run(40)
    assert [m.kind for m in tail(journal_streams.url, table_name, base, 0.8).markers] == ["started"]
    workload.run(40)  # never read: trimmed below
    trimmed = stream_hook(journal_streams.server.url, "Trim", TableName=table_name)
    assert trimmed["TrimmedBefore"]
    workload.run(40)
    time.sleep(1.1)  # the new base is taken at a whole second: let it fall after the last write (see not-done-yet)
    env = dict(os.environ, AWS_ENDPOINT_URL_DYNAMODB=journal_streams.url,
               AWS_ENDPOINT_URL_DYNAMODB_STREAMS=journal_streams.url,
               PYTHONPATH=os.pathsep.join([str(REPO / "plugins"), str(REPO / "include")]))
    run = subprocess.run([sys.executable, "-m", "dynamodb_backup", "stream", "--table", table_name, "--to",
                          f"s3://{s3_bucket}/backups", "--for", "2s", "--flush-every", "1s", "--poll-every", "0.5s"],
                         env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 1, run.stderr
    notices = [line for line in run.stderr.splitlines() if line.startswith("notice: ")]
    assert len(notices) == 1 and "chain broken (trimmed)" in notices[0]
    gaps = read_gaps(s3, base, table_name)
    assert [g.kind for g in gaps] == ["started", "trimmed"]
    gap = gaps[1]
    assert "TrimmedDataAccessException" in gap.message and gap.base["mode"] == "pitr"
    assert gap.last_sequence is not None and gap.last_seconds is not None
    assert len(_folders(s3, s3_bucket, table_name)) == 2  # the start's base and the gap's
    # The new base is the table at the break's second (PITR's precision): writes in that second's last
    # fraction are in the stream after it, which the bounded run may not have reached. A deployment's
    # next run reads them; so does this one, before the chain is checked.
    assert not tail(journal_streams.url, table_name, base, 0.8).breaks
    # The chain is whole again: the new base, then what was read after the break.
    after = {gap.shard_id: gap.last_sequence}
    state, seen = replay(s3, base, table_name, start=base_items(s3, gap.base["folder"]), after=after)
    assert seen and state == scan_all(ddb, table_name)


def test_a_vanished_shard_and_old_progress_are_gaps(journal_streams: Any, s3_bucket: str, table_name: str,
                                                    local_aws: Any) -> None:
    ddb, s3 = _clients(journal_streams, local_aws)
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name, seed=3)
    workload.run(30)
    tail(journal_streams.url, table_name, base, 0.8)
    workload.run(30)  # unread, then its shard closes and is trimmed away: no longer listed
    rotated = stream_hook(journal_streams.server.url, "RotateShards", TableName=table_name, Children=2)
    listed = stream_hook(journal_streams.server.url, "Trim", TableName=table_name)["Shards"]
    assert len(rotated["Shards"]) == 3 and len(listed) == 2  # the root is gone
    workload.run(30)
    result = tail(journal_streams.url, table_name, base, 1.0)
    assert [m.kind for m in result.breaks] == ["shard-vanished"]
    gap = result.breaks[0]
    state, _ = replay(s3, base, table_name, start=base_items(s3, gap.base["folder"]),
                      after={s["ShardId"]: None for s in listed})
    assert state == scan_all(ddb, table_name)
    # Progress last written 25 hours ago: the stream may have trimmed records since.
    for progress in read_progress(s3, base, table_name).values():
        progress.updated_at = "2026-01-01T00:00:00+00:00"
        s3.put_object(Bucket=s3_bucket, Key=progress_key(base, table_name, progress.shard_id),
                      Body=orjson.dumps(progress.__dict__))
    old = tail(journal_streams.url, table_name, base, 0.5)
    assert [m.kind for m in old.breaks] == ["expired"] and old.breaks[0].base["mode"] == "scan"
    assert [g.kind for g in read_gaps(s3, base, table_name)] == ["started", "shard-vanished", "expired"]


@pytest.mark.parametrize("where", ["ddblocal-streams", "journal-streams"])
def test_a_stream_turned_off_and_on_is_a_gap(where: str, journal_streams: Any, s3_bucket: str, table_name: str,
                                             local_aws: Any) -> None:
    if where == "ddblocal-streams" and not local_aws.is_ddblocal:
        pytest.skip("dynalite has no Streams API")
    server = local_aws.dynamodb if where == "ddblocal-streams" else journal_streams
    ddb, s3 = _clients(server, local_aws)
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name, seed=5)
    workload.run(30)
    tail(server.url, table_name, base, 0.8)
    before = ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    ddb.update_table(TableName=table_name, StreamSpecification={"StreamEnabled": False})
    workload.run(20)  # in no stream
    ddb.update_table(TableName=table_name,
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    now = ddb.describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    assert now != before
    workload.run(20)
    result = tail(server.url, table_name, base, 1.0)
    assert [m.kind for m in result.breaks] == ["stream-changed"]
    gap = result.breaks[0]
    assert gap.previous_stream_arn == before and gap.stream_arn == now
    new_shards = {p.shard_id: None for p in read_progress(s3, base, table_name).values() if p.stream_arn == now}
    state, _ = replay(s3, base, table_name, start=base_items(s3, gap.base["folder"]), after=new_shards)
    assert state == scan_all(ddb, table_name)


def _tail_around(server: Any, s3: Any, base: S3Location, table: str, seconds: float, fault: Callable[[], None],
                 **settings: Any) -> Any:
    """Tail for ``seconds`` in a thread; once it has stored a segment (the event, not a sleep), run ``fault``."""
    results: list[Any] = []
    running = threading.Thread(target=lambda: results.append(tail(server.url, table, base, seconds, **settings)))
    running.start()
    deadline = time.monotonic() + 60
    while not any(p.records for p in read_progress(s3, base, table).values()):
        assert time.monotonic() < deadline, "the tail stored nothing"
        time.sleep(0.05)
    fault()
    running.join(timeout=120)
    assert results, "the tail did not finish"
    return results[0]


def test_expired_iterators_are_asked_again_and_are_no_gap(journal_streams: Any, s3_bucket: str, table_name: str,
                                                          local_aws: Any, caplog: pytest.LogCaptureFixture) -> None:
    ddb, s3 = _clients(journal_streams, local_aws)
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name, seed=11)
    workload.run(20)
    caplog.set_level(logging.INFO, logger="dynamodb_backup.streams.tail")

    def expire() -> None:
        stream_hook(journal_streams.server.url, "ExpireIterators", TableName=table_name)
        workload.run(20)

    result = _tail_around(journal_streams, s3, base, table_name, 3.0, expire, take_base=False)
    expired = [r for r in caplog.records if "iterator expired" in r.getMessage()]
    assert expired, "the tail never met an expired iterator: the fault did not happen"
    assert result.breaks == []
    assert result.calls["GetShardIterator"] >= 2  # the one shard's iterator was asked for again
    state, _ = replay(s3, base, table_name)
    assert state == scan_all(ddb, table_name)


def test_a_trim_under_a_running_tail_is_caught_by_get_records(journal_streams: Any, s3_bucket: str,
                                                              table_name: str, local_aws: Any) -> None:
    """The iterator in hand falls behind the trim point: GetRecords (not GetShardIterator) refuses it."""
    ddb, s3 = _clients(journal_streams, local_aws)
    base = S3Location(s3_bucket, "backups")
    create_streamed_table(ddb, table_name)
    workload = Workload(ddb, table_name, seed=13)
    workload.run(20)

    def trim() -> None:
        assert stream_hook(journal_streams.server.url, "Trim", TableName=table_name)["TrimmedBefore"]
        workload.run(20)

    [gap] = _tail_around(journal_streams, s3, base, table_name, 4.0, trim).breaks
    assert gap.kind == "trimmed" and "TrimmedDataAccessException" in gap.message and gap.base["mode"] == "scan"
    state, _ = replay(s3, base, table_name, start=base_items(s3, gap.base["folder"]),
                      after={gap.shard_id: gap.last_sequence})
    assert state == scan_all(ddb, table_name)
