"""Restore drill tasks around the restore's own (``restore_tasks``): pick the backup, then clean up and record.

    start ──> restore.inspect >> validate >> ensure_table >> claim_scratch >> load >> verify ──> finish (all_done)

claim_scratch tags the scratch table the restore created (``drill.scratch``); start and finish
delete a scratch table only when it carries that tag. finish deletes it whatever happened, writes
the drill record beside the backup (``drill.record``), and fails (sending the failure notice) when
the drill did not pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from airflow.sdk import BaseOperator, Context
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.drill.record import make_record, write_drill
from dynamodb_backup.drill.scratch import ScratchTableError, claim_scratch, delete_scratch, drill_tag_value
from dynamodb_backup.errors import BackupError
from dynamodb_backup.formats.layout import SIDECAR, S3Location, check_table_name
from dynamodb_backup.formats.tablebackups import (
    backup_listings,
    newest_complete,
    parse_datapipeline_outputs,
    table_backups,
)
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.repository.keyschema import show_key_schema

RESTORE_GROUP = "restore"


class _DrillFields(BaseOperator):
    template_fields: Sequence[str] = ("table", "bucket", "prefix", "scratch_table", "aws_conn_id")

    def __init__(self, *, table: str, bucket: str, prefix: str, scratch_table: str,
                 aws_conn_id: str = "aws_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.table, self.bucket, self.prefix = table, bucket, prefix
        self.scratch_table, self.aws_conn_id = scratch_table, aws_conn_id

    def scratch(self) -> str:
        name = check_table_name(str(self.scratch_table), "scratch_table")
        if name == str(self.table):
            raise AirflowFailException(f"scratch_table {name!r} is the source table itself: refusing")
        return name


class StartDrillOperator(_DrillFields):
    """The newest complete backup of the table; a scratch table left by an earlier drill is deleted first.

    Only a table tagged by a drill is deleted: an untagged table of the scratch table's name fails
    the drill, untouched (the restore does not run).

    A table with no backup folder at all (a new install, before its first night) skips the drill,
    and the skip runs through the restore and finish: there is nothing to prove yet. A table whose
    folders are all incomplete fails it.
    """

    def __init__(self, *, datapipeline_output: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        #: The table's Data Pipeline output folders: their dated folders are its backups too.
        self.datapipeline = parse_datapipeline_outputs(datapipeline_output)

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        started = datetime.now(UTC)
        base = S3Location.parse(f"s3://{self.bucket}/{self.prefix}", "bucket/prefix")
        table = check_table_name(str(self.table))
        s3 = aws_client("s3", self.aws_conn_id)
        backups = table_backups(table, base, self.datapipeline)
        if not backup_listings(s3, backups):
            raise AirflowSkipException(f"no backup of {table} under {base}/ yet: nothing to drill")
        try:
            folder = newest_complete(s3, backups)
        except BackupError as exc:
            raise AirflowFailException(str(exc)) from exc
        dynamodb = aws_client("dynamodb", self.aws_conn_id)
        try:
            owner = delete_scratch(dynamodb, self.scratch())
        except ScratchTableError as exc:
            raise AirflowFailException(str(exc)) from exc
        if owner is not None:
            self.log.warning("deleted %s, left behind by an earlier drill (%s)", self.scratch(), owner)
        # A Data Pipeline folder has no sidecar to create the scratch table from: the table's own keys stand in.
        # Always pushed ("" for none: XCom keeps no None, and the restore reads "" as no key schema).
        key_schema = ""
        if not any(listing.folder == folder and SIDECAR in listing.sizes for listing in backup_listings(s3, backups)):
            key_schema = show_key_schema(describe_table(dynamodb, table))
        context["ti"].xcom_push(key="key_schema", value=key_schema)
        self.log.info("drilling %s/ into the scratch table %s", folder.uri, self.scratch())
        return {"folder": folder.uri, "started": started.isoformat(), "scratch_table": self.scratch()}


class ClaimScratchOperator(_DrillFields):
    """Tag the scratch table the restore just created as this drill's (before anything is loaded into it).

    It also runs when ensure_table failed (start succeeded): a table created before the failure is
    still the drill's (younger than start's check), and tagged so that finish deletes it.
    """

    template_fields: Sequence[str] = (*_DrillFields.template_fields, "start", "target")

    def __init__(self, *, start: Any, target: Any, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done_min_one_success")
        super().__init__(**kwargs)
        self.start, self.target = start, target

    @aws_mistakes
    def execute(self, context: Context) -> str | None:
        owner = drill_tag_value(self.dag_id, str(context["run_id"]))
        target = self.target if isinstance(self.target, dict) else {}  # None: ensure_table failed
        if not isinstance(self.start, dict):
            raise AirflowFailException("the drill found no backup to restore (see the start task's log)")
        dynamodb = aws_client("dynamodb", self.aws_conn_id)
        if not target.get("created") and table_exists(dynamodb, self.scratch()) is None:
            self.log.info("no scratch table %s was created: nothing to claim", self.scratch())
            return None
        try:
            arn = claim_scratch(dynamodb, self.scratch(), owner,
                                created=bool(target.get("created")),
                                created_after=datetime.fromisoformat(self.start["started"]))
        except ScratchTableError as exc:
            raise AirflowFailException(str(exc)) from exc
        self.log.info("tagged %s as this drill's scratch table (%s)", arn, owner)
        return arn


class FinishDrillOperator(_DrillFields):
    """Delete the scratch table (always), record the result beside the backup, fail if the drill failed.

    It runs once its upstream is done with at least one success (start found a backup): a skipped
    drill skips it, and a failed start sends its own notice.
    """

    template_fields: Sequence[str] = (*_DrillFields.template_fields, "start", "verified")

    def __init__(self, *, start: Any, verified: Any, put_extra: dict[str, Any] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("trigger_rule", "all_done_min_one_success")
        super().__init__(**kwargs)
        self.start, self.verified, self.put_extra = start, verified, put_extra or {}

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        try:
            removed = delete_scratch(aws_client("dynamodb", self.aws_conn_id), self.scratch())
            kept = None
        except ScratchTableError as exc:  # recorded as the drill's failure, after the record is written
            self.log.error("%s", exc)
            removed, kept = None, str(exc)
        self.log.info("scratch table %s %s", self.scratch(),
                      "kept" if kept else "deleted" if removed else "was not there")
        finished = datetime.now(UTC)
        if not isinstance(self.start, dict):
            raise AirflowFailException("the drill found no backup to restore (see the start task's log)")
        verified = self.verified if isinstance(self.verified, dict) else {}
        passed = bool(verified.get("verified")) and bool(verified.get("match", True)) and kept is None
        error = None if passed else kept or self._what_failed(context)
        record = make_record(
            folder=self.start["folder"], passed=passed, started=datetime.fromisoformat(self.start["started"]),
            finished=finished, items=verified.get("table_items"), scratch_table=self.scratch(), error=error,
            dag_id=self.dag_id, run_id=str(context["run_id"]))
        uri = write_drill(aws_client("s3", self.aws_conn_id), record, self.put_extra)
        self.log.info("drill %s: %s", record["result"], uri)
        if not passed:
            raise AirflowFailException(f"restore drill of {self.start['folder']}/ failed: {error}")
        return record

    def _what_failed(self, context: Context) -> str:
        """Which restore step did not succeed (its log has the error)."""
        try:
            states = context["ti"].get_task_states(dag_id=self.dag_id, task_group_id=RESTORE_GROUP,
                                                   run_ids=[str(context["run_id"])])
            mine = states.get(str(context["run_id"]), {})
        except Exception as exc:  # the states are only a better message; the verdict does not depend on them
            self.log.warning("could not read the restore's task states: %s", exc)
            mine = {}
        bad = sorted({task for task, state in mine.items() if state == "failed"})
        if bad:
            return f"{', '.join(bad)} failed (see its log)"
        return "the restore was not verified (see the restore tasks' logs)"
