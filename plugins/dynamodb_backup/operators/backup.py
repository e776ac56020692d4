"""Backup operators: plan the scan, export a share of segments, seal the folder."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dynamodb_backup.backup.export import ExportSettings, WorkerResult, export_share
from dynamodb_backup.backup.job import BackupPlan, BackupRequest, plan_backup, seal_backup, share_rate_reader
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, WorkerShare
from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.operators.clients import aws_client
from dynamodb_backup.operators.params import rendered


def run_date(context: Context) -> datetime:
    """The date that names the folder: the logical date, or when a dateless manual run was due."""
    moment: datetime | None = context.get("logical_date")
    return moment if moment is not None else context["dag_run"].run_after


class _BackupFields(BaseOperator):
    """Settings every backup task renders from the run's params."""

    template_fields: Sequence[str] = (
        "table", "bucket", "prefix", "read_ratio", "segments", "max_workers", "compression",
        "consistent_read", "overwrite", "aws_conn_id",
    )

    def __init__(
        self, *, table: str, bucket: str, prefix: str, read_ratio: Any = 0.25, segments: Any = None,
        max_workers: Any = 4, compression: str = "gzip", consistent_read: Any = False, overwrite: Any = False,
        aws_conn_id: str = "aws_default", on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY,
        file_max_items: int = 100_000, put_extra: dict[str, Any] | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
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
        )


class PlanBackupOperator(_BackupFields):
    """Describe the table, choose segments and worker shares, open the dated folder.

    Returns the worker shares to map over (none when the folder is already
    complete, so the export is skipped) and pushes the plan under the XCom key ``plan``.
    """

    ui_color = "#d6eaf8"

    def execute(self, context: Context) -> list[dict[str, Any]]:
        try:
            request = self.request(context)
            plan = plan_backup(aws_client("dynamodb", self.aws_conn_id), aws_client("s3", self.aws_conn_id),
                               request)
        except ParameterError as exc:
            # A missing table or bucket will not appear on a retry: fail now, once.
            raise AirflowFailException(str(exc)) from exc
        summary = {
            "folder": plan.folder.uri, "total_segments": plan.total_segments, "read_rate": plan.read_rate,
            "expected_items": plan.expected_items, "skip": plan.skip,
            "logical_date": request.logical_date.isoformat(),
        }
        context["ti"].xcom_push(key="plan", value=summary)
        return [] if plan.skip else [s.to_dict() for s in plan.shares]


class ExportSegmentsOperator(_BackupFields):
    """Scan one worker's share of segments into data files (mapped: one task per share)."""

    template_fields: Sequence[str] = (*_BackupFields.template_fields, "share", "plan")
    ui_color = "#d5f5e3"

    def __init__(self, *, share: Any, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.share, self.plan = share, plan

    def execute(self, context: Context) -> dict[str, Any]:
        request = self.request(context)
        share = WorkerShare.from_dict(self.share)
        dynamodb = aws_client("dynamodb", self.aws_conn_id)
        result = export_share(
            dynamodb, aws_client("s3", self.aws_conn_id), request.table,
            S3Location.parse(self.plan["folder"]), share, request.settings,
            current_rate=share_rate_reader(dynamodb, request.table, share, request.read_ratio,
                                           request.on_demand_capacity),
            expected_items=int(self.plan["expected_items"]) * len(share.segments) // share.total_segments,
        )
        self.log.info("worker %d wrote %d items in %d files", share.worker, result.items, len(result.files))
        return result.to_dict()


class SealBackupOperator(_BackupFields):
    """Check every segment was exported, then write manifest, sidecar and ``_SUCCESS``."""

    template_fields: Sequence[str] = (*_BackupFields.template_fields, "plan", "results")
    ui_color = "#fcf3cf"

    def __init__(self, *, plan: Any, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan, self.results = plan, results

    def execute(self, context: Context) -> dict[str, Any]:
        if self.plan.get("skip"):
            # The folder was already complete: leave its manifest, sidecar and _SUCCESS alone.
            raise AirflowSkipException(f"{self.plan['folder']} is already complete")
        request = self.request(context)
        plan = BackupPlan(
            folder=S3Location.parse(self.plan["folder"]), shares=[],
            total_segments=int(self.plan["total_segments"]), read_rate=float(self.plan["read_rate"]),
            expected_items=int(self.plan["expected_items"]), skip=False,
        )
        results = [WorkerResult.from_dict(r) for r in self.results]
        try:
            sidecar = seal_backup(aws_client("dynamodb", self.aws_conn_id), aws_client("s3", self.aws_conn_id),
                                  request, plan, results)
        except BackupFolderError as exc:
            # Workers' results do not cover the table; retrying the seal cannot fix that.
            raise AirflowFailException(str(exc)) from exc
        return {"folder": plan.folder.uri, "items": sidecar.item_count, "files": len(sidecar.files),
                "bytes": sidecar.byte_count}
