"""Finding and checking an incremental chain: a full backup, then the links that reach a moment.

Why its own module: a restore to a moment must know, before it writes anything,
that the folders it will read describe the table without a hole. The folders of
a table are named after the moment their chain state reaches; their sidecars say
what they are (``source.mode`` pitr: a full at ``export_time``; incremental: the
changes of ``[export_from, export_to)``). Links chain exactly: a link starts where
the chain so far ends. Only complete folders (``_SUCCESS``) count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.catalog import read_sidecar
from dynamodb_backup.formats.layout import SIDECAR, SUCCESS, S3Location, parse_folder_name
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.pitr.window import iso, utc
from dynamodb_backup.repository.inspection import DECODE_NATIVE, SourceFile, list_children
from dynamodb_backup.repository.reader import read_small

log = logging.getLogger(__name__)

FULL, INCREMENTAL = "full", "incremental"
VIEW_WITH_OLD = "NEW_AND_OLD_IMAGES"


def parse_moment(text: str, what: str = "time") -> datetime:
    """An ISO-8601 time (``2026-11-25T06:00:00Z``) as a UTC datetime; naive means UTC."""
    try:
        return utc(datetime.fromisoformat(str(text).strip().replace("Z", "+00:00")))
    except ValueError:
        raise BackupFolderError(f"{what}: {text!r} is not an ISO-8601 time such as 2026-11-25T06:00:00Z") from None


def _created(value: Any) -> str:
    """CreationDateTime as a sidecar stores it (a string, or epoch seconds), normalised to the millisecond."""
    if isinstance(value, int | float):
        return f"{float(value):.3f}"
    try:
        return f"{utc(datetime.fromisoformat(str(value).replace('Z', '+00:00'))).timestamp():.3f}"
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class Link:
    """A complete folder of the chain: a full (``start == end``, its export time) or the changes of [start, end)."""

    folder: S3Location
    role: str
    start: datetime
    end: datetime
    sidecar: Sidecar = field(compare=False, repr=False)

    @property
    def table(self) -> tuple[str, str]:
        """(TableArn, CreationDateTime): the same for every backup of one table, different for a re-created one."""
        described = self.sidecar.table
        return str(described.get("TableArn") or described.get("TableName")), _created(described.get("CreationDateTime"))

    @property
    def table_id(self) -> str | None:
        return (self.sidecar.source.get("chain") or {}).get("table_id")

    @property
    def view(self) -> str | None:
        return self.sidecar.source.get("view")

    def same_table(self, other: Link) -> bool:
        ids = (self.table_id, other.table_id)
        return self.table == other.table and (None in ids or ids[0] == ids[1])

    def describe(self) -> str:
        if self.role == FULL:
            return f"{self.folder.uri}/ (full at {iso(self.end)})"
        return f"{self.folder.uri}/ (changes {iso(self.start)}..{iso(self.end)})"


@dataclass
class Folder:
    """A dated folder of the table as listed: complete or not, and what its sidecar says if it has one."""

    folder: S3Location
    named: datetime
    complete: bool
    link: Link | None


def link_of(folder: S3Location, sidecar: Sidecar) -> Link | None:
    """The folder as a chain link, or None if it is neither a pitr full nor an incremental."""
    source = sidecar.source
    where = folder.url_of(SIDECAR)
    if source.get("mode") == "pitr" and source.get("export_time"):
        at = parse_moment(source["export_time"], f"{where} export_time")
        return Link(folder, FULL, at, at, sidecar)
    if source.get("mode") == INCREMENTAL:
        start = parse_moment(source.get("export_from", ""), f"{where} export_from")
        end = parse_moment(source.get("export_to", ""), f"{where} export_to")
        if end <= start:
            raise BackupFolderError(f"{where}: export_to {iso(end)} is not after export_from {iso(start)}")
        return Link(folder, INCREMENTAL, start, end, sidecar)
    return None


def dated_folders(s3: Any, base: S3Location, table: str) -> list[tuple[datetime, S3Location]]:
    """The dated folders directly under ``<base>/<table>/`` (one listing), oldest first."""
    table_base = base.child(table)
    named = ((parse_folder_name(name), table_base.child(name)) for name in list_children(s3, table_base)[1])
    return sorted(((moment, folder) for moment, folder in named if moment is not None), key=lambda n: n[0])


def read_folder(s3: Any, folder: S3Location, named: datetime) -> Folder:
    """One folder: complete or not, and the link its sidecar describes (if any)."""
    files = list_children(s3, folder)[0]
    link = link_of(folder, read_sidecar(s3, folder)) if SIDECAR in files else None
    return Folder(folder, named, SUCCESS in files and SIDECAR in files, link)


def relevant_folders(s3: Any, base: S3Location, table: str, moment: datetime) -> list[Folder]:
    """The folders a chain to ``moment`` can use, read newest first back to the newest complete full at or
    before it, then forward past it to the first complete link (one may cover the moment); oldest first.

    Folders are named after the moment they reach, so nothing older than that full, and nothing
    after the link past the moment, is read: a year of nightly folders costs a few reads, not hundreds.
    """
    named = dated_folders(s3, base, table)
    found: list[Folder] = []
    for when, folder in reversed([n for n in named if n[0] <= moment]):
        found.append(read_folder(s3, folder, when))
        if found[-1].complete and found[-1].link and found[-1].link.role == FULL:
            break
    for when, folder in [n for n in named if n[0] > moment]:
        found.append(read_folder(s3, folder, when))
        if found[-1].complete and found[-1].link and found[-1].link.role == INCREMENTAL:
            break
    return sorted(found, key=lambda f: f.named)


@dataclass
class Chain:
    """What a restore to ``moment`` reads: ``full``, then ``links`` in order, reaching ``point`` (<= moment)."""

    moment: datetime
    full: Link
    links: list[Link]
    covering: Link | None = None
    """The complete link whose window holds ``moment`` (not applied: a link is all or nothing)."""

    @property
    def point(self) -> datetime:
        return self.links[-1].end if self.links else self.full.end

    @property
    def verifiable(self) -> bool:
        """Every link carries old images, so the described state's digest can be computed without a key map."""
        return all(link.view == VIEW_WITH_OLD for link in self.links)

    def describe(self) -> str:
        steps = [self.full.describe()] + [link.describe() for link in self.links]
        exact = "exactly" if self.point == self.moment else f"the newest chain point at or before {iso(self.moment)}"
        return f"restoring to {iso(self.point)} ({exact}): " + " -> ".join(steps)


def _gap(end: datetime, upper: datetime, folders: list[Folder], extra: str = "") -> BackupFolderError:
    notes = [f"{f.folder.uri}/ has no {SUCCESS} (not a link)" for f in folders
             if not f.complete and end < f.named <= upper]
    detail = "; ".join(notes + ([extra] if extra else []))
    return BackupFolderError(f"no complete incremental covers {iso(end)}..{iso(upper)}"
                             + (f" ({detail})" if detail else "") + "; refusing before anything is written")


def find_chain(s3: Any, base: S3Location, table: str, moment: datetime) -> Chain:
    """The chain that restores ``table`` to ``moment``: the newest complete full at or before it and the links
    after it, in order, up to the newest chain point at or before ``moment``.

    Refuses (naming the missing interval) when a night is missing or incomplete, when a link is of another
    table, or when nothing reaches ``moment``.
    """
    moment = utc(moment)
    folders = relevant_folders(s3, base, table, moment)
    fulls = [f.link for f in folders if f.complete and f.link and f.link.role == FULL and f.link.end <= moment]
    if not fulls:
        raise BackupFolderError(f"{base.child(table)}/: no complete full (pitr) backup of {table!r} at or before "
                                f"{iso(moment)}; refusing before anything is written")
    full = max(fulls, key=lambda link: link.end)
    links = [f.link for f in folders if f.complete and f.link and f.link.role == INCREMENTAL
             and f.link.start >= full.end]
    chain = Chain(moment, full, [])
    end = full.end
    while end < moment:
        starting = [link for link in links if link.start == end]
        last = chain.links[-1] if chain.links else full  # a link must be of the full's table, and of the link before
        strangers = [link for link in starting if not (link.same_table(full) and link.same_table(last))]
        if strangers:
            other = strangers[0]
            raise _gap(end, other.end, folders, f"{other.folder.uri}/ holds changes of another table "
                       f"({other.table[0]} created {other.table[1]}, chain table id {other.table_id}), not of "
                       f"{last.folder.uri}/'s ({last.table[0]} created {last.table[1]}, chain table id "
                       f"{last.table_id})")
        if not starting:
            later = [link.start for link in links if link.start > end and link.same_table(full)]
            raise _gap(end, min(later) if later else moment, folders)
        reaching = [link for link in starting if link.end <= moment]
        if not reaching:
            chain.covering = min(starting, key=lambda link: link.end)
            break
        step = max(reaching, key=lambda link: link.end)
        chain.links.append(step)
        end = step.end
    log.info("%s", chain.describe())
    return chain


def refuse_incremental(s3: Any, folder: S3Location) -> None:
    """A plain restore of an incremental folder is refused, saying how to use it instead."""
    files = list_children(s3, folder)[0]
    if SIDECAR not in files:
        return
    link = link_of(folder, read_sidecar(s3, folder))
    if link is not None and link.role == INCREMENTAL:
        raise BackupFolderError(
            f"{folder}/ is an incremental backup: the changes of {iso(link.start)}..{iso(link.end)}, not a table. "
            "Restore the table as it was at a moment with --as-of (restore DAG: as_of), which loads the full "
            "backup and applies the links, or apply this one night to a table holding the previous point with "
            "--apply")


def link_files(s3: Any, link: Link) -> list[SourceFile]:
    """The data files of an incremental link, from its sidecar, checked against the folder and the export's
    manifests (names, sizes, line counts, window) without reading the data."""
    folder, sidecar = link.folder, link.sidecar
    listed = {f"{prefix}/{name}" if prefix else name: size
              for prefix in ("", "AWSDynamoDB/data")
              for name, size in list_children(s3, folder.child(prefix) if prefix else folder)[0].items()}
    files = []
    for record in sidecar.files:
        size = listed.get(record.name)
        if size is None:
            raise BackupFolderError(f"{folder.url_of(record.name)}: listed in the sidecar but missing")
        if size != record.bytes:
            raise BackupFolderError(f"{folder.url_of(record.name)}: {size} bytes, the sidecar recorded "
                                    f"{record.bytes}; file damaged")
        files.append(SourceFile(folder.key(record.name), DECODE_NATIVE, size, sha256=record.sha256,
                                items=record.items))
    _check_manifests(s3, link, {r.name: r.items for r in sidecar.files})
    return files


def _check_manifests(s3: Any, link: Link, counts: dict[str, int]) -> None:
    export = str(link.sidecar.source.get("native_export") or "")
    if not export.startswith("AWSDynamoDB/") or ".." in export.split("/"):
        raise BackupFolderError(f"{link.folder.url_of(SIDECAR)}: native_export {export!r} is not an export inside "
                                "the folder")
    where = link.folder.child(export)
    try:
        summary = orjson.loads(read_small(s3, where.bucket, where.key("manifest-summary.json")))
        lines = read_small(s3, where.bucket, where.key("manifest-files.json")).splitlines()
        manifest = {str(e["dataFileS3Key"]).rsplit("AWSDynamoDB/", 1)[-1]: int(e["itemCount"])
                    for e in map(orjson.loads, filter(None, lines))}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BackupFolderError(f"{where}/: unreadable manifest ({exc!r})") from None
    if summary.get("exportType") != "INCREMENTAL_EXPORT":
        raise BackupFolderError(f"{where}/: not an incremental export ({summary.get('exportType')!r})")
    window = (parse_moment(summary.get("exportFromTime", ""), f"{where} exportFromTime"),
              parse_moment(summary.get("exportToTime", ""), f"{where} exportToTime"))
    if window != (link.start, link.end):
        raise BackupFolderError(f"{where}/: the export covers {iso(window[0])}..{iso(window[1])}, the sidecar says "
                                f"{iso(link.start)}..{iso(link.end)}")
    mine = {name.rsplit("AWSDynamoDB/", 1)[-1]: items for name, items in counts.items()}
    if manifest != mine:
        raise BackupFolderError(f"{where}/: manifest-files.json lists {sorted(manifest.items())}, the sidecar "
                                f"{sorted(mine.items())}")
