"""Stream segments: a table's DynamoDB Streams records in S3, as change lines, per shard.

Layout, under the table's prefix (``<prefix>/<table>/``, beside its dated backup folders)::

    stream/<shard-id>/<first sequence number, 40 digits>.json.gz   one segment: records in order
    stream/_progress/<shard-id>.json                                 how far the shard was read
    stream/_gaps/<YYYYMMDDTHHMMSSZ>-<kind>-<shard or stream>.json    a broken chain (a gap marker)

Why this way:

* A segment is named by its shard and the sequence number of its first record, so a retried
  run, which resumes after the last record its progress covers, writes the same names again and
  replaces what it wrote before instead of adding a duplicate. Sequence numbers are zero-padded
  to 40 digits (the longest AWS documents) so names sort in sequence order.
* Each line is a change line (``repository.changes``), the incremental export's format, with
  the stream's own facts in ``Metadata``: ``WriteTimestampMicros`` (the record's
  ``ApproximateCreationDateTime``, whole seconds on AWS, whole minutes on DynamoDB Local),
  ``ApproximateCreationDateTime`` in seconds, ``SequenceNumber``, ``EventName`` and ``EventID``.
* Progress is written only after the segment it covers is stored; the first progress of a shard
  (written before its first segment) records its lineage (stream, parent, start), so the order
  of shards can be rebuilt from S3 alone. Readers tolerate a segment beyond progress (written,
  then the process died): the next run rewrites it under the same name. Overlaps (a segment
  rewritten shorter, a restart at TRIM_HORIZON) are harmless: :func:`shard_changes` yields each
  sequence number once, in order.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from dynamodb_backup.errors import BackupFolderError, CodecError, show
from dynamodb_backup.formats.codec import is_blank
from dynamodb_backup.formats.codec.datapipeline import load_json_object
from dynamodb_backup.formats.codec.wireform import wire_item_from_client
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.changes import Change, decode_change_object
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.reader import read_lines
from dynamodb_backup.repository.streamprogress import (
    ShardProgress,
    keys_under,
    lineage_order,
    padded_sequence,
    read_progress,
    sequence_value,
    stream_location,
)

log = logging.getLogger(__name__)

SEGMENT_EXTENSION = ".json.gz"
_SEGMENT_RE = re.compile(r"^(\d{40})\.json(\.gz|\.zst)?$")


# --- names -------------------------------------------------------------------------------------

def segment_key(base: S3Location, table: str, shard_id: str, first_sequence: str) -> str:
    return stream_location(base, table).key(f"{shard_id}/{padded_sequence(first_sequence)}{SEGMENT_EXTENSION}")


# --- the line ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamChange:
    """One stream record as a segment stores it: the change, and where and when it happened."""

    change: Change
    sequence: str
    """As the stream gave it (digits; compare with :func:`sequence_value`)."""
    seconds: int
    """ApproximateCreationDateTime, epoch seconds (rounded down by AWS: the write's second)."""
    event_name: str
    event_id: str = ""

    @property
    def sequence_value(self) -> int:
        return sequence_value(self.sequence)


def whole_seconds(moment: Any) -> int:
    """ApproximateCreationDateTime as epoch seconds: a datetime (boto3) or a number (wire JSON).

    AWS documents the value as rounded down to the second; botocore parses the JSON number to a
    datetime through a float, which is exact for whole seconds (and within a microsecond for
    milliseconds), so flooring gives the documented second. Item numbers never take this path.
    """
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        whole = moment.replace(microsecond=0)
        return int((whole - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds())
    text = str(moment)
    integral = text.split(".", 1)[0]
    if not re.match(r"^-?\d+$", integral):
        raise CodecError(f"ApproximateCreationDateTime {show(moment)} is not an epoch time")
    return int(integral)


def encode_stream_record(record: dict[str, Any]) -> bytes:
    """A GetRecords record (boto3 client form: numbers are strings, binary bytes) -> a segment line.

    A record with no NewImage is a delete (REMOVE, and the TTL delete DynamoDB Local names
    ``UNKNOWN_TO_SDK_VERSION``); its OldImage is kept when the view has one.
    """
    data = record.get("dynamodb") or {}
    if "Keys" not in data or "SequenceNumber" not in data:
        raise CodecError(f"stream record {record.get('eventID', '?')} has no Keys or SequenceNumber")
    padded_sequence(data["SequenceNumber"])
    seconds = whole_seconds(data.get("ApproximateCreationDateTime", 0))
    metadata: dict[str, Any] = {
        "WriteTimestampMicros": {"N": str(seconds * 1_000_000)},
        "ApproximateCreationDateTime": {"N": str(seconds)},
        "SequenceNumber": {"S": data["SequenceNumber"]},
        "EventName": {"S": str(record.get("eventName", ""))},
    }
    if record.get("eventID"):
        metadata["EventID"] = {"S": str(record["eventID"])}
    if record.get("userIdentity"):
        metadata["UserIdentity"] = {"S": str(record["userIdentity"].get("PrincipalId", ""))}
    line: dict[str, Any] = {"Metadata": metadata, "Keys": wire_item_from_client(data["Keys"])}
    if data.get("NewImage") is not None:
        line["NewImage"] = wire_item_from_client(data["NewImage"])
    if data.get("OldImage") is not None:
        line["OldImage"] = wire_item_from_client(data["OldImage"])
    return orjson.dumps(line)


def _metadata_text(metadata: dict[str, Any], name: str, kind: str) -> str:
    value = metadata.get(name)
    if not isinstance(value, dict) or not isinstance(value.get(kind), str):
        raise CodecError(f"Metadata.{name} must be {{{kind!r}: string}}, got {show(value)}")
    text: str = value[kind]
    return text


def decode_stream_line(line: bytes | str, rules: KeyRules) -> StreamChange:
    """A segment line -> :class:`StreamChange` (the change decoded by the incremental codec)."""
    raw = load_json_object(line)
    change = decode_change_object(raw, rules)
    metadata = raw.get("Metadata")
    if not isinstance(metadata, dict):
        raise CodecError("not a stream segment line: no Metadata object")
    sequence = _metadata_text(metadata, "SequenceNumber", "S")
    padded_sequence(sequence)
    seconds = int(_metadata_text(metadata, "ApproximateCreationDateTime", "N"))
    event_id = metadata.get("EventID", {}).get("S", "") if isinstance(metadata.get("EventID"), dict) else ""
    return StreamChange(change, sequence, seconds, _metadata_text(metadata, "EventName", "S"), event_id)


# --- listing and reading segments --------------------------------------------------------------

@dataclass(frozen=True)
class SegmentRef:
    key: str
    shard_id: str
    first_sequence: str
    """40 digits."""
    size: int


@dataclass
class ShardSegments:
    """One shard's segments in sequence order, with its progress (None if it has none yet)."""

    shard_id: str
    progress: ShardProgress | None
    segments: list[SegmentRef] = field(default_factory=list)


def list_segments(s3: Any, base: S3Location, table: str) -> list[ShardSegments]:
    """The table's segments by shard, shards in lineage order (those without progress last, by name)."""
    folder = stream_location(base, table)
    by_shard: dict[str, list[SegmentRef]] = {}
    for key, size in keys_under(s3, base.bucket, folder.key("")):
        rest = key[len(folder.key("")):]
        shard_id, _, name = rest.partition("/")
        match = _SEGMENT_RE.match(name)
        if shard_id.startswith("_") or not match:
            continue
        by_shard.setdefault(shard_id, []).append(SegmentRef(key, shard_id, match.group(1), size))
    progress = read_progress(s3, base, table)
    result = [ShardSegments(p.shard_id, p, sorted(by_shard.pop(p.shard_id, []), key=lambda r: r.first_sequence))
              for p in lineage_order(progress.values())]
    for shard_id in sorted(by_shard):
        log.warning("s3://%s/%s/%s: segments without a progress object (lineage unknown)",
                    base.bucket, folder.key(""), shard_id)
        result.append(ShardSegments(shard_id, None, sorted(by_shard[shard_id], key=lambda r: r.first_sequence)))
    return result


def list_segments_from(s3: Any, base: S3Location, table: str, starts: Mapping[str, str]) -> list[ShardSegments]:
    """Shards with progress, in lineage order, each with its segments from ``starts[shard]`` on.

    ``starts``: shard id -> the first sequence number of the oldest segment still wanted (the one
    holding the reader's last record: a retried tail may have rewritten it longer). Segment names
    sort by sequence number, so one ListObjectsV2 per shard with StartAfter returns only that
    segment and newer ones: a follower's listing stays as small as what is new, however many old
    segments are kept. Shards without progress (lineage unknown) are left out.
    """
    folder = stream_location(base, table)
    result = []
    for progress in lineage_order(read_progress(s3, base, table).values()):
        prefix = folder.key(progress.shard_id + "/")
        start = starts.get(progress.shard_id)
        refs = []
        for key, size in keys_under(s3, base.bucket, prefix, prefix + padded_sequence(start) if start else None):
            match = _SEGMENT_RE.match(key[len(prefix):])
            if match:
                refs.append(SegmentRef(key, progress.shard_id, match.group(1), size))
        result.append(ShardSegments(progress.shard_id, progress, sorted(refs, key=lambda r: r.first_sequence)))
    return result


def read_segment(s3: Any, bucket: str, key: str, rules: KeyRules) -> Iterator[tuple[str, StreamChange]]:
    """``(origin, change)`` for every line of one segment, in order; errors name the object and line."""
    url = f"s3://{bucket}/{key}"
    for number, line in read_lines(s3, bucket, key):
        if is_blank(line):
            continue
        try:
            yield f"{url} line {number}", decode_stream_line(line, rules)
        except CodecError as exc:
            raise exc.at(f"{url} line {number}") from None


def shard_changes(s3: Any, bucket: str, segments: Iterable[SegmentRef], rules: KeyRules,
                  after: str | None = None) -> Iterator[tuple[str, StreamChange]]:
    """A shard's changes in sequence order, each sequence number once (overlapping segments skipped over).

    ``after``: only records with a greater sequence number. A segment's records out of order is
    corruption, an error naming the line.
    """
    last = sequence_value(after) if after is not None else -1
    for ref in sorted(segments, key=lambda r: r.first_sequence):
        previous_in_file = -1
        for origin, change in read_segment(s3, bucket, ref.key, rules):
            value = change.sequence_value
            if value <= previous_in_file:
                raise BackupFolderError(f"{origin}: SequenceNumber {change.sequence} is not after the line before")
            previous_in_file = value
            if value <= last:
                continue
            last = value
            yield origin, change
