"""Export: a worker scans its segments into rolling S3 files (``seal`` then seals the folder).

Clients are passed in (boto3 clients, from the Airflow hook or from the CLI).

Resume. Each time a data file of a segment is stored, the worker records the
segment's progress in ``<folder>/_checkpoints/segment-<n>.json``: the files
written so far, the number of the next file, and the primary key of the last
item the stored files hold. A worker that finds a checkpoint (an Airflow retry
after the task was killed, or a re-run of the command) starts the segment's
scan after that key (``ExclusiveStartKey``) and goes on numbering files from
there, so the backup holds every item exactly once:

* files are split at an exact item count, so a checkpoint may fall inside a
  scan page; the key of the last item written is a valid ``ExclusiveStartKey``
  (it is what ``LastEvaluatedKey`` would be for a page ending there). The key
  attribute names are learnt from the pages' ``LastEvaluatedKey`` (or, for a
  segment that is a single page, from one DescribeTable call);
* the file being written when the worker died is not in any checkpoint; its
  name is derived from (folder, segment, part), so the retry writes the same
  name again and replaces whatever part of it was stored;
* a checkpoint is used only if it was made for the same table, segment count
  and file settings, and every file it lists is still there at its size;
  otherwise the segment starts over;
* a finished segment's checkpoint says so, and a retry skips the segment.

``seal.finalize_backup`` deletes the checkpoints (and aborts multipart uploads a
killed worker left open) before it writes ``_SUCCESS``. Names under
``_checkpoints/`` are never data: the manifest lists data files by name, and
names starting with "_" are skipped by Data Pipeline's importer.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.s3writer import RollingWriter, S3ObjectWriter, WrittenObject
from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.aws.throttle import CapacityWatcher, TokenBucket
from dynamodb_backup.aws.usage import UsageTimeline
from dynamodb_backup.backup.heap import return_large_buffers_to_the_os
from dynamodb_backup.backup.plan import WorkerShare
from dynamodb_backup.backup.scan import prefetched, scan_segment, wire_key_to_client
from dynamodb_backup.formats.codec.datapipeline import encode_item, encode_wire_item
from dynamodb_backup.formats.compression import extension_for, make_compressor
from dynamodb_backup.formats.layout import S3Location, data_file_name
from dynamodb_backup.formats.sidecar import FileRecord
from dynamodb_backup.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class ExportSettings:
    compression: str = "gzip"
    file_max_items: int = 100_000
    file_max_bytes: int = 256 * 1024 * 1024
    raw_scan: bool = True
    consistent_read: bool = False
    #: Extra PutObject/CreateMultipartUpload arguments (SSE-KMS, ExpectedBucketOwner).
    put_extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class WorkerResult:
    worker: int
    segments: list[int]
    files: list[FileRecord]
    items: int
    bytes: int
    consumed_read_units: float
    started: str
    finished: str
    #: Read units this attempt consumed per 5 s (:class:`~dynamodb_backup.aws.usage.UsageTimeline`).
    usage: dict[str, Any] | None = None
    #: The read units per second this worker was allowed (its share of the ratio) when it started.
    read_rate: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerResult:
        return cls(
            worker=int(data["worker"]), segments=[int(s) for s in data["segments"]],
            files=[FileRecord.from_dict(f) for f in data["files"]], items=int(data["items"]),
            bytes=int(data["bytes"]), consumed_read_units=float(data["consumed_read_units"]),
            started=str(data["started"]), finished=str(data["finished"]),
            usage=data.get("usage"), read_rate=None if data.get("read_rate") is None else float(data["read_rate"]),
        )


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


CHECKPOINTS = "_checkpoints"
CHECKPOINT_VERSION = 1


def checkpoint_key(folder: S3Location, segment: int) -> str:
    return folder.key(f"{CHECKPOINTS}/segment-{segment}.json")


def settings_fingerprint(settings: ExportSettings) -> dict[str, Any]:
    """What must match for a checkpoint to be reused: anything that changes file contents or names."""
    return {"compression": settings.compression, "file_max_items": settings.file_max_items,
            "file_max_bytes": settings.file_max_bytes, "raw_scan": settings.raw_scan}


@dataclass
class SegmentCheckpoint:
    table: str
    segment: int
    total_segments: int
    settings: dict[str, Any]
    files: list[FileRecord]
    next_part: int
    #: Primary key of the last item in ``files``, in wire form (binary as base64 text).
    last_key: dict[str, Any] | None
    done: bool
    consumed_read_units: float
    started: str
    version: int = CHECKPOINT_VERSION

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> SegmentCheckpoint:
        raw = json.loads(data)
        return cls(
            table=str(raw["table"]), segment=int(raw["segment"]), total_segments=int(raw["total_segments"]),
            settings=dict(raw["settings"]), files=[FileRecord.from_dict(f) for f in raw["files"]],
            next_part=int(raw["next_part"]), last_key=raw.get("last_key"), done=bool(raw["done"]),
            consumed_read_units=float(raw["consumed_read_units"]), started=str(raw["started"]),
            version=int(raw.get("version", 0)),
        )


def _wire_value(value: dict[str, Any]) -> dict[str, Any]:
    """A key attribute in wire form: binary as base64 text (client form carries bytes)."""
    if "B" in value and isinstance(value["B"], bytes | bytearray):
        return {"B": base64.b64encode(value["B"]).decode()}
    return dict(value)


def item_key(item: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {name: _wire_value(item[name]) for name in names}


def load_checkpoint(s3: Any, folder: S3Location, segment: int, extra: dict[str, Any]) -> SegmentCheckpoint | None:
    try:
        response = call_with_retries(lambda: s3.get_object(
            Bucket=folder.bucket, Key=checkpoint_key(folder, segment), **extra))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    try:
        return SegmentCheckpoint.from_json(response["Body"].read())
    except (ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable checkpoint for segment %d in %s: %s", segment, folder, exc)
        return None


def save_checkpoint(s3: Any, folder: S3Location, checkpoint: SegmentCheckpoint, put_extra: dict[str, Any]) -> None:
    body = checkpoint.to_json()
    call_with_retries(lambda: s3.put_object(
        Bucket=folder.bucket, Key=checkpoint_key(folder, checkpoint.segment), Body=body,
        ContentType="application/json", **put_extra))


def usable_checkpoint(
    checkpoint: SegmentCheckpoint | None, table: str, total_segments: int, settings: ExportSettings,
    present: dict[str, int],
) -> SegmentCheckpoint | None:
    """``checkpoint`` if it belongs to this run's table, plan and settings and its files are intact."""
    if checkpoint is None:
        return None
    why = None
    if checkpoint.version != CHECKPOINT_VERSION:
        why = f"version {checkpoint.version}"
    elif checkpoint.table != table or checkpoint.total_segments != total_segments:
        why = f"made for table {checkpoint.table!r} with {checkpoint.total_segments} segments"
    elif checkpoint.settings != settings_fingerprint(settings):
        why = f"made with other file settings ({checkpoint.settings})"
    elif not checkpoint.done and checkpoint.last_key is None and checkpoint.files:
        why = "no resume key"
    else:
        for record in checkpoint.files:
            if present.get(record.name) != record.bytes:
                why = f"{record.name} is missing or changed"
                break
    if why:
        log.warning("segment %d: not resuming from its checkpoint (%s); starting it over", checkpoint.segment, why)
        return None
    return checkpoint


def owner_extra(put_extra: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in put_extra.items() if k == "ExpectedBucketOwner"}


def export_share(
    dynamodb: Any,
    s3: Any,
    table: str,
    folder: S3Location,
    share: WorkerShare,
    settings: ExportSettings,
    *,
    bucket: TokenBucket | None = None,
    current_rate: Callable[[], float] | None = None,
    expected_items: int = 0,
) -> WorkerResult:
    """Scan every segment of ``share`` into data files under ``folder``.

    ``current_rate`` (optional) re-reads this worker's rate from the table's
    current capacity; it is polled about once a minute.
    """
    return_large_buffers_to_the_os()
    started = utcnow()
    bucket = bucket or TokenBucket(rate=share.read_rate)
    charged_before = bucket.charged
    watcher = CapacityWatcher(bucket, current_rate) if current_rate else None
    extension = extension_for(settings.compression)
    progress = Progress(f"worker {share.worker}", expected_items, log)
    files: list[FileRecord] = []
    earlier_consumed = 0.0
    usage = UsageTimeline()
    checkpoints = {s: load_checkpoint(s3, folder, s, owner_extra(settings.put_extra)) for s in share.segments}
    present = list_folder(s3, folder) if any(checkpoints.values()) else {}
    for segment in share.segments:
        resumed = usable_checkpoint(checkpoints[segment], table, share.total_segments, settings, present)
        if resumed is not None:
            earlier_consumed += resumed.consumed_read_units
            started = min(started, resumed.started)
            progress.add(sum(f.items for f in resumed.files), sum(f.bytes for f in resumed.files), 0.0)
            if resumed.done:
                log.info("segment %d: already exported (%d files), skipping", segment, len(resumed.files))
                files.extend(resumed.files)
                continue
            log.info("segment %d: resuming after %d files", segment, len(resumed.files))
        files.extend(_export_segment(dynamodb, s3, table, folder, share, segment, settings, bucket, watcher,
                                     progress, extension, resumed, started, usage))
    progress.done()
    return WorkerResult(
        worker=share.worker, segments=list(share.segments), files=files,
        items=sum(f.items for f in files), bytes=sum(f.bytes for f in files),
        consumed_read_units=bucket.charged - charged_before + earlier_consumed, started=started,
        finished=utcnow(), usage=usage.to_dict(), read_rate=share.read_rate,
    )


def _export_segment(
    dynamodb: Any, s3: Any, table: str, folder: S3Location, share: WorkerShare, segment: int,
    settings: ExportSettings, bucket: TokenBucket, watcher: CapacityWatcher | None, progress: Progress,
    extension: str, resumed: SegmentCheckpoint | None, started: str, usage: UsageTimeline | None = None,
) -> list[FileRecord]:
    """Scan one segment (from its checkpoint, if any) into files; return the files it now has."""
    encode = encode_wire_item if settings.raw_scan else encode_item
    prior = list(resumed.files) if resumed else []
    consumed_before = (resumed.consumed_read_units if resumed else 0.0) - bucket.charged
    key_names: list[str] | None = sorted(resumed.last_key) if resumed and resumed.last_key else None
    new_files: list[FileRecord] = []
    finishing = False

    def record(written: WrittenObject) -> FileRecord:
        name = written.key.rsplit("/", 1)[-1]
        return FileRecord(name, segment, written.items, written.bytes, written.sha256)

    def checkpoint(files: list[FileRecord], next_part: int, last_key: dict[str, Any] | None, done: bool) -> None:
        save_checkpoint(s3, folder, SegmentCheckpoint(
            table=table, segment=segment, total_segments=share.total_segments,
            settings=settings_fingerprint(settings), files=files, next_part=next_part, last_key=last_key,
            done=done, consumed_read_units=consumed_before + bucket.charged, started=started,
        ), settings.put_extra)

    def on_roll(written: WrittenObject, last_item: Any) -> None:
        nonlocal key_names
        new_files.append(record(written))
        if finishing or last_item is None:
            return  # the final file is covered by the "done" checkpoint
        if key_names is None:
            key_names = sorted(k["AttributeName"] for k in describe_table(dynamodb, table)["KeySchema"])
        checkpoint(prior + new_files, writer.part, item_key(last_item, key_names), False)

    def open_object(part: int) -> S3ObjectWriter:
        key = folder.key(data_file_name(folder, segment, part, extension))
        return S3ObjectWriter(s3, folder.bucket, key, make_compressor(settings.compression), settings.put_extra)

    writer = RollingWriter(open_object, settings.file_max_items, settings.file_max_bytes,
                           first_part=resumed.next_part if resumed else 0, on_roll=on_roll)
    start_key = wire_key_to_client(resumed.last_key) if resumed and resumed.last_key else None
    try:
        for page in prefetched(scan_segment(
            dynamodb, table, segment, share.total_segments, bucket,
            raw=settings.raw_scan, consistent=settings.consistent_read, start_key=start_key,
            before_page=watcher.refresh_if_due if watcher else None,
        )):
            if key_names is None and page.last_key:
                key_names = sorted(page.last_key)
            if usage is not None:
                usage.add(page.consumed)
            if page.items:
                lines = [encode(item) for item in page.items]
                writer.write_lines(lines, page.items)
                progress.add(len(lines), sum(map(len, lines)), page.consumed)
            else:
                progress.add(0, 0, page.consumed)
        finishing = True
        writer.close()
    except BaseException:
        writer.abort()
        raise
    files = prior + new_files
    checkpoint(files, writer.part, None, True)
    return files


def list_folder(s3: Any, folder: S3Location) -> dict[str, int]:
    """Names and sizes of the objects directly in ``folder``."""
    found: dict[str, int] = {}
    prefix = folder.key("")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=folder.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if "/" not in name:
                found[name] = int(obj["Size"])
    return found
