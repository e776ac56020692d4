"""A Data Pipeline Schedule (``period``, ``startDateTime``/``startAt``, ``occurrences``) as an Airflow schedule."""

from __future__ import annotations

import re
from datetime import datetime

PERIOD = re.compile(r"^\s*(\d+)\s*(minute|hour|day|week|month|year)s?\s*$", re.IGNORECASE)


def airflow_schedule(period: str, start: str | None) -> tuple[str | None, list[str]]:
    """(schedule, notes); None with a note when the period has no exact cron equivalent."""
    match = PERIOD.match(period)
    if not match:
        return None, [f"period {period!r}: not 'N minutes|hours|days|weeks|months'"]
    n, unit = int(match.group(1)), match.group(2).lower()
    moment = None
    notes: list[str] = []
    if start:
        try:
            moment = datetime.fromisoformat(start)
        except ValueError:
            notes.append(f"startDateTime {start!r} is not a date and time; runs start at midnight UTC")
    minute, hour = (moment.minute, moment.hour) if moment else (0, 0)
    if moment and moment.second:
        notes.append(f"startDateTime {start}: the seconds are dropped (cron has minutes)")
    if unit == "minute" and 60 % n == 0 and n >= 15:
        return f"{minute % n}-59/{n} * * * *" if minute % n else f"*/{n} * * * *", notes
    if unit == "hour" and 24 % n == 0:
        if n == 1:
            return ("@hourly" if minute == 0 else f"{minute} * * * *"), notes
        return f"{minute} {hour % n}-23/{n} * * *", notes
    if unit == "day" and n == 1:
        return ("@daily" if (minute, hour) == (0, 0) else f"{minute} {hour} * * *"), notes
    if unit == "week" and n == 1:
        if moment is None:
            return "@weekly", notes
        return f"{minute} {hour} * * {(moment.weekday() + 1) % 7}", notes
    if unit == "month" and n == 1:
        if moment is None:
            return "@monthly", notes
        return f"{minute} {hour} {moment.day} * *", notes
    return None, [*notes, f"period {period!r} has no exact cron equivalent: write the schedule yourself"]
