"""A whole backup run: plan, export the shares, seal the folder.

The Airflow DAG runs these three steps as separate tasks; the command line runs
them in one process with one worker process per share.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tableinfo import TableInfo, describe_table, read_table_info
from dynamodb_backup.backup.export import ExportSettings, WorkerResult, export_share
from dynamodb_backup.backup.plan import (
    DEFAULT_ON_DEMAND_CAPACITY,
    TableFacts,
    WorkerShare,
    capacity_rate,
    check_ratio,
    plan_scan,
    schedule_fit_warning,
)
from dynamodb_backup.backup.seal import begin_backup, finalize_backup
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location, backup_folder, check_table_name
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.progress import ProgressReport

log = logging.getLogger(__name__)


@dataclass
class BackupRequest:
    table: str
    destination: S3Location
    logical_date: datetime
    read_ratio: float = 0.25
    segments: int | None = None
    max_workers: int = 4
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY
    overwrite: bool = False
    settings: ExportSettings = field(default_factory=ExportSettings)
    #: Seconds between two scheduled runs (None: unscheduled); the plan warns when the sizing model
    #: says ``max_workers`` cannot finish an export within it.
    schedule_period_seconds: float | None = None

    def check(self) -> None:
        check_table_name(self.table)
        check_ratio(self.read_ratio)
        if self.segments is not None and not 1 <= self.segments <= 1_000_000:
            raise ParameterError(f"segments must be between 1 and 1000000, got {self.segments}")
        if not 1 <= self.max_workers <= 64:
            raise ParameterError(f"max_workers must be between 1 and 64, got {self.max_workers}")
        if self.on_demand_capacity <= 0:
            raise ParameterError("on_demand_capacity must be positive")


@dataclass
class BackupPlan:
    folder: S3Location
    shares: list[WorkerShare]
    total_segments: int
    read_rate: float
    expected_items: int
    skip: bool
    """True when a complete backup for this date already exists and overwrite is off."""


def check_bucket_exists(s3: Any, bucket: str) -> None:
    try:
        call_with_retries(lambda: s3.head_bucket(Bucket=bucket))
    except ClientError as exc:
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or exc.response.get("Error", {}).get("Code") in ("404", "NoSuchBucket"):
            raise ParameterError(f"bucket: S3 bucket {bucket!r} does not exist") from None
        raise


def plan_backup(dynamodb: Any, s3: Any, request: BackupRequest) -> BackupPlan:
    """Check the inputs against AWS, choose segments and shares, and open the folder."""
    request.check()
    description = describe_table(dynamodb, request.table)
    check_bucket_exists(s3, request.destination.bucket)
    facts = TableFacts.from_description(description)
    plan = plan_scan(facts, request.read_ratio, request.segments, request.max_workers,
                     request.on_demand_capacity)
    folder = backup_folder(request.destination, request.table, request.logical_date)
    proceed = begin_backup(s3, folder, request.overwrite)
    if not proceed:
        log.info("%s is already complete; leaving it alone (set overwrite to redo it)", folder)
    log.info(
        "plan for %s: %d segments over %d workers at %.1f read units/s -> %s",
        request.table, plan.total_segments, len(plan.shares), plan.read_rate, folder,
    )
    warning = schedule_fit_warning(facts, plan, request.read_ratio, request.schedule_period_seconds,
                                   request.on_demand_capacity, request.settings.consistent_read)
    if warning:
        log.warning("%s", warning)
    return BackupPlan(
        folder=folder, shares=plan.shares, total_segments=plan.total_segments,
        read_rate=plan.read_rate, expected_items=facts.item_count, skip=not proceed,
    )


def share_rate_reader(
    dynamodb: Any, table: str, share: WorkerShare, ratio: float, on_demand_capacity: float
) -> Callable[[], float]:
    """A function that re-reads the table's capacity and returns this share's rate."""

    def current() -> float:
        facts = TableFacts.from_description(describe_table(dynamodb, table))
        total = capacity_rate(facts.read_capacity, facts.on_demand, ratio, on_demand_capacity)
        return total * len(share.segments) / share.total_segments

    return current


def seal_backup(dynamodb: Any, s3: Any, request: BackupRequest, plan: BackupPlan,
                results: list[WorkerResult], source: dict[str, Any] | None = None,
                info: TableInfo | None = None) -> Sidecar:
    """Seal a scan backup; ``source`` records a fallback from pitr (the default says: a scan).

    ``info``: the table's description, TTL and tags, if already read (else read now).
    """
    info = info or read_table_info(dynamodb, request.table)
    return finalize_backup(
        s3, plan.folder, results, description=info.description, total_segments=plan.total_segments,
        compression=request.settings.compression, logical_date=request.logical_date,
        time_to_live=info.time_to_live, tags=info.tags, put_extra=request.settings.put_extra, source=source,
        read_rate=plan.read_rate,
    )


ClientFactory = Callable[[str], Any]


def _run_share(make_client: ClientFactory, request: BackupRequest, plan: BackupPlan,
               share: WorkerShare) -> WorkerResult:
    dynamodb = make_client("dynamodb")
    return export_share(
        dynamodb, make_client("s3"), request.table, plan.folder, share, request.settings,
        current_rate=share_rate_reader(dynamodb, request.table, share, request.read_ratio,
                                       request.on_demand_capacity),
        expected_items=plan.expected_items * len(share.segments) // max(plan.total_segments, 1),
    )


def run_backup(make_client: ClientFactory, request: BackupRequest, processes: int = 1,
               source: dict[str, Any] | None = None) -> Sidecar | None:
    """Plan, export every share (in ``processes`` worker processes), and seal the folder."""
    dynamodb, s3 = make_client("dynamodb"), make_client("s3")
    plan = plan_backup(dynamodb, s3, request)
    if plan.skip:
        return None
    # The sidecar's TTL and tags are read while the workers scan (three calls; dynalite takes over
    # a second to list tags on a big database). The thread starts after the workers are forked.
    # One progress report over every worker (a line every 10 s, a bar in a terminal).
    report = ProgressReport(f"export {request.table}", plan.expected_items, log)
    with ThreadPoolExecutor(max_workers=1) as side, report:
        if processes <= 1 or len(plan.shares) == 1:
            table_info = side.submit(read_table_info, dynamodb, request.table)
            results = [_run_share(make_client, request, plan, share) for share in plan.shares]
        else:
            with ProcessPoolExecutor(max_workers=min(processes, len(plan.shares)), initializer=report.initializer,
                                     initargs=report.initargs) as pool:
                futures = [pool.submit(_run_share, make_client, request, plan, s) for s in plan.shares]
                table_info = side.submit(read_table_info, dynamodb, request.table)
                results = [f.result() for f in futures]
        # The description is read again: the sidecar records the table as it was at the end.
        info = replace(table_info.result(), description=describe_table(dynamodb, request.table))
    return seal_backup(dynamodb, s3, request, plan, results, source, info=info)
