"""Nightly DynamoDB backups: one DAG per table listed in include/backups.yaml.

    plan ─┬─> export_segments (mapped) ───────────────────────────────┬─> seal [──> restore_to_<table>]
          └─> start_export ──> wait_for_export ──> convert (mapped) ───┘      [──> prune]

plan decides the run's mode. scan: it splits a parallel scan into segments
shared by a bounded number of workers, and each worker streams its segments to
S3 in Data Pipeline's format. pitr: DynamoDB exports the table as it was at the
run's date (no read capacity; the wait runs in the triggerer), and convert turns
the export's files into the same lines. incremental: the same path exports the
run's data interval as a link of changes (kept native), or a full now and then.
The other path skips itself. seal writes the manifest, our sidecar, and _SUCCESS last,
and emits an Asset event for s3://bucket/prefix/table (extra: folder, items, bytes, dates, mode).
With retention set, prune then deletes the table's backups past keep_days (keeping keep_min).
An entry with restore_to_table also loads each night's backup into that table
(a staging copy, say; restore_replace recreates it first, so it matches
exactly). A failed task sends a notice to the configured SNS topic or webhook
once its retries are spent.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG
from airflow.sdk.definitions.timetables.interval import CronDataIntervalTimetable

from dynamodb_backup.config import NOTICES_OFF_TAG, TableBackup, load_backups, notices_doc
from dynamodb_backup.incremental.schedule import cron_of
from dynamodb_backup.operators.backup import (
    ExportSegmentsOperator,
    PlanBackupOperator,
    SealBackupOperator,
    backup_asset,
)
from dynamodb_backup.operators.notify import failure_notifier
from dynamodb_backup.operators.params import backup_params
from dynamodb_backup.operators.pitr import ConvertExportOperator, StartExportOperator, WaitForExportOperator
from dynamodb_backup.operators.restore import add_restore_tasks
from dynamodb_backup.operators.retention import PruneBackupsOperator
from dynamodb_backup.pitr import INCREMENTAL

BACKUPS_FILE = Path(
    os.environ.get("DYNAMODB_BACKUPS_FILE", Path(__file__).resolve().parent.parent / "include" / "backups.yaml")
)

# Every task renders its settings from the run's params, so a manual trigger can override any of them.
FROM_PARAMS = {
    "table": "{{ params.table }}",
    "bucket": "{{ params.bucket }}",
    "prefix": "{{ params.prefix }}",
    "read_ratio": "{{ params.read_ratio }}",
    "segments": "{{ params.segments }}",
    "max_workers": "{{ params.max_workers }}",
    "compression": "{{ params.compression }}",
    "consistent_read": "{{ params.consistent_read }}",
    "mode": "{{ params.mode }}",
    "output_format": "{{ params.format }}",
    "keep_native": "{{ params.keep_native }}",
    "pitr_fallback": "{{ params.pitr_fallback }}",
    "overwrite": "{{ params.overwrite }}",
    "aws_conn_id": "{{ params.aws_conn_id }}",
}


def backup_dag(backup: TableBackup) -> DAG:
    put_extra: dict[str, str] = {}
    if backup.sse_kms_key_id:
        put_extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=backup.sse_kms_key_id)
    if backup.expected_bucket_owner:
        put_extra["ExpectedBucketOwner"] = backup.expected_bucket_owner
    default_args: dict[str, Any] = {"retries": 2, "retry_delay": timedelta(seconds=30),
                                    "retry_exponential_backoff": True}
    if backup.queue:  # Celery: only workers listening on this queue take the table's tasks (mapped ones too)
        default_args["queue"] = backup.queue
    if backup.notices_on:
        # Task-level, so the notice carries the exception and log URL, and fires after the last retry.
        default_args["on_failure_callback"] = failure_notifier(
            sns_topic_arn=backup.failure_sns_topic_arn, http_conn_id=backup.failure_http_conn_id,
            aws_conn_id=backup.aws_conn_id)
    settings: dict[str, Any] = dict(FROM_PARAMS, on_demand_capacity=backup.on_demand_capacity,
                    file_max_items=backup.file_max_items, put_extra=put_extra)
    schedule: Any = backup.schedule
    if backup.mode == INCREMENTAL:
        # Each run exports its own data interval, so the intervals must tile time: Airflow 3 reads a
        # cron string as a trigger timetable whose intervals are empty.
        schedule = CronDataIntervalTimetable(cron_of(backup.schedule), timezone="UTC")
    with DAG(
        dag_id=backup.dag_id,
        description=f"Back up DynamoDB table {backup.table} to s3://{backup.bucket}/{backup.prefix}/",
        doc_md=notices_doc(backup) + f"\nBacks up `{backup.table}` to `s3://{backup.bucket}/{backup.prefix}/"
               f"{backup.table}/<YYYY-MM-DD-HH-MM-SS>/` in {backup.mode} mode; its settings come from the "
               "backups file and can be changed for one run in the trigger form.",
        schedule=schedule,
        start_date=datetime(2024, 1, 1),
        catchup=False,
        max_active_runs=1,
        params=backup_params(backup),
        render_template_as_native_obj=True,
        default_args=default_args,
        tags=["dynamodb", "backup", *([] if backup.notices_on else [NOTICES_OFF_TAG])],
    ) as dag:
        pool = backup.pool or "default_pool"
        plan = PlanBackupOperator(task_id="plan", restorable_poll_seconds=backup.pitr_poll_seconds,
                                  full_every=timedelta(days=backup.full_every), **settings)
        plan_summary = plan.output["plan"]  # type: ignore[index]
        # scan: the shares of the parallel scan (none in pitr mode, which skips this path).
        export = ExportSegmentsOperator.partial(
            task_id="export_segments", plan=plan_summary, pool=pool, **settings
        ).expand(share=plan.output)
        # pitr: DynamoDB's export of the run's moment, then its files in shares (scan mode skips this path).
        start = StartExportOperator(task_id="start_export", plan=plan_summary, **settings)
        wait = WaitForExportOperator(task_id="wait_for_export", export_arn=start.output,
                                     poll_seconds=backup.pitr_poll_seconds, **settings)
        convert = ConvertExportOperator.partial(
            task_id="convert", plan=plan_summary, pool=pool, **settings
        ).expand(share=wait.output)
        seal = SealBackupOperator(task_id="seal", plan=plan_summary, results_from=[export.task_id, convert.task_id],
                                  export_task=wait.task_id,
                                  outlets=[backup_asset(backup.bucket, backup.prefix, backup.table)], **settings)
        plan >> export >> seal
        plan >> start >> wait >> convert >> seal
        policy = backup.retention_policy
        if policy is not None:
            seal >> PruneBackupsOperator(task_id="prune", table=FROM_PARAMS["table"], bucket=FROM_PARAMS["bucket"],
                                         prefix=FROM_PARAMS["prefix"], aws_conn_id=FROM_PARAMS["aws_conn_id"],
                                         policy=policy, plan=plan_summary,
                                         expected_bucket_owner=backup.expected_bucket_owner,
                                         datapipeline_output=backup.datapipeline_output)
        if backup.restore_to_table:
            add_restore_tasks(dag, seal, seal.output, target_table=backup.restore_to_table,
                              write_ratio=backup.restore_write_ratio, replace_table=backup.restore_replace,
                              aws_conn_id=backup.aws_conn_id,
                              target_aws_conn_id=backup.restore_aws_conn_id,
                              on_demand_capacity=backup.on_demand_capacity, put_extra=put_extra)
    return dag


for _backup in load_backups(BACKUPS_FILE):
    globals()[_backup.dag_id] = backup_dag(_backup)
