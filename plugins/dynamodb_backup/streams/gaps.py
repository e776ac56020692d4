"""A broken chain: marked in S3, a new base taken at once, and a notice for the shell to send.

Why: stream records live 24 hours. When the backup's progress is older than what the stream still
holds, records are gone, and no restore may silently cross that hole. So the hole is written
down (a gap marker, with the last second known good and the second it was found), a new base is
taken at once (a PITR export when PITR is on, else a scan: the existing backup jobs), and the
marker names it. Reading resumes at the oldest record the stream still holds, which is before
the base began, so the base plus the segments after it is a whole chain again.

A tail's first run is a chain start: no earlier segments exist, so a base is taken the same way
and a ``started`` marker written; it is not a notice (nothing was lost).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, ClientFactory, run_backup
from dynamodb_backup.formats.layout import S3Location, backup_folder
from dynamodb_backup.pitr.job import run_pitr_backup
from dynamodb_backup.pitr.window import read_window
from dynamodb_backup.repository.streamprogress import GapMarker, write_gap

log = logging.getLogger(__name__)

STARTED = "started"
TRIMMED = "trimmed"
SHARD_VANISHED = "shard-vanished"
STREAM_CHANGED = "stream-changed"
EXPIRED = "expired"
#: Kinds that mean records may be missing: each is a notice.
BREAKS = (TRIMMED, SHARD_VANISHED, STREAM_CHANGED, EXPIRED)

#: Takes a new base of the table; returns what it made (``{"mode", "folder", "items"}``).
BaseTaker = Callable[[str], dict[str, Any]]


def take_base_backup(make_client: ClientFactory, destination: S3Location,
                     settings: ExportSettings | None = None, poll_seconds: float = 10.0) -> BaseTaker:
    """A base taker using the backup jobs: PITR's export when PITR is on, else a scan, both at now.

    A PITR export waits until ``now`` is restorable (AWS: about 5 minutes) and for the export.
    """

    def take(table: str) -> dict[str, Any]:
        now = datetime.now(UTC).replace(microsecond=0)
        request = BackupRequest(table=table, destination=destination, logical_date=now,
                                settings=settings or ExportSettings())
        if read_window(make_client("dynamodb"), table).enabled:
            sidecar, mode = run_pitr_backup(make_client, request, poll_seconds=poll_seconds), "pitr"
        else:
            sidecar, mode = run_backup(make_client, request), "scan"
        folder = backup_folder(destination, table, now).uri
        return {"mode": mode, "folder": folder, "logical_date": now.isoformat(),
                "items": sidecar.item_count if sidecar else None}

    return take


def record_break(s3: Any, base: S3Location, gap: GapMarker, take_base: BaseTaker | None) -> GapMarker:
    """Write ``gap``, take the new base, write the marker again naming it (or why there is none)."""
    write_gap(s3, base, gap)
    log.log(logging.WARNING if gap.kind in BREAKS else logging.INFO, "stream chain of table %s: %s: %s",
            gap.table, gap.kind, gap.message)
    if take_base is None:
        return gap
    try:
        made = take_base(gap.table)
    except Exception as exc:  # the marker must still say the chain is broken, and why no base came
        log.exception("taking a new base of %s failed", gap.table)
        done = replace(gap, base={"error": f"{type(exc).__name__}: {exc}"})
        write_gap(s3, base, done)
        raise
    done = replace(gap, base=made)
    write_gap(s3, base, done)
    log.info("new base of %s: %s (%s)", gap.table, made.get("folder"), made.get("mode"))
    return done


def new_gap(table: str, kind: str, message: str, **facts: Any) -> GapMarker:
    return GapMarker(table=table, kind=kind, detected_at=datetime.now(UTC).isoformat(), message=message, **facts)


def notice_line(gap: GapMarker) -> str:
    """One line for an operator: what broke, since when, and the new base."""
    since = (datetime.fromtimestamp(gap.last_seconds, UTC).isoformat() if gap.last_seconds is not None
             else "the start")
    made = gap.base.get("folder") or gap.base.get("error") or "none taken"
    return (f"stream backup of table {gap.table}: chain broken ({gap.kind}) between {since} and {gap.detected_at}: "
            f"{gap.message}; new base: {made}")
