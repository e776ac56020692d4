"""Copy operators: plan the copy, copy a share of the segments (mapped), verify; and the params form.

Checkpoints live in Airflow Variables, one per worker share and run. Why not
XCom: a task's XComs are cleared when it retries, which is exactly when the
checkpoint is needed. Why not S3: a table-to-table copy has no bucket of its
own, and asking for one only to hold a few kilobytes of progress is friction.
A Variable survives retries and a manual "clear" of the failed task, costs no
infrastructure, and is deleted once every worker has finished. It is written at
most every few seconds (and always when a worker stops), so the metadata
database is not written once per page; a worker killed outright redoes at most
those few seconds of pages, which is harmless since puts are idempotent.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airflow.sdk import BaseOperator, Context, Param, Variable
from airflow.sdk.exceptions import AirflowFailException

from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, MAX_RATIO, MAX_SEGMENTS, MIN_RATIO, split_segments
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.codec.canonical import TableDigest
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.operators.params import TABLE_PATTERN, rendered
from dynamodb_backup.tablecopy.copier import CopyMismatch, SegmentState, checked, copy_segments, verify_copy
from dynamodb_backup.tablecopy.plan import CopyPlan, CopyRequest, prepare_copy, rate_readers

CHECKPOINT_EVERY_SECONDS = 5.0


class VariableCheckpoints:
    """Segment checkpoints of one worker share, kept in one Airflow Variable (JSON)."""

    def __init__(self, key: str, every_seconds: float = CHECKPOINT_EVERY_SECONDS) -> None:
        self.key, self.every_seconds = key, every_seconds
        stored = Variable.get(key, default=None, deserialize_json=True) or {}
        self.snapshots: dict[str, dict[str, Any]] = dict(stored)
        self._lock = threading.Lock()
        self._dirty, self._written = False, time.monotonic()

    def load(self, segment: int, total_segments: int) -> SegmentState | None:
        data = self.snapshots.get(str(segment))
        return checked(SegmentState.from_dict(data) if data else None, total_segments, f"Variable {self.key}")

    def save(self, state: SegmentState) -> None:
        with self._lock:
            self.snapshots[str(state.segment)] = state.to_dict()
            self._dirty = True
            due = state.done or time.monotonic() - self._written >= self.every_seconds
        if due:
            self.flush()

    def flush(self) -> None:
        with self._lock:
            if not self._dirty:
                return
            Variable.set(self.key, dict(self.snapshots), description="dynamodb_copy progress (deleted when done)",
                         serialize_json=True)
            self._dirty, self._written = False, time.monotonic()


def checkpoint_key(run_id: str, segments: Sequence[int]) -> str:
    """One Variable per run and share; the run id is hashed to keep the key short and plain."""
    digest = hashlib.sha256(run_id.encode()).hexdigest()[:16]
    return f"dynamodb_copy.{digest}.segments-{segments[0]}-{segments[-1]}"


def copy_params() -> dict[str, Param]:
    """The trigger form: both tables, both ratios, segments, workers, create and verify."""
    region_pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$"
    return {
        "source_table": Param(type="string", pattern=TABLE_PATTERN, title="Source table",
                              description="The DynamoDB table to copy from."),
        "source_aws_conn_id": Param("aws_default", type="string", minLength=1, title="Source AWS connection",
                                    description="Airflow connection for the source (credentials, endpoint)."),
        "source_region": Param(None, type=["null", "string"], pattern=region_pattern, title="Source region",
                               description="Region of the source table. Empty: the connection's region."),
        "dest_table": Param(type="string", pattern=TABLE_PATTERN, title="Destination table",
                            description="The table to copy into. Items with the same key are overwritten."),
        "dest_aws_conn_id": Param("aws_default", type="string", minLength=1, title="Destination AWS connection",
                                  description="Airflow connection for the destination (another account, or "
                                              "a local endpoint)."),
        "dest_region": Param(None, type=["null", "string"], pattern=region_pattern, title="Destination region",
                             description="Region of the destination table. Empty: the connection's region."),
        "read_ratio": Param(0.25, type="number", minimum=MIN_RATIO, maximum=MAX_RATIO, title="Read throughput ratio",
                            description=f"Share of the source's read capacity to use, {MIN_RATIO} to {MAX_RATIO}. "
                                        "On-demand tables count as the assumed capacity."),
        "write_ratio": Param(0.5, type="number", minimum=MIN_RATIO, maximum=MAX_RATIO, title="Write throughput ratio",
                             description=f"Share of the destination's write capacity to use, {MIN_RATIO} to "
                                         f"{MAX_RATIO}."),
        "segments": Param(None, type=["null", "integer"], minimum=1, maximum=MAX_SEGMENTS, title="Scan segments",
                          description="Parallel scan segments. Empty: the import/export tool's rule (10 per "
                                      "3,000 units of capacity, at least one per GB)."),
        "workers": Param(4, type="integer", minimum=1, maximum=64, title="Worker tasks",
                         description="How many mapped tasks share the segments (each copies a contiguous run)."),
        "create_dest": Param(False, type="boolean", title="Create the destination",
                             description="If the destination does not exist, create it like the source: keys, "
                                         "GSIs, LSIs, billing, TTL, SSE and tags. An existing one must have the "
                                         "same keys."),
        "consistent_read": Param(False, type="boolean", title="Strongly consistent reads",
                                 description="Scan the source with ConsistentRead, at twice the read units "
                                             "(the read ratio still holds)."),
        "verify": Param(True, type="boolean", title="Verify afterwards",
                        description="Count the destination by a parallel scan; if it was empty before the copy, "
                                    "also compare digests of every item."),
        "on_demand_capacity": Param(DEFAULT_ON_DEMAND_CAPACITY, type="number", exclusiveMinimum=0,
                                    title="Assumed on-demand capacity",
                                    description="Units per second an on-demand table is taken to have."),
    }


@contextmanager
def no_retry_on_bad_parameters() -> Iterator[None]:
    """A wrong table name or key schema stays wrong: fail the task at once instead of retrying."""
    try:
        yield
    except ParameterError as exc:
        raise AirflowFailException(str(exc)) from exc


def _flag(value: Any) -> bool:
    return value is True or str(value).lower() == "true"


class _CopyFields(BaseOperator):
    """Settings every copy task renders from the run's params."""

    template_fields: Sequence[str] = (
        "source_table", "source_aws_conn_id", "source_region", "dest_table", "dest_aws_conn_id", "dest_region",
        "read_ratio", "write_ratio", "segments", "workers", "create_dest", "consistent_read", "verify",
        "on_demand_capacity",
    )

    def __init__(self, *, source_table: str, dest_table: str, source_aws_conn_id: str = "aws_default",
                 source_region: Any = None, dest_aws_conn_id: str = "aws_default", dest_region: Any = None,
                 read_ratio: Any = 0.25, write_ratio: Any = 0.5, segments: Any = None, workers: Any = 4,
                 create_dest: Any = False, consistent_read: Any = False, verify: Any = True,
                 on_demand_capacity: Any = DEFAULT_ON_DEMAND_CAPACITY, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.source_table, self.dest_table = source_table, dest_table
        self.source_aws_conn_id, self.source_region = source_aws_conn_id, source_region
        self.dest_aws_conn_id, self.dest_region = dest_aws_conn_id, dest_region
        self.read_ratio, self.write_ratio, self.segments, self.workers = read_ratio, write_ratio, segments, workers
        self.create_dest, self.verify, self.on_demand_capacity = create_dest, verify, on_demand_capacity
        self.consistent_read = consistent_read

    def source(self) -> Any:
        return aws_client("dynamodb", self.source_aws_conn_id, rendered(self.source_region))

    def dest(self) -> Any:
        return aws_client("dynamodb", self.dest_aws_conn_id, rendered(self.dest_region))

    def request(self) -> CopyRequest:
        segments = rendered(self.segments)
        return CopyRequest(
            source_table=str(self.source_table), dest_table=str(self.dest_table),
            read_ratio=float(self.read_ratio), write_ratio=float(self.write_ratio),
            segments=None if segments is None else int(segments), create_dest=_flag(self.create_dest),
            on_demand_capacity=float(self.on_demand_capacity), consistent_read=_flag(self.consistent_read),
        )


class PlanCopyOperator(_CopyFields):
    """Check both tables, create the destination if asked, fix segments and rates, split them into shares.

    Returns the shares to map over; the plan goes under the XCom key ``plan``.
    """

    ui_color = "#d6eaf8"

    @aws_mistakes
    def execute(self, context: Context) -> list[dict[str, Any]]:
        with no_retry_on_bad_parameters():
            plan = prepare_copy(self.source(), self.dest(), self.request())
        shares = []
        for worker, segments in enumerate(split_segments(plan.total_segments, int(self.workers))):
            read_rate, write_rate = plan.rates(segments)
            shares.append({"worker": worker, "segments": segments, "read_rate": read_rate, "write_rate": write_rate,
                           "checkpoint": checkpoint_key(context["run_id"], segments)})
        context["ti"].xcom_push(key="plan", value=plan.to_dict())
        return shares


class CopySegmentsOperator(_CopyFields):
    """Copy one share of the segments (mapped: one task per share), resuming from its checkpoints."""

    template_fields: Sequence[str] = (*_CopyFields.template_fields, "share", "plan")
    ui_color = "#d5f5e3"

    def __init__(self, *, share: Any, plan: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.share, self.plan = share, plan

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        plan = CopyPlan.from_dict(self.plan)
        segments = [int(s) for s in self.share["segments"]]
        store = VariableCheckpoints(self.share["checkpoint"])
        if store.snapshots:
            self.log.info("resuming from checkpoints in Variable %s", store.key)
        source, dest = self.source(), self.dest()
        with no_retry_on_bad_parameters():
            result = copy_segments(
                source, dest, plan.source_table, plan.dest_table, segments, plan.total_segments,
                TokenBucket(float(self.share["read_rate"])), TokenBucket(float(self.share["write_rate"])),
                key_names=plan.key_names, checkpoint=store, index_scales=plan.dest_index_scales,
                rates_now=rate_readers(source, dest, plan, self.request(), segments, plan.dest_index_scales),
                consistent_read=plan.consistent_read,
                expected_items=plan.source_items * len(segments) // plan.total_segments,
            )
        self.log.info("worker %s copied %d items (segments %d-%d)", self.share["worker"], result.items,
                      segments[0], segments[-1])
        return {**result.to_dict(), "checkpoint": store.key}


class VerifyCopyOperator(_CopyFields):
    """Add up the workers, drop their checkpoints, and (if asked) verify the destination."""

    template_fields: Sequence[str] = (*_CopyFields.template_fields, "plan", "results")
    ui_color = "#fcf3cf"

    def __init__(self, *, plan: Any, results: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.plan, self.results = plan, results

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        plan, results = CopyPlan.from_dict(self.plan), list(self.results)
        covered = sorted(s for r in results for s in r["segments"])
        if covered != list(range(plan.total_segments)):
            raise CopyMismatch(f"workers covered segments {covered[:20]}..., not 0-{plan.total_segments - 1}")
        copied = TableDigest()
        for result in results:
            copied.merge(TableDigest.from_dict(result["digest"]))
        for result in results:
            Variable.delete(result["checkpoint"])
        summary = {"source_table": plan.source_table, "dest_table": plan.dest_table, "items": copied.count,
                   "digest": copied.hexdigest(), "read_units": sum(r["read_units"] for r in results),
                   "write_units": sum(r["write_units"] for r in results)}
        self.log.info("copied %d items from %s to %s", copied.count, plan.source_table, plan.dest_table)
        if _flag(self.verify):
            check = verify_copy(self.dest(), plan, copied, float(self.read_ratio), float(self.on_demand_capacity),
                                source_client=self.source())
            if not check.ok:  # a retry would copy nothing new and find the same mismatch
                raise AirflowFailException(check.message)
            summary["verified"] = check.message
        return summary
