"""Backup operators: plan the scan, export a share of segments, seal the folder."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import Asset, BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dynamodb_backup.backup.export import ExportSettings, WorkerResult, export_share
from dynamodb_backup.backup.job import BackupPlan, BackupRequest, plan_backup, seal_backup, share_rate_reader
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, WorkerShare
from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.incremental.backup import LinkPlan, plan_for_table
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.operators.params import rendered
from dynamodb_backup.pitr import DATAPIPELINE, INCREMENTAL, PITR, SCAN
from dynamodb_backup.pitr.native import ExportStatus
from dynamodb_backup.pitr.steps import check_restorable, export_time, open_pitr_folder, seal_pitr
from dynamodb_backup.pitr.window import PitrDisabledError
from dynamodb_backup.progress import ProgressReport
from dynamodb_backup.triggers.pitr import RestorableTrigger

#: How long a pitr plan waits for its moment to become restorable (AWS trails the clock by about 5 minutes).
RESTORABLE_TIMEOUT = timedelta(hours=1)


def run_date(context: Context) -> datetime:
    """The date that names the folder: the logical date, or when a dateless manual run was due."""
    moment: datetime | None = context.get("logical_date")
    return moment if moment is not None else context["dag_run"].run_after


def schedule_period(context: Context) -> float | None:
    """Seconds between two scheduled runs (the run's data interval), for the plan's sizing warning."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if start is None or end is None or end <= start:
        return None
    return (end - start).total_seconds()


class BackupFields(BaseOperator):
    """Settings every backup task renders from the run's params."""

    template_fields: Sequence[str] = (
        "table", "bucket", "prefix", "read_ratio", "segments", "max_workers", "compression",
        "consistent_read", "overwrite", "aws_conn_id", "mode", "output_format", "keep_native", "pitr_fallback",
    )

    def __init__(
        self, *, table: str, bucket: str, prefix: str, read_ratio: Any = 0.25, segments: Any = None,
        max_workers: Any = 4, compression: str = "gzip", consistent_read: Any = False, overwrite: Any = False,
        aws_conn_id: str = "aws_default", on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY,
        file_max_items: int = 100_000, put_extra: dict[str, Any] | None = None, mode: str = SCAN,
        output_format: str = DATAPIPELINE, keep_native: Any = False, pitr_fallback: Any = None, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.mode, self.output_format = mode, output_format
        self.keep_native, self.pitr_fallback = keep_native, pitr_fallback
        self.table, self.bucket, self.prefix = table, bucket, prefix
        self.read_ratio, self.segments, self.max_workers = read_ratio, segments, max_workers
        self.compression, self.overwrite, self.aws_conn_id = compression, overwrite, aws_conn_id
        self.consistent_read = consistent_read
        self.on_demand_capacity, self.file_max_items = on_demand_capacity, file_max_items
        self.put_extra = put_extra or {}

    def request(self, context: Context) -> BackupRequest:
        segments = rendered(self.segments)
        return BackupRequest(
            table=str(self.table),
            destination=S3Location.parse(f"s3://{self.bucket}/{self.prefix}", "bucket/prefix"),
            logical_date=run_date(context),
            read_ratio=float(self.read_ratio),
            segments=None if segments is None else int(segments),
            max_workers=int(self.max_workers),
            on_demand_capacity=float(self.on_demand_capacity),
            overwrite=str(self.overwrite).lower() == "true",
            settings=ExportSettings(compression=str(self.compression), file_max_items=self.file_max_items,
                                    consistent_read=str(self.consistent_read).lower() == "true",
                                    put_extra=self.put_extra),
            schedule_period_seconds=schedule_period(context),
        )


class PlanBackupOperator(BackupFields):
    """Decide the run's mode, check the table and bucket, open the dated folder.

    Scan: choose segments and worker shares and return them to map over. Pitr:
    check the recovery window, and defer (holding no slot) until the run's moment
    is restorable; return no shares. Either way the plan goes to the XCom key
    ``plan``; an already complete folder gives no work (overwrite redoes it).
    """

    ui_color = "#d6eaf8"

    def __init__(self, *, restorable_timeout: timedelta = RESTORABLE_TIMEOUT, restorable_poll_seconds: float = 15.0,
                 full_every: timedelta = timedelta(days=7), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.restorable_timeout, self.restorable_poll_seconds = restorable_timeout, restorable_poll_seconds
        self.full_every = full_every

    @aws_mistakes
    def execute(self, context: Context) -> list[dict[str, Any]]:
        request = self.request(context)
        if str(self.mode) not in (PITR, INCREMENTAL):
            return self._plan_scan(context, request, None)
        try:
            at, link = self._moment(context, request)
            verdict = check_restorable(aws_client("dynamodb", self.aws_conn_id), request.table, at,
                                       datetime.now(UTC))
        except PitrDisabledError as exc:
            if rendered(self.pitr_fallback) != SCAN:
                raise AirflowFailException(str(exc)) from exc
            self.log.warning("falling back to a scan, as pitr_fallback says: %s", exc)
            return self._plan_scan(context, request, str(exc))
        except ParameterError as exc:
            raise AirflowFailException(str(exc)) from exc
        if verdict == "wait":
            self.log.info("%s is not restorable yet; deferring until it is", at.isoformat())
            self.defer(trigger=RestorableTrigger(request.table, at.isoformat(), self.aws_conn_id,
                                                 self.restorable_poll_seconds),
                       method_name="resume_when_restorable", timeout=self.restorable_timeout)
        return self._plan_pitr(context, request, at, link)

    def resume_when_restorable(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        if event.get("status") != "ready":
            raise AirflowFailException(str(event.get("message")))
        self.log.info("the run's moment became restorable after %s polls", event.get("polls"))
        request = self.request(context)
        return self._plan_pitr(context, request, *self._moment(context, request))

    def _moment(self, context: Context, request: BackupRequest) -> tuple[datetime, LinkPlan | None]:
        """pitr: the logical date. incremental: the end of the data interval, and the link to make."""
        if str(self.mode) != INCREMENTAL:
            return export_time(request.logical_date), None
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None or start >= end:
            raise ParameterError(f"mode incremental needs the run's data interval, got {start}..{end}: schedule "
                                 "the DAG with intervals (it is, from the backups file) and trigger it with a date")
        link = plan_for_table(aws_client("dynamodb", self.aws_conn_id), aws_client("s3", self.aws_conn_id),
                              request, start, end, self.full_every)
        return link.until, link

    def _plan_pitr(self, context: Context, request: BackupRequest, at: datetime,
                   link: LinkPlan | None) -> list[dict[str, Any]]:
        s3 = aws_client("s3", self.aws_conn_id)
        try:
            folder, proceed = open_pitr_folder(s3, replace(request, logical_date=at))
        except ParameterError as exc:
            raise AirflowFailException(str(exc)) from exc
        context["ti"].xcom_push(key="plan", value={
            "folder": folder.uri, "mode": PITR, "export_time": at.isoformat(), "skip": not proceed,
            "logical_date": request.logical_date.isoformat(),
            "since": link.since.isoformat() if link and link.since else None,
            "chain": link.chain if link else None, "why": link.reason if link else None,
        })
        return []

    def _plan_scan(self, context: Context, request: BackupRequest, fallback: str | None) -> list[dict[str, Any]]:
        try:
            plan = plan_backup(aws_client("dynamodb", self.aws_conn_id), aws_client("s3", self.aws_conn_id),
                               request)
        except ParameterError as exc:
            # A missing table or bucket will not appear on a retry: fail now, once.
            raise AirflowFailException(str(exc)) from exc
        summary = {
            "folder": plan.folder.uri, "mode": SCAN, "total_segments": plan.total_segments,
            "read_rate": plan.read_rate, "expected_items": plan.expected_items, "skip": plan.skip,
            "logical_date": request.logical_date.isoformat(), "fallback": fallback,
        }
        context["ti"].xcom_push(key="plan", value=summary)
        return [] if plan.skip else [s.to_dict() for s in plan.shares]


class ShareTask(BackupFields):
    """A mapped worker task: one share of the run's work, and the plan it belongs to."""

    template_fields: Sequence[str] = (*BackupFields.template_fields, "share", "plan")
    ui_color = "#d5f5e3"

    def __init__(self, *, share: Any, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.share, self.plan = share, plan


class ExportSegmentsOperator(ShareTask):
    """Scan one worker's share of segments into data files (mapped: one task per share)."""

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        request = self.request(context)
        share = WorkerShare.from_dict(self.share)
        dynamodb = aws_client("dynamodb", self.aws_conn_id)
        expected = int(self.plan["expected_items"]) * len(share.segments) // share.total_segments
        # A line every 10 s even while a slow scan page is read (progress.ProgressReport).
        with ProgressReport(f"export worker {share.worker}", expected, self.log):
            result = export_share(
                dynamodb, aws_client("s3", self.aws_conn_id), request.table,
                S3Location.parse(self.plan["folder"]), share, request.settings,
                current_rate=share_rate_reader(dynamodb, request.table, share, request.read_ratio,
                                               request.on_demand_capacity),
                expected_items=expected,
            )
        self.log.info("worker %d wrote %d items in %d files", share.worker, result.items, len(result.files))
        return result.to_dict()


def backup_asset(bucket: str, prefix: str, table: str) -> Asset:
    """The Asset a table's backups update: ``s3://bucket/prefix/table`` (one event per sealed backup)."""
    return Asset(S3Location(bucket, prefix).child(table).uri)


class SealBackupOperator(BackupFields):
    """Check every segment (or native file) was exported once, then write manifest, sidecar and ``_SUCCESS``.

    It seals whichever path the plan chose, so it runs when one path succeeded and
    none failed; the workers' results are pulled from ``results_from``.
    """

    template_fields: Sequence[str] = (*BackupFields.template_fields, "plan", "results")
    ui_color = "#fcf3cf"

    def __init__(self, *, plan: Any, results: Any = None,
                 results_from: Sequence[str] = ("export_segments", "convert"), export_task: str = "wait_for_export",
                 **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed_min_one_success")
        super().__init__(**kwargs)
        self.plan, self.results = plan, results
        self.results_from, self.export_task = list(results_from), export_task

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        if self.plan.get("skip"):
            # The folder was already complete: leave its manifest, sidecar and _SUCCESS alone.
            raise AirflowSkipException(f"{self.plan['folder']} is already complete")
        request = self.request(context)
        ti = context["ti"]
        pulled = self.results if self.results is not None else ti.xcom_pull(task_ids=self.results_from)
        results = [WorkerResult.from_dict(r) for r in pulled or [] if r]
        folder = S3Location.parse(self.plan["folder"])
        dynamodb, s3 = aws_client("dynamodb", self.aws_conn_id), aws_client("s3", self.aws_conn_id)
        try:
            if self.plan.get("mode") == PITR:
                status = ExportStatus.from_dict(ti.xcom_pull(task_ids=self.export_task, key="export"))
                sidecar = seal_pitr(
                    dynamodb, s3, table=request.table, folder=folder, status=status, results=results,
                    total_files=int(ti.xcom_pull(task_ids=self.export_task, key="export_files")),
                    output_format=str(self.output_format),
                    compression=request.settings.compression, logical_date=request.logical_date,
                    keep_native=str(self.keep_native).lower() == "true", put_extra=self.put_extra,
                    chain=self.plan.get("chain"))
            else:
                plan = BackupPlan(folder=folder, shares=[], total_segments=int(self.plan["total_segments"]),
                                  read_rate=float(self.plan["read_rate"]),
                                  expected_items=int(self.plan["expected_items"]), skip=False)
                source = {"mode": SCAN, "fallback_from": PITR, "reason": self.plan["fallback"]} \
                    if self.plan.get("fallback") else None
                sidecar = seal_backup(dynamodb, s3, request, plan, results, source=source)
        except BackupFolderError as exc:
            # Workers' results do not cover the table; retrying the seal cannot fix that.
            raise AirflowFailException(str(exc)) from exc
        # One Asset event per sealed backup (outlets: the table's s3://bucket/prefix/table), for DAGs that wait on it.
        event = {"folder": folder.uri, "items": sidecar.item_count, "bytes": sidecar.byte_count,
                 "files": len(sidecar.files), "logical_date": sidecar.logical_date,
                 "snapshot_start": sidecar.snapshot_start, "snapshot_end": sidecar.snapshot_end,
                 "mode": sidecar.source.get("mode"), "table": request.table}
        for asset in self.outlets:
            if isinstance(asset, Asset):
                context["outlet_events"][asset].extra = event
        return {"folder": folder.uri, "items": sidecar.item_count, "files": len(sidecar.files),
                "bytes": sidecar.byte_count, "mode": sidecar.source.get("mode")}

