"""Apply a table's stream segments to a replica table, in order per key, within a write ratio.

    each pass: list the segments (shards in lineage order) -> for each shard, the segments after
    the replica's progress -> put new images / delete keys, in sequence order -> flush -> save progress

Why this way:

* Order per key: changes go to writer lanes (``replica.lanes``) by a hash of their key, so one
  key's changes are written by one lane, in sequence order; the lanes write at once, sharing
  the write ratio. Shards go parents first, every lane done with a shard before the next: a
  child shard waits until its parent is read to its end.
* Listing: a pass lists each shard's segments from the one holding its last applied record on
  (``repository.segments.list_segments_from``), not every segment kept.
* Idempotent after a crash: progress is saved only after every lane wrote the changes it covers. A
  run that died between a write and its progress writes those changes again, in the same
  order: a put writes the whole new image and a delete removes the key, so the replica ends
  in the same state as if nothing had happened.
* The source wins: every change overwrites (or deletes) the replica's item for that key,
  whatever was written to the replica directly. Keys the source never changes are left alone.
* Lag: now minus the newest change time written (stream times are whole seconds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, check_ratio
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.replica.lanes import DEFAULT_LANES, WriterLanes
from dynamodb_backup.replica.progress import ReplicaProgress, load_progress, save_progress
from dynamodb_backup.repository.keyschema import KeyRules, key_description
from dynamodb_backup.repository.segments import ShardSegments, list_segments_from, shard_changes
from dynamodb_backup.repository.streamprogress import read_gaps, sequence_value
from dynamodb_backup.restore.steps import write_rate
from dynamodb_backup.restore.streamchain import at

log = logging.getLogger(__name__)

#: How often a running replica says where it is.
REPORT_SECONDS = 10.0


@dataclass
class ReplicaTarget:
    """Where the replica is: its DynamoDB client and table, and how fast it may be written."""

    dynamodb: Any
    table: str
    write_ratio: float = 0.5
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY
    lanes: int = DEFAULT_LANES
    """Writers at once (keys partitioned by hash among them); 1 writes one batch at a time."""


@dataclass
class ReplicaReport:
    """What a replica run did, and where the replica stands (for the DAG's Asset event and the console)."""

    table: str
    to_table: str
    replica: str
    applied: int = 0
    puts: int = 0
    deletes: int = 0
    passes: int = 0
    newest_applied: str | None = None
    lag_seconds: float | None = None
    caught_up: bool = False
    waiting: list[str] = field(default_factory=list)
    """Child shards not applied yet because their parent is not read to its end."""
    gaps: list[str] = field(default_factory=list)
    """The source's stream gaps (one line each): changes made then may be missing from the replica too."""

    def line(self) -> str:
        lag = "no change applied yet" if self.lag_seconds is None else f"lag {self.lag_seconds:.0f} s"
        return (f"replica {self.to_table} of {self.table}: {self.applied} changes applied ({self.puts} puts, "
                f"{self.deletes} deletes) in {self.passes} passes; newest change applied "
                f"{self.newest_applied or '-'}; {lag}; {'caught up' if self.caught_up else 'behind'}")

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def gap_lines(s3: Any, base: S3Location, table: str) -> list[str]:
    """The source stream's breaks, each as the line a replica says about it (the tail's start is none)."""
    lines = []
    for gap in read_gaps(s3, base, table):
        if gap.kind == "started":
            continue
        since = at(gap.last_seconds) if gap.last_seconds is not None else "its start"
        fix = (f"seed the replica again from {gap.base['folder']} (restore it into the replica), then replicate"
               if gap.base.get("folder") else "seed the replica again from a new base, then replicate")
        lines.append(f"stream of {table!r} has a gap ({gap.kind}) from {since} to {at(gap.detected_seconds)}: "
                     f"changes made then may be missing from the replica as from the backup; {fix}")
    return lines


def check_keys(shards: list[ShardSegments], target: ReplicaTarget) -> KeyRules:
    """The replica's key schema must be the source's (from the tail's progress)."""
    rules = KeyRules.from_description(key_description(describe_table(target.dynamodb, target.table)))
    for shard in shards:
        if shard.progress is not None and shard.progress.rules.keys != rules.keys:
            raise ParameterError(f"--to-table {target.table}: key schema {rules.keys} is not the source table's "
                                 f"{shard.progress.rules.keys}")
    return rules


def _unread_segments(shard: ShardSegments, after: str | None) -> list[Any]:
    """The shard's segments that may hold records after ``after`` (a segment followed by one starting at or
    before ``after`` holds nothing newer, and is not read again)."""
    if after is None:
        return list(shard.segments)
    last = sequence_value(after)
    return [seg for seg, nxt in zip(shard.segments, [*shard.segments[1:], None], strict=True)
            if nxt is None or sequence_value(nxt.first_sequence) > last]


def apply_pass(s3: Any, base: S3Location, progress: ReplicaProgress, target: ReplicaTarget, lanes: WriterLanes,
               report: ReplicaReport, rules: KeyRules | None = None,
               after_segment: Callable[[], None] | None = None, shards: list[ShardSegments] | None = None) -> int:
    """Apply every stored change not applied yet, a segment at a time: its changes go to the lanes, which
    write them at once, and progress is saved when every lane is done (a segment of the tail's 2 s flush
    holds seconds of writes: enough for every lane). After each segment ``after_segment`` says where the
    replica is when due. ``shards``: this pass's listing when the caller just made it. Returns changes applied."""
    if shards is None:
        shards = list_segments_from(s3, base, progress.table, progress.segment_starts)
    rules = rules or check_keys(shards, target)
    finished = {s.shard_id for s in shards if s.progress is not None and s.progress.finished}
    known = {s.shard_id for s in shards}
    report.waiting = []
    handed, applied = [0], [0]

    def commit() -> None:
        if not handed[0]:
            return
        lanes.apply()  # every lane wrote its share before the progress that covers it is saved
        progress.applied += handed[0]
        report.applied += handed[0]
        applied[0] += handed[0]
        handed[0] = 0
        save_progress(s3, base, progress)

    for shard in shards:
        parent = shard.progress.parent_shard_id if shard.progress else None
        if shard.progress is None or (parent in known and parent not in finished):  # no lineage, or a parent first
            report.waiting.append(shard.shard_id)
            continue
        for segment in _unread_segments(shard, progress.shards.get(shard.shard_id)):
            for origin, stored in shard_changes(s3, base.bucket, [segment], rules, progress.shards.get(shard.shard_id)):
                if stored.change.new is not None:
                    lanes.put(stored.change.new, origin)
                    report.puts += 1
                else:
                    lanes.delete(stored.change.keys, origin)
                    report.deletes += 1
                handed[0] += 1
                progress.shards[shard.shard_id] = stored.sequence
                progress.segment_starts[shard.shard_id] = segment.first_sequence
                progress.newest_seconds = max(progress.newest_seconds or 0, stored.seconds)
            commit()  # so a shard's changes are all written before the next shard's (its children) are handed over
            if after_segment:
                after_segment()
    return applied[0]


def _describe(progress: ReplicaProgress, report: ReplicaReport) -> ReplicaReport:
    report.lag_seconds = progress.lag_seconds()
    report.newest_applied = (datetime.fromtimestamp(progress.newest_seconds, UTC).isoformat().replace("+00:00", "Z")
                             if progress.newest_seconds is not None else None)
    return report


def replicate(s3: Any, base: S3Location, table: str, target: ReplicaTarget, replica: str, *,
              for_seconds: float = 60.0, poll_seconds: float = 2.0, once: bool = False,
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
              target_where: tuple[str | None, str | None] = (None, None)) -> ReplicaReport:
    """Follow ``table``'s segments under ``base`` into ``target`` for ``for_seconds`` (``once``: one pass)."""
    check_ratio(target.write_ratio, "write_ratio")
    if for_seconds <= 0 or poll_seconds <= 0:
        raise ParameterError("--for and --poll must be positive durations, e.g. 60s")
    progress = load_progress(s3, base, table, replica) or ReplicaProgress(
        table, replica, target.table, to_region=target_where[0], to_endpoint=target_where[1])
    if progress.to_table != target.table:
        raise ParameterError(f"replica {replica}: its progress is for table {progress.to_table}, not {target.table}")
    rate = write_rate(describe_table(target.dynamodb, target.table), target.write_ratio, target.on_demand_capacity)
    lanes = WriterLanes(target.dynamodb, target.table, [], TokenBucket(rate), target.lanes)
    try:
        return _follow(s3, base, table, target, progress, lanes, rate, for_seconds, poll_seconds, once, clock, sleep)
    finally:
        lanes.close()


def _follow(s3: Any, base: S3Location, table: str, target: ReplicaTarget, progress: ReplicaProgress,
            lanes: WriterLanes, rate: float, for_seconds: float, poll_seconds: float, once: bool,
            clock: Callable[[], float], sleep: Callable[[float], None]) -> ReplicaReport:
    report = ReplicaReport(table, target.table, progress.replica)
    rules: KeyRules | None = None
    deadline, said = clock() + for_seconds, [clock()]

    def say_when_due() -> None:  # long work says where it is at least every 10 s
        if clock() - said[0] >= REPORT_SECONDS:
            log.info("%s", _describe(progress, report).line())
            said[0] = clock()
    log.info("replica %s of %s: following s3://%s/%s at %.0f write units/s, %d lanes (progress: %d changes "
             "applied)", target.table, table, base.bucket, base.key(table), rate, target.lanes, progress.applied)
    while True:
        listed = None
        if rules is None:
            listed = list_segments_from(s3, base, table, progress.segment_starts)
            if listed:
                rules = check_keys(listed, target)
                lanes.key_names = rules.key_names
        applied = apply_pass(s3, base, progress, target, lanes, report, rules, say_when_due, listed) if rules else 0
        report.passes += 1
        if once or clock() >= deadline:
            break
        say_when_due()
        if not applied:
            sleep(min(poll_seconds, max(0.0, deadline - clock())))
    report.caught_up = not report.waiting
    report.gaps = gap_lines(s3, base, table)
    for line in report.gaps:
        log.warning("%s", line)
    if progress.caught_up != report.caught_up and progress.newest_seconds is not None:
        progress.caught_up = report.caught_up
        save_progress(s3, base, progress)
    _describe(progress, report)
    log.info("%s", report.line())
    return report
