"""Restore to a second: a base (a full backup and its incremental links) and the stream segments after it.

    base = the newest full at or before T, and the links that chain from it up to T (no link is required)
    changes = every stored stream change of second >= the base's start and <= T,
              shards in lineage order (parents first), each shard in sequence order

Why this way:

* Stream times (ApproximateCreationDateTime) are whole seconds, rounded down, so T is
  inclusive to the second: ``--as-of 10:00:05`` is the table at the end of 10:00:05.
* Each change carries the whole new item (or a delete), so replaying a change the base
  already holds is harmless as long as every later change of the key follows it in order.
  The replay therefore starts at the base's start second (a PITR export's time, a scan's
  first second), which may repeat a few changes, and never misses one.
* For a key, the last change in replay order wins. Sequence numbers order records within a
  shard only; a key's later records are in a later shard of its lineage, so shards are
  replayed parents first (``repository.segments.lineage_order``).
* A gap marker whose missing interval touches [base start, T] refuses the restore with one
  line naming the gap and the newest second that can be reached (never a silent hole).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.catalog import read_sidecar
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.incremental.chain import FULL, INCREMENTAL, Chain, Folder, Link, parse_moment, relevant_folders
from dynamodb_backup.pitr.window import iso, utc
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.segments import ShardSegments, StreamChange, list_segments, shard_changes
from dynamodb_backup.repository.streamprogress import GapMarker, read_gaps, sequence_value, stream_location

log = logging.getLogger(__name__)


def has_stream(s3: Any, base: S3Location, table: str) -> bool:
    """Whether ``table`` has stream objects under ``base`` (segments, progress or gap markers)."""
    folder = stream_location(base, table)
    listed = call_with_retries(lambda: s3.list_objects_v2(Bucket=base.bucket, Prefix=folder.key(""), MaxKeys=1))
    return bool(listed.get("KeyCount"))


def second(moment: datetime) -> int:
    """A moment as the epoch second holding it (stream times are rounded down to the second)."""
    return int(utc(moment).replace(microsecond=0).timestamp())


def at(seconds: int) -> str:
    return iso(datetime.fromtimestamp(seconds, UTC))


def _scan_full(s3: Any, folder: Folder) -> Link | None:
    """A complete scan backup as a base: its items were read between snapshot_start and snapshot_end, so
    it serves a moment after its end, and the replay starts at its start."""
    if folder.link is not None or not folder.complete:
        return None
    try:
        sidecar = read_sidecar(s3, folder.folder)
        if sidecar.source.get("mode") != "scan":
            return None
        start, end = (parse_moment(sidecar.snapshot_start, "snapshot_start"),
                      parse_moment(sidecar.snapshot_end, "snapshot_end"))
    except BackupFolderError:
        return None
    return Link(folder.folder, FULL, start, end, sidecar)


def base_chain(s3: Any, base: S3Location, table: str, moment: datetime) -> Chain:
    """The newest complete full whose data is all at or before ``moment`` (a PITR export at its export time,
    a scan whose reading ended by then), and the incremental links that chain from it without passing
    ``moment``. A missing link is no refusal here: the stream covers the rest."""
    folders = relevant_folders(s3, base, table, moment)
    fulls = [f.link for f in folders if f.complete and f.link and f.link.role == FULL and f.link.end <= moment]
    fulls += [scan for f in folders if (scan := _scan_full(s3, f)) is not None and scan.end <= moment]
    if not fulls:
        raise BackupFolderError(f"{base.child(table)}/: no complete full backup of {table!r} at or before "
                                f"{iso(moment)} to replay the stream onto; refusing before anything is written")
    full = max(fulls, key=lambda link: link.end)
    chain, end = Chain(moment, full, []), full.end
    links = [f.link for f in folders if f.complete and f.link and f.link.role == INCREMENTAL]
    while full.start == full.end:  # links chain from a PITR full's exact point; a scan has none
        step = [link for link in links if link.start == end and link.end <= moment and link.same_table(full)]
        if not step:
            break
        chain.links.append(max(step, key=lambda link: link.end))
        end = chain.links[-1].end
    return chain


def base_start(chain: Chain) -> datetime:
    """Where the base's data starts: the chain's point after its links, a PITR full's export time, a scan's
    first read."""
    return chain.links[-1].end if chain.links else chain.full.start


def replay_start(chain: Chain) -> int:
    """The first second whose changes are replayed: the second the base starts in."""
    return second(base_start(chain))


@dataclass
class StreamPlan:
    """What a restore to ``moment`` reads: ``chain`` (the base), then ``shards``' changes of seconds
    ``start``..``point`` (``point`` = ``moment``'s second, or the newest stored change if that is older)."""

    table: str
    moment: int
    chain: Chain
    start: int
    point: int
    newest: int | None
    """The newest second of any stored change (None: no segment yet)."""
    shards: list[ShardSegments]
    bucket: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        steps = [self.chain.full.describe()] + [link.describe() for link in self.chain.links]
        exact = "exactly" if self.point == self.moment else (
            f"the newest second the stream segments reach; asked for {at(self.moment)}")
        return (f"restoring to {at(self.point)} inclusive ({exact}): " + " -> ".join(steps)
                + f" -> stream changes {at(self.start)}..{at(self.point)} from {len(self.shards)} shards")


def gap_interval(gap: GapMarker) -> tuple[int | None, int]:
    """The seconds a gap may have lost: from its last stored record's second (later records of that
    second may be gone too; None: unknown, from the beginning) to its detection."""
    return gap.last_seconds, gap.detected_seconds


def blocking_gap(gaps: list[GapMarker], chain: Chain, end: int) -> GapMarker | None:
    """The first gap whose missing seconds touch the replay from the base's start to ``end``.

    A gap is behind the base when the base is the one taken for it, or when it was detected before
    the base started: the tail read on from there, and the base holds what was lost. The tail's
    ``started`` marker counts as a gap from the beginning of time to its start (records before it may
    be trimmed), so a base older than the stream backup is refused.
    """
    since, folder = utc(base_start(chain)), chain.full.folder.uri
    for gap in sorted(gaps, key=lambda g: (g.last_seconds or 0, g.detected_seconds)):
        first, _ = gap_interval(gap)
        if gap.base.get("folder") in (folder, folder + "/"):
            continue
        if (first is None or first <= end) and utc(datetime.fromisoformat(gap.detected_at)) > since:
            return gap
    return None


def refuse_gap(table: str, gap: GapMarker, start: int, moment: int) -> BackupFolderError:
    first, last = gap_interval(gap)
    reachable = (f"the newest reachable second is {at(first - 1)}" if first is not None and first - 1 >= start
                 else f"no second after the base ({at(start)}) is reachable")
    after = f" (new base: {gap.base['folder']})" if gap.base.get("folder") else ""
    if gap.kind == "started":  # the tail's first marker: nothing was stored before it
        return BackupFolderError(
            f"stream of {table!r}: the stream backup began at {at(last)}{after}, after the base starts "
            f"({at(start)}); changes in between may not be stored, so {at(moment)} cannot be restored exactly from "
            "that base; restore to a time after the new base, or take a new base; refusing before anything is "
            "written")
    return BackupFolderError(
        f"stream of {table!r} has a gap ({gap.kind}) from {at(first) if first is not None else 'its start'} to "
        f"{at(last)}{after}: {at(moment)} cannot be restored exactly; {reachable}; refusing before anything is "
        "written")


def newest_second(s3: Any, bucket: str, shards: list[ShardSegments]) -> int | None:
    """The newest second of any stored change: from progress where the shard has it, else its last segment."""
    newest: int | None = None
    for shard in shards:
        seconds = shard.progress.last_seconds if shard.progress else None
        if seconds is None and shard.segments:
            for _, change in _segment_tail(s3, bucket, shard):
                seconds = change.seconds
        if seconds is not None:
            newest = seconds if newest is None else max(newest, seconds)
    return newest


def _segment_tail(s3: Any, bucket: str, shard: ShardSegments) -> Iterator[tuple[str, StreamChange]]:
    rules = KeyRules.from_description(shard.progress.key_schema) if shard.progress else None
    if rules is None:
        return iter(())
    return shard_changes(s3, bucket, shard.segments[-1:], rules)


def check_coverage(plan: StreamPlan, first_seen: int | None) -> None:
    """The stream must have been followed from before the base's start: a root shard read from its first
    record (a child is always read from its first: that says nothing), or a stored change at or before
    the start."""
    if first_seen is not None and first_seen <= plan.start:
        return
    listed = {shard.shard_id for shard in plan.shards}
    for shard in plan.shards:
        progress = shard.progress
        if progress is None or not shard.segments or progress.parent_shard_id in listed:
            continue
        if sequence_value(shard.segments[0].first_sequence) <= sequence_value(progress.starting_sequence):
            return
    if not plan.shards:
        return  # nothing stored yet: the plan reaches only the base (plan.point says so)
    raise BackupFolderError(
        f"stream of {plan.table!r}: the stored segments begin at {at(first_seen) if first_seen else 'an unknown time'}"
        f", after the base starts ({at(plan.start)}); changes in between were never stored; refusing before "
        "anything is written")


def plan_stream(s3: Any, base: S3Location, table: str, moment: datetime) -> StreamPlan:
    """The base and the segments that restore ``table`` to ``moment``'s second; refuses a gap in between."""
    wanted = second(moment)
    # The base may end anywhere inside T's second: every change of that second is replayed after it.
    chain = base_chain(s3, base, table, datetime.fromtimestamp(wanted + 1, UTC) - timedelta(microseconds=1))
    start = replay_start(chain)
    shards = list_segments(s3, base, table)
    unknown = [shard.shard_id for shard in shards if shard.progress is None]
    if unknown:
        raise BackupFolderError(f"{stream_location(base, table)}/{unknown[0]}/: segments without a progress object, "
                                "so their place in the shard lineage is unknown; refusing before anything is written")
    newest = newest_second(s3, base.bucket, shards)
    if newest is None:  # nothing stored after the base: it is all the stream can say
        point = min(wanted, second(chain.point))
    else:
        point = wanted if newest >= wanted else max(newest, second(chain.point))
    plan = StreamPlan(table, wanted, chain, start, point, newest, shards, base.bucket)
    gap = blocking_gap(read_gaps(s3, base, table), chain, wanted)
    if gap is not None:
        raise refuse_gap(table, gap, start, wanted)
    if point < wanted:
        plan.notes.append(f"the stream segments reach {at(point)}: restoring to that second, not {at(wanted)} "
                          "(later changes are not stored yet)")
    log.info("%s", plan.describe())
    return plan


def stream_changes(s3: Any, plan: StreamPlan, rules: KeyRules) -> Iterator[tuple[str, StreamChange]]:
    """The plan's changes in replay order: shards in lineage order, each in sequence order, seconds
    ``start``..``point`` only."""
    first_seen: int | None = None
    checked = False
    for shard in plan.shards:
        for origin, change in shard_changes(s3, plan.bucket, shard.segments, rules):
            if first_seen is None or change.seconds < first_seen:
                first_seen = change.seconds
            if change.seconds < plan.start:
                continue
            if not checked:
                check_coverage(plan, first_seen)
                checked = True
            if change.seconds <= plan.point:
                yield origin, change
    if not checked:
        check_coverage(plan, first_seen)


def plan_facts(plan: StreamPlan, base: S3Location) -> dict[str, str]:
    """What a restore's later steps need to plan the same replay again (small enough for XCom)."""
    return {"base": base.uri, "table": plan.table, "point": at(plan.point), "folder": plan.chain.full.folder.uri}


def plan_again(s3: Any, facts: dict[str, str]) -> StreamPlan:
    """The plan :func:`plan_facts` describes, read again from S3; refuses one whose base changed since."""
    plan = plan_stream(s3, S3Location.parse(facts["base"]), facts["table"], parse_moment(facts["point"]))
    if plan.chain.full.folder.uri != facts["folder"] or at(plan.point) != facts["point"]:
        raise BackupFolderError(f"stream of {facts['table']!r}: the restore planned {facts['folder']} and the stream "
                                f"to {facts['point']}; S3 now gives {plan.chain.full.folder.uri} to {at(plan.point)}")
    return plan
