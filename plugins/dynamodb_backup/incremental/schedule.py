"""Which schedules an incremental backup can follow: intervals of 15 minutes to 24 hours.

Why at parse time: DynamoDB refuses an incremental export window shorter than 15 minutes or
longer than 24 hours, so a DAG whose intervals fall outside that would fail every night.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

from dynamodb_backup.errors import ParameterError

MIN_WINDOW = timedelta(minutes=15)
MAX_WINDOW = timedelta(hours=24)
#: Airflow's presets that have a fixed cron form.
PRESETS = {"@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
           "@monthly": "0 0 1 * *", "@quarterly": "0 0 1 */3 *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"}
#: Fire times looked at; enough to see every gap of a daily or hourly cron over a year's quirks.
SAMPLES = 400


def cron_of(schedule: str | None) -> str:
    if not schedule or schedule in ("@once", "@continuous"):
        raise ParameterError(f"schedule: mode incremental needs a cron schedule with intervals between "
                             f"{_show(MIN_WINDOW)} and {_show(MAX_WINDOW)}, got {schedule!r}")
    return PRESETS.get(schedule, schedule)


def check_incremental_schedule(schedule: str | None) -> tuple[timedelta, timedelta]:
    """The shortest and longest interval of ``schedule``; raise if either is outside 15 min..24 h."""
    from croniter import croniter  # Airflow's own dependency; only DAG parsing gets here

    expression = cron_of(schedule)
    try:
        times = croniter(expression, datetime(2025, 1, 1, tzinfo=UTC))
        fires = [times.get_next(datetime) for _ in range(SAMPLES)]
    except (ValueError, KeyError) as exc:
        raise ParameterError(f"schedule: {schedule!r} is not a cron expression ({exc})") from None
    gaps = [b - a for a, b in pairwise(fires)]
    shortest, longest = min(gaps), max(gaps)
    if shortest < MIN_WINDOW or longest > MAX_WINDOW:
        raise ParameterError(
            f"schedule: {schedule!r} gives intervals from {_show(shortest)} to {_show(longest)}, but DynamoDB "
            f"exports the changes of a window of {_show(MIN_WINDOW)} to {_show(MAX_WINDOW)} only; each run of "
            "mode incremental exports its own data interval, so pick a schedule between the two")
    return shortest, longest


def _show(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440} d"
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"
