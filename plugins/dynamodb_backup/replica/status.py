"""Console data for a streamed table: its recovery point, its replicas' lag, and its gaps.

A pure reading of S3 (the backups, the stream's progress and gap markers, the replicas'
progress): no DynamoDB call, so the console can show it for any table it can list.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.replica.progress import list_replicas
from dynamodb_backup.repository.segments import list_segments
from dynamodb_backup.repository.streamprogress import GapMarker, read_gaps
from dynamodb_backup.restore.streamchain import (
    at,
    base_chain,
    blocking_gap,
    gap_interval,
    newest_second,
    second,
)


@dataclass
class RecoveryPoint:
    """The newest second a restore can reach now, and from what (for the console)."""

    second: int | None
    """None: no full backup to replay the stream onto."""
    base: str | None
    gaps: list[GapMarker]
    blocked_by: GapMarker | None = None
    """The gap that holds the recovery point back (records after it are stored, but no base follows it)."""


def recovery_point(s3: Any, base: S3Location, table: str, now: datetime) -> RecoveryPoint:
    """The newest second with a continuous chain from a base: the newest stored change after the newest base,
    unless a gap after that base holds it back (then the second before the gap)."""
    gaps = read_gaps(s3, base, table)
    try:
        chain = base_chain(s3, base, table, now)
    except BackupFolderError:
        return RecoveryPoint(None, None, gaps)
    floor = second(chain.point)
    newest = newest_second(s3, base.bucket, list_segments(s3, base, table))
    reach = max(newest if newest is not None else floor, floor)
    gap = blocking_gap(gaps, chain, reach)
    if gap is not None:
        first = gap_interval(gap)[0]
        reach = max(floor, first - 1) if first is not None else floor
    return RecoveryPoint(reach, chain.full.folder.uri, gaps, gap)


def stream_status(s3: Any, base: S3Location, table: str, now: datetime | None = None) -> dict[str, Any]:
    """Per table, JSON-ready::

        {"table", "recovery_point" (ISO second or None), "recovery_point_age_seconds", "base" (the full the
         point stands on), "held_back_by_gap" (bool),
         "gaps": [{"kind", "from" (ISO second or None: unknown), "to", "message", "new_base"}],
         "replicas": [{"replica", "to_table", "to_region", "lag_seconds", "newest_applied", "caught_up",
                       "applied", "updated_at"}]}
    """
    now = now or datetime.now(UTC)
    point = recovery_point(s3, base, table, now)
    gaps = [{"kind": gap.kind, "from": at(gap.last_seconds) if gap.last_seconds is not None else None,
             "to": at(gap.detected_seconds), "message": gap.message,
             "new_base": gap.base.get("folder")} for gap in point.gaps]
    replicas = [{"replica": r.replica, "to_table": r.to_table, "to_region": r.to_region,
                 "lag_seconds": r.lag_seconds(now),
                 "newest_applied": at(r.newest_seconds) if r.newest_seconds is not None else None,
                 "caught_up": r.caught_up, "applied": r.applied, "updated_at": r.updated_at}
                for r in list_replicas(s3, base, table)]
    return {"table": table,
            "recovery_point": at(point.second) if point.second is not None else None,
            "recovery_point_age_seconds": None if point.second is None else max(0.0, now.timestamp() - point.second),
            "base": point.base, "held_back_by_gap": point.blocked_by is not None,
            "gaps": gaps, "replicas": replicas}
