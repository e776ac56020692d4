"""Which shards may be read now: parents before children, so each key's records stay in order.

DynamoDB keeps a key's records in order only within a shard; across a split or a rotation the
order holds if the parent is read to its end before any child starts (the Streams guide; the
KCL adapter does the same). So a shard is ready when its parent is finished (closed and read to
the end, per its progress), or when its parent is not listed any more and was never being read
(trimmed away before this backup started). A closed shard with no children listed yet is read
to its end and then simply waits: DescribeStream can lag behind a split (the adapter's notes).
DescribeStream can also show a parent still open while its child is listed: the parent is read
as any other (it closes soon), and the child waits for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from dynamodb_backup.repository.streamprogress import ShardProgress, sequence_value
from dynamodb_backup.streams.source import Shard


@dataclass(frozen=True)
class ShardPlan:
    ready: list[Shard]
    """Shards to read now, parents first, then by starting sequence number."""
    vanished: list[ShardProgress]
    """Shards this backup was reading (not finished) that the stream no longer lists: trimmed."""


def plan_shards(stream_arn: str, listed: list[Shard], progress: Mapping[str, ShardProgress]) -> ShardPlan:
    listed_ids = {s.shard_id for s in listed}
    mine = {k: p for k, p in progress.items() if p.stream_arn == stream_arn}
    vanished = [p for k, p in mine.items() if not p.finished and k not in listed_ids]

    def finished(shard_id: str | None) -> bool:
        if shard_id is None:
            return True
        known = mine.get(shard_id)
        if known is not None:
            return known.finished or shard_id not in listed_ids  # a vanished parent is a gap, marked apart
        return shard_id not in listed_ids  # never read and gone: trimmed before this backup began

    ready = [s for s in listed
             if not (mine.get(s.shard_id) and mine[s.shard_id].finished) and finished(s.parent_id)]
    ready.sort(key=lambda s: (sequence_value(s.starting_sequence), s.shard_id))
    return ShardPlan(ready, vanished)
