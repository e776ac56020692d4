"""Tail a table's stream into S3 segments for a bounded time; the next run resumes from S3.

One loop, one thread: every ``describe_seconds`` the shard list is read again and the shards
that may be read now are planned (``lineage``); each ready shard is polled (paced, an idle open
shard less often), its records buffered and stored as segments (``segmentwriter``), a finished
shard's children planned at once. The run ends after ``duration`` seconds, storing what it holds.

Where the chain breaks (``gaps``): the stream ARN is not the one the progress names (turned off
and on), a shard being read is no longer listed, the stream refuses the position
(TrimmedDataAccessException), or the last progress is older than the 24 hours a stream keeps.
An expired iterator is not a break: a new one is asked for just after the last record read.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.aws.retry import error_code
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.keyschema import key_description
from dynamodb_backup.repository.streamprogress import GapMarker, ShardProgress, read_progress, write_progress
from dynamodb_backup.streams.gaps import (
    BREAKS,
    EXPIRED,
    SHARD_VANISHED,
    STARTED,
    STREAM_CHANGED,
    TRIMMED,
    BaseTaker,
    new_gap,
    record_break,
)
from dynamodb_backup.streams.lineage import plan_shards
from dynamodb_backup.streams.segmentwriter import SegmentSettings, ShardWriter
from dynamodb_backup.streams.source import Shard, StreamFacts, StreamSource

log = logging.getLogger(__name__)

#: DynamoDB keeps stream records 24 hours; progress older than that may have lost some.
RETENTION_SECONDS = 24 * 3600


@dataclass
class TailSettings:
    duration: float = 60.0
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    describe_seconds: float = 10.0
    """How often the shard list is read again (also at once when a shard is finished)."""
    idle_seconds: float = 1.0
    """How long an open shard that gave nothing waits before its next poll."""
    progress_seconds: float = 10.0
    take_base_at_start: bool = True


@dataclass
class TailResult:
    table: str
    stream_arn: str = ""
    records: int = 0
    """Records read from the stream."""
    stored: int = 0
    """Records stored in segments (the rest were still buffered)."""
    segments: int = 0
    shards_read: int = 0
    shards_finished: int = 0
    lag_seconds: float = 0.0
    markers: list[GapMarker] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)

    @property
    def breaks(self) -> list[GapMarker]:
        """The gap markers that are notices (records may be missing); a chain start is not one."""
        return [m for m in self.markers if m.kind in BREAKS]

    def line(self) -> str:
        return (f"stream {self.table}: {self.records:,} records ({self.stored:,} stored), {self.segments:,} segments, "
                f"{self.shards_read} shards read ({self.shards_finished} finished), lag {self.lag_seconds:.0f} s, "
                f"{len(self.breaks)} gaps")


@dataclass
class _Reader:
    shard: Shard
    writer: ShardWriter
    iterator: str | None = None
    next_poll: float = 0.0
    caught_up: bool = False
    last_seconds: int | None = None
    segments_counted: int = 0
    records_counted: int = 0


class Tail:
    def __init__(self, source: StreamSource, s3: Any, base: S3Location, settings: TailSettings,
                 take_base: BaseTaker | None, report: Callable[[str], None] = log.info,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        self.source, self.s3, self.base, self.settings = source, s3, base, settings
        self.take_base, self.report, self.clock, self.sleep = take_base, report, clock, sleep
        self.table = source.table
        self.result = TailResult(self.table)
        self.readers: dict[str, _Reader] = {}
        self.progress: dict[str, ShardProgress] = {}
        self.facts: StreamFacts | None = None
        self.next_describe = 0.0

    # ------------------------------------------------------------------ the run

    def run(self) -> TailResult:
        facts = self.source.facts()
        facts.check_usable()
        assert facts.arn is not None
        self.facts, self.result.stream_arn = facts, facts.arn
        self.progress = read_progress(self.s3, self.base, self.table)
        self._check_chain(facts)
        deadline = self.clock() + self.settings.duration
        next_report = self.clock() + self.settings.progress_seconds
        while self.clock() < deadline:
            if self.clock() >= self.next_describe:
                self._plan()
            for reader in list(self.readers.values()):
                if self.clock() >= reader.next_poll:
                    self._poll(reader)
            for reader in self.readers.values():
                if reader.writer.due():
                    self._flush(reader)
            if self.clock() >= next_report:
                self.report(self._status())
                next_report = self.clock() + self.settings.progress_seconds
            wake = min([r.next_poll for r in self.readers.values()] + [self.next_describe, deadline, next_report])
            if wake > self.clock():
                self.sleep(min(wake - self.clock(), 1.0))
        for reader in self.readers.values():
            self._flush(reader)
        self.result.calls = dict(self.source.calls)
        self.result.lag_seconds = self._lag()
        self.report(self.result.line())
        return self.result

    def _status(self) -> str:
        self.result.lag_seconds = self._lag()
        return self.result.line()

    def _lag(self) -> float:
        now = datetime.now(UTC).timestamp()
        behind = [now - r.last_seconds for r in self.readers.values()
                  if not r.caught_up and r.last_seconds is not None]
        return max(behind, default=0.0)

    # ------------------------------------------------------------------ chain checks

    def _break(self, kind: str, message: str, **facts: Any) -> GapMarker:
        for reader in self.readers.values():
            self._flush(reader)  # no segment spans a break
        marker = record_break(self.s3, self.base, new_gap(self.table, kind, message, **facts), self.take_base)
        self.result.markers.append(marker)
        return marker

    def _check_chain(self, facts: StreamFacts) -> None:
        assert facts.arn is not None
        if not self.progress:
            if self.settings.take_base_at_start:
                self._break(STARTED, "the stream backup begins here: no earlier segments", stream_arn=facts.arn)
            return
        newest = max(self.progress.values(), key=lambda p: p.updated_at)
        if all(p.stream_arn != facts.arn for p in self.progress.values()):
            self._break(STREAM_CHANGED, f"the table's stream is now {facts.arn}, the backup followed "
                        f"{newest.stream_arn} (the stream was turned off and on: writes in between are not in "
                        "any stream)", stream_arn=facts.arn, previous_stream_arn=newest.stream_arn,
                        last_seconds=newest.last_seconds)
            return
        written = datetime.fromisoformat(newest.updated_at).timestamp() if newest.updated_at else None
        if written is not None and datetime.now(UTC).timestamp() - written > RETENTION_SECONDS:
            self._break(EXPIRED, f"the last progress was written at {newest.updated_at}, more than 24 hours ago: "
                        "the stream may have trimmed records since", stream_arn=facts.arn,
                        last_seconds=newest.last_seconds)

    # ------------------------------------------------------------------ shards

    def _plan(self) -> None:
        assert self.facts is not None and self.facts.arn is not None
        arn = self.facts.arn
        _, listed = self.source.shards(arn)
        plan = plan_shards(arn, listed, self.progress)
        for gone in plan.vanished:
            self._break(SHARD_VANISHED, f"shard {gone.shard_id} is no longer listed by the stream before it was "
                        "read to its end: its remaining records were trimmed", stream_arn=arn,
                        shard_id=gone.shard_id, last_sequence=gone.last_sequence, last_seconds=gone.last_seconds)
            gone.finished = True
            write_progress(self.s3, self.base, gone)
            self.readers.pop(gone.shard_id, None)
        for shard in plan.ready:
            if shard.shard_id not in self.readers:
                self._open(shard)
        self.next_describe = self.clock() + self.settings.describe_seconds

    def _open(self, shard: Shard) -> None:
        assert self.facts is not None and self.facts.arn is not None
        progress = self.progress.get(shard.shard_id)
        if progress is None:
            progress = ShardProgress(self.table, self.facts.arn, self.facts.label or "", shard.shard_id,
                                     shard.parent_id, shard.starting_sequence, key_description(self.facts.key_schema))
            write_progress(self.s3, self.base, progress)  # lineage before any segment
            self.progress[shard.shard_id] = progress
        writer = ShardWriter(self.s3, self.base, progress, self.settings.segments, clock=self.clock)
        self.readers[shard.shard_id] = _Reader(shard, writer)
        self.result.shards_read += 1

    def _iterator(self, reader: _Reader) -> str | None:
        assert self.facts is not None and self.facts.arn is not None
        shard_id, position = reader.shard.shard_id, reader.writer.position
        try:
            return self.source.iterator(self.facts.arn, shard_id, position)
        except Exception as exc:
            if error_code(exc) == "TrimmedDataAccessException" and position is not None:
                self._trimmed(reader, exc)
                return self.source.iterator(self.facts.arn, shard_id, None)
            if error_code(exc) == "ResourceNotFoundException":
                self._drop(reader)
                return None
            raise

    def _trimmed(self, reader: _Reader, exc: Exception) -> None:
        progress = reader.writer.progress
        self._break(TRIMMED, f"shard {progress.shard_id}: the stream no longer holds the records after sequence "
                    f"number {reader.writer.position} ({error_code(exc)})", stream_arn=progress.stream_arn,
                    shard_id=progress.shard_id, last_sequence=reader.writer.position,
                    last_seconds=reader.last_seconds or progress.last_seconds)

    def _poll(self, reader: _Reader) -> None:
        if reader.iterator is None:
            reader.iterator = self._iterator(reader)
            if reader.iterator is None:
                return
        try:
            records, next_iterator = self.source.records(reader.shard.shard_id, reader.iterator)
        except Exception as exc:
            code = error_code(exc)
            if code == "ExpiredIteratorException":
                log.info("shard %s: iterator expired; asking again after the last record read", reader.shard.shard_id)
                reader.iterator = None
                return
            if code == "TrimmedDataAccessException":
                self._trimmed(reader, exc)
                assert self.facts is not None and self.facts.arn is not None
                reader.iterator = self.source.iterator(self.facts.arn, reader.shard.shard_id, None)
                return
            if code == "ResourceNotFoundException":
                self._drop(reader)
                return
            raise
        reader.writer.add(records)  # stores a segment at the size bound
        self._count(reader)
        self.result.records += len(records)
        if records:
            reader.last_seconds = reader.writer.last_seconds or reader.last_seconds
        reader.caught_up = not records
        if next_iterator is None:
            self._flush(reader, finished=True)
            self.readers.pop(reader.shard.shard_id, None)
            self.result.shards_finished += 1
            self.next_describe = 0.0  # its children may start now
            return
        reader.iterator = next_iterator
        reader.next_poll = self.clock() + (0.0 if records else self.settings.idle_seconds)

    def _drop(self, reader: _Reader) -> None:
        """The shard is gone: store what was read of it; the next plan marks it vanished."""
        self._flush(reader)
        self.readers.pop(reader.shard.shard_id, None)
        self.next_describe = 0.0

    def _count(self, reader: _Reader) -> None:
        self.result.segments += reader.writer.segments_written - reader.segments_counted
        self.result.stored += reader.writer.records_written - reader.records_counted
        reader.segments_counted, reader.records_counted = reader.writer.segments_written, reader.writer.records_written

    def _flush(self, reader: _Reader, finished: bool = False) -> None:
        reader.writer.flush(finished=finished)
        self._count(reader)


def tail_stream(source: StreamSource, s3: Any, base: S3Location, settings: TailSettings,
                take_base: BaseTaker | None, report: Callable[[str], None] = log.info) -> TailResult:
    """Tail ``source``'s table into ``base`` for ``settings.duration`` seconds (see the module)."""
    return Tail(source, s3, base, settings, take_base, report).run()
