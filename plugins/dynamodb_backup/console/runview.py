"""What a run's tab shows: each worker's figures and the units per second it consumed, from S3.

A backup's workers are in its folder's sidecar (read units); a restore's load workers each record their write
units beside the run's checkpoints (``loading.load.write_units_location``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from dynamodb_backup.aws.usage import UsageTimeline, merge, per_second
from dynamodb_backup.formats.catalog import folder_listings, json_records, read_sidecar
from dynamodb_backup.formats.layout import SIDECAR, S3Location
from dynamodb_backup.formats.sidecar import Sidecar


@dataclass
class WorkerRow:
    """One worker of a run: an export worker (read units) or a restore's load worker (write units)."""

    worker: str
    work: str
    """What it worked on: its segments (export) or files (restore)."""
    items: int
    bytes: int
    seconds: float | None
    units: float
    rate: float | None
    """The units per second it was allowed."""
    usage: UsageTimeline

    @property
    def _worked(self) -> tuple[float, bool] | None:
        """Seconds it worked, and whether that is only an upper bound. Start and finish are recorded to the
        second, so 0 means under one second; without them, the span of its 5 s usage intervals bounds it."""
        if self.seconds is not None:
            return (self.seconds, False) if self.seconds >= 1 else (1.0, True)
        if self.usage.units:
            return len(self.usage.units) * self.usage.interval, True
        return None

    @property
    def items_per_second(self) -> float | None:
        """Items per second, or a lower bound of it (see ``items_per_second_is_bound``); None only when the
        record has neither times nor usage."""
        if self.items == 0:
            return 0.0
        worked = self._worked
        return None if worked is None else self.items / worked[0]

    @property
    def items_per_second_is_bound(self) -> bool:
        worked = self._worked
        return self.items != 0 and worked is not None and worked[1]

    @property
    def megabytes(self) -> float:
        return self.bytes / 1e6


@dataclass
class RunView:
    """A run's workers and units per second against the allowed line: an export's read units (from the
    folder's sidecar) or a restore's write units (from its record beside the checkpoints)."""

    folder: S3Location
    """The folder the backup wrote, or the one the restore read."""
    complete: bool
    """Export: the folder has ``_SUCCESS``. Restore: its load workers recorded their units."""
    sidecar: Sidecar | None
    workers: list[WorkerRow]
    usage: UsageTimeline
    allowed_rate: float | None
    kind: str = "read"
    """read (a backup) or write (a restore)."""
    target: str | None = None
    """The restore's target table."""
    record: S3Location | None = None
    """Where a restore's write units were read from."""

    @property
    def series(self) -> list[tuple[float, float]]:
        return per_second(self.usage)


def _seconds(started: Any, finished: Any) -> float | None:
    try:
        return (datetime.fromisoformat(str(finished)) - datetime.fromisoformat(str(started))).total_seconds()
    except ValueError:
        return None


def _work(record: dict[str, Any]) -> str:
    if record.get("segments"):
        return ",".join(str(int(s)) for s in record["segments"])
    files, skipped = int(record.get("files") or 0), int(record.get("files_skipped") or 0)
    return f"{files} file{'' if files == 1 else 's'}" + (f" ({skipped} skipped: done before)" if skipped else "")


def worker_rows(records: list[dict[str, Any]], kind: str = "read") -> list[WorkerRow]:
    """Workers' records (a sidecar's ``workers``, or a restore's write-unit records), read defensively: an
    older record has no usage or no items, a field may be missing."""
    rows: list[WorkerRow] = []
    rate = f"{kind}_rate"
    for record in records:
        try:
            rows.append(WorkerRow(
                worker=str(record.get("worker", len(rows))), work=_work(record),
                items=int(record.get("items") or 0), bytes=int(record.get("bytes") or 0),
                seconds=_seconds(record.get("started"), record.get("finished")),
                units=float(record.get(f"consumed_{kind}_units") or 0.0),
                rate=None if record.get(rate) is None else float(record[rate]),
                usage=UsageTimeline.from_dict(record.get("usage"))))
        except (TypeError, ValueError):
            continue
    return rows


def _summed_rate(workers: list[WorkerRow]) -> float | None:
    """The run's allowed rate: its workers' shares added up (None unless every worker recorded one)."""
    if workers and all(w.rate is not None for w in workers):
        return sum(w.rate or 0.0 for w in workers)
    return None


def run_view(s3: Any, folder: S3Location) -> RunView:
    """What the run tab shows for a backup's ``folder`` (the sidecar when sealed; otherwise what it holds)."""
    parent, _, name = folder.prefix.rpartition("/")
    listing = folder_listings(s3, S3Location(folder.bucket, parent), [name])[name]
    sidecar = read_sidecar(s3, folder) if SIDECAR in listing.sizes else None
    workers = worker_rows(sidecar.workers) if sidecar is not None else []
    allowed = sidecar.read_rate if sidecar is not None and sidecar.read_rate is not None else _summed_rate(workers)
    return RunView(folder, listing.complete, sidecar, workers, merge(w.usage for w in workers), allowed)


def restore_view(s3: Any, record: S3Location, folder: S3Location, target: str | None) -> RunView:
    """What the run tab shows for a restore: each load worker's record under ``record``
    (``loading.load.write_units_location``), their write units per second against ratio x capacity."""
    records = sorted(json_records(s3, record), key=lambda r: (len(str(r.get("worker"))), str(r.get("worker"))))
    workers = worker_rows(records, "write")
    return RunView(folder, bool(workers), None, workers, merge(w.usage for w in workers), _summed_rate(workers),
                   "write", target, record)
