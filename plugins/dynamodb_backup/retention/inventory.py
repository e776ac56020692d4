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
from dynamodb_backup.formats.catalog import FolderListing, scan_listings, summarize
from dynamodb_backup.formats.layout import SIDECAR, S3Location, parse_folder_name
from dynamodb_backup.pitr.native import STAGING
from dynamodb_backup.repository.inspection import list_children
from dynamodb_backup.retention.plan import FolderFacts

#: Sub-folders only we write into a dated folder: a scan's or conversion's resume state, a pitr export's staging.
OUR_MARKERS = (f"{CHECKPOINTS}/", f"{STAGING}/")


def tables_under(s3: Any, base: S3Location) -> list[str]:
    """The table folders directly under ``base`` (names starting with ``_`` are ours, not tables)."""
    return sorted(name for name in list_children(s3, base)[1] if not name.startswith(("_", ".")))


def table_folders(s3: Any, base: S3Location, table: str) -> list[FolderFacts]:
    """Every dated folder directly under ``<base>/<table>/``, oldest first."""
    table_base = base.child(table)
    listings = {listing.folder.prefix.rsplit("/", 1)[-1]: listing for listing in scan_listings(s3, table_base)
                if listing.folder.prefix.rsplit("/", 1)[0] == table_base.prefix}
    names = {name for name in list_children(s3, table_base)[1] if parse_folder_name(name)}
    names |= {name for name in listings if parse_folder_name(name)}
    facts = []
    for name in sorted(names):
        folder = table_base.child(name)
        listing = listings.get(name) or FolderListing(folder, {}, None)
        facts.append(folder_facts(s3, listing))
    return facts


def folder_facts(s3: Any, listing: FolderListing) -> FolderFacts:
    folder = listing.folder
    named = parse_folder_name(folder.prefix.rsplit("/", 1)[-1])
    assert named is not None, folder
    source: dict[str, Any] = {}
    if SIDECAR in listing.sizes:
        source = summarize(s3, listing).source or {}
    if listing.complete and SIDECAR in listing.sizes:
        ours, why, modified = True, "sidecar", listing.modified
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
