"""A whole point-in-time backup in one process tree (the command line's path).

The DAG runs the same steps as tasks and waits in the triggerer; here the waits
are plain polling loops with a deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.backup.export import ExportSettings, WorkerResult
from dynamodb_backup.backup.job import BackupRequest
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.pitr import DATAPIPELINE
from dynamodb_backup.pitr.convert import ConvertShare, convert_share
from dynamodb_backup.pitr.native import ExportStatus, describe_export
from dynamodb_backup.pitr.steps import (
    begin_export,
    check_restorable,
    conversion_shares,
    export_time,
    open_pitr_folder,
    seal_pitr,
)
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.progress import ProgressReport

log = logging.getLogger(__name__)

ClientFactory = Callable[[str], Any]
#: How long to wait for the moment to become restorable (AWS trails the clock by about 5 minutes).
RESTORABLE_TIMEOUT = 30 * 60.0
#: How long an export may take; AWS gives no bound (a 3-item table took 12 minutes).
EXPORT_TIMEOUT = 6 * 3600.0


def poll(check: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout: float,
         interval: float, sleep: Callable[[float], None] = time.sleep) -> Any:
    """Call ``check`` every ``interval`` s until ``done(result)``; fail after ``timeout`` s naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if done(result):
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"gave up waiting for {what} after {timeout:.0f} s")
        sleep(interval)


def _convert(make_client: ClientFactory, table: str, folder: S3Location, share: ConvertShare,
             settings: ExportSettings, write: bool) -> WorkerResult:
    return convert_share(make_client("s3"), table, folder, share, settings, write=write)


def convert_all(make_client: ClientFactory, table: str, folder: S3Location, shares: list[ConvertShare],
                settings: ExportSettings, *, write: bool, processes: int = 1) -> list[WorkerResult]:
    """Every share, in up to ``processes`` worker processes (the DAG maps them over tasks instead)."""
    expected = sum(f.items or 0 for share in shares for f in share.files)
    with ProgressReport(f"convert {table}", expected, log) as report:  # one report over every worker
        if processes <= 1 or len(shares) == 1:
            return [_convert(make_client, table, folder, s, settings, write) for s in shares]
        with ProcessPoolExecutor(max_workers=min(processes, len(shares)), initializer=report.initializer,
                                 initargs=report.initargs) as pool:
            futures = [pool.submit(_convert, make_client, table, folder, s, settings, write) for s in shares]
            return [f.result() for f in futures]


def wait_restorable(dynamodb: Any, table: str, at: datetime, poll_seconds: float,
                    timeout: float = RESTORABLE_TIMEOUT) -> None:
    """Until ``at`` is inside the table's PITR window; raise at once if it never will be."""
    poll(lambda: check_restorable(dynamodb, table, at, datetime.now(UTC)), lambda v: v == "ready",
         f"{iso(at)} to become restorable for {table}", timeout, poll_seconds)


def run_pitr_backup(make_client: ClientFactory, request: BackupRequest, *, processes: int = 1,
                    output_format: str = DATAPIPELINE, keep_native: bool = False, run_key: str = "cli",
                    poll_seconds: float = 10.0, restorable_timeout: float = RESTORABLE_TIMEOUT,
                    export_timeout: float = EXPORT_TIMEOUT) -> Sidecar | None:
    """Export ``request.table`` as it was at the request's logical date, convert it, seal the folder."""
    dynamodb, s3 = make_client("dynamodb"), make_client("s3")
    at = export_time(request.logical_date)
    wait_restorable(dynamodb, request.table, at, poll_seconds, restorable_timeout)
    folder, proceed = open_pitr_folder(s3, request)
    if not proceed:
        return None
    arn = begin_export(dynamodb, request.table, at, folder, output_format, run_key, request.settings.put_extra,
                       s3=s3)
    status: ExportStatus = poll(lambda: describe_export(dynamodb, arn), lambda s: s.finished,
                                f"export {arn}", export_timeout, poll_seconds)
    shares = conversion_shares(s3, status, request.max_workers)
    results = convert_all(make_client, request.table, folder, shares, request.settings,
                          write=output_format == DATAPIPELINE, processes=processes)
    return seal_pitr(dynamodb, s3, table=request.table, folder=folder, status=status, results=results,
                     total_files=shares[0].total_files, output_format=output_format,
                     compression=request.settings.compression, logical_date=at, keep_native=keep_native,
                     put_extra=request.settings.put_extra)
