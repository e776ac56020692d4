"""The steps of a point-in-time backup, shared by the DAG's tasks and the command line.

    check the window ─> start the export ─> (wait) ─> plan the conversion ─> convert ─> seal

Each step is one call the shell can retry on its own: starting replays the same
ClientToken, converting resumes per file, sealing checks every file is there.
An overwrite is a fresh export, not a replay: the token also names the sealed backup
it replaces, whose export's staging copy sealing has already deleted.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.tableinfo import describe_table, read_table_info
from dynamodb_backup.backup.export import WorkerResult
from dynamodb_backup.backup.job import BackupRequest, check_bucket_exists
from dynamodb_backup.backup.seal import begin_backup, delete_prefix, finalize_backup
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.layout import SIDECAR, S3Location, backup_folder
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.pitr import DATAPIPELINE, NATIVE
from dynamodb_backup.pitr.convert import ConvertShare, native_files, plan_shares
from dynamodb_backup.pitr.native import STAGING, ExportStatus, client_token, export_request, start_export
from dynamodb_backup.pitr.window import Verdict, iso, judge_export_time, read_window, utc, whole_second
from dynamodb_backup.repository.inspection import inspect_export

log = logging.getLogger(__name__)


def export_time(logical_date: datetime) -> datetime:
    """The moment a pitr folder holds: its logical date, to the second (the folder's name)."""
    return whole_second(logical_date)


def staging_for(folder: S3Location, output_format: str) -> S3Location:
    """Where the export writes: inside the folder itself when it is kept native, else a staging prefix."""
    return folder if output_format == NATIVE else folder.child(STAGING)


def check_restorable(dynamodb: Any, table: str, at: datetime, now: datetime) -> Verdict:
    """``ready`` or ``wait``; raises when PITR is off or ``at`` is outside the window."""
    window = read_window(dynamodb, table)
    verdict = judge_export_time(window, at, now)
    log.info("%s; export time %s: %s", window.describe(), iso(at), verdict)
    return verdict


def open_pitr_folder(s3: Any, request: BackupRequest) -> tuple[S3Location, bool]:
    """The run's dated folder, opened; False when it is already complete (and overwrite is off)."""
    request.check()
    check_bucket_exists(s3, request.destination.bucket)
    folder = backup_folder(request.destination, request.table, export_time(request.logical_date))
    proceed = begin_backup(s3, folder, request.overwrite)
    if not proceed:
        log.info("%s is already complete; leaving it alone (set overwrite to redo it)", folder)
    return folder, proceed


def begin_export(dynamodb: Any, table: str, at: datetime, folder: S3Location, output_format: str,
                 run_key: str, put_extra: dict[str, Any] | None = None, since: datetime | None = None,
                 s3: Any = None) -> str:
    """Start (or replay) the export of ``table`` at ``at`` (with ``since``: of the changes in ``[since, at)``,
    kept native in the folder); ``run_key`` names the run (DAG and run id).

    With ``s3``, a folder that already holds a sealed backup (an overwrite) gets a new export:
    AWS keeps a ClientToken for 8 hours, and replaying the earlier one would hand back the
    export whose staging files that backup's seal removed.
    """
    table_arn = describe_table(dynamodb, table)["TableArn"]
    staging = staging_for(folder, NATIVE if since is not None else output_format)
    parts = [run_key, table, iso(since) if since else "", iso(at), staging.uri, output_format]
    replaced = replaced_backup(s3, folder) if s3 is not None else ""
    if replaced:
        log.info("%s holds a sealed backup (%s); overwriting it with a new export", folder, replaced)
        parts.append(replaced)
    token = client_token(*parts)
    return start_export(dynamodb, export_request(table_arn, at, staging, token, put_extra, since))


def replaced_backup(s3: Any, folder: S3Location) -> str:
    """The sealed backup in ``folder`` as its sidecar's ETag and write time; '' when there is none.

    Stable while an overwrite is retried (the sidecar is rewritten only at the seal), new after
    every seal, so each overwrite gets its own export and its retries replay it.
    """
    try:
        head = s3.head_object(Bucket=folder.bucket, Key=folder.key(SIDECAR))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return ""
        raise
    return f"{head['ETag']}@{iso(head['LastModified'])}"


def conversion_shares(s3: Any, status: ExportStatus, max_workers: int) -> list[ConvertShare]:
    """Read the finished export's manifests (checksummed) and split its data files into shares."""
    status.raise_if_failed()
    source = inspect_export(s3, status.export_folder(), incremental_ok=True)
    if status.item_count is not None and source.expected_items != status.item_count:
        raise BackupFolderError(f"{status.export_folder()}/: manifest-files.json lists {source.expected_items} "
                                f"items, DescribeExport says {status.item_count}")
    files = native_files(source)
    log.info("export %s: %d data files, %s items", status.arn, len(files), source.expected_items)
    return plan_shares(files, max_workers)


def seal_pitr(dynamodb: Any, s3: Any, *, table: str, folder: S3Location, status: ExportStatus,
              results: list[WorkerResult], total_files: int, output_format: str, compression: str,
              logical_date: datetime, keep_native: bool, put_extra: dict[str, Any] | None = None,
              chain: dict[str, Any] | None = None) -> Sidecar:
    """Seal the folder like a scan backup, with the export as its source; then drop the staging copy.

    An incremental export (its changes, kept native) seals as mode ``incremental``; ``chain`` names
    the links a folder belongs to (see ``incremental.backup``).
    """
    if status.incremental:
        output_format = NATIVE
    converted = sum(r.items for r in results)
    if status.item_count is not None and converted != status.item_count:
        raise BackupFolderError(f"{folder}/: converted {converted} items, the export {status.arn} holds "
                                f"{status.item_count}; not sealing")
    info = read_table_info(dynamodb, table)
    moment = status.export_time or iso(utc(logical_date))
    native_kept = output_format == NATIVE or keep_native
    source: dict[str, Any] = {
        "mode": "pitr", "format": output_format, "export_arn": status.arn, "export_time": moment,
        "billed_size_bytes": status.billed_size_bytes, "export_item_count": status.item_count,
        "native_export": status.export_folder().prefix[len(folder.key("")):] if native_kept else None,
    }
    if status.incremental:
        del source["export_time"]
        moment = str(status.export_to)
        source.update(mode="incremental", export_from=status.export_from, export_to=moment, view="NEW_AND_OLD_IMAGES")
    if chain is not None:
        source["chain"] = chain
    sidecar = finalize_backup(
        s3, folder, results, description=info.description, total_segments=total_files, compression=compression,
        logical_date=logical_date, time_to_live=info.time_to_live, tags=info.tags, put_extra=put_extra,
        source=source, snapshot=(source.get("export_from", moment), moment),
        write_manifest=output_format == DATAPIPELINE,
    )
    if not native_kept:
        removed = delete_prefix(s3, folder.child(STAGING))
        log.info("removed the staging copy of the export (%d objects); keep_native keeps it", removed)
    return sidecar

