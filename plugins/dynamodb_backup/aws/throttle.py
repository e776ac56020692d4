"""Capacity rate limiting, charged by the ConsumedCapacity DynamoDB returns.

A call's cost is only known after it returns (a Scan page is charged for what it
evaluated), so the bucket works on debt: ``wait()`` blocks while the balance is
negative, the call goes ahead, then ``charge()`` takes what the response reported.
Over any window of T seconds the units consumed stay within ``rate * T`` plus the
burst and at most one call's cost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Seconds of capacity the bucket may bank, as the EMR connector's limiter did.
DEFAULT_BURST_SECONDS = 5.0


@dataclass
class TokenBucket:
    """A token bucket refilled at ``rate`` units per second, allowed to go into debt."""

    rate: float
    burst_seconds: float = DEFAULT_BURST_SECONDS
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _tokens: float = field(init=False)
    _last: float = field(init=False)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    charged: float = field(init=False, default=0.0)
    waited: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        # Start with one second of credit, not a full burst, so a run never opens
        # with a spike above its share.
        self._tokens = min(self.rate, self.capacity)
        self._last = self.clock()

    @property
    def capacity(self) -> float:
        return self.rate * self.burst_seconds

    def set_rate(self, rate: float) -> None:
        """Change the refill rate (the table's capacity was re-read)."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        with self._lock:
            self._refill()
            self.rate = rate
            self._tokens = min(self._tokens, self.capacity)

    def _refill(self) -> None:
        now = self.clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def wait(self) -> float:
        """Block until the balance is positive; return the seconds waited."""
        total = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens > 0:
                    self.waited += total
                    return total
                delay = -self._tokens / self.rate + 1e-3
            self.sleep(delay)
            total += delay

    def charge(self, units: float) -> None:
        """Take ``units`` (the consumed capacity of a finished call) from the bucket."""
        with self._lock:
            self._refill()
            self._tokens -= units
            self.charged += units

    def units_per_call(self, seconds: float = 1.0) -> float:
        """How many units a single call may cost to keep pacing smooth."""
        return max(1.0, self.rate * seconds)


class CapacityWatcher:
    """Re-reads a table's capacity now and then and retunes a bucket (tables scale).

    ``read_rate`` returns the rate the bucket should have right now, e.g.
    ``ratio * provisioned RCU * share``.
    """

    def __init__(
        self,
        bucket: TokenBucket,
        read_rate: Callable[[], float],
        every_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.bucket = bucket
        self.read_rate = read_rate
        self.every_seconds = every_seconds
        self.clock = clock
        self._next = clock() + every_seconds

    def refresh_if_due(self) -> None:
        """Re-read the capacity if a minute has passed, and retune the bucket."""
        now = self.clock()
        if now < self._next:
            return
        self._next = now + self.every_seconds
        rate = self.read_rate()
        if rate > 0 and abs(rate - self.bucket.rate) > 1e-9:
            self.bucket.set_rate(rate)


class SimulatedClock:
    """A clock whose sleep advances time instantly: for tests and rate simulations."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
