"""What retention needs to know about a table's folders, read from S3 through the catalog.

One listing of ``<base>/<table>/`` (the catalog's), one delimiter listing for folders that hold only
sub-folders (a scan killed before its first data file leaves only ``_checkpoints/``), the sidecars of
complete folders (the catalog's summary), and one listing of each partial folder to see whether it
holds our own resume objects and when it was last written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dynamodb_backup.backup.export import CHECKPOINTS
from dynamodb_backup.formats.catalog import FolderListing, summarize
from dynamodb_backup.formats.layout import SIDECAR, S3Location, parse_folder_name
from dynamodb_backup.formats.tablebackups import (
    DATAPIPELINE,
    TableBackups,
    backup_folders,
    backup_listings,
    table_backups,
)
from dynamodb_backup.pitr.native import STAGING
from dynamodb_backup.repository.inspection import list_children
from dynamodb_backup.retention.plan import FolderFacts

#: Sub-folders only we write into a dated folder: a scan's or conversion's resume state, a pitr export's staging.
OUR_MARKERS = (f"{CHECKPOINTS}/", f"{STAGING}/")


def tables_under(s3: Any, base: S3Location) -> list[str]:
    """The table folders directly under ``base`` (names starting with ``_`` are ours, not tables)."""
    return sorted(name for name in list_children(s3, base)[1] if not name.startswith(("_", ".")))


def table_folders(s3: Any, where: S3Location | TableBackups, table: str | None = None,
                  datapipeline: tuple[S3Location, ...] = ()) -> list[FolderFacts]:
    """Every dated folder of the table, oldest first: ``where`` is its :class:`TableBackups`, or the base of
    ``<base>/<table>/`` (with its Data Pipeline output folders ``datapipeline``)."""
    if isinstance(where, TableBackups):
        backups = where
    else:
        assert table is not None, "table_folders(s3, base, table)"
        backups = table_backups(table, where, datapipeline)
    listings = {listing.folder: listing for listing in backup_listings(s3, backups)}
    folders = {f.folder: f for f in backup_folders(s3, backups)}  # also folders holding only sub-folders
    facts = []
    for folder in sorted(set(listings) | set(folders), key=lambda f: (f.prefix.rsplit("/", 1)[-1], f.uri)):
        listing = listings.get(folder) or FolderListing(folder, {}, None)
        layout = folders[folder].layout if folder in folders else backups.layout_of(S3Location(
            folder.bucket, folder.prefix.rpartition("/")[0]))
        facts.append(folder_facts(s3, listing, declared=layout == DATAPIPELINE))
    return facts


def folder_facts(s3: Any, listing: FolderListing, declared: bool = False) -> FolderFacts:
    """``declared``: the folder sits in one of the table's Data Pipeline output folders, which its entry names as
    this table's backups: a complete one is retained and deleted like ours (a partial one is never touched)."""
    folder = listing.folder
    named = parse_folder_name(folder.prefix.rsplit("/", 1)[-1])
    assert named is not None, folder
    source: dict[str, Any] = {}
    if SIDECAR in listing.sizes:
        source = summarize(s3, listing).source or {}
    if listing.complete and SIDECAR in listing.sizes:
        ours, why, modified = True, "sidecar", listing.modified
    elif declared and listing.complete:
        ours, why, modified = True, "in this table's Data Pipeline output (datapipeline_output)", listing.modified
    else:
        nested, modified = _everything_under(s3, folder)
        markers = [m for m in OUR_MARKERS if any(key.startswith(m) for key in nested)]
        if SIDECAR in listing.sizes:
            ours, why = True, "sidecar"
        elif markers:
            ours, why = True, ", ".join(markers)
        else:
            ours, why = False, f"no {SIDECAR} and no {' or '.join(OUR_MARKERS)}"
    chain = source.get("chain") or {}
    return FolderFacts(uri=folder.uri, named=named, complete=listing.complete, ours=ours, why_ours=why,
                       modified=modified, mode=source.get("mode"), chain_full=chain.get("full"),
                       chain_previous=chain.get("previous"))


def _everything_under(s3: Any, folder: S3Location) -> tuple[list[str], datetime | None]:
    """Every key under ``folder/`` (relative) and the newest LastModified."""
    prefix = folder.key("")
    keys: list[str] = []
    newest: datetime | None = None
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=folder.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            keys.append(obj["Key"][len(prefix):])
            modified = obj.get("LastModified")
            if modified is not None and (newest is None or modified > newest):
                newest = modified
    return keys, newest
