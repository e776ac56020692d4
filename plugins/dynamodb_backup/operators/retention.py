"""The prune task: after the seal, delete the table's backups that retention lets go (``retention.prune``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context

from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.formats.tablebackups import parse_datapipeline_outputs
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.retention.plan import RetentionPolicy
from dynamodb_backup.retention.prune import prune_table


class PruneBackupsOperator(BaseOperator):
    """Apply ``policy`` to ``s3://bucket/prefix/table/``; never the folder the run wrote (``plan['folder']``).

    Folders S3 Object Lock keeps are logged and returned under ``locked``: not a failure. Any other
    refusal fails the task (after the rest was done), naming the objects.
    """

    template_fields: Sequence[str] = ("table", "bucket", "prefix", "aws_conn_id", "plan")
    ui_color = "#fadbd8"

    def __init__(self, *, table: str, bucket: str, prefix: str, policy: RetentionPolicy, plan: Any = None,
                 aws_conn_id: str = "aws_default", expected_bucket_owner: str | None = None,
                 report_only: bool = False, datapipeline_output: Any = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")  # also after a seal that skipped (already complete)
        super().__init__(**kwargs)
        self.table, self.bucket, self.prefix, self.plan = table, bucket, prefix, plan
        self.policy, self.aws_conn_id, self.report_only = policy, aws_conn_id, report_only
        self.extra = {"ExpectedBucketOwner": expected_bucket_owner} if expected_bucket_owner else {}
        #: The table's Data Pipeline output folders: their complete dated folders are retained like ours.
        self.datapipeline = parse_datapipeline_outputs(datapipeline_output)

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        base = S3Location.parse(f"s3://{self.bucket}/{self.prefix}", "bucket/prefix")
        protect = (str(self.plan["folder"]),) if isinstance(self.plan, dict) and self.plan.get("folder") else ()
        report = prune_table(aws_client("s3", self.aws_conn_id), base, check_table_name(str(self.table)),
                             self.policy, dry_run=self.report_only, protect=protect, extra=self.extra,
                             datapipeline=self.datapipeline)
        for line in report.lines():
            self.log.info("%s", line)
        if report.locked:
            self.log.warning("%d object versions are under S3 Object Lock and were kept: %s", len(report.locked),
                             ", ".join(report.locked[:10]))
        if report.errors:
            raise RuntimeError(f"prune: {len(report.errors)} deletions refused (not by Object Lock): "
                               + "; ".join(report.errors[:10]))
        return report.to_dict()
