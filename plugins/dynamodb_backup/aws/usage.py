"""Capacity used over time: units consumed per interval (5 s), recorded by a worker as it goes.

The backup's sidecar keeps one timeline per export worker (read units) and a restore keeps one per
load worker (write units), so the console can draw units per second over the run against the line
the ratio allows, from the backup itself rather than from CloudWatch. Buckets are aligned to
multiples of the interval in Unix time, so timelines of workers on other machines add up.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from dynamodb_backup.aws.throttle import TokenBucket

INTERVAL_SECONDS = 5.0


@dataclass
class UsageTimeline:
    """Units consumed in each ``interval``-second bucket from ``start`` (Unix seconds) on."""

    interval: float = INTERVAL_SECONDS
    start: float | None = None
    units: list[float] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, units: float, when: float | None = None) -> None:
        when = time.time() if when is None else when
        with self._lock:
            slot = math.floor(when / self.interval) * self.interval
            if self.start is None:
                self.start = slot
            if slot < self.start:  # a clock step backwards: prepend empty buckets
                self.units[:0] = [0.0] * round((self.start - slot) / self.interval)
                self.start = slot
            index = round((slot - self.start) / self.interval)
            if index >= len(self.units):
                self.units.extend([0.0] * (index + 1 - len(self.units)))
            self.units[index] += units

    @property
    def total(self) -> float:
        return sum(self.units)

    def to_dict(self) -> dict[str, Any]:
        return {"interval_seconds": self.interval, "start": self.start, "units": [round(u, 3) for u in self.units]}

    @classmethod
    def from_dict(cls, data: Any) -> UsageTimeline:
        """A recorded timeline; anything unreadable (an old sidecar has none) is an empty one."""
        if not isinstance(data, dict):
            return cls()
        try:
            start = data.get("start")
            return cls(float(data.get("interval_seconds") or INTERVAL_SECONDS),
                       None if start is None else float(start), [float(u) for u in data.get("units") or []])
        except (TypeError, ValueError):
            return cls()


def merge(timelines: Iterable[UsageTimeline], interval: float = INTERVAL_SECONDS) -> UsageTimeline:
    """The sum of several timelines (the workers of one run) on one time axis."""
    merged = UsageTimeline(interval)
    for timeline in timelines:
        if timeline.start is None:
            continue
        for i, units in enumerate(timeline.units):
            merged.add(units, timeline.start + i * timeline.interval)
    return merged


class RecordingBucket(TokenBucket):
    """A token bucket that also records every charge in a timeline (for write units of a restore)."""

    def __init__(self, rate: float, timeline: UsageTimeline | None = None, **kwargs: Any) -> None:
        super().__init__(rate=rate, **kwargs)
        self.timeline = timeline or UsageTimeline()

    def charge(self, units: float) -> None:
        super().charge(units)
        self.timeline.add(units)


def per_second(timeline: UsageTimeline) -> list[tuple[float, float]]:
    """(seconds from the first bucket, units per second in that bucket) for a chart."""
    return [(i * timeline.interval, u / timeline.interval) for i, u in enumerate(timeline.units)]


