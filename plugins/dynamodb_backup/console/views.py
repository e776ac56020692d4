"""What the console shows, built from S3: tables and a page of a table's backups (a run's tab: ``runview``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from dynamodb_backup.config import TableBackup
from dynamodb_backup.console.runview import RunView, WorkerRow, restore_view, run_view, worker_rows
from dynamodb_backup.errors import BackupError
from dynamodb_backup.formats.catalog import (
    FolderListing,
    child_names,
    drill_keys,
    newest_by_pointer,
    read_drill,
    read_sidecar,
)
from dynamodb_backup.formats.layout import SIDECAR, S3Location, parse_folder_name
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.formats.tablebackups import OURS, BackupFolder, TableBackups, inventory_page, newest_complete_of

PAGE_SIZE = 25
#: S3 calls a page makes at once (sidecars, drills, one HEAD per table).
PARALLEL = 8
RUNNING_STATES = ("queued", "running", "restarting", "up_for_retry", "scheduled", "deferred")


@dataclass(frozen=True)
class TableSource:
    """A table the page shows: from the backups file, or found under a configured prefix."""

    table: str
    base: S3Location
    schedule: str | None = None
    aws_conn_id: str = "aws_default"
    configured: bool = True
    #: The table's Data Pipeline output folders (``datapipeline_output``): their dated folders are its backups too.
    datapipeline: tuple[S3Location, ...] = ()

    @property
    def table_base(self) -> S3Location:
        return self.base.child(self.table)

    @property
    def backups(self) -> TableBackups:
        return TableBackups(self.table, self.base, self.datapipeline)

    @property
    def dag_id(self) -> str | None:
        return f"dynamodb_backup_{self.table}" if self.configured else None


@dataclass(frozen=True)
class RunRef:
    """The Airflow run that wrote a folder (looked up by the shell)."""

    dag_id: str
    run_id: str
    state: str


RunLookup = Callable[[str, list[str]], dict[str, RunRef]]
"""(dag_id, folder names) -> the runs that wrote them, by folder name."""


def table_sources(backups: Iterable[TableBackup], found: dict[S3Location, list[str]] | None = None
                  ) -> list[TableSource]:
    """The configured tables, then any other table folder found under their prefixes (unscheduled)."""
    sources = [TableSource(b.table, S3Location(b.bucket, b.prefix), b.schedule, b.aws_conn_id,
                           datapipeline=b.backups.datapipeline) for b in backups]
    known = {(s.base, s.table) for s in sources}
    conn_of = {s.base: s.aws_conn_id for s in sources}
    for base, tables in (found or {}).items():
        for table in tables:
            if (base, table) not in known and not table.startswith(("_", ".")):
                sources.append(TableSource(table, base, None, conn_of.get(base, "aws_default"), configured=False))
                known.add((base, table))
    return sources


def discover_tables(s3_for: Callable[[str], Any], sources: list[TableSource]) -> dict[S3Location, list[str]]:
    """Table folders under each configured prefix (one delimiter listing per prefix)."""
    bases = {s.base: s.aws_conn_id for s in sources}
    return {base: child_names(s3_for(conn), base) for base, conn in bases.items()}


def allowed_age(schedule: str | None) -> timedelta | None:
    """How old the newest complete backup may be: one interval of the schedule, plus half of one (at least
    an hour) for the run itself. None for unscheduled tables (never highlighted)."""
    if not schedule or schedule.startswith("@once") or schedule == "@continuous":
        return None
    from croniter import croniter  # Airflow's own dependency

    from dynamodb_backup.incremental.schedule import PRESETS

    try:
        fires = croniter(PRESETS.get(schedule, schedule), datetime(2025, 1, 6, tzinfo=UTC))
        first, second = fires.get_next(datetime), fires.get_next(datetime)
    except (ValueError, KeyError):
        return None
    interval: timedelta = second - first
    return interval + max(interval / 2, timedelta(hours=1))


@dataclass
class TableRow:
    source: TableSource
    newest: str | None = None
    """Folder name of the newest complete backup."""
    completed: datetime | None = None
    """When its ``_SUCCESS`` was written."""
    listed: bool = False
    """Found by listing the table's folders (no usable pointer, or it was overdue) rather than by the pointer."""
    allowed: timedelta | None = None
    error: str | None = None
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    recovery: dict[str, Any] | None = None
    """What the table's stream reports (``RecoveryLookup``)."""

    @property
    def age(self) -> timedelta | None:
        return None if self.completed is None else self.now - self.completed

    @property
    def stale(self) -> bool:
        """Highlighted: scheduled, and no complete backup within what the schedule allows."""
        if self.allowed is None:
            return False
        age = self.age
        return age is None or age > self.allowed


RecoveryLookup = Callable[[TableSource], dict[str, Any] | None]
"""A table -> what its stream backup reports (``replica.status.stream_status``: ``recovery_point``,
``recovery_point_age_seconds``, ``held_back_by_gap``, ``gaps``, ``replicas`` with ``lag_seconds``); None for a
table without one. The tables page shows three more columns when any table has one (``app.recovery_lookup``)."""


def table_rows(s3_for: Callable[[str], Any], sources: list[TableSource], now: datetime | None = None,
               recovery: RecoveryLookup | None = None) -> list[TableRow]:
    """One row per table: its newest complete backup and age, two S3 calls per table, in parallel.

    The seal's pointer (``catalog.NEWEST``) names the newest folder it sealed; one GET reads it and one HEAD
    of that folder's ``_SUCCESS`` checks it is still complete. Without a usable pointer (older backups,
    retention deleted its folder, an overwrite in progress), or when it is older than the schedule allows,
    the table's folders are listed as before: so a table is only highlighted after a full look, and a
    folder without ``_SUCCESS`` is never shown as complete.
    """
    now = now or datetime.now(UTC)

    def row(source: TableSource) -> TableRow:
        result = TableRow(source, allowed=allowed_age(source.schedule), now=now)
        try:
            s3 = s3_for(source.aws_conn_id)
            newest = newest_by_pointer(s3, source.table_base)
            if newest is None or (result.allowed is not None and now - newest[1] > result.allowed):
                result.listed = True
                found = newest_complete_of(s3, source.backups)  # ours and its Data Pipeline output folders'
                newest = (found[0].name, found[1]) if found is not None else None
            if newest is not None:
                result.newest, result.completed = newest
            result.recovery = recovery(source) if recovery is not None else None
        except Exception as exc:  # one unreadable table must not hide the others
            result.error = f"{type(exc).__name__}: {exc}"[:300]
        return result

    with ThreadPoolExecutor(PARALLEL) as pool:
        return list(pool.map(row, sources))


@dataclass
class BackupRow:
    name: str
    folder: S3Location
    status: str
    """complete, running or partial."""
    listing: FolderListing
    sidecar: Sidecar | None = None
    drill: dict[str, Any] | None = None
    run: RunRef | None = None
    error: str | None = None
    layout: str = OURS
    """ours (``<prefix>/<table>/<date>``) or datapipeline (an output folder's ``<date>``, no table level)."""

    @property
    def logical_date(self) -> str:
        if self.sidecar is not None:
            return self.sidecar.logical_date
        moment = parse_folder_name(self.name)
        return moment.isoformat() if moment else "?"

    @property
    def mode(self) -> str | None:
        return None if self.sidecar is None else str(self.sidecar.source.get("mode", "scan"))

    @property
    def items(self) -> int | None:
        return None if self.sidecar is None else self.sidecar.item_count

    @property
    def size(self) -> int:
        return self.sidecar.byte_count if self.sidecar is not None else self.listing.data_bytes

    @property
    def files(self) -> int:
        return len(self.sidecar.files) if self.sidecar is not None else len(self.listing.data_files)

    @property
    def duration(self) -> float | None:
        if self.sidecar is None:
            return None
        try:
            start = datetime.fromisoformat(self.sidecar.snapshot_start)
            end = datetime.fromisoformat(self.sidecar.snapshot_end)
        except ValueError:
            return None
        return (end - start).total_seconds()

    @property
    def read_units(self) -> float | None:
        return None if self.sidecar is None else self.sidecar.consumed_read_units


@dataclass
class BackupPage:
    source: TableSource
    rows: list[BackupRow]
    total: int
    before: str | None
    """The cursor this page was asked with (None: the newest)."""
    next_before: str | None
    """Cursor of the next (older) page, None when this is the last."""


def backup_page(s3: Any, source: TableSource, before: str | None = None, size: int = PAGE_SIZE,
                runs: RunLookup | None = None) -> BackupPage:
    """One page of a table's backups, newest first.

    S3 calls: one delimiter listing of the table's folders, one listing of ``_drills/``, one key range
    for the page's folders, then the page's sidecars and drill records in parallel -- never one call
    per folder the table has.
    """
    inventory = inventory_page(s3, source.backups, before, size)  # ours and its Data Pipeline output folders'
    page_names = [f.name for f in inventory.folders]
    drills = {root: drill_keys(s3, root) for root in source.backups.roots}  # a drill record sits beside its folder
    found_runs = runs(source.dag_id, page_names) if runs is not None and source.dag_id else {}

    def row(found: BackupFolder) -> BackupRow:
        name, listing = found.name, inventory.listings[found.folder]
        drills_here = drills.get(S3Location(found.folder.bucket, found.folder.prefix.rpartition("/")[0]), {})
        run = found_runs.get(name) if found.layout == OURS else None
        status = "complete" if listing.complete else (
            "running" if run is not None and run.state in RUNNING_STATES else "partial")
        result = BackupRow(name, listing.folder, status, listing, run=run, layout=found.layout)
        try:
            if SIDECAR in listing.sizes:
                result.sidecar = read_sidecar(s3, listing.folder)
        except BackupError as exc:
            result.error = str(exc)
        if name in drills_here:
            result.drill = read_drill(s3, found.folder.bucket, drills_here[name])
        return result

    with ThreadPoolExecutor(PARALLEL) as pool:
        rows = list(pool.map(row, inventory.folders))
    return BackupPage(source, rows, inventory.total, before, inventory.next_before)


__all__ = ["BackupPage", "BackupRow", "RunLookup", "RunRef", "RunView", "TableRow", "TableSource", "WorkerRow",
           "allowed_age", "backup_page", "discover_tables", "restore_view", "run_view", "table_rows",
           "table_sources", "worker_rows"]
