"""Stream backups: one DAG per table whose backups.yaml entry says ``stream: true``.

    tail (for stream_run_seconds, then end) ── the next run starts at once (@continuous)
    replicate (beside the tail, as long; only with ``replicate_to``)

The task tails the table's DynamoDB stream into ``<prefix>/<table>/stream/`` (segments at least
every 30 s, every 2 s with a replica; per-shard progress in S3) and ends; one run at a time, each
resuming from S3. A broken chain is marked, a new base taken, and a notice sent to the table's
failure notice targets.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, Param

from dynamodb_backup.config import NOTICES_OFF_TAG, TableBackup, load_backups, notices_doc
from dynamodb_backup.operators.notify import failure_notifier
from dynamodb_backup.operators.replica import ReplicateOperator, replica_asset
from dynamodb_backup.operators.stream import REPLICA_FLUSH_SECONDS, StreamTailOperator
from dynamodb_backup.replica.settings import ReplicaSettings

BACKUPS_FILE = Path(
    os.environ.get("DYNAMODB_BACKUPS_FILE", Path(__file__).resolve().parent.parent / "include" / "backups.yaml")
)


def stream_dag(backup: TableBackup) -> DAG | None:
    if not backup.stream:
        return None
    put_extra: dict[str, Any] = {}
    if backup.sse_kms_key_id:
        put_extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=backup.sse_kms_key_id)
    if backup.expected_bucket_owner:
        put_extra["ExpectedBucketOwner"] = backup.expected_bucket_owner
    notify = None
    if backup.notices_on:
        notify = failure_notifier(sns_topic_arn=backup.failure_sns_topic_arn,
                                  http_conn_id=backup.failure_http_conn_id, aws_conn_id=backup.aws_conn_id)
    with DAG(
        dag_id=f"dynamodb_stream_{backup.table}",
        description=f"Stream backup: {backup.table}'s DynamoDB stream into s3://{backup.bucket}/{backup.prefix}",
        schedule="@continuous", start_date=datetime(2024, 1, 1), catchup=False, max_active_runs=1,
        default_args={"retries": 2, **({"queue": backup.queue} if backup.queue else {})},
        render_template_as_native_obj=True,
        params={"run_seconds": Param(backup.stream_run_seconds, type="number", minimum=1, maximum=86400,
                                     description="seconds this run tails before it ends")},
        tags=["dynamodb", "stream", *([] if backup.notices_on else [NOTICES_OFF_TAG])], doc_md=notices_doc(backup),
    ) as dag:
        StreamTailOperator(
            task_id="tail", table=backup.table, bucket=backup.bucket, prefix=backup.prefix,
            aws_conn_id=backup.aws_conn_id, run_seconds="{{ params.run_seconds }}", put_extra=put_extra,
            # with a replica, segments close every 2 s (not 30) so the replica's lag can stay within seconds
            **({"flush_seconds": REPLICA_FLUSH_SECONDS} if backup.replicate_to else {}),
            sns_topic_arn=backup.failure_sns_topic_arn, http_conn_id=backup.failure_http_conn_id,
            on_failure_callback=notify,
        )
        replica = ReplicaSettings.parse(backup.replicate_to)
        if replica is not None:  # beside the tail for as long: each segment reaches the replica soon after it is stored
            ReplicateOperator(
                task_id="replicate", table=backup.table, bucket=backup.bucket, prefix=backup.prefix,
                to_table=replica.table, to_region=replica.region, to_conn_id=replica.aws_conn_id,
                aws_conn_id=backup.aws_conn_id, write_ratio=replica.write_ratio,
                for_seconds="{{ params.run_seconds }}", on_failure_callback=notify,
                outlets=[replica_asset(backup.bucket, backup.prefix, backup.table, replica.table)],
            )
    return dag


for _backup in load_backups(BACKUPS_FILE):
    _dag = stream_dag(_backup)
    if _dag is not None:
        globals()[_dag.dag_id] = _dag
