"""Prune: plan a table's retention from S3 and carry it out (or only say what would go)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.retention.delete import DeleteOutcome, delete_folder
from dynamodb_backup.retention.inventory import table_folders
from dynamodb_backup.retention.plan import DELETE, Decision, RetentionPolicy, plan_retention, summary_line

log = logging.getLogger(__name__)


@dataclass
class PruneReport:
    table: str
    decisions: list[Decision]
    outcomes: list[DeleteOutcome] = field(default_factory=list)
    dry_run: bool = True

    @property
    def to_delete(self) -> list[Decision]:
        return [d for d in self.decisions if d.action == DELETE]

    @property
    def locked(self) -> list[str]:
        return [what for o in self.outcomes for what in o.locked]

    @property
    def errors(self) -> list[str]:
        return [what for o in self.outcomes for what in o.errors]

    def lines(self) -> list[str]:
        head = f"{self.table}: {summary_line(self.decisions)}" + (" (dry run: nothing deleted)" if self.dry_run else "")
        rows = [f"  {d.action.upper():<6} {d.folder.uri}/  {d.why}" for d in self.decisions]
        done = [f"  {o.describe()}" for o in self.outcomes]
        return [head, *rows, *done]

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "dry_run": self.dry_run,
                "deleted": [o.folder for o in self.outcomes if o.gone],
                "kept": [d.folder.uri for d in self.decisions if d.action != DELETE],
                "locked": self.locked, "errors": self.errors,
                "object_versions_deleted": sum(o.deleted + o.beside for o in self.outcomes)}


def prune_table(s3: Any, base: S3Location, table: str, policy: RetentionPolicy, *, dry_run: bool,
                now: datetime | None = None, protect: tuple[str, ...] = (),
                extra: dict[str, Any] | None = None, datapipeline: tuple[S3Location, ...] = ()) -> PruneReport:
    """Decide for every folder of ``table`` (under ``base`` and its Data Pipeline output folders ``datapipeline``);
    unless ``dry_run``, delete what goes."""
    folders = table_folders(s3, base, table, datapipeline)
    decisions = plan_retention(folders, policy, now or datetime.now(UTC), protect)
    report = PruneReport(table, decisions, dry_run=dry_run)
    if not dry_run:
        for decision in report.to_delete:
            outcome = delete_folder(s3, S3Location.parse(decision.folder.uri), extra)
            report.outcomes.append(outcome)
            log.info("%s", outcome.describe())
    return report
