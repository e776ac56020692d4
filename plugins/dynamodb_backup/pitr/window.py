"""The point-in-time recovery window, and whether a moment can be exported from it yet.

Why a module of its own: every pitr run asks the same three questions before it
spends anything (is PITR on, is the moment inside the window, is it restorable
yet), and the answers must be the same in the CLI, the Airflow plan task and its
deferred wait. ``LatestRestorableDateTime`` trails the clock by about five
minutes, so a nightly run whose moment is "now" waits rather than fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import ParameterError

#: The window's edges AWS gives are whole seconds; so are our folder names.
Verdict = Literal["ready", "wait"]


class PitrDisabledError(ParameterError):
    """Point-in-time recovery is off for the table: no export can be taken from it."""


def enable_hint(table: str) -> str:
    return (f"turn it on with `aws dynamodb update-continuous-backups --table-name {table} "
            "--point-in-time-recovery-specification PointInTimeRecoveryEnabled=true` "
            "(exports can then reach back to the moment it was turned on)")


def utc(moment: datetime) -> datetime:
    """A tz-aware UTC datetime (botocore parses timestamps into the local zone)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def whole_second(moment: datetime) -> datetime:
    return utc(moment).replace(microsecond=0)


def iso(moment: datetime) -> str:
    return utc(moment).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class PitrWindow:
    table: str
    enabled: bool
    earliest: datetime | None = None
    latest: datetime | None = None

    @classmethod
    def from_response(cls, table: str, response: dict[str, Any]) -> PitrWindow:
        """From DescribeContinuousBackups. PITR is ``PointInTimeRecoveryStatus``, not the backups status."""
        pitr = response.get("ContinuousBackupsDescription", {}).get("PointInTimeRecoveryDescription", {})
        if pitr.get("PointInTimeRecoveryStatus") != "ENABLED":
            return cls(table, False)
        earliest, latest = pitr.get("EarliestRestorableDateTime"), pitr.get("LatestRestorableDateTime")
        return cls(table, True, utc(earliest) if earliest else None, utc(latest) if latest else None)

    def describe(self) -> str:
        if not self.enabled:
            return f"point-in-time recovery is off for table {self.table!r}"
        return (f"table {self.table!r} can be exported from {iso(self.earliest) if self.earliest else '?'} "
                f"to {iso(self.latest) if self.latest else '?'}")


def read_window(dynamodb: Any, table: str) -> PitrWindow:
    response = call_with_retries(lambda: dynamodb.describe_continuous_backups(TableName=table))
    return PitrWindow.from_response(table, response)


def judge_export_time(window: PitrWindow, at: datetime, now: datetime) -> Verdict:
    """``ready`` if ``at`` can be exported now, ``wait`` if it will be soon; raise if it never can.

    ``at`` after ``now`` is refused (a backup of the future), as is ``at`` before the
    window's start. ``at`` between the latest restorable time and now is the
    trailing lag: worth waiting for.
    """
    at, now = utc(at), utc(now)
    if not window.enabled:
        raise PitrDisabledError(f"table {window.table!r} has point-in-time recovery off, so mode pitr cannot "
                                f"export it; {enable_hint(window.table)}, or set mode: scan")
    if at > now:
        raise ParameterError(f"export time {iso(at)} is in the future (now {iso(now)}); {window.describe()}")
    if window.earliest is not None and at < window.earliest:
        raise ParameterError(f"export time {iso(at)} is before the recovery window: {window.describe()}")
    if window.latest is not None and at > window.latest:
        return "wait"
    return "ready"
