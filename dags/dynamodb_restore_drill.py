"""Restore drills (after AWS Backup's restore testing): one DAG per table with ``drill`` in backups.yaml.

    start ──> restore (inspect >> validate >> ensure_table >> [claim_scratch] >> load >> verify) ──> finish

start picks the newest complete backup of the table; the restore group is the restore DAG's own
tasks, loading it into the scratch table ``<table>-drill`` and verifying it by digest against the
backup; claim_scratch tags the table the restore created (``dynamodb-backup:drill``) before the load
starts, and only a table with that tag is ever deleted (an untagged table of that name fails the
drill and is left alone); finish (whatever happened) deletes the scratch table, records the result in
``<prefix>/<table>/_drills/<folder>.json`` and fails the run, sending the failure notice, when the
drill did not pass. Weekly by default (``drill: {schedule: ...}``).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import DAG

from dynamodb_backup.config import NOTICES_OFF_TAG, TableBackup, load_backups, notices_doc
from dynamodb_backup.operators.drill import (
    RESTORE_GROUP,
    ClaimScratchOperator,
    FinishDrillOperator,
    StartDrillOperator,
)
from dynamodb_backup.operators.notify import failure_notifier
from dynamodb_backup.operators.restore import restore_tasks

BACKUPS_FILE = Path(
    os.environ.get("DYNAMODB_BACKUPS_FILE", Path(__file__).resolve().parent.parent / "include" / "backups.yaml")
)


def drill_dag(backup: TableBackup) -> DAG | None:
    settings = backup.drill_settings
    if settings is None:
        return None
    scratch = settings.scratch_table(backup.table)
    put_extra: dict[str, Any] = {}
    if backup.sse_kms_key_id:
        put_extra.update(ServerSideEncryption="aws:kms", SSEKMSKeyId=backup.sse_kms_key_id)
    if backup.expected_bucket_owner:
        put_extra["ExpectedBucketOwner"] = backup.expected_bucket_owner
    where = {"table": backup.table, "bucket": backup.bucket, "prefix": backup.prefix, "scratch_table": scratch,
             "aws_conn_id": backup.aws_conn_id}
    with DAG(
        dag_id=f"dynamodb_restore_drill_{backup.table}",
        description=f"Restore drill: the newest backup of {backup.table} into {scratch}, verified, then deleted",
        schedule=settings.schedule, start_date=datetime(2024, 1, 1), catchup=False, max_active_runs=1,
        default_args={"retries": 0}, render_template_as_native_obj=True,
        tags=["dynamodb", "drill", *([] if backup.notices_on else [NOTICES_OFF_TAG])], doc_md=notices_doc(backup),
    ) as dag:
        notify = None
        if backup.notices_on:
            notify = failure_notifier(sns_topic_arn=backup.failure_sns_topic_arn,
                                      http_conn_id=backup.failure_http_conn_id, aws_conn_id=backup.aws_conn_id)
        start = StartDrillOperator(task_id="start", on_failure_callback=notify,
                                   datapipeline_output=backup.datapipeline_output, **where)
        first, verify = restore_tasks({
            "source": start.output, "target_table": scratch, "write_ratio": settings.write_ratio,
            "aws_conn_id": backup.aws_conn_id, "create_table": True, "replace_table": False, "verify": True,
            "on_demand_capacity": backup.on_demand_capacity, "put_extra": put_extra,
            # The table's keys, for a Data Pipeline folder (no sidecar to create the scratch table from).
            "key_schema": start.output["key_schema"],  # type: ignore[index]
        }, group_id=RESTORE_GROUP)
        # The table the restore creates is tagged as the drill's before anything is loaded into it.
        ensure = dag.get_task(f"{RESTORE_GROUP}.ensure_table")
        claim = ClaimScratchOperator(task_id="claim_scratch", start=start.output, target=ensure.output, **where)
        claim >> dag.get_task(f"{RESTORE_GROUP}.load")
        finish = FinishDrillOperator(task_id="finish", start=start.output, verified=verify.output,
                                     put_extra=put_extra, on_failure_callback=notify, **where)
        start >> first
        verify >> finish
    return dag


for _backup in load_backups(BACKUPS_FILE):
    _dag = drill_dag(_backup)
    if _dag is not None:
        globals()[_dag.dag_id] = _dag
