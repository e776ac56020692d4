"""Finding backups in S3: which dated folders exist, which are complete, what they hold."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import ClientError

from dynamodb_backup.errors import ParameterError
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


def latest_complete(s3: Any, base: S3Location, table: str, datapipeline: tuple[S3Location, ...] = ()) -> S3Location:
    """The newest complete dated folder of ``table``: ``<base>/<table>/<date>``, or ``<output>/<date>`` under
    one of its Data Pipeline output folders (see :mod:`dynamodb_backup.formats.tablebackups`)."""
    from dynamodb_backup.formats.tablebackups import newest_complete, table_backups  # it lists through this module

    return newest_complete(s3, table_backups(table, base, datapipeline))


def age(moment: datetime | None, now: datetime | None = None) -> str:
    if moment is None:
        return "?"
    seconds = ((now or datetime.now(UTC)) - moment).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{max(seconds, 0):.0f}s"


# --------------------------------------------------------------------------- paged listing (the console)

#: Restore drill records: ``<base>/<table>/_drills/<folder name>.json``.
DRILLS = "_drills"


def child_names(s3: Any, base: S3Location) -> list[str]:
    """Names of the "folders" directly under ``base`` (ListObjectsV2 with a delimiter), sorted."""
    names: list[str] = []
    prefix = base.key("") if base.prefix else ""
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=base.bucket, Prefix=prefix, Delimiter="/")
        for page in pages:
            names.extend(p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", []))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchBucket", "404"):
            raise ParameterError(f"bucket: S3 bucket {base.bucket!r} does not exist") from None
        raise
    return sorted(names)


def dated_folder_names(s3: Any, table_base: S3Location) -> list[str]:
    """The dated backup folders of one table (``<base>/<table>/``), oldest first: one call per 1,000."""
    return [name for name in child_names(s3, table_base) if parse_folder_name(name) is not None]


def folder_listings(s3: Any, table_base: S3Location, names: list[str]) -> dict[str, FolderListing]:
    """The listings of ``names`` (folders of one table), read in one key range, not one call per folder.

    Folder names sort as their dates, so a page of neighbouring folders is one contiguous range of keys:
    start after the first folder's name and stop past the last one. Nested keys (``_checkpoints/``, a
    kept native export) are left out, as :func:`scan_listings` leaves them out of a folder's sizes.
    """
    if not names:
        return {}
    wanted = set(names)
    first, last = min(names), max(names)
    base = table_base.key("")
    end = base + last + "/\U0010ffff"
    sizes: dict[str, dict[str, int]] = {name: {} for name in names}
    newest: dict[str, datetime] = {}
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=table_base.bucket, Prefix=base, StartAfter=base + first)
    for page in pages:
        contents = page.get("Contents", [])
        for obj in contents:
            key: str = obj["Key"]
            if key > end:
                break
            folder, _, name = key[len(base):].partition("/")
            if folder not in wanted or "/" in name:
                continue
            sizes[folder][name] = int(obj["Size"])
            modified = obj.get("LastModified")
            if modified is not None and (folder not in newest or modified > newest[folder]):
                newest[folder] = modified
        if contents and contents[-1]["Key"] > end:
            break
    return {name: FolderListing(table_base.child(name), sizes[name], newest.get(name)) for name in names}


def success_time(s3: Any, folder: S3Location) -> datetime | None:
    """When ``_SUCCESS`` was written (the backup completed), or None when the folder has none."""
    try:
        head = s3.head_object(Bucket=folder.bucket, Key=folder.key(SUCCESS))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    modified: datetime | None = head.get("LastModified")
    return modified


def newest_complete_folder(s3: Any, table_base: S3Location, names: list[str],
                           max_checks: int = 20) -> tuple[str, datetime] | None:
    """The newest of ``names`` (oldest first) with ``_SUCCESS``, and when it completed.

    A HEAD per folder from the newest down: normally one or two (a running or failed night first).
    """
    for name in list(reversed(names))[:max_checks]:
        done = success_time(s3, table_base.child(name))
        if done is not None:
            return name, done
    return None


#: The seal's pointer to a table's newest complete folder: ``<base>/<table>/_newest.json``. A file beside the
#: dated folders, not a folder, so folder listings (``ls``, retention, the console's pages) never see it.
NEWEST = "_newest.json"


def read_newest(s3: Any, table_base: S3Location, extra: dict[str, Any] | None = None) -> str | None:
    """The folder name the pointer names, or None (no pointer, or one that does not name a dated folder)."""
    try:
        doc = orjson.loads(s3.get_object(Bucket=table_base.bucket, Key=table_base.key(NEWEST),
                                         **(extra or {}))["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    except orjson.JSONDecodeError:
        return None
    name = doc.get("folder") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and parse_folder_name(name) is not None else None


def write_newest(s3: Any, folder: S3Location, put_extra: dict[str, Any] | None = None) -> bool:
    """Point ``<table>/_newest.json`` at ``folder`` (just sealed) unless it names a newer folder already (a
    backfill sealing an old date). Returns whether it was written."""
    parent, _, name = folder.prefix.rpartition("/")
    table_base = S3Location(folder.bucket, parent)
    owner = {k: v for k, v in (put_extra or {}).items() if k == "ExpectedBucketOwner"}
    current = read_newest(s3, table_base, owner)
    if current is not None and current > name:
        return False
    body = orjson.dumps({"folder": name, "sealed": datetime.now(UTC).isoformat(timespec="seconds")})
    s3.put_object(Bucket=folder.bucket, Key=table_base.key(NEWEST), Body=body, **(put_extra or {}))
    return True


def newest_by_pointer(s3: Any, table_base: S3Location) -> tuple[str, datetime] | None:
    """The folder the pointer names and when its ``_SUCCESS`` was written: one GET and one HEAD. None when
    there is no pointer or its folder has no ``_SUCCESS`` (deleted by retention, being overwritten)."""
    name = read_newest(s3, table_base)
    done = success_time(s3, table_base.child(name)) if name is not None else None
    return None if name is None or done is None else (name, done)


def drill_keys(s3: Any, table_base: S3Location) -> dict[str, str]:
    """Restore drill records of one table, by backup folder name: one listing of ``_drills/``."""
    drills = table_base.child(DRILLS)
    prefix = drills.key("")
    found: dict[str, str] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=drills.bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if name.endswith(".json") and "/" not in name:
                found[name[:-len(".json")]] = obj["Key"]
    return found


def read_drill(s3: Any, bucket: str, key: str) -> dict[str, Any]:
    """A drill record, read defensively: whatever is wrong with it becomes ``result: "unreadable"``."""
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        doc = orjson.loads(body)
    except (ClientError, orjson.JSONDecodeError) as exc:
        return {"result": "unreadable", "error": str(exc)[:200]}
    if not isinstance(doc, dict):
        return {"result": "unreadable", "error": "not a JSON object"}
    result = doc.get("result")
    doc["result"] = result if result in ("passed", "failed") else "unreadable"
    return doc


def json_records(s3: Any, location: S3Location) -> list[dict[str, Any]]:
    """The JSON objects directly under ``location`` (a restore's write-unit records), in key order;
    an unreadable one is left out (the page shows what it can)."""
    prefix = location.key("")
    keys = [obj["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=prefix)
            for obj in page.get("Contents", []) if obj["Key"].endswith(".json") and "/" not in obj["Key"][len(prefix):]]
    records = []
    for key in sorted(keys):
        try:
            doc = orjson.loads(s3.get_object(Bucket=location.bucket, Key=key)["Body"].read())
        except (ClientError, orjson.JSONDecodeError):
            continue
        if isinstance(doc, dict):
            records.append(doc)
    return records
