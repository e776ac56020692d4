"""The stand-in's streams over its journal: streams, shards that rotate and split, and their records.

Why: DynamoDB Local gives each table one shard that never splits or closes, so a tailer's lineage
code (parents before children, splits, closed shards) and its gap handling (trimmed records)
cannot be exercised against it. Here a table's stream is a view of the journal's history:

* A record's sequence number is ``stamp * 1000 + n``: the journal stamps each write request once
  (strictly increasing microseconds) and ``n`` numbers the keys it wrote, in key order. So numbers
  grow within a shard, have gaps, and are 19-20 digits (padded to 21, as DynamoDB Local's).
* A shard covers the sequence numbers from its start to its end (open: no end) and a range of key
  hashes (CRC-32 of the journal's key bytes); a rotation closes every open shard at a journal
  ``fence`` and opens one child per shard, a split two (halving the hash range).
* Trimming moves a stream's trim point to a fence: records before it are gone (a position before
  it is TrimmedDataAccessException), and closed shards wholly before it are no longer listed.
* A record is made from two journal rows: the image after the write and the one before it. A
  write that left the item as it was makes no record, as on AWS. ``ApproximateCreationDateTime``
  is the stamp rounded down to the second, as AWS documents (DynamoDB Local: to the minute).

State is in memory: a restarted stand-in has no streams (tables must be created again).
"""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from local_pitr.journal import FollowedTable

HASH_SPACE = 1 << 32
#: Sequence numbers per journal stamp (a request writes at most 100 keys: TransactWriteItems).
PER_STAMP = 1000


def sequence_text(value: int) -> str:
    return f"{value:021d}"


def key_hash(item_key: bytes) -> int:
    return zlib.crc32(item_key)


@dataclass
class ShardState:
    shard_id: str
    parent_id: str | None
    start: int
    end: int | None = None
    low: int = 0
    high: int = HASH_SPACE

    def holds(self, sequence: int, item_key: bytes) -> bool:
        return (self.start <= sequence and (self.end is None or sequence <= self.end)
                and self.low <= key_hash(item_key) < self.high)

    def describe(self) -> dict[str, Any]:
        numbers = {"StartingSequenceNumber": sequence_text(self.start)}
        if self.end is not None:
            numbers["EndingSequenceNumber"] = sequence_text(self.end)
        shard: dict[str, Any] = {"ShardId": self.shard_id, "SequenceNumberRange": numbers}
        if self.parent_id:
            shard["ParentShardId"] = self.parent_id
        return shard


@dataclass
class StreamState:
    table: FollowedTable
    label: str
    view_type: str
    enabled_fence: int
    created_us: int
    disabled_fence: int | None = None
    shards: list[ShardState] = field(default_factory=list)
    trim: int = 0
    """Sequence numbers below this are trimmed."""
    expire_issued_before_us: int = 0
    """Iterators issued before this are expired (the test hook; AWS: 15 minutes)."""

    @property
    def arn(self) -> str:
        return f"{self.table.table_arn}/stream/{self.label}"

    @property
    def enabled(self) -> bool:
        return self.disabled_fence is None

    def listed(self) -> list[ShardState]:
        """Shards DescribeStream shows: all but closed ones wholly before the trim point."""
        return [s for s in self.shards if s.end is None or s.end >= self.trim]

    def shard(self, shard_id: str) -> ShardState | None:
        return next((s for s in self.listed() if s.shard_id == shard_id), None)

    def first_sequence(self) -> int:
        return (self.enabled_fence + 1) * PER_STAMP


@dataclass(frozen=True)
class Change:
    sequence: int
    stamp: int
    item_key: bytes
    before: bytes | None
    after: bytes | None


def changes(conn: sqlite3.Connection, stream: StreamState, shard: ShardState, start: int,
            limit: int) -> Iterator[Change]:
    """The shard's records from sequence number ``start`` on, at most ``limit``, in order."""
    last_stamp = stream.disabled_fence if stream.disabled_fence is not None else None
    if shard.end is not None:
        last_stamp = shard.end // PER_STAMP if last_stamp is None else min(last_stamp, shard.end // PER_STAMP)
    first_stamp = max(start, shard.start, stream.first_sequence()) // PER_STAMP
    query = "SELECT ts_us, item_key, image FROM history WHERE incarnation = ? AND ts_us >= ?"
    params: list[Any] = [stream.table.incarnation, first_stamp]
    if last_stamp is not None:
        query += " AND ts_us <= ?"
        params.append(last_stamp)
    rows = conn.execute(query + " ORDER BY ts_us, item_key", params)
    found = 0
    ordinal, current = 0, -1
    for stamp, item_key, image in rows:
        ordinal = ordinal + 1 if stamp == current else 0
        current = stamp
        sequence = stamp * PER_STAMP + ordinal
        if sequence < start or not shard.holds(sequence, item_key):
            continue
        before = previous_image(conn, stream.table.incarnation, item_key, stamp)
        if before == image:
            continue  # the write changed nothing: no record
        yield Change(sequence, stamp, item_key, before, image)
        found += 1
        if found >= limit:
            return


def previous_image(conn: sqlite3.Connection, incarnation: int, item_key: bytes, stamp: int) -> bytes | None:
    row = conn.execute("SELECT image FROM history WHERE incarnation = ? AND item_key = ? AND ts_us < ? "
                       "ORDER BY ts_us DESC LIMIT 1", (incarnation, item_key, stamp)).fetchone()
    return row[0] if row else None


def record(stream: StreamState, change: Change, region: str) -> dict[str, Any]:
    """A GetRecords record, as DynamoDB Streams sends it (wire JSON)."""
    keys = stream.table.keys.key_from_bytes(change.item_key)
    data: dict[str, Any] = {
        "ApproximateCreationDateTime": change.stamp // 1_000_000,
        "Keys": keys,
        "SequenceNumber": sequence_text(change.sequence),
        "SizeBytes": len(change.item_key) + len(change.after or b"") + len(change.before or b""),
        "StreamViewType": stream.view_type,
    }
    if change.after is not None and stream.view_type in ("NEW_IMAGE", "NEW_AND_OLD_IMAGES"):
        data["NewImage"] = orjson.loads(change.after)
    if change.before is not None and stream.view_type in ("OLD_IMAGE", "NEW_AND_OLD_IMAGES"):
        data["OldImage"] = orjson.loads(change.before)
    name = "INSERT" if change.before is None else "REMOVE" if change.after is None else "MODIFY"
    return {"eventID": f"{change.sequence:x}", "eventName": name, "eventVersion": "1.1",
            "eventSource": "aws:dynamodb", "awsRegion": region, "dynamodb": data}
