"""What a backup folder holds: which format, which files, what checksums and counts to expect.

Why: a restore must accept our own backups, real AWS Data Pipeline backups (with
or without a manifest, possibly copied from another bucket) and native DynamoDB
exports, and must refuse an incomplete or inconsistent folder before any table
is touched. Inspection only lists and reads small metadata files.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from dataclasses import asdict, dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError

from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location
from dynamodb_backup.formats.manifest import parse_manifest
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.repository.reader import read_small

log = logging.getLogger(__name__)

OURS, DATAPIPELINE, DATAPIPELINE_NOMANIFEST, NATIVE = "ours", "datapipeline", "datapipeline-nomanifest", "native"
#: How a file's lines are decoded: Data Pipeline lines (incl. Hive-era) or native export lines.
DECODE_DATAPIPELINE, DECODE_NATIVE = "datapipeline", "native"
NATIVE_DIR = "AWSDynamoDB"
NATIVE_SUMMARY, NATIVE_FILES, NATIVE_STARTED = "manifest-summary.json", "manifest-files.json", "_started"
_METADATA = {MANIFEST, SUCCESS, SIDECAR}


@dataclass(frozen=True)
class SourceFile:
    """One data file to restore: its full key, how to decode it, and what to expect of it."""

    key: str
    decoder: str
    size: int
    sha256: str | None = None
    md5: str | None = None
    items: int | None = None

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceFile:
        return cls(**data)


@dataclass
class BackupSource:
    """A backup folder, inspected: its format and the files a restore reads."""

    folder: S3Location
    format: str
    complete: bool
    files: list[SourceFile]
    table: dict[str, Any] | None = None
    """The source table's description, from our sidecar (keys, indexes, billing...)."""
    time_to_live: dict[str, Any] | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    expected_items: int | None = None
    notes: list[str] = field(default_factory=list)

    def url_of(self, file: SourceFile) -> str:
        return f"s3://{self.folder.bucket}/{file.key}"

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def describe(self) -> str:
        kind = {OURS: "a backup written by this tool (sidecar: checksums and counts)",
                DATAPIPELINE: "an AWS Data Pipeline backup with a version 3 manifest",
                DATAPIPELINE_NOMANIFEST: "an AWS Data Pipeline backup without a manifest (every file is data)",
                NATIVE: "a native DynamoDB export (ExportTableToPointInTime)"}[self.format]
        items = f"{self.expected_items:,} items" if self.expected_items is not None else "item count unknown"
        state = "complete" if self.complete else "INCOMPLETE (forced)"
        return (f"{self.folder.uri}/ is {kind}: {len(self.files)} data files, {self.total_bytes:,} bytes, "
                f"{items}, {state}")

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["folder"] = self.folder.uri
        return doc

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BackupSource:
        doc = dict(data)
        doc["folder"] = S3Location.parse(doc["folder"], "folder")
        doc["files"] = [SourceFile.from_dict(f) for f in doc["files"]]
        return cls(**doc)


def list_children(s3: Any, folder: S3Location) -> tuple[dict[str, int], list[str]]:
    """Objects directly in ``folder`` (name -> size) and its sub-folder names."""
    files: dict[str, int] = {}
    subfolders: list[str] = []
    prefix = folder.key("")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=folder.bucket, Prefix=prefix, Delimiter="/"):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(prefix):]
            if name:
                files[name] = int(obj["Size"])
        subfolders += [p["Prefix"][len(prefix):].rstrip("/") for p in page.get("CommonPrefixes", [])]
    return files, subfolders


def inspect_folder(s3: Any, folder: S3Location, force: bool = False) -> BackupSource:
    """Detect the folder's format and list what to restore; refuse an incomplete folder unless ``force``."""
    files, subfolders = list_children(s3, folder)
    in_export = folder.prefix.rsplit("/", 2)[-2:-1] == [NATIVE_DIR]
    if in_export or {NATIVE_SUMMARY, NATIVE_FILES, NATIVE_STARTED} & set(files):
        source = _native(s3, folder, files, force)
    elif NATIVE_DIR in subfolders and not {SIDECAR, MANIFEST} & set(files):
        exports = [n for n in list_children(s3, folder.child(NATIVE_DIR))[1] if not n.startswith("_")]
        if len(exports) != 1:
            listed = ", ".join(folder.child(NATIVE_DIR, n).uri + "/" for n in exports) or "none"
            raise BackupFolderError(
                f"{folder}/{NATIVE_DIR}/ holds {len(exports)} native exports ({listed}); give the one to restore"
            )
        export = folder.child(NATIVE_DIR, exports[0])
        source = _native(s3, export, list_children(s3, export)[0], force)
    elif SIDECAR in files:
        source = _ours(s3, folder, files)
    elif MANIFEST in files:
        source = _datapipeline(s3, folder, files)
    else:
        data = sorted(n for n in files if not n.startswith(("_", ".")) and not n.endswith("_$folder$"))
        if not data and SUCCESS not in files:
            raise BackupFolderError(f"{folder}/: no backup here (no data files, manifest, sidecar or native export)")
        source = BackupSource(folder, DATAPIPELINE_NOMANIFEST, SUCCESS in files,
                              [SourceFile(folder.key(n), DECODE_DATAPIPELINE, files[n]) for n in data])
        skipped = sorted(n for n in files if n.startswith(("_", ".")) and n != SUCCESS)
        if skipped:
            source.notes.append(f"skipped names starting with '_' or '.': {', '.join(skipped)}")
    if not source.complete:
        what = ("has no complete manifest-summary.json / manifest-files.json (the export did not finish)"
                if source.format == NATIVE else f"has no {SUCCESS} marker (the backup did not finish)")
        if not force:
            raise BackupFolderError(f"{source.folder}/ {what}; refusing to restore it (force restores it anyway)")
        source.notes.append(f"forced: the folder {what}")
    for note in source.notes:
        log.info("%s: %s", source.folder, note)
    log.info("%s", source.describe())
    return source


def _ours(s3: Any, folder: S3Location, files: dict[str, int]) -> BackupSource:
    sidecar = Sidecar.from_json(read_small(s3, folder.bucket, folder.key(SIDECAR)), folder.url_of(SIDECAR))
    if sidecar.source.get("format") == NATIVE:
        return _ours_native(s3, folder, files, sidecar)
    records = []
    for record in sidecar.files:
        size = files.get(record.name)
        if size is None:
            raise BackupFolderError(f"{folder.url_of(record.name)}: listed in the sidecar but missing from the folder")
        if size != record.bytes:
            raise BackupFolderError(
                f"{folder.url_of(record.name)}: {size} bytes, the sidecar recorded {record.bytes}; file damaged")
        records.append(SourceFile(folder.key(record.name), DECODE_DATAPIPELINE, size, sha256=record.sha256,
                                  items=record.items))
    return BackupSource(folder, OURS, SUCCESS in files, records, table=sidecar.table,
                        time_to_live=sidecar.time_to_live, tags=sidecar.tags, expected_items=sidecar.item_count)


def _ours_native(s3: Any, folder: S3Location, files: dict[str, int], sidecar: Sidecar) -> BackupSource:
    """A pitr backup kept in DynamoDB's native layout: the export inside the folder, our sidecar beside it."""
    relative = str(sidecar.source.get("native_export") or "")
    if not relative.startswith(f"{NATIVE_DIR}/") or ".." in relative.split("/"):
        raise BackupFolderError(f"{folder.url_of(SIDECAR)}: native_export {relative!r} is not an export inside "
                                "the folder")
    export = folder.child(*relative.split("/"))
    native = _native(s3, export, list_children(s3, export)[0], force=False)
    if native.expected_items != sidecar.item_count:
        raise BackupFolderError(f"{export}/: {native.expected_items} items in manifest-files.json, the sidecar "
                                f"recorded {sidecar.item_count}")
    return BackupSource(folder, NATIVE, SUCCESS in files and native.complete, native.files, table=sidecar.table,
                        time_to_live=sidecar.time_to_live, tags=sidecar.tags, expected_items=sidecar.item_count,
                        notes=native.notes)


def resolve_entry(folder: S3Location, url: str) -> tuple[str, bool]:
    """The key in ``folder`` a manifest entry means, and whether it was re-pointed by file name.

    Entries inside ``folder`` are used as they are. Others (a backup copied from
    another bucket or prefix) are taken to be the file of the same name in ``folder``.
    """
    bucket, _, key = url[5:].partition("/")
    parts = key.split("/")
    if not key or any(p in ("", ".", "..") for p in parts):
        raise BackupFolderError(f"manifest entry {url!r} does not name a plain file (empty, '.' or '..' path "
                                "segments); cannot resolve it inside the folder")
    if parts[-1] in _METADATA or parts[-1].startswith((".", "_")):
        raise BackupFolderError(f"manifest entry {url!r} names a metadata file, not data")
    inside = bucket == folder.bucket and (not folder.prefix or key.startswith(folder.key("")))
    return (key, False) if inside else (folder.key(parts[-1]), True)


def _datapipeline(s3: Any, folder: S3Location, files: dict[str, int]) -> BackupSource:
    where = folder.url_of(MANIFEST)
    entries = parse_manifest(read_small(s3, folder.bucket, folder.key(MANIFEST)), where)
    result: list[SourceFile] = []
    seen: dict[str, str] = {}
    moved: set[str] = set()
    for entry in entries:
        key, resolved = resolve_entry(folder, entry.url)
        if key in seen:
            raise BackupFolderError(f"{where}: entries {seen[key]!r} and {entry.url!r} both mean "
                                    f"s3://{folder.bucket}/{key}")
        seen[key] = entry.url
        rel = key[len(folder.key("")):] if folder.prefix else key
        size = files.get(rel) if "/" not in rel else _size_of(s3, folder.bucket, key)
        if size is None:
            also = f" (resolved by file name to s3://{folder.bucket}/{key})" if resolved else ""
            raise BackupFolderError(f"{where}: entry {entry.url}{also} is missing from the folder")
        if resolved:
            moved.add(entry.url.rsplit("/", 1)[0])
        result.append(SourceFile(key, DECODE_DATAPIPELINE, size))
    source = BackupSource(folder, DATAPIPELINE, SUCCESS in files, result)
    if moved:
        source.notes.append(f"manifest entries point at {', '.join(sorted(moved))}; resolved them by file name "
                            f"to {folder.uri}/ (the backup was copied)")
    strays = sorted(n for n in files if n not in _METADATA and not n.startswith(("_", "."))
                    and folder.key(n) not in seen)
    if strays:
        source.notes.append(f"ignored {len(strays)} files the manifest does not list: {', '.join(strays[:10])}")
    return source


def _size_of(s3: Any, bucket: str, key: str) -> int | None:
    try:
        return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode("ascii")


def _checked(s3: Any, folder: S3Location, name: str, files: dict[str, int]) -> bytes:
    """A native manifest file, checked against its ``.md5`` companion when there is one."""
    data = read_small(s3, folder.bucket, folder.key(name))
    md5_name = name.rsplit(".", 1)[0] + ".md5"
    if md5_name in files:
        expected = read_small(s3, folder.bucket, folder.key(md5_name)).decode("ascii", "replace").strip()
        if expected != _md5_b64(data):
            raise BackupFolderError(f"{folder.url_of(name)}: MD5 {_md5_b64(data)} differs from {md5_name} "
                                    f"({expected}); the manifest is damaged")
    return data


def inspect_export(s3: Any, export: S3Location, *, incremental_ok: bool = False) -> BackupSource:
    """One native export (``.../AWSDynamoDB/<id>``), full or, with ``incremental_ok``, incremental."""
    return _native(s3, export, list_children(s3, export)[0], force=False, incremental_ok=incremental_ok)


def _native(s3: Any, folder: S3Location, files: dict[str, int], force: bool,
            incremental_ok: bool = False) -> BackupSource:
    export_id = folder.prefix.rsplit("/", 1)[-1]
    incremental = False
    summary: dict[str, Any] = {}
    if NATIVE_SUMMARY in files:
        summary = _json(_checked(s3, folder, NATIVE_SUMMARY, files), folder.url_of(NATIVE_SUMMARY))
        if summary.get("outputFormat", "DYNAMODB_JSON") != "DYNAMODB_JSON":
            raise BackupFolderError(f"{folder}/: export format {summary.get('outputFormat')!r} is not supported "
                                    "(only DYNAMODB_JSON)")
        incremental = summary.get("exportType") == "INCREMENTAL_EXPORT"
        if incremental and not incremental_ok:
            raise BackupFolderError(f"{folder}/: an incremental export holds changes, not a table; restore the "
                                    "full export it applies to instead")
    # Incremental exports put their data in the folder shared by all exports under the prefix.
    data_dir = S3Location(folder.bucket, folder.prefix.rsplit("/", 1)[0]) if incremental else folder
    data_files = {f"data/{n}": size for n, size in list_children(s3, data_dir.child("data"))[0].items()}
    result: list[SourceFile] = []
    if NATIVE_FILES in files:
        text = _checked(s3, folder, NATIVE_FILES, files)
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            where = f"{folder.url_of(NATIVE_FILES)} line {number}"
            entry = _json(line, where)
            original = str(entry.get("dataFileS3Key", ""))
            marker = f"{NATIVE_DIR}/" if incremental else f"{NATIVE_DIR}/{export_id}/"
            rel = original.rsplit(marker, 1)[1] if marker in original else ""
            if not rel or any(p in ("", ".", "..") for p in rel.split("/")):
                raise BackupFolderError(f"{where}: data file {original!r} is not inside export {export_id}")
            if rel not in data_files:
                raise BackupFolderError(f"{where}: data file {original!r} is missing from {folder}/")
            try:
                items = int(entry["itemCount"])
                md5 = str(entry["md5Checksum"])
            except (KeyError, TypeError, ValueError):
                raise BackupFolderError(f"{where}: entry lacks itemCount or md5Checksum") from None
            result.append(SourceFile(data_dir.key(rel), DECODE_NATIVE, data_files[rel], md5=md5, items=items))
    elif force:
        result = [SourceFile(data_dir.key(rel), DECODE_NATIVE, size) for rel, size in sorted(data_files.items())
                  if rel.endswith(".json.gz")]
    expected = sum(f.items or 0 for f in result) if NATIVE_FILES in files else None
    if summary and expected is not None and int(summary.get("itemCount", expected)) != expected:
        raise BackupFolderError(f"{folder.url_of(NATIVE_SUMMARY)}: itemCount {summary.get('itemCount')} differs "
                                f"from the {expected} items manifest-files.json lists")
    source = BackupSource(folder, NATIVE, bool(summary) and NATIVE_FILES in files, result, expected_items=expected)
    bucket = summary.get("s3Bucket")
    if bucket and bucket != folder.bucket:
        source.notes.append(f"exported to bucket {bucket!r}; data files resolved inside {folder.uri}/")
    return source


def _json(data: bytes, where: str) -> dict[str, Any]:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BackupFolderError(f"{where}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BackupFolderError(f"{where}: not a JSON object")
    return doc
