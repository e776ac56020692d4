"""Progress of long work (export, restore load): items, MB, rate and time left, at least every 10 s.

Two pieces:

- :class:`Progress` counts one worker's work. On its own it logs a line at most every ``every``
  seconds, when work is added (a task's log).
- :class:`ProgressReport` is the whole job's view: its counters are shared memory the workers
  add to, in this process or in worker processes (give ``initializer``/``initargs`` to the process
  pool), and a thread of its own says where the job is every ``every`` seconds, whether or not
  any work finished meanwhile (a load paced by a small index may write one item in seconds).
  With stderr a terminal it draws a rich progress bar instead of the lines.

While a report is open, workers' :class:`Progress` objects add to it instead of logging lines of
their own, so a job with 4 worker processes says one line, not four.
"""

from __future__ import annotations

import logging
import multiprocessing
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol


class InfoLog(Protocol):
    """A logger (the standard library's, or an Airflow task's)."""

    def info(self, msg: Any, /, *args: Any) -> Any: ...


#: How often progress is said, unless a caller says otherwise (tests make it short).
EVERY_SECONDS = 10.0

#: Workers hand their counts to the shared counters at most this often (a lock per hand-over).
SYNC_SECONDS = 0.5


def progress_line(label: str, items: int, nbytes: int, milli_units: int, elapsed: float, expected: int) -> str:
    elapsed = max(elapsed, 1e-9)
    rate = items / elapsed
    if expected > items and rate > 0:
        left = f"{(expected - items) / rate:,.0f} s left (estimate)"
    elif expected and items >= expected:
        left = "nearly done"
    elif expected:
        left = "time left unknown (nothing written yet)"
    else:
        left = "time left unknown (table size not reported yet)"
    of = f" of {expected:,}" if expected else ""
    return (f"{label}: {items:,}{of} items, {nbytes / 1e6:,.1f} MB, {rate:,.1f} items/s, "
            f"{milli_units / 1000 / elapsed:,.1f} units/s, {left}")


class SharedCounts:
    """Items, bytes and thousandths of a capacity unit, in shared memory (inherited by worker processes)."""

    def __init__(self) -> None:
        self.values = multiprocessing.get_context().Array("q", 3)

    def add(self, items: int, nbytes: int, milli_units: int) -> None:
        with self.values.get_lock():
            self.values[0] += items
            self.values[1] += nbytes
            self.values[2] += milli_units

    def read(self) -> tuple[int, int, int]:
        with self.values.get_lock():
            return self.values[0], self.values[1], self.values[2]


_shared: SharedCounts | None = None


def use_shared(counts: SharedCounts | None) -> None:
    """Make this process's :class:`Progress` objects add to ``counts`` (a process pool's initializer)."""
    global _shared
    _shared = counts


class Progress:
    """Counts one worker's work; logs a line at most every ``every`` seconds unless a report is open."""

    def __init__(
        self, label: str, expected_items: int, log: logging.Logger,
        every: float | None = None, clock: Callable[[], float] = time.monotonic,
    ) -> None:
        every = EVERY_SECONDS if every is None else every
        self.label, self.expected, self.log, self.every, self.clock = label, expected_items, log, every, clock
        self.items = 0
        self.bytes = 0
        self.units = 0.0
        self.start = clock()
        self.shared = _shared
        self._next = self.start + (SYNC_SECONDS if self.shared else every)
        self._unsent = [0, 0, 0.0]

    def due(self) -> bool:
        """Whether adding now would say (or hand over) something: cheap enough to ask per item."""
        return self.clock() >= self._next

    def add(self, items: int, nbytes: int, units: float) -> None:
        self.items += items
        self.bytes += nbytes
        self.units += units
        self._unsent[0] += items
        self._unsent[1] += nbytes
        self._unsent[2] += units
        if self.clock() < self._next:
            return
        if self.shared is not None:
            self._next = self.clock() + SYNC_SECONDS
            self._hand_over()
        else:
            self._next = self.clock() + self.every
            self.log.info("%s", self.line())

    def _hand_over(self) -> None:
        if self.shared is not None:
            items, nbytes, units = self._unsent
            self.shared.add(int(items), int(nbytes), round(units * 1000))
            self._unsent = [0, 0, 0.0]

    def line(self) -> str:
        return progress_line(self.label, self.items, self.bytes, round(self.units * 1000), self.clock() - self.start,
                             self.expected)

    def done(self) -> None:
        if self.shared is not None:
            self._hand_over()
        else:
            self.log.info("%s (finished)", self.line())


def stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class ProgressReport:
    """The whole job's progress: shared counters, a line every ``every`` s (or a bar in a terminal)."""

    def __init__(self, label: str, expected_items: int, log: InfoLog, *, expected_bytes: int = 0,
                 every: float | None = None, clock: Callable[[], float] = time.monotonic,
                 bar: bool | None = None) -> None:
        self.label, self.expected, self.expected_bytes, self.log = label, expected_items, expected_bytes, log
        self.every, self.clock = EVERY_SECONDS if every is None else every, clock
        self.bar = stderr_is_terminal() if bar is None else bar
        self.counts = SharedCounts()
        self.lines = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._previous: SharedCounts | None = None
        self._rich: Any = None
        self._task: Any = None
        self._moved: list[tuple[logging.StreamHandler[Any], Any]] = []
        self.start = clock()

    @property
    def initializer(self) -> Callable[[SharedCounts | None], None]:
        return use_shared

    @property
    def initargs(self) -> tuple[SharedCounts]:
        return (self.counts,)

    def line(self) -> str:
        items, nbytes, milli_units = self.counts.read()
        return progress_line(self.label, items, nbytes, milli_units, self.clock() - self.start, self.expected)

    def say(self) -> None:
        self.lines += 1
        self.log.info("%s", self.line())

    def __enter__(self) -> ProgressReport:
        global _shared
        self._previous, _shared = _shared, self.counts
        self.start = self.clock()
        if self.bar:
            self._start_bar()
        self._thread = threading.Thread(target=self._run, name=f"progress {self.label}", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        interval = 0.5 if self.bar else self.every
        while not self._stop.wait(interval):
            if self.bar:
                self._update_bar()
            else:
                self.say()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        global _shared
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        _shared = self._previous
        if self.bar:
            self._update_bar()
            self._stop_bar()
        self.log.info("%s (%s)", self.line(), "finished" if kind is None else "stopped")

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
        from rich.progress import Progress as RichProgress

        self._rich = RichProgress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("items"),
            TextColumn("{task.fields[mb]} MB, {task.fields[rate]} items/s"), TimeElapsedColumn(),
            TextColumn("left"), TimeRemainingColumn(), console=Console(stderr=True), transient=False)
        self._task = self._rich.add_task(self.label, total=self.expected or None, mb="0.0", rate="0")
        original = sys.stderr
        self._rich.start()  # in a terminal, stderr now goes through the bar's console: move logging's handlers
        if sys.stderr is original:
            return
        for handler in logging.getLogger().handlers:
            if isinstance(handler, logging.StreamHandler) and handler.stream is original:
                handler.setStream(sys.stderr)
                self._moved.append((handler, original))

    def _update_bar(self) -> None:
        items, nbytes, _ = self.counts.read()
        elapsed = max(self.clock() - self.start, 1e-9)
        self._rich.update(self._task, completed=items, mb=f"{nbytes / 1e6:,.1f}", rate=f"{items / elapsed:,.1f}")

    def _stop_bar(self) -> None:
        self._rich.stop()
        for handler, stream in self._moved:
            handler.setStream(stream)
        self._moved.clear()
