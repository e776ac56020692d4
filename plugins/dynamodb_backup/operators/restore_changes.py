"""Restore operators for a moment and for a few items: thin wrappers over ``restore.asof`` and ``restore.selection``.

* ``choose``: a few items (keys or partition_key set) or the whole table.
* ``validate_changes``: with as_of, every file of every link after the full is read and checked
  before anything is written; returns their digests for verification.
* ``apply_changes``: after the load, each link in order (puts and deletes, paced, resumable per file).
* ``restore_items``: the chosen items, from a backup folder or the as_of chain, into an existing table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseBranchOperator, Context
from airflow.sdk.exceptions import AirflowFailException

from dynamodb_backup.aws.tableinfo import describe_table, table_identity
from dynamodb_backup.backup.plan import index_write_scales
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.incremental.apply import ApplyResult, apply_link_files, validate_link_files
from dynamodb_backup.incremental.chain import parse_moment
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.operators.restore import InspectBackupOperator, _no_retry_on_backup_errors, _RestoreFields
from dynamodb_backup.progress import ProgressReport
from dynamodb_backup.repository.inspection import BackupSource
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.restore.asof import LinkFiles
from dynamodb_backup.restore.selection import run_items
from dynamodb_backup.restore.steps import target_rate_reader
from dynamodb_backup.restore.streamchain import plan_again
from dynamodb_backup.restore.streamrestore import replay_stream, validate_stream

ITEMS_TASK, TABLE_TASK = "restore_items", "inspect"


def _links(inspection: dict[str, Any]) -> list[LinkFiles]:
    return [LinkFiles.from_dict(link) for link in inspection.get("links") or []]


class ChooseRestoreOperator(BaseBranchOperator):
    """A few items (``keys`` or ``partition_key`` given) or the whole table."""

    template_fields: Sequence[str] = ("keys", "partition_key")
    ui_color = "#f2f3f4"

    def __init__(self, *, keys: Any = None, partition_key: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys, self.partition_key = keys, partition_key

    def choose_branch(self, context: Context) -> str:
        chosen = _RestoreFields._text(self.keys) is not None or _RestoreFields._text(self.partition_key) is not None
        self.log.info("restoring %s", "only the chosen items" if chosen else "the whole table")
        return ITEMS_TASK if chosen else TABLE_TASK


class ValidateChangesOperator(_RestoreFields):
    """as_of: read every link's files (checksums, lines, keys, counts) before anything is written."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "inspection")
    ui_color = "#fdebd0"

    def __init__(self, *, inspection: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inspection = inspection

    @aws_mistakes
    def execute(self, context: Context) -> list[dict[str, Any]]:
        links = _links(self.inspection)
        if not links:
            self.log.info("no incremental links to check (as_of is empty, or the full is at the moment)")
        rules, s3, reports = KeyRules.from_description(self.inspection["keys"]), self.s3(), []
        with _no_retry_on_backup_errors():
            for link in links:
                report = validate_link_files(s3, link.folder.bucket, link.files, rules)
                self.log.info("%s: %d changes valid (%d puts, %d deletes)", link.describe(), report.changes,
                              report.puts, report.deletes)
                reports.append(report.to_dict())
            if self.inspection.get("stream"):  # every segment line up to the second, before anything is written
                validate_stream(s3, plan_again(s3, self.inspection["stream"]), rules)
        return reports


class ApplyChangesOperator(_RestoreFields):
    """as_of: apply each link after the full, in order; a retry skips the files an earlier attempt finished."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "inspection", "target")
    ui_color = "#d5f5e3"

    def __init__(self, *, inspection: Any, target: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inspection, self.target = inspection, target

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        links, stream = _links(self.inspection), self.inspection.get("stream")
        total = ApplyResult()
        if not links and not stream:
            self.log.info("no incremental links to apply")
            return vars(total)
        source = BackupSource.from_dict(self.inspection["source"])
        rules, dynamodb, s3 = KeyRules.from_description(self.inspection["keys"]), self.dynamodb(), self.s3()
        target = describe_table(dynamodb, self.table)
        scales = index_write_scales(target)
        checkpoints = self.checkpoints(s3, source.folder, context, table_identity(target))
        with _no_retry_on_backup_errors():
            for number, link in enumerate(links, 1):
                self.log.info("link %d of %d: %s", number, len(links), link.describe())
                with ProgressReport(f"link {number} of {len(links)}", sum(f.items or 0 for f in link.files),
                                    self.log):  # a line every 10 s, even while paced or throttled
                    total.merge(apply_link_files(
                        dynamodb, s3, link.folder.bucket, link.files, self.table, rules,
                        float(self.target["write_rate"]), checkpoints=checkpoints, index_scales=scales,
                        label=f"link {number}",
                        current_rate=target_rate_reader(dynamodb, self.table, float(self.write_ratio),
                                                        self.on_demand_capacity, 1.0, scales)))
        self.log.info("applied %d links: %d puts, %d deletes", len(links), total.puts, total.deletes)
        if stream:  # then the stream, in order, to the second (replaying it again after a retry is harmless)
            with _no_retry_on_backup_errors():
                plan = plan_again(s3, stream)
                replayed = replay_stream(dynamodb, s3, plan, self.table, rules, float(self.target["write_rate"]))
            self.log.info("replayed the stream to %s: %d puts, %d deletes", stream["point"], replayed.puts,
                          replayed.deletes)
            total.merge(replayed)
        return vars(total)


class RestoreItemsOperator(InspectBackupOperator):
    """Only the chosen items (``keys``: one per line in DynamoDB JSON, or ``partition_key``) into an existing
    table, from the backup folder (or latest), or from the as_of chain; logs what it wrote and what was missing."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "keys", "partition_key")
    ui_color = "#d5f5e3"

    def __init__(self, *, keys: Any = None, partition_key: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.keys, self.partition_key = keys, partition_key

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:  # type: ignore[override]
        def make_client(service: str) -> Any:
            return self.dynamodb() if service == "dynamodb" else self.s3()

        settings: dict[str, Any] = {
            "keys_text": self._text(self.keys), "partition_key": self._text(self.partition_key),
            "write_ratio": float(self.write_ratio), "on_demand_capacity": self.on_demand_capacity,
            "verify": self._flag(self.verify), "force": self._flag(self.force)}
        with _no_retry_on_backup_errors():
            if self._text(self.as_of):
                if str(self.source).strip() != "latest":
                    raise ParameterError("as_of restores from the backups of source_table under backup_bucket/"
                                         "backup_prefix; set source to latest")
                outcome = run_items(make_client, self.table, base=self.base(),
                                    source_table=self._text(self.source_table),
                                    moment=parse_moment(str(self._text(self.as_of)), "as_of"), **settings)
            else:
                outcome = run_items(make_client, self.table, folder=self.folder(self.s3()), **settings)
        if outcome.differing:
            raise AirflowFailException(f"{outcome.differing} written items read back differently, e.g. "
                                       f"{outcome.sample[:3]}")
        return {"from": outcome.point, "written": len(outcome.written), "missing": outcome.missing[:100]}
