"""Progress lines for task logs: items, MB, read units per second, time left."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class Progress:
    """Counts work and logs a line at most every ``every`` seconds."""

    def __init__(
        self, label: str, expected_items: int, log: logging.Logger,
        every: float = 10.0, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.expected, self.log, self.every, self.clock = label, expected_items, log, every, clock
        self.items = 0
        self.bytes = 0
        self.units = 0.0
        self.start = clock()
        self._next = self.start + every

    def add(self, items: int, nbytes: int, units: float) -> None:
        self.items += items
        self.bytes += nbytes
        self.units += units
        if self.clock() >= self._next:
            self._next = self.clock() + self.every
            self.log.info("%s", self.line())

    def line(self) -> str:
        elapsed = max(self.clock() - self.start, 1e-9)
        rate = self.items / elapsed
        if self.expected > self.items and rate > 0:
            left = f"{(self.expected - self.items) / rate:.0f} s left (estimate)"
        elif self.expected:
            left = "nearly done"
        else:
            left = "time left unknown (table size not reported yet)"
        return (
            f"{self.label}: {self.items:,} items, {self.bytes / 1e6:.1f} MB, "
            f"{rate:,.0f} items/s, {self.units / elapsed:,.1f} units/s, {left}"
        )

    def done(self) -> None:
        self.log.info("%s (finished)", self.line())
