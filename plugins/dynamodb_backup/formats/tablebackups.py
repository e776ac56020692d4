"""Which folders are one table's backups: the single answer that ls, ``restore --latest``, retention, drills and
the console's inventory all use.

Two layouts sit side by side. Ours: dated folders under ``<prefix>/<table>/``. AWS Data Pipeline's: dated
folders directly under the pipeline's output folder (``<output>/<YYYY-MM-DD-HH-MM-SS>/``, no table level), so
nothing in S3 says which table they hold: the table's entry names those output folders
(``datapipeline_output`` in backups.yaml, ``--datapipeline-output`` on the command line).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.catalog import (
    FolderListing,
    child_names,
    folder_listings,
    read_sidecar,
    scan_listings,
    success_time,
)
from dynamodb_backup.formats.layout import SIDECAR, S3Location, parse_folder_name

OURS, DATAPIPELINE = "ours", "datapipeline"


def parse_datapipeline_outputs(value: Any, param: str = "datapipeline_output") -> tuple[S3Location, ...]:
    """``s3://bucket/path`` or a list of them (a table whose pipeline moved over the years); None: none."""
    if value is None:
        return ()
    uris = [value] if isinstance(value, str) else value
    if not isinstance(uris, list | tuple) or not all(isinstance(u, str) for u in uris):
        raise ParameterError(f"{param}: an s3:// URI or a list of them, got {value!r}")
    return tuple(dict.fromkeys(S3Location.parse(u.rstrip("/"), param) for u in uris))


@dataclass(frozen=True)
class TableBackups:
    """Where one table's backups live: ours under ``<base>/<table>/``, and Data Pipeline output folders."""

    table: str
    base: S3Location
    """Our ``s3://<bucket>/<prefix>``."""
    datapipeline: tuple[S3Location, ...] = ()

    @property
    def ours(self) -> S3Location:
        return self.base.child(self.table)

    @property
    def roots(self) -> tuple[S3Location, ...]:
        """The folders whose dated children are this table's backups (ours first; an output that is our own
        table folder, as when the pipeline wrote to ``<prefix>/<table>``, counts once)."""
        return (self.ours, *[r for r in self.datapipeline if r != self.ours])

    def layout_of(self, root: S3Location) -> str:
        return OURS if root == self.ours else DATAPIPELINE


@dataclass(frozen=True)
class BackupFolder:
    """One dated folder of the table, with the layout it was found in."""

    folder: S3Location
    layout: str

    @property
    def name(self) -> str:
        return self.folder.prefix.rsplit("/", 1)[-1]

    @property
    def named(self) -> datetime:
        moment = parse_folder_name(self.name)
        assert moment is not None, self.folder
        return moment


def _order(folder: S3Location) -> tuple[str, str]:
    """Oldest first by the folder's date; same date: by place, so the order is stable."""
    return folder.prefix.rsplit("/", 1)[-1], folder.uri


def backup_folders(s3: Any, backups: TableBackups) -> list[BackupFolder]:
    """Every dated folder of the table, oldest first: one delimiter listing per root (no per-folder calls)."""
    found = [BackupFolder(root.child(name), backups.layout_of(root))
             for root in backups.roots for name in child_names(s3, root) if parse_folder_name(name) is not None]
    return sorted(found, key=lambda f: _order(f.folder))


def backup_listings(s3: Any, backups: TableBackups) -> list[FolderListing]:
    """The listing (objects directly inside) of every dated folder of the table that holds objects, oldest
    first. A folder holding only sub-folders has no listing here (retention looks for those itself)."""
    found = []
    for root in backups.roots:
        for listing in scan_listings(s3, root):
            parent, _, name = listing.folder.prefix.rpartition("/")
            if parent == root.prefix and parse_folder_name(name) is not None:
                found.append(listing)
    return sorted(found, key=lambda listing: _order(listing.folder))


def newest_complete(s3: Any, backups: TableBackups) -> S3Location:
    """The newest complete dated folder (``_SUCCESS``) of the table, in either layout.

    Incremental folders hold a night's changes, not the table, so they are never picked.
    """
    listings = [listing for listing in backup_listings(s3, backups) if listing.complete]
    for listing in reversed(listings):
        if SIDECAR not in listing.sizes or read_sidecar(s3, listing.folder).source.get("mode") != "incremental":
            return listing.folder
    where = " or ".join(f"{root}/" for root in backups.roots)
    raise BackupFolderError(f"{where}: no complete backup (a folder with _SUCCESS) of {backups.table!r}"
                            + (" other than incremental ones (restore those with --as-of)" if listings else ""))


@dataclass
class InventoryPage:
    """One page of a table's backups for the console, newest first."""

    folders: list[BackupFolder]
    listings: dict[S3Location, FolderListing]
    total: int
    next_before: str | None
    """Cursor of the next (older) page: a folder name; None when this is the last page."""


def inventory_page(s3: Any, backups: TableBackups, before: str | None = None, size: int = 25) -> InventoryPage:
    """The folders of the table older than ``before`` (a folder name; None: the newest), ``size`` of them.

    S3 calls: one delimiter listing per root and one key range per root for the page's folders, never one call
    per folder. Folders of the same date in two places stay on one page, so a name cursor skips none.
    """
    everything = backup_folders(s3, backups)
    older = [f for f in everything if before is None or f.name < before]
    cut = max(len(older) - size, 0)
    while 0 < cut < len(older) and older[cut - 1].name == older[cut].name:
        cut -= 1
    page = list(reversed(older[cut:]))
    listings: dict[S3Location, FolderListing] = {}
    for root in backups.roots:
        names = [f.name for f in page if f.folder == root.child(f.name)]
        listings.update({listing.folder: listing for listing in folder_listings(s3, root, names).values()})
    return InventoryPage(page, listings, len(everything), page[-1].name if cut > 0 and page else None)


def newest_complete_of(s3: Any, backups: TableBackups, max_checks: int = 20) -> tuple[BackupFolder, datetime] | None:
    """The newest folder with ``_SUCCESS`` (either layout) and when it completed: a HEAD per folder from the
    newest down (normally one or two), after one delimiter listing per root."""
    for found in list(reversed(backup_folders(s3, backups)))[:max_checks]:
        done = success_time(s3, found.folder)
        if done is not None:
            return found, done
    return None


def table_backups(table: str, base: S3Location, datapipeline: Iterable[S3Location] = ()) -> TableBackups:
    return TableBackups(table, base, tuple(dict.fromkeys(datapipeline)))
