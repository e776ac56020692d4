"""Data Pipeline's ``manifest`` (name "DynamoDB-export", version 3): exact bytes out, tolerant in."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from dynamodb_backup.errors import BackupFolderError

MANIFEST_NAME = "DynamoDB-export"
MANIFEST_VERSION = 3


def render_manifest(urls: Iterable[str]) -> bytes:
    """The manifest bytes, byte-for-byte in the shape Data Pipeline wrote.

    Header, newline, entries separated by ",\\n", no trailing newline.
    """
    entries = ",\n".join(
        '{"url":' + orjson.dumps(url).decode() + ',"mandatory":true}' for url in urls
    )
    return (
        '{"name":"' + MANIFEST_NAME + '","version":' + str(MANIFEST_VERSION) + ",\n"
        '"entries": [\n' + entries + "\n]}"
    ).encode()


@dataclass(frozen=True)
class ManifestEntry:
    url: str
    mandatory: bool


def parse_manifest(data: bytes, where: str) -> list[ManifestEntry]:
    """Read a manifest as Data Pipeline's importer did: only version and entry URLs matter."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BackupFolderError(f"{where}: manifest is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise BackupFolderError(f"{where}: manifest is not a JSON object")
    version = doc.get("version")
    if version != MANIFEST_VERSION:
        raise BackupFolderError(
            f"{where}: unknown manifest version {version!r} (only version {MANIFEST_VERSION} is supported)"
        )
    entries = doc.get("entries")
    if not isinstance(entries, list):
        raise BackupFolderError(f"{where}: manifest has no 'entries' list")
    result = []
    for i, entry in enumerate(entries):
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not url.startswith("s3://"):
            raise BackupFolderError(f"{where}: entries[{i}] has no s3:// url")
        result.append(ManifestEntry(url=url, mandatory=bool(entry.get("mandatory", True))))
    return result
