"""Copy a DynamoDB table into another: another region, account or endpoint (manual runs only).

    plan ──> copy_segments (mapped, one task per worker share) ──> verify

plan checks both tables (creating the destination like the source if asked),
fixes the parallel scan's segment count and both rate limits, and splits the
segments into contiguous shares; each worker scans its share from the source and
batch-writes it to the destination, paced by read units on one side and write
units on the other, checkpointing every segment so a retry resumes where it
stopped; verify adds the workers up and counts (and digests) the destination.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG

from dynamodb_backup.operators.tablecopy import (
    CopySegmentsOperator,
    PlanCopyOperator,
    VerifyCopyOperator,
    copy_params,
)

# Every task renders its settings from the run's params (the trigger form).
FROM_PARAMS = {
    name: f"{{{{ params.{name} }}}}"
    for name in ("source_table", "source_aws_conn_id", "source_region", "dest_table", "dest_aws_conn_id",
                 "dest_region", "read_ratio", "write_ratio", "segments", "workers", "create_dest", "consistent_read",
                 "verify", "on_demand_capacity")
}

with DAG(
    dag_id="dynamodb_copy",
    description="Copy a DynamoDB table into another table (another region, account or endpoint)",
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params=copy_params(),
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    tags=["dynamodb", "copy"],
) as dag:
    plan = PlanCopyOperator(task_id="plan", **FROM_PARAMS)
    plan_summary = plan.output["plan"]  # type: ignore[index]
    copy = CopySegmentsOperator.partial(task_id="copy_segments", plan=plan_summary, **FROM_PARAMS).expand(
        share=plan.output
    )
    verify = VerifyCopyOperator(task_id="verify", plan=plan_summary, results=copy.output, **FROM_PARAMS)
    plan >> copy >> verify
