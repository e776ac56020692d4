"""Sealing a backup folder: the manifest, the sidecar, then ``_SUCCESS``, last.

Also the folder's life around a run: a complete folder is left alone unless the
run overwrites it (and then loses ``_SUCCESS`` first), and the resume state and
open uploads a killed worker left behind are cleared before the folder is sealed.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.backup.export import CHECKPOINTS, WorkerResult, list_folder, owner_extra, utcnow
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.catalog import NEWEST, write_newest
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location
from dynamodb_backup.formats.manifest import render_manifest
from dynamodb_backup.formats.sidecar import Sidecar, table_summary

log = logging.getLogger(__name__)


def delete_prefix(s3: Any, location: S3Location) -> int:
    """Remove every object under ``location/``; return how many were deleted."""
    prefix = location.key("")
    deleted = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            key: str = obj["Key"]

            def delete(key: str = key) -> Any:
                return s3.delete_object(Bucket=location.bucket, Key=key)

            call_with_retries(delete)
            deleted += 1
    return deleted


def delete_checkpoints(s3: Any, folder: S3Location) -> int:
    """Remove ``<folder>/_checkpoints/``; return how many objects were deleted."""
    return delete_prefix(s3, folder.child(CHECKPOINTS))


def open_uploads(s3: Any, folder: S3Location, extra: dict[str, Any] | None = None,
                 page_size: int = 1000) -> list[tuple[str, str]]:
    """(key, upload id) of every multipart upload open under ``folder``, all pages.

    ListMultipartUploads answers at most ``MaxUploads`` (1,000) at a time; the next page starts
    after ``NextKeyMarker`` and ``NextUploadIdMarker`` while ``IsTruncated``.
    """
    found: list[tuple[str, str]] = []
    markers: dict[str, str] = {}
    while True:
        request: dict[str, Any] = {"Bucket": folder.bucket, "Prefix": folder.key(""), "MaxUploads": page_size,
                                   **markers, **(extra or {})}

        def listing(request: dict[str, Any] = request) -> dict[str, Any]:
            answer: dict[str, Any] = s3.list_multipart_uploads(**request)
            return answer

        page = call_with_retries(listing)
        found += [(upload["Key"], upload["UploadId"]) for upload in page.get("Uploads", [])]
        if not page.get("IsTruncated"):
            return found
        following = {"KeyMarker": str(page.get("NextKeyMarker") or ""),
                     "UploadIdMarker": str(page.get("NextUploadIdMarker") or "")}
        if not following["KeyMarker"] or following == markers:
            raise BackupFolderError(f"ListMultipartUploads under {folder} is truncated but names no next page "
                                    f"(markers {following})")
        markers = following


def abort_open_uploads(s3: Any, folder: S3Location, extra: dict[str, Any] | None = None,
                       page_size: int = 1000) -> int:
    """Abort multipart uploads left open under ``folder`` (workers killed mid-file). Best effort."""
    aborted = 0
    try:
        # Listed whole first: aborting while paging would move what the markers point at.
        for key, upload_id in open_uploads(s3, folder, extra, page_size):
            abort: dict[str, Any] = {"Bucket": folder.bucket, "Key": key, "UploadId": upload_id, **(extra or {})}

            def aborting(abort: dict[str, Any] = abort) -> Any:
                return s3.abort_multipart_upload(**abort)

            try:
                call_with_retries(aborting)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
                continue  # completed or aborted since it was listed: nothing left to do for it
            aborted += 1
    except (ClientError, BackupFolderError) as exc:
        log.warning("could not abort open multipart uploads under %s: %s", folder, exc)
    if aborted:
        log.info("aborted %d multipart uploads left open under %s", aborted, folder)
    return aborted


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
    source: dict[str, Any] | None = None,
    snapshot: tuple[str, str] | None = None,
    write_manifest: bool = True,
    read_rate: float | None = None,
) -> Sidecar:
    """Check the workers covered every segment, then write manifest, sidecar and ``_SUCCESS`` last.

    ``source`` says where the data came from (default: a scan); ``snapshot`` overrides when the
    data was read (a point-in-time export holds one moment); ``write_manifest`` is off for a
    folder that keeps a native export, which is not Data Pipeline's layout.
    """
    put_extra = put_extra or {}
    covered = sorted(s for r in results for s in r.segments)
    if covered != list(range(total_segments)):
        missing = sorted(set(range(total_segments)) - set(covered))
        raise BackupFolderError(
            f"{folder}: segments missing or duplicated in worker results (missing: {missing[:20]})"
        )
    files = sorted((f for r in results for f in r.files), key=lambda f: (f.segment, f.name))
    present = list_folder(s3, folder)
    nested = _nested_sizes(s3, folder) if any("/" in f.name for f in files) else {}
    for record in files:
        found = nested.get(record.name) if "/" in record.name else present.get(record.name)
        if found != record.bytes:
            raise BackupFolderError(f"{folder.url_of(record.name)}: expected {record.bytes} bytes, found {found}")
    # Files a failed attempt left behind are not part of this backup.
    listed = {f.name for f in files}
    for name in sorted(set(present) - listed - {MANIFEST, SIDECAR, SUCCESS}):
        log.info("removing stray file from an earlier attempt: %s", folder.url_of(name))
        s3.delete_object(Bucket=folder.bucket, Key=folder.key(name))
    # Resume state and uploads a killed worker left open go before _SUCCESS is written.
    delete_checkpoints(s3, folder)
    abort_open_uploads(s3, folder, owner_extra(put_extra))

    if write_manifest:
        manifest = render_manifest(folder.url_of(f.name) for f in files)
        _put(s3, folder, MANIFEST, manifest, put_extra)
    sidecar = Sidecar(
        table=table_summary(description),
        logical_date=logical_date.astimezone(UTC).isoformat(),
        snapshot_start=snapshot[0] if snapshot else min((r.started for r in results), default=utcnow()),
        snapshot_end=snapshot[1] if snapshot else max((r.finished for r in results), default=utcnow()),
        compression=compression,
        total_segments=total_segments,
        files=files,
        consumed_read_units=sum(r.consumed_read_units for r in results),
        time_to_live=time_to_live,
        tags=tags or [],
        source=source or {"mode": "scan"},
        workers=[worker_record(r) for r in sorted(results, key=lambda r: r.worker)],
        read_rate=read_rate,
    )
    _put(s3, folder, SIDECAR, sidecar.to_json(), put_extra)
    _put(s3, folder, SUCCESS, b"", put_extra)
    try:  # the console's tables page reads it instead of listing the table's folders; it checks _SUCCESS itself
        call_with_retries(lambda: write_newest(s3, folder, put_extra))
    except ClientError as exc:
        log.warning("could not point %s at %s: %s", NEWEST, folder, exc.response.get("Error", {}))
    log.info(
        "sealed %s: %d items in %d files, %d bytes", folder, sidecar.item_count, len(files), sidecar.byte_count
    )
    return sidecar


def worker_record(result: WorkerResult) -> dict[str, Any]:
    """What the sidecar keeps of one worker: its share, totals and read units per interval (not its files)."""
    record = {k: v for k, v in result.to_dict().items() if k != "files"}
    record["files"] = len(result.files)
    return record


def _put(s3: Any, folder: S3Location, name: str, body: bytes, put_extra: dict[str, Any]) -> None:
    """One small object, retried on throttling, 5xx and dropped connections like every other write."""
    call_with_retries(lambda: s3.put_object(Bucket=folder.bucket, Key=folder.key(name), Body=body, **put_extra))


def _nested_sizes(s3: Any, folder: S3Location) -> dict[str, int]:
    """Sizes of every object under ``folder``, by path relative to it (a kept native export is nested)."""
    prefix = folder.key("")
    sizes: dict[str, int] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=folder.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            sizes[obj["Key"][len(prefix):]] = int(obj["Size"])
    return sizes
