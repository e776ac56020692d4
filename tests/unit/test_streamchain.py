"""Which gap markers refuse a restore to a second, and the one line that says so."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.incremental.chain import FULL, Chain, Link
from dynamodb_backup.repository.segments import SegmentRef, ShardSegments
from dynamodb_backup.repository.streamprogress import GapMarker, ShardProgress
from dynamodb_backup.restore.streamchain import StreamPlan, at, blocking_gap, check_coverage, refuse_gap

FOLDER = S3Location("b", "p/Orders/2026-12-05-10-00-00")
T0 = 1796464800  # 2026-12-05T10:00:00Z


def chain(start: int, scan_end: int | None = None) -> Chain:
    begin = datetime.fromtimestamp(start, UTC)
    end = datetime.fromtimestamp(scan_end, UTC) if scan_end else begin
    sidecar = Sidecar({}, "", "", "", "gzip", 1, [])
    return Chain(end, Link(FOLDER, FULL, begin, end, sidecar), [])


def gap(kind: str, last: int | None, detected: float, base: str | None = None) -> GapMarker:
    return GapMarker("Orders", kind, datetime.fromtimestamp(detected, UTC).isoformat(), "lost",
                     last_seconds=last, base={"folder": base} if base else {})


def test_a_gap_after_the_base_and_before_the_moment_refuses():
    trimmed = gap("trimmed", T0 + 30, T0 + 40)
    assert blocking_gap([trimmed], chain(T0), T0 + 60) is trimmed
    assert blocking_gap([trimmed], chain(T0), T0 + 29) is None  # the moment is before anything was lost
    assert blocking_gap([trimmed], chain(T0 + 45), T0 + 60) is None  # a base after it holds what was lost


def test_the_base_taken_for_a_gap_is_after_it_even_within_the_same_second():
    started = gap("started", None, T0 + 0.7, base=FOLDER.uri)  # a scan's start is stored to the second
    assert blocking_gap([started], chain(T0, scan_end=T0 + 5), T0 + 60) is None
    older = chain(T0 - 3600)  # a base older than the stream backup: what came before it may be trimmed
    older.full = Link(S3Location("b", "p/Orders/2026-12-05-09-00-00"), FULL, older.full.start, older.full.end,
                      older.full.sidecar)
    assert blocking_gap([started], older, T0 + 60) is started
    line = str(refuse_gap("Orders", started, T0 - 3600, T0 + 60))
    assert line.startswith(f"stream of 'Orders': the stream backup began at {at(T0)}") and "\n" not in line


def test_the_refusal_names_the_gap_and_the_newest_reachable_second():
    line = str(refuse_gap("Orders", gap("trimmed", T0 + 30, T0 + 40), T0, T0 + 60))
    assert line == (f"stream of 'Orders' has a gap (trimmed) from {at(T0 + 30)} to {at(T0 + 40)}: {at(T0 + 60)} "
                    f"cannot be restored exactly; the newest reachable second is {at(T0 + 29)}; refusing before "
                    "anything is written")
    unknown = str(refuse_gap("Orders", gap("stream-changed", None, T0 + 40), T0, T0 + 60))
    assert "from its start to" in unknown and f"no second after the base ({at(T0)}) is reachable" in unknown


def _shard(shard_id: str, parent: str | None, starting: str, first_segment: str) -> ShardSegments:
    progress = ShardProgress("Orders", "arn", "label", shard_id, parent, starting, {})
    return ShardSegments(shard_id, progress, [SegmentRef(f"k/{shard_id}", shard_id, first_segment.zfill(40), 1)])


def test_the_stream_must_be_stored_from_before_the_base():
    plan = StreamPlan("Orders", T0 + 60, chain(T0), T0, T0 + 60, T0 + 60, [], "b")
    plan.shards = [_shard("root", None, "100", "100"), _shard("child", "root", "500", "500")]
    check_coverage(plan, T0 + 10)  # the root shard is stored from its first record
    plan.shards = [_shard("root", None, "100", "300"), _shard("child", "root", "500", "500")]
    check_coverage(plan, T0 - 5)  # a change before the base is stored
    with pytest.raises(BackupFolderError, match=r"the stored segments begin at .*, after the base starts"):
        check_coverage(plan, T0 + 10)  # the root's first records are missing; the child's start says nothing


def test_validating_a_long_stream_says_where_it_is_every_10_seconds(monkeypatch: pytest.MonkeyPatch,
                                                                     caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from dynamodb_backup.repository.keyschema import KeyRules
    from dynamodb_backup.restore import streamrestore

    rules = KeyRules((("pk", "S"),))
    changes = [("o", SimpleNamespace(change=SimpleNamespace(keys={"pk": {"S": str(n % 7)}}, new=None)))
               for n in range(5000)]
    monkeypatch.setattr(streamrestore, "stream_changes", lambda *_: iter(changes))
    ticks = iter(range(0, 10**6, 3))  # the clock moves 3 s per reading (taken every 1,000 changes)
    monkeypatch.setattr(streamrestore, "time", SimpleNamespace(monotonic=lambda: next(ticks)))
    caplog.set_level("INFO", logger=streamrestore.log.name)
    report = streamrestore.validate_stream(None, SimpleNamespace(table="Orders"), rules)
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("validating the stream")]
    assert report.changes == 5000 and report.deletes == 5000
    # Readings at 0 (start), 3, 6, 9, 12 (10 s passed: said at 4,000, then 15), 18: one line.
    assert said == ["validating the stream of Orders: 4000 changes read"], said
