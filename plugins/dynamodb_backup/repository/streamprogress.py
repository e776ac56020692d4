"""Stream progress and gap markers: how far each shard of a table's stream was read, and where the chain broke.

Objects, under ``<prefix>/<table>/stream/`` (``repository.segments`` describes the segments beside them)::

    _progress/<shard-id>.json                                 one shard: lineage and the last record stored
    _gaps/<YYYYMMDDTHHMMSSffffffZ>-<kind>-<shard or stream>.json   a broken chain

Why in S3 and not in Airflow: the progress must survive the scheduler and describe exactly the
segments beside it, so a restore or a replica can tell from S3 alone which records are stored,
in which order shards follow each other, and where records may be missing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import BackupFolderError, CodecError, show
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.reader import read_small

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")

STREAM_FOLDER = "stream"
PROGRESS_FOLDER = "_progress"
GAPS_FOLDER = "_gaps"
FORMAT_VERSION = 1
SEQUENCE_DIGITS = 40
_SEQUENCE_RE = re.compile(r"^\d{1,40}$")


def stream_location(base: S3Location, table: str) -> S3Location:
    """``s3://<bucket>/<prefix>/<table>/stream``"""
    return base.child(table, STREAM_FOLDER)


def padded_sequence(sequence: str) -> str:
    """A sequence number as 40 digits, so that names sort as the numbers do."""
    if not isinstance(sequence, str) or not _SEQUENCE_RE.match(sequence):
        raise CodecError(f"SequenceNumber {show(sequence)} is not 1 to 40 decimal digits")
    return sequence.zfill(SEQUENCE_DIGITS)


def sequence_value(sequence: str) -> int:
    """Sequence numbers compare as integers (their lengths differ on AWS: 21 to 40 digits)."""
    return int(padded_sequence(sequence))


def progress_key(base: S3Location, table: str, shard_id: str) -> str:
    return stream_location(base, table).key(f"{PROGRESS_FOLDER}/{shard_id}.json")


def gap_key(base: S3Location, table: str, detected_at: datetime, kind: str, where: str) -> str:
    stamp = detected_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", where)[-80:]
    return stream_location(base, table).key(f"{GAPS_FOLDER}/{stamp}-{kind}-{safe}.json")


@dataclass
class ShardProgress:
    """How far one shard was read: written after each segment it covers, and once when it starts."""

    table: str
    stream_arn: str
    stream_label: str
    shard_id: str
    parent_shard_id: str | None
    starting_sequence: str
    key_schema: dict[str, Any]
    """``repository.keyschema.key_description`` of the table (rebuilds KeyRules from S3 alone)."""
    last_sequence: str | None = None
    """The last record stored in a segment; None: nothing read yet (start at TRIM_HORIZON)."""
    last_seconds: int | None = None
    """The ApproximateCreationDateTime of that record."""
    finished: bool = False
    """The shard is closed and read to its end: its children may start."""
    records: int = 0
    segments: int = 0
    last_segment: str | None = None
    updated_at: str = ""
    format: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return record_json(self)

    @classmethod
    def from_json(cls, data: bytes, url: str) -> ShardProgress:
        return parse_record(cls, data, url, "stream progress object")

    @property
    def rules(self) -> KeyRules:
        return KeyRules.from_description(self.key_schema)


@dataclass
class GapMarker:
    """A broken chain: records between ``last_seconds`` and ``detected_at`` may be missing.

    ``kind`` is ``trimmed`` (TrimmedDataAccessException), ``expired`` (progress older than the
    stream holds), ``shard-vanished`` (a shard in progress is no longer listed) or
    ``stream-changed`` (the table's stream ARN is not the one in progress: turned off and on).
    ``base`` names the new base taken at once (its kind and folder), or why none could be.
    """

    table: str
    kind: str
    detected_at: str
    message: str
    stream_arn: str = ""
    shard_id: str = ""
    previous_stream_arn: str = ""
    last_sequence: str | None = None
    last_seconds: int | None = None
    base: dict[str, Any] = field(default_factory=dict)
    format: int = FORMAT_VERSION

    def to_json(self) -> bytes:
        return record_json(self)

    @classmethod
    def from_json(cls, data: bytes, url: str) -> GapMarker:
        return parse_record(cls, data, url, "stream gap marker")

    @property
    def detected_seconds(self) -> int:
        return int(datetime.fromisoformat(self.detected_at).timestamp())


def record_json(record: DataclassInstance) -> bytes:
    """A progress object or marker as stored: its fields, keys sorted."""
    return orjson.dumps(record.__dict__, option=orjson.OPT_SORT_KEYS)


def parse_record(cls: type[Record], data: bytes, url: str, what: str) -> Record:
    """``cls`` from a stored JSON object; fields it does not know (a newer writer's) are left out."""
    try:
        raw = orjson.loads(data)
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})
    except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
        raise BackupFolderError(f"{url}: not a {what} ({exc})") from None


def put_record(s3: Any, bucket: str, key: str, record: DataclassInstance) -> None:
    body = record_json(record)
    call_with_retries(lambda: s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json"))


def keys_under(s3: Any, bucket: str, prefix: str, start_after: str | None = None) -> Iterator[tuple[str, int]]:
    """``(key, size)`` under ``prefix``, in key order; with ``start_after``, only the keys that sort after it
    (ListObjectsV2 StartAfter). Each page is retried by ``aws.retry``, as every other request."""
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, **({"StartAfter": start_after} if start_after
                                                                       else {})}
    while True:
        page = call_with_retries(partial(s3.list_objects_v2, **request))
        for obj in page.get("Contents", []):
            yield obj["Key"], int(obj.get("Size", 0))
        if not page.get("IsTruncated"):
            return
        request = {"Bucket": bucket, "Prefix": prefix, "ContinuationToken": page["NextContinuationToken"]}


def records_under(s3: Any, bucket: str, folder: str, cls: type[Record], what: str) -> list[Record]:
    """Every ``.json`` object under ``folder`` as a ``cls``, in key order."""
    return [parse_record(cls, read_small(s3, bucket, key), f"s3://{bucket}/{key}", what)
            for key, _ in sorted(keys_under(s3, bucket, folder)) if key.endswith(".json")]


def read_progress(s3: Any, base: S3Location, table: str) -> dict[str, ShardProgress]:
    """Every shard's progress object, by shard id."""
    folder = stream_location(base, table).key(PROGRESS_FOLDER + "/")
    return {p.shard_id: p for p in records_under(s3, base.bucket, folder, ShardProgress, "stream progress object")}


def write_progress(s3: Any, base: S3Location, progress: ShardProgress) -> None:
    progress.updated_at = datetime.now(UTC).isoformat()
    put_record(s3, base.bucket, progress_key(base, progress.table, progress.shard_id), progress)


def read_gaps(s3: Any, base: S3Location, table: str) -> list[GapMarker]:
    """Every gap marker of the table, oldest first."""
    folder = stream_location(base, table).key(GAPS_FOLDER + "/")
    return records_under(s3, base.bucket, folder, GapMarker, "stream gap marker")


def write_gap(s3: Any, base: S3Location, gap: GapMarker) -> str:
    """Store ``gap`` under a name from its detection time; returns the key (rewritten to add ``base``)."""
    key = gap_key(base, gap.table, datetime.fromisoformat(gap.detected_at), gap.kind,
                  gap.shard_id or gap.stream_arn.rsplit("/", 1)[-1])
    put_record(s3, base.bucket, key, gap)
    return key


def lineage_order(shards: Iterable[ShardProgress]) -> list[ShardProgress]:
    """Parents before children; streams in the order they were enabled (by label); siblings by start.

    A parent that is not among ``shards`` (trimmed, or never read) makes its child a root.
    """
    by_id = {s.shard_id: s for s in shards}
    children: dict[str | None, list[ShardProgress]] = {}
    for shard in by_id.values():
        parent = shard.parent_shard_id if shard.parent_shard_id in by_id else None
        children.setdefault(parent, []).append(shard)

    def start(s: ShardProgress) -> tuple[str, int, str]:
        return (s.stream_label, sequence_value(s.starting_sequence), s.shard_id)

    ordered: list[ShardProgress] = []
    pending = sorted(children.get(None, []), key=start, reverse=True)
    while pending:
        shard = pending.pop()
        ordered.append(shard)
        # Children join the queue ordered with the other waiting shards by start.
        pending = sorted(pending + children.get(shard.shard_id, []), key=start, reverse=True)
    # Shards whose parent links form a loop (damaged progress) are never reached from a root: keep them, last.
    reached = {s.shard_id for s in ordered}
    return ordered + sorted((s for s in by_id.values() if s.shard_id not in reached), key=start)


