"""The stream task: tail the table's DynamoDB stream into S3 segments for a bounded time, then end.

The DAG runs it ``@continuous`` with one active run, so a new run starts as soon as one ends and
resumes from the progress in S3 (nothing of the tail's state is in Airflow). A broken chain (gap
marker, new base) sends a notice by the table's failure-notice settings (SNS topic and/or webhook,
``operators.notify``), and the task still succeeds: the chain is whole again from the new base.
A stream that cannot give a backup (off, or a view without the new image) fails without retries.

Flush: a segment closes every ``flush_seconds`` (default ``DEFAULT_FLUSH_SECONDS``, 30 s: about 240
S3 PUTs an hour per busy shard, a segment and its progress each time). When the table has a replica
the DAG passes ``REPLICA_FLUSH_SECONDS`` (2 s), since the replica can apply a change only once its
segment is stored and its lag is bounded below by the flush: about 3,600 PUTs an hour per busy shard
(about $0.018 an hour, $13 a month, at S3 Standard's $0.005 per 1,000 PUTs), and a replica pass's
LIST and GETs every couple of seconds beside it. Idle shards write nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.operators.notify import post_webhook, publish_sns
from dynamodb_backup.repository.streamprogress import GapMarker
from dynamodb_backup.streams.gaps import notice_line, take_base_backup
from dynamodb_backup.streams.segmentwriter import DEFAULT_FLUSH_SECONDS, SegmentSettings
from dynamodb_backup.streams.source import StreamSetupError, StreamSource
from dynamodb_backup.streams.tail import TailSettings, tail_stream

#: The tail's flush when the table has a replica: the replica's lag stays within seconds (see above for the cost).
REPLICA_FLUSH_SECONDS = 2.0


def gap_notice(marker: GapMarker, context: Context) -> dict[str, Any]:
    """A notice for a broken chain, in the shape of ``notify.failure_notice`` (no secrets)."""
    ti = context.get("ti")
    return {"event": "dynamodb_stream_gap", "dag_id": getattr(ti, "dag_id", None),
            "run_id": context.get("run_id"), "task_id": getattr(ti, "task_id", None), "table": marker.table,
            "kind": marker.kind, "reason": notice_line(marker), "base": marker.base.get("folder")}


class StreamTailOperator(BaseOperator):
    """Tail ``table``'s stream into ``s3://bucket/prefix/table/stream/`` for ``run_seconds``."""

    template_fields: Sequence[str] = ("table", "bucket", "prefix", "aws_conn_id", "run_seconds")
    ui_color = "#d6eaf8"

    def __init__(self, *, table: str, bucket: str, prefix: str, aws_conn_id: str = "aws_default",
                 run_seconds: Any = 900.0, flush_seconds: float = DEFAULT_FLUSH_SECONDS,
                 put_extra: dict[str, Any] | None = None,
                 sns_topic_arn: str | None = None, http_conn_id: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table, self.bucket, self.prefix, self.aws_conn_id = table, bucket, prefix, aws_conn_id
        self.run_seconds, self.flush_seconds, self.put_extra = run_seconds, flush_seconds, put_extra or {}
        self.sns_topic_arn, self.http_conn_id = sns_topic_arn, http_conn_id

    def _client(self, service: str) -> Any:
        return aws_client(service, self.aws_conn_id)

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        table = check_table_name(str(self.table))
        base = S3Location.parse(f"s3://{self.bucket}/{self.prefix}", "bucket/prefix")
        settings = TailSettings(duration=float(self.run_seconds),
                                segments=SegmentSettings(flush_seconds=self.flush_seconds, put_extra=self.put_extra))
        source = StreamSource(self._client("dynamodb"), self._client("dynamodbstreams"), table)
        try:
            result = tail_stream(source, self._client("s3"), base, settings, take_base_backup(self._client, base),
                                 report=self.log.info)
        except StreamSetupError as exc:
            raise AirflowFailException(str(exc)) from exc
        for marker in result.breaks:
            self.send_notice(gap_notice(marker, context))
        return {"records": result.records, "segments": result.segments, "lag_seconds": result.lag_seconds,
                "gaps": [m.kind for m in result.breaks], "stream_arn": result.stream_arn}

    def send_notice(self, notice: dict[str, Any]) -> None:
        """As ``notify.failure_notifier`` sends: logged always, then SNS and/or the webhook; never raises."""
        self.log.warning("stream gap notice: %s", json.dumps(notice, sort_keys=True))
        if self.sns_topic_arn:
            try:
                publish_sns(self.sns_topic_arn, notice, self.aws_conn_id)
            except Exception:
                self.log.exception("could not publish the stream gap notice to %s", self.sns_topic_arn)
        if self.http_conn_id:
            try:
                post_webhook(self.http_conn_id, notice)
            except Exception:
                self.log.exception("could not post the stream gap notice to connection %s", self.http_conn_id)
