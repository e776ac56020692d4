"""Our sidecar file: what Data Pipeline's manifest does not say about a backup.

It holds the full table description (to recreate the table), per-file item counts
and checksums (to validate a restore before any write), totals, and when the data
was actually read next to the run's logical date (a backfill reads today's table).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import orjson

from dynamodb_backup import __version__
from dynamodb_backup.errors import BackupFolderError

SIDECAR_FORMAT = 1

#: DescribeTable members worth keeping to recreate a table; the rest is state.
_TABLE_KEYS = (
    "TableName", "TableArn", "KeySchema", "AttributeDefinitions", "BillingModeSummary",
    "ProvisionedThroughput", "GlobalSecondaryIndexes", "LocalSecondaryIndexes",
    "StreamSpecification", "SSEDescription", "TableClassSummary", "DeletionProtectionEnabled",
    "OnDemandThroughput", "ItemCount", "TableSizeBytes", "CreationDateTime",
)


@dataclass(frozen=True)
class FileRecord:
    """One data file of a backup, as a worker wrote it."""

    name: str
    segment: int
    items: int
    bytes: int
    sha256: str

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileRecord:
        return cls(
            name=str(data["name"]), segment=int(data["segment"]), items=int(data["items"]),
            bytes=int(data["bytes"]), sha256=str(data["sha256"]),
        )


@dataclass
class Sidecar:
    table: dict[str, Any]
    logical_date: str
    snapshot_start: str
    snapshot_end: str
    compression: str
    total_segments: int
    files: list[FileRecord]
    consumed_read_units: float = 0.0
    time_to_live: dict[str, Any] | None = None
    tags: list[dict[str, str]] = field(default_factory=list)
    #: Where the data came from: ``{"mode": "scan"}``, or ``{"mode": "pitr", "export_arn": ..., ...}``.
    source: dict[str, Any] = field(default_factory=lambda: {"mode": "scan"})
    #: Per export worker: segments, items, bytes, started, finished, consumed read units and ``usage``, the
    #: read units it consumed per 5 s (``{"interval_seconds", "start", "units"}``). Empty in older sidecars.
    workers: list[dict[str, Any]] = field(default_factory=list)
    #: Read units per second the whole run was allowed (ratio x capacity); None in older sidecars and pitr.
    read_rate: float | None = None
    format: int = SIDECAR_FORMAT
    tool: str = f"dynamodb-backup {__version__}"

    @property
    def item_count(self) -> int:
        return sum(f.items for f in self.files)

    @property
    def byte_count(self) -> int:
        return sum(f.bytes for f in self.files)

    def to_json(self) -> bytes:
        doc = asdict(self)
        doc["item_count"] = self.item_count
        doc["byte_count"] = self.byte_count
        return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    @classmethod
    def from_json(cls, data: bytes, where: str) -> Sidecar:
        try:
            doc = orjson.loads(data)
            if doc.get("format") != SIDECAR_FORMAT:
                raise BackupFolderError(f"{where}: unsupported sidecar format {doc.get('format')!r}")
            return cls(
                table=doc["table"], logical_date=doc["logical_date"],
                snapshot_start=doc["snapshot_start"], snapshot_end=doc["snapshot_end"],
                compression=doc["compression"], total_segments=int(doc["total_segments"]),
                files=[FileRecord.from_dict(f) for f in doc["files"]],
                consumed_read_units=float(doc.get("consumed_read_units", 0.0)),
                time_to_live=doc.get("time_to_live"), tags=list(doc.get("tags") or []),
                source=dict(doc.get("source") or {"mode": "scan"}), tool=str(doc.get("tool", "")),
                workers=[w for w in doc.get("workers") or [] if isinstance(w, dict)],
                read_rate=None if doc.get("read_rate") is None else float(doc["read_rate"]),
            )
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupFolderError(f"{where}: sidecar is not readable ({exc!r})") from None


def table_summary(description: dict[str, Any]) -> dict[str, Any]:
    """The parts of DescribeTable's ``Table`` we keep, made JSON-safe."""
    kept = {k: description[k] for k in _TABLE_KEYS if k in description}
    loaded: dict[str, Any] = orjson.loads(orjson.dumps(kept, default=str))
    return loaded
