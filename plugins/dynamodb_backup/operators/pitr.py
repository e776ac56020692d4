"""Point-in-time backup operators: start the export, wait for it (deferred), convert its files (mapped).

The plan and seal tasks are the scan path's own (``operators.backup``): the plan
decides the run's mode, and the seal seals whichever path ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dynamodb_backup.errors import BackupFolderError, CodecError, ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.operators.backup import BackupFields, ShareTask
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.pitr import DATAPIPELINE
from dynamodb_backup.pitr.convert import ConvertShare, convert_share
from dynamodb_backup.pitr.native import ExportStatus
from dynamodb_backup.pitr.steps import begin_export, conversion_shares
from dynamodb_backup.triggers.pitr import ExportFinishedTrigger

#: AWS gives exports no time bound (a 3-item table took 12 minutes); a day is a broken export.
EXPORT_TIMEOUT = timedelta(hours=24)


def only_in_pitr_mode(plan: dict[str, Any]) -> None:
    if plan.get("skip"):
        raise AirflowSkipException(f"{plan['folder']} is already complete")
    if plan.get("mode") != "pitr":
        raise AirflowSkipException(f"this run backs up by {plan.get('mode')}; no export to start")


class StartExportOperator(BackupFields):
    """Call ExportTableToPointInTime for the run's moment; a retry replays the same ClientToken."""

    template_fields: Sequence[str] = (*BackupFields.template_fields, "plan")
    ui_color = "#e8daef"

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan = plan

    @aws_mistakes
    def execute(self, context: Context) -> str:
        only_in_pitr_mode(self.plan)
        at = datetime.fromisoformat(self.plan["export_time"])
        run_key = f"{context['dag'].dag_id}/{context['run_id']}"
        try:
            since = datetime.fromisoformat(self.plan["since"]) if self.plan.get("since") else None
            return begin_export(aws_client("dynamodb", self.aws_conn_id), str(self.table), at,
                                S3Location.parse(self.plan["folder"]), str(self.output_format), run_key,
                                self.put_extra, since=since, s3=aws_client("s3", self.aws_conn_id))
        except ParameterError as exc:
            raise AirflowFailException(str(exc)) from exc


class WaitForExportOperator(BackupFields):
    """Defer until the export finishes; then check its manifests and return the convert shares."""

    template_fields: Sequence[str] = (*BackupFields.template_fields, "export_arn")
    ui_color = "#f5eef8"

    def __init__(self, *, export_arn: Any, poll_seconds: float = 30.0,
                 export_timeout: timedelta = EXPORT_TIMEOUT, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.export_arn, self.poll_seconds, self.export_timeout = export_arn, poll_seconds, export_timeout

    @aws_mistakes
    def execute(self, context: Context) -> None:
        self.defer(trigger=ExportFinishedTrigger(str(self.export_arn), self.aws_conn_id, self.poll_seconds),
                   method_name="execute_complete", timeout=self.export_timeout)

    @aws_mistakes
    def execute_complete(self, context: Context, event: dict[str, Any]) -> list[dict[str, Any]]:
        status = ExportStatus.from_dict(event["export"])
        self.log.info("export %s ended %s after %d polls", status.arn, status.status, event.get("polls", 0))
        try:
            shares = conversion_shares(aws_client("s3", self.aws_conn_id), status, int(self.max_workers))
        except BackupFolderError as exc:
            # A FAILED export or a damaged manifest does not heal on a retry.
            raise AirflowFailException(str(exc)) from exc
        context["ti"].xcom_push(key="export", value=status.to_dict())
        context["ti"].xcom_push(key="export_files", value=shares[0].total_files)
        return [s.to_dict() for s in shares]


class ConvertExportOperator(ShareTask):
    """Convert one share of the export's data files into Data Pipeline lines (mapped)."""

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        request = self.request(context)
        share = ConvertShare.from_dict(self.share)
        try:
            result = convert_share(aws_client("s3", self.aws_conn_id), request.table,
                                   S3Location.parse(self.plan["folder"]), share, request.settings,
                                   write=str(self.output_format) == DATAPIPELINE and not self.plan.get("since"))
        except (BackupFolderError, CodecError) as exc:
            # A checksum or count that does not match the manifest will not match on a retry either.
            raise AirflowFailException(str(exc)) from exc
        self.log.info("convert %d: %d items from %d native files into %d files", share.worker, result.items,
                      len(share.files), len(result.files))
        return result.to_dict()
