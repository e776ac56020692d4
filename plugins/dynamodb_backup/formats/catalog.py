"""Finding backups in S3: which dated folders exist, which are complete, what they hold."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location, parse_folder_name
from dynamodb_backup.formats.sidecar import Sidecar


@dataclass
class FolderListing:
    """The objects directly inside one backup folder."""

    folder: S3Location
    sizes: dict[str, int]
    modified: datetime | None

    @property
    def complete(self) -> bool:
        return SUCCESS in self.sizes

    @property
    def data_files(self) -> list[str]:
        return sorted(n for n in self.sizes if n != MANIFEST and not n.startswith(("_", ".")))

    @property
    def data_bytes(self) -> int:
        return sum(self.sizes[n] for n in self.data_files)


@dataclass
class BackupSummary:
    listing: FolderListing
    items: int | None
    """From our sidecar; None for backups written by other tools."""
    mode: str | None = None
    """scan or pitr (from our sidecar); None for backups written by other tools."""
    data_files: int | None = None
    data_bytes: int | None = None
    """From our sidecar when there is one (a native-format folder keeps its data files nested)."""
    source: dict[str, Any] | None = None
    """The sidecar's ``source`` (mode, export, incremental ``chain``); None without a sidecar."""

    @property
    def taken_at(self) -> datetime | None:
        return parse_folder_name(self.listing.folder.prefix.rsplit("/", 1)[-1])


def scan_listings(s3: Any, base: S3Location) -> list[FolderListing]:
    """Every folder under ``base`` that looks like a backup (a dated name, a manifest or a marker)."""
    grouped: dict[str, dict[str, int]] = defaultdict(dict)
    newest: dict[str, datetime] = {}
    prefix = base.key("") if base.prefix else ""
    for page in _pages(s3, base.bucket, prefix):
        for obj in page.get("Contents", []):
            parent, _, name = obj["Key"].rpartition("/")
            grouped[parent][name] = int(obj["Size"])
            modified = obj.get("LastModified")
            if modified is not None and (parent not in newest or modified > newest[parent]):
                newest[parent] = modified
    listings = []
    for parent, sizes in grouped.items():
        dated = parse_folder_name(parent.rsplit("/", 1)[-1]) is not None
        if dated or MANIFEST in sizes or SUCCESS in sizes:
            listings.append(FolderListing(S3Location(base.bucket, parent), sizes, newest.get(parent)))
    return sorted(listings, key=lambda listing: listing.folder.prefix)


def _pages(s3: Any, bucket: str, prefix: str) -> Iterator[dict[str, Any]]:
    """ListObjectsV2 pages; a missing bucket is the user's mistake, named as such, not a traceback."""
    try:
        yield from s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            raise ParameterError(f"bucket: S3 bucket {bucket!r} does not exist") from None
        raise


def read_sidecar(s3: Any, folder: S3Location) -> Sidecar:
    body = s3.get_object(Bucket=folder.bucket, Key=folder.key(SIDECAR))["Body"].read()
    return Sidecar.from_json(body, folder.url_of(SIDECAR))


def summarize(s3: Any, listing: FolderListing) -> BackupSummary:
    if SIDECAR not in listing.sizes:
        return BackupSummary(listing, None, None, len(listing.data_files), listing.data_bytes)
    sidecar = read_sidecar(s3, listing.folder)
    return BackupSummary(listing, sidecar.item_count, str(sidecar.source.get("mode", "scan")), len(sidecar.files),
                         sidecar.byte_count, dict(sidecar.source))


def list_backups(s3: Any, base: S3Location) -> list[BackupSummary]:
    return [summarize(s3, listing) for listing in scan_listings(s3, base)]


def latest_complete(s3: Any, base: S3Location, table: str) -> S3Location:
    """The newest complete dated folder of ``table`` under ``base`` (``<base>/<table>/<date>``).

    Incremental folders hold a night's changes, not the table, so they are never picked.
    """
    table_base = base.child(table)
    dated = [
        listing for listing in scan_listings(s3, table_base)
        if listing.complete and parse_folder_name(listing.folder.prefix.rsplit("/", 1)[-1])
        and listing.folder.prefix.rsplit("/", 1)[0] == table_base.prefix
    ]
    for listing in reversed(dated):
        if SIDECAR not in listing.sizes or read_sidecar(s3, listing.folder).source.get("mode") != "incremental":
            return listing.folder
    raise BackupFolderError(f"{table_base}: no complete backup (a folder with _SUCCESS) of {table!r}"
                            + (" other than incremental ones (restore those with --as-of)" if dated else ""))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "?"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"
