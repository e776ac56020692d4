"""Export: a worker scans its segments into rolling S3 files; finalize seals the folder.

Clients are passed in (boto3 clients, from the Airflow hook or from the CLI).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from .codec.datapipeline import encode_item, encode_wire_item
from .errors import BackupFolderError
from .layout import MANIFEST, SIDECAR, SUCCESS, S3Location, data_file_name
from .manifest import render_manifest
from .plan import WorkerShare
from .progress import Progress
from .s3writer import RollingWriter, S3ObjectWriter, extension_for
from .scan import scan_segment
from .sidecar import FileRecord, Sidecar, table_summary
from .throttle import CapacityWatcher, TokenBucket

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerResult:
        return cls(
            worker=int(data["worker"]), segments=[int(s) for s in data["segments"]],
            files=[FileRecord.from_dict(f) for f in data["files"]], items=int(data["items"]),
            bytes=int(data["bytes"]), consumed_read_units=float(data["consumed_read_units"]),
            started=str(data["started"]), finished=str(data["finished"]),
        )


def utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
    started = utcnow()
    bucket = bucket or TokenBucket(rate=share.read_rate)
    watcher = CapacityWatcher(bucket, current_rate) if current_rate else None
    encode = encode_wire_item if settings.raw_scan else encode_item
    extension = extension_for(settings.compression)
    progress = Progress(f"worker {share.worker}", expected_items, log)
    files: list[FileRecord] = []
    for segment in share.segments:

        def open_object(part: int, segment: int = segment) -> S3ObjectWriter:
            key = folder.key(data_file_name(folder, segment, part, extension))
            return S3ObjectWriter(s3, folder.bucket, key, settings.compression, settings.put_extra)

        writer = RollingWriter(open_object, settings.file_max_items, settings.file_max_bytes)
        try:
            for page in scan_segment(
                dynamodb, table, segment, share.total_segments, bucket,
                raw=settings.raw_scan, consistent=settings.consistent_read,
                before_page=watcher.refresh_if_due if watcher else None,
            ):
                if page.items:
                    lines = [encode(item) for item in page.items]
                    writer.write_lines(lines)
                    progress.add(len(lines), sum(map(len, lines)), page.consumed)
                else:
                    progress.add(0, 0, page.consumed)
        except BaseException:
            writer.abort()
            raise
        for written in writer.close():
            name = written.key.rsplit("/", 1)[-1]
            files.append(FileRecord(name, segment, written.items, written.bytes, written.sha256))
    progress.done()
    return WorkerResult(
        worker=share.worker, segments=list(share.segments), files=files,
        items=sum(f.items for f in files), bytes=sum(f.bytes for f in files),
        consumed_read_units=bucket.charged, started=started, finished=utcnow(),
    )


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


def is_complete(s3: Any, folder: S3Location) -> bool:
    """A backup is complete only when its ``_SUCCESS`` marker exists."""
    return SUCCESS in list_folder(s3, folder)


def begin_backup(s3: Any, folder: S3Location, overwrite: bool) -> bool:
    """Prepare ``folder`` for a run; return False when a complete backup is already there.

    Overwriting removes ``_SUCCESS`` first, so a half-rewritten folder is never
    taken for a complete one.
    """
    if is_complete(s3, folder):
        if not overwrite:
            return False
        s3.delete_object(Bucket=folder.bucket, Key=folder.key(SUCCESS))
    return True


def finalize_backup(
    s3: Any,
    folder: S3Location,
    results: list[WorkerResult],
    *,
    description: dict[str, Any],
    total_segments: int,
    compression: str,
    logical_date: datetime,
    time_to_live: dict[str, Any] | None = None,
    tags: list[dict[str, str]] | None = None,
    put_extra: dict[str, Any] | None = None,
) -> Sidecar:
    """Check the workers covered every segment, then write manifest, sidecar and ``_SUCCESS`` last."""
    put_extra = put_extra or {}
    covered = sorted(s for r in results for s in r.segments)
    if covered != list(range(total_segments)):
        missing = sorted(set(range(total_segments)) - set(covered))
        raise BackupFolderError(
            f"{folder}: segments missing or duplicated in worker results (missing: {missing[:20]})"
        )
    files = sorted((f for r in results for f in r.files), key=lambda f: (f.segment, f.name))
    present = list_folder(s3, folder)
    for record in files:
        if present.get(record.name) != record.bytes:
            raise BackupFolderError(
                f"{folder.url_of(record.name)}: expected {record.bytes} bytes, found {present.get(record.name)}"
            )
    # Files a failed attempt left behind are not part of this backup.
    listed = {f.name for f in files}
    for name in sorted(set(present) - listed - {MANIFEST, SIDECAR, SUCCESS}):
        log.info("removing stray file from an earlier attempt: %s", folder.url_of(name))
        s3.delete_object(Bucket=folder.bucket, Key=folder.key(name))

    manifest = render_manifest(folder.url_of(f.name) for f in files)
    s3.put_object(Bucket=folder.bucket, Key=folder.key(MANIFEST), Body=manifest, **put_extra)
    sidecar = Sidecar(
        table=table_summary(description),
        logical_date=logical_date.astimezone(UTC).isoformat(),
        snapshot_start=min((r.started for r in results), default=utcnow()),
        snapshot_end=max((r.finished for r in results), default=utcnow()),
        compression=compression,
        total_segments=total_segments,
        files=files,
        consumed_read_units=sum(r.consumed_read_units for r in results),
        time_to_live=time_to_live,
        tags=tags or [],
    )
    s3.put_object(Bucket=folder.bucket, Key=folder.key(SIDECAR), Body=sidecar.to_json(), **put_extra)
    s3.put_object(Bucket=folder.bucket, Key=folder.key(SUCCESS), Body=b"", **put_extra)
    log.info(
        "sealed %s: %d items in %d files, %d bytes", folder, sidecar.item_count, len(files), sidecar.byte_count
    )
    return sidecar
