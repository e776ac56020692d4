"""Table-to-table copy (what the archived DynamoDB import/export tool did), bounded and resumable.

Why this shape: each thread scans one segment page by page and writes a page
before reading the next, so memory holds one page per thread and nothing queues
up (the old tool's unbounded queue); every write is retried until DynamoDB takes
it or the copy fails naming the segment (the old tool's silent partial copies);
both sides are paced by the capacity DynamoDB reports consumed, with an assumed
capacity for on-demand tables (where the old tool divided by zero). After each
fully written page the segment's position and digest are checkpointed, so a
retried worker resumes at its last completed page instead of rescanning.
Planning (what every share must agree on) is in ``tablecopy.plan``.
"""

from __future__ import annotations

import base64
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from dynamodb_backup.aws.throttle import CapacityWatcher, TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY
from dynamodb_backup.backup.scan import scan_segment, wire_key_to_client
from dynamodb_backup.errors import BackupError, ParameterError
from dynamodb_backup.formats.codec.canonical import TableDigest
from dynamodb_backup.loading.load import BatchWriter
from dynamodb_backup.progress import Progress, ProgressReport
from dynamodb_backup.restore.verify import (
    Sample,
    default_read_rate,
    describe_sample,
    sample_table_differences,
    table_digest,
)
from dynamodb_backup.tablecopy.plan import CopyPlan, RateReaders

log = logging.getLogger(__name__)
DEFAULT_THREADS = 4
"""Segments copied at once per process: enough to overlap the two round trips."""
VERIFY_SEGMENTS = 32


class CopyMismatch(BackupError):
    """Verification found the destination differs from what was copied."""


# --------------------------------------------------------------------------- checkpoints


@dataclass
class SegmentState:
    """How far one segment got: the key after its last fully written page, and what it holds."""

    segment: int
    total_segments: int
    last_key: dict[str, Any] | None = None
    done: bool = False
    pages: int = 0
    items: int = 0
    read_units: float = 0.0
    write_units: float = 0.0
    digest: TableDigest = field(default_factory=TableDigest)

    def to_dict(self) -> dict[str, Any]:
        key = None if self.last_key is None else {
            name: {"B": base64.b64encode(v["B"]).decode()} if "B" in v else v for name, v in self.last_key.items()}
        return {**asdict(self), "last_key": key, "digest": self.digest.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SegmentState:
        key = data.get("last_key")
        return cls(**{**data, "last_key": wire_key_to_client(key) if key else None,
                      "digest": TableDigest.from_dict(data["digest"])})


class CheckpointStore(Protocol):
    def load(self, segment: int, total_segments: int) -> SegmentState | None: ...
    def save(self, state: SegmentState) -> None: ...
    def flush(self) -> None: ...


def checked(state: SegmentState | None, total_segments: int, where: str) -> SegmentState | None:
    """A segment number means nothing under another segment count: refuse such a checkpoint."""
    if state is not None and state.total_segments != total_segments:
        raise ParameterError(f"{where}: checkpoint of segment {state.segment} was written for "
                             f"{state.total_segments} segments, not {total_segments}; use the same "
                             "segment count or a fresh checkpoint location")
    return state


class MemoryCheckpoints:
    """Checkpoints that live as long as the process (the default: resume within one run only)."""

    def __init__(self) -> None:
        self.states: dict[int, SegmentState] = {}

    def load(self, segment: int, total_segments: int) -> SegmentState | None:
        return checked(self.states.get(segment), total_segments, "checkpoint")

    def save(self, state: SegmentState) -> None:
        self.states[state.segment] = state

    def flush(self) -> None:
        pass


# --------------------------------------------------------------------------- copying


def client_value(value: dict[str, Any]) -> dict[str, Any]:
    """A wire-form value (binary as base64 text) in boto3's client form (bytes); numbers stay text."""
    ((kind, inner),) = value.items()
    if kind == "B":
        return {"B": base64.b64decode(inner)}
    if kind == "BS":
        return {"BS": [base64.b64decode(b) for b in inner]}
    if kind == "M":
        return {"M": {k: client_value(v) for k, v in inner.items()}}
    if kind == "L":
        return {"L": [client_value(v) for v in inner]}
    return value


def client_item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: client_value(value) for name, value in item.items()}


@dataclass
class CopyResult:
    states: list[SegmentState]
    seconds: float
    resumed_items: int = 0
    """Items of these segments copied by an earlier attempt (read from checkpoints)."""

    @property
    def items(self) -> int:
        return sum(s.items for s in self.states)

    @property
    def digest(self) -> TableDigest:
        total = TableDigest()
        for state in self.states:
            total.merge(state.digest)
        return total

    def to_dict(self) -> dict[str, Any]:
        return {"segments": [s.segment for s in self.states], "items": self.items, "seconds": self.seconds,
                "resumed_items": self.resumed_items,
                "read_units": sum(s.read_units for s in self.states),
                "write_units": sum(s.write_units for s in self.states), "digest": self.digest.to_dict()}


class _Stopped(Exception):
    """Another segment of this worker failed; stop at a page boundary."""


def copy_segments(
    source_client: Any, dest_client: Any, source_table: str, dest_table: str, segments: Sequence[int],
    total_segments: int, read_bucket: TokenBucket, write_bucket: TokenBucket, *,
    key_names: Sequence[str], checkpoint: CheckpointStore | None = None, threads: int = DEFAULT_THREADS,
    before_page: Callable[[int], None] | None = None, expected_items: int = 0,
    index_scales: Mapping[str, float] | None = None, rates_now: RateReaders | None = None,
    rate_check_seconds: float = 60.0, consistent_read: bool = False,
) -> CopyResult:
    """Copy ``segments`` of a ``total_segments`` parallel scan; ``before_page(segment)`` is a test hook.

    ``rates_now`` (``tablecopy.plan.rate_readers``) re-reads both tables' capacity every
    ``rate_check_seconds`` and retunes the buckets, since tables scale during long copies.
    """
    store = checkpoint or MemoryCheckpoints()
    stop, lock, rate_lock = threading.Event(), threading.Lock(), threading.Lock()
    scales = index_scales if index_scales is not None else {}  # shared: the write rate reader may update it
    watchers = [CapacityWatcher(b, now, rate_check_seconds)
                for b, now in zip((read_bucket, write_bucket), rates_now or (), strict=False)]
    label = f"copy {source_table} -> {dest_table}"
    # The report says a line every 10 s even while every thread waits out throttling; the threads add to it.
    report = ProgressReport(label, expected_items, log).__enter__()
    progress = Progress(label, expected_items, log)
    started, resumed = time.monotonic(), [0]

    def one(segment: int) -> SegmentState:
        state = store.load(segment, total_segments) or SegmentState(segment, total_segments)
        with lock:
            resumed[0] += state.items
        if state.done:
            return state
        writer = BatchWriter(dest_client, dest_table, key_names, write_bucket, index_scales=scales)

        def before() -> None:
            if stop.is_set():
                raise _Stopped
            with rate_lock:  # not the progress lock: a re-read may wait out throttling
                for watcher in watchers:
                    watcher.refresh_if_due()
            if before_page is not None:
                before_page(segment)

        for page in scan_segment(source_client, source_table, segment, total_segments, read_bucket,
                                 consistent=consistent_read,
                                 raw=True, start_key=state.last_key, before_page=before):
            origin = f"{source_table} segment {segment} of {total_segments}, page {state.pages + 1}"
            digest = TableDigest(state.digest.count, state.digest.value)
            units_before = writer.stats.consumed_write_units
            for item in page.items:
                writer.put(client_item(item), origin)
                digest.add(item)
            writer.flush()
            # A new state per page: a store may still hold (or be writing) the previous one.
            state = replace(state, pages=state.pages + 1, items=state.items + len(page.items),
                            read_units=state.read_units + page.consumed, digest=digest,
                            write_units=state.write_units + writer.stats.consumed_write_units - units_before,
                            last_key=page.last_key, done=page.last_key is None)
            store.save(state)
            with lock:
                progress.add(len(page.items), 0, page.consumed)
        return state

    def guarded(segment: int) -> SegmentState:
        try:
            return one(segment)
        except BaseException:
            stop.set()
            raise

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(threads, len(segments)))) as pool:
            futures = [pool.submit(guarded, s) for s in segments]
        errors = [e for f in futures if (e := f.exception()) is not None and not isinstance(e, _Stopped)]
        if errors:
            raise errors[0]
    finally:
        store.flush()
        progress.done()
        report.__exit__(*sys.exc_info())
    return CopyResult([f.result() for f in futures], time.monotonic() - started, resumed[0])


# --------------------------------------------------------------------------- verification


@dataclass
class CopyCheck:
    ok: bool
    copied: TableDigest
    destination: TableDigest
    message: str
    sample: Sample = field(default_factory=dict)


def verify_copy(dest_client: Any, plan: CopyPlan, copied: TableDigest, read_ratio: float,
                on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY, *, source_client: Any = None,
                sample_size: int = 20) -> CopyCheck:
    """Count (and digest) the destination; digests must match when it started empty.

    On a mismatch, with ``source_client``, both tables are read again to name a
    sample of the keys that differ (the source as it is now).
    """
    rate = default_read_rate(dest_client, plan.dest_table, read_ratio, on_demand_capacity)
    segments = min(plan.total_segments, VERIFY_SEGMENTS)
    buckets = table_digest(dest_client, plan.dest_table, segments, key_names=plan.key_names, read_rate=rate,
                           consistent=True)
    found = buckets.total()
    sample: Sample = {}
    if plan.dest_was_empty:
        ok = found == copied
        message = (f"verified: {plan.dest_table} holds exactly the {copied.count:,} items copied "
                   f"(digest {copied.hexdigest()})" if ok else
                   f"MISMATCH: copied {copied.count:,} items (digest {copied.hexdigest()}) but {plan.dest_table} "
                   f"holds {found.count:,} (digest {found.hexdigest()})")
        if not ok and source_client is not None:
            sample = sample_table_differences(
                source_client, plan.source_table, dest_client, plan.dest_table, plan.key_names, segments=segments,
                source_rate=default_read_rate(source_client, plan.source_table, read_ratio, on_demand_capacity),
                dest_rate=rate, sample_size=sample_size, found=buckets)
            message += f"; {plan.source_table} now against {plan.dest_table}: {describe_sample(sample)}"
    else:
        ok = found.count >= copied.count
        message = (f"{plan.dest_table} was not empty before the copy, so digests cannot be compared: "
                   f"it holds {found.count:,} items, {copied.count:,} were copied"
                   + ("" if ok else " (FEWER than copied)"))
    log.info("%s", message)
    return CopyCheck(ok, copied, found, message, sample)
