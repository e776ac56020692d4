"""The replica task: beside the stream tail, apply the table's segments to its replica (``replicate_to``).

Run beside the tail for the same time (``for_seconds``), it applies each segment soon after the
tail stores it, so the replica's lag stays near the tail's segment interval; run after it, one
pass (``for_seconds`` None) applies what the run stored.

Returns the replica's report (changes applied, newest change applied, lag in seconds, caught up)
and puts it in the Asset event of each outlet, so a DAG or the console can show the lag.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import Asset, BaseOperator, Context

from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.replica.apply import ReplicaTarget, replicate
from dynamodb_backup.replica.progress import replica_id


def replica_asset(bucket: str, prefix: str, table: str, to_table: str) -> Asset:
    """The Asset a replica run updates: its progress in S3, ``s3://bucket/prefix/table/stream/_replicas/to_table``
    (one event per run, its extra the replica's report: lag, caught up, gaps)."""
    return Asset(S3Location(bucket, prefix).child(table, "stream", "_replicas", to_table).uri)


class ReplicateOperator(BaseOperator):
    """Apply ``s3://bucket/prefix/table/stream/`` to ``to_table`` for at most ``for_seconds`` (default: one
    pass over what is stored, then stop).

    ``to_conn_id`` is the Airflow connection of the replica's account (default: ``aws_conn_id``),
    ``to_region`` its region; the source wins over writes made to the replica.
    """

    template_fields: Sequence[str] = ("table", "bucket", "prefix", "to_table", "to_region", "for_seconds")
    ui_color = "#d6eaf8"

    def __init__(self, *, table: str, bucket: str, prefix: str, to_table: str, to_region: str | None = None,
                 to_conn_id: str | None = None, aws_conn_id: str = "aws_default", write_ratio: float = 0.5,
                 for_seconds: float | str | None = None, poll_seconds: float = 2.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table, self.bucket, self.prefix = table, bucket, prefix
        self.to_table, self.to_region, self.to_conn_id = to_table, to_region, to_conn_id
        self.aws_conn_id, self.write_ratio = aws_conn_id, write_ratio
        self.for_seconds, self.poll_seconds = for_seconds, poll_seconds

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        base = S3Location.parse(f"s3://{self.bucket}/{self.prefix}", "bucket/prefix")
        table, to_table = check_table_name(str(self.table)), check_table_name(str(self.to_table), "replicate_to")
        dynamodb = aws_client("dynamodb", self.to_conn_id or self.aws_conn_id, self.to_region)
        follow = float(self.for_seconds) if self.for_seconds not in (None, "") else None
        report = replicate(aws_client("s3", self.aws_conn_id), base, table,
                           ReplicaTarget(dynamodb, to_table, self.write_ratio),
                           replica_id(to_table, self.to_region, None), for_seconds=follow or 60.0,
                           poll_seconds=self.poll_seconds, once=follow is None, target_where=(self.to_region, None))
        self.log.info("%s", report.line())
        event = report.to_dict()
        for asset in self.outlets:
            if isinstance(asset, Asset):
                context["outlet_events"][asset].extra = event
        return event
