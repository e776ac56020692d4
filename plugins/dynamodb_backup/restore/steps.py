"""Restore: validate every file, then load it in shares (the target is prepared by restore.target).

Why in this order: a corrupt backup or a wrong target must fail before the
target is touched. So the target's key schema is checked read-only first,
then every file is read once (checksum, every line decoded and its keys
checked, items counted and digested for verification), and only then is the
table created or written. Loading is split into shares of files, each paced at
its part of ``ratio x write capacity`` and resumable through checkpoints.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.aws.throttle import CapacityWatcher
from dynamodb_backup.aws.usage import RecordingBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, TableFacts, capacity_rate, retune_index_scales
from dynamodb_backup.errors import BackupFolderError, CodecError, ParameterError
from dynamodb_backup.formats.codec.datapipeline import decode_line
from dynamodb_backup.formats.codec.linecheck import check_line
from dynamodb_backup.gcpause import few_collections
from dynamodb_backup.loading.checkpoint import Checkpoints, safe_part
from dynamodb_backup.loading.fastwrite import WireBatchWriter
from dynamodb_backup.loading.load import BatchWriter, save_write_units
from dynamodb_backup.progress import Progress
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.inspection import BackupSource, SourceFile
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.reader import FileItems

log = logging.getLogger(__name__)


@dataclass
class ValidationReport:
    items: int = 0
    blank_lines: int = 0
    files: dict[str, int] = field(default_factory=dict)
    digest: BucketedDigest = field(default_factory=BucketedDigest)
    bytewise: list[str] = field(default_factory=list)
    """Files every line of which converts to wire form byte for byte (``linecheck``): loaded without parsing."""

    def merge(self, other: ValidationReport) -> None:
        self.items += other.items
        self.blank_lines += other.blank_lines
        self.files.update(other.files)
        self.digest.merge(other.digest)
        self.bytewise += other.bytewise

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "blank_lines": self.blank_lines, "files": self.files,
                "digest": self.digest.to_dict(), "bytewise": self.bytewise}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        return cls(int(data["items"]), int(data["blank_lines"]), dict(data["files"]),
                   BucketedDigest.from_dict(data["digest"]), list(data.get("bytewise") or []))


def plan_shares(files: list[SourceFile], workers: int) -> list[list[SourceFile]]:
    """Split files into at most ``workers`` shares of about equal bytes (largest first, to the lightest)."""
    if workers < 1:
        raise ParameterError(f"workers must be at least 1, got {workers}")
    shares: list[list[SourceFile]] = [[] for _ in range(min(workers, len(files)) or 1)]
    sizes = [0] * len(shares)
    for file in sorted(files, key=lambda f: (-f.size, f.key)):
        lightest = sizes.index(min(sizes))
        shares[lightest].append(file)
        sizes[lightest] += file.size
    return shares


def validate_files(s3: Any, bucket: str, files: list[SourceFile], rules: KeyRules) -> ValidationReport:
    """Read every file once: checksum, every line decoded, keys checked, items counted and digested."""
    report = ValidationReport()
    names = rules.key_names
    for file in files:
        items = FileItems(s3, bucket, file)
        with few_collections():
            if file.decoder == "datapipeline":
                if _check_lines(items, rules, report.digest):
                    report.bytewise.append(file.key)
            else:
                for origin, item in items:
                    try:
                        rules.check(item)
                    except CodecError as exc:
                        raise exc.at(origin) from None
                    report.digest.add(item, names)
        if file.items is not None and items.items != file.items:
            raise BackupFolderError(f"{items.url}: holds {items.items} items, the backup's metadata says {file.items}")
        report.items += items.items
        report.blank_lines += items.blank_lines
        report.files[file.key] = items.items
        log.info("%s: %d items valid%s", items.url, items.items,
                 f" ({items.blank_lines} blank lines skipped)" if items.blank_lines else "")
    return report


def _check_lines(items: FileItems, rules: KeyRules, digest: BucketedDigest) -> bool:
    """Data Pipeline lines validated, key-checked and digested in one walk each (``linecheck``); a line
    it leaves alone is decoded the reference way, which reads it or names what is wrong.

    Returns whether every line converts to wire form byte for byte (then the load parses none)."""
    names = rules.key_names
    bytewise = True
    for origin, line in items.lines():
        checked = check_line(line)
        try:
            if checked is not None:
                rules.check_canonical(checked[0])
                digest.add_canonical(checked[0], names)
                bytewise = bytewise and checked[2]
            else:
                bytewise = False
                item = decode_line(line)
                rules.check(item)
                digest.add(item, names)
        except CodecError as exc:
            raise exc.at(origin) from None
    return bytewise


def check_totals(source: BackupSource, report: ValidationReport) -> None:
    if source.expected_items is not None and report.items != source.expected_items:
        raise BackupFolderError(f"{source.folder}/: the files hold {report.items} items, "
                                f"the backup's metadata says {source.expected_items}")
    log.info("%s: all %d files valid, %d items", source.folder, len(report.files), report.items)


def write_rate(description: dict[str, Any], ratio: float, on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY,
               ) -> float:
    """Write units per second for the whole restore: ratio x the table's write capacity."""
    facts = TableFacts.from_description(description)
    return capacity_rate(facts.write_capacity, facts.on_demand, ratio, on_demand_capacity)


@dataclass
class LoadResult:
    items: int = 0
    files_loaded: int = 0
    files_skipped: int = 0
    consumed_write_units: float = 0.0
    unprocessed_retries: int = 0
    write_units: str | None = None
    """Where the run's write units per 5 s are recorded (``save_write_units``), for the console's chart."""

    def merge(self, other: LoadResult) -> None:
        self.items += other.items
        self.files_loaded += other.files_loaded
        self.files_skipped += other.files_skipped
        self.consumed_write_units += other.consumed_write_units
        self.unprocessed_retries += other.unprocessed_retries
        self.write_units = self.write_units or other.write_units


def load_files(dynamodb: Any, s3: Any, bucket: str, files: list[SourceFile], table: str, key_names: list[str],
               rate: float, *, checkpoints: Checkpoints | None = None,
               current_rate: Callable[[], float] | None = None, label: str = "load",
               sleep: Callable[[float], None] = time.sleep, fast_path: bool = True,
               index_scales: Mapping[str, float] | None = None, bytewise: Collection[str] = ()) -> LoadResult:
    """Put every item of ``files`` into ``table`` at ``rate`` write units/s, skipping files already finished.

    ``index_scales`` (``backup.plan.index_write_scales``) keeps the table's global
    indexes within the same share of their own capacity. ``fast_path=False``
    sends every item through botocore's serializer (the plain path). ``bytewise``: the files
    validation found convertible byte for byte (``ValidationReport.bytewise``), sent unparsed.
    """
    token_bucket = RecordingBucket(rate)  # also records write units per 5 s, kept beside the checkpoints
    watcher = CapacityWatcher(token_bucket, current_rate) if current_rate else None
    scales = index_scales if index_scales is not None else {}  # shared with current_rate, which may update it
    writer = BatchWriter(dynamodb, table, key_names, token_bucket, index_scales=scales, sleep=sleep)

    def plain_path(batch: list[tuple[bytes, str]]) -> None:
        # A batch the fast path could not send as is: decode and put each line, so an
        # error names its file and line exactly as the plain path does.
        for line, origin in batch:
            try:
                item = decode_line(line)
            except CodecError as exc:
                raise exc.at(origin) from None
            writer.put(item, origin)
        writer.flush()

    # Data Pipeline lines (already validated) go to DynamoDB with only their type keys renamed,
    # skipping botocore's serializer: half the client CPU per item (measured 100 vs 210 us). The
    # next batch is decoded, built and signed while one is in flight, and sent as its answer
    # arrives (aws.wire); where the client's transport is not one aws.wire reproduces, a sender
    # thread keeps one batch in flight instead (pipelined).
    direct = DynamoDBConnection.for_client(dynamodb)
    fast = WireBatchWriter(dynamodb, table, key_names, token_bucket, fallback=plain_path, index_scales=scales,
                           sleep=sleep, pipelined=True, direct=direct)

    def consumed() -> float:  # write units DynamoDB reported (the bucket's charge may be scaled for indexes)
        return writer.stats.consumed_write_units + fast.stats.consumed_write_units

    result = LoadResult()
    started, written_items, written_bytes = datetime.now(UTC).isoformat(), 0, 0  # this attempt's, for the record
    progress = Progress(label, sum(f.items or 0 for f in files), log)
    try:
        with few_collections():
            for file in files:
                url = f"s3://{bucket}/{file.key}"
                done = checkpoints.finished(file, url) if checkpoints else None
                if done is not None:
                    log.info("%s: skipped, an earlier attempt of this run loaded its %d items", url, done)
                    result.files_skipped += 1
                    result.items += done
                    continue
                items = FileItems(s3, bucket, file)
                reported, read, charged = 0, 0, consumed()
                raw = fast_path and file.decoder == "datapipeline"
                source: Iterable[tuple[str, Any]] = items.lines() if raw else items
                put: Callable[[Any, str], None] = fast.put if raw else writer.put
                if raw and direct is not None and file.key in bytewise:
                    put = fast.put_compact
                for origin, item in source:
                    put(item, origin)
                    # Asked per item (a clock read): a load paced by a small index may take seconds an item.
                    if progress.due():
                        if watcher:
                            watcher.refresh_if_due()
                        progress.add(items.items - reported, items.reader.stored_bytes - read, consumed() - charged)
                        reported, read, charged = items.items, items.reader.stored_bytes, consumed()
                fast.flush()
                writer.flush()
                progress.add(items.items - reported, items.reader.stored_bytes - read, consumed() - charged)
                if file.items is not None and items.items != file.items:
                    raise BackupFolderError(f"{url}: held {items.items} items while loading, expected {file.items}")
                result.items += items.items
                result.files_loaded += 1
                written_items += items.items
                written_bytes += items.reader.stored_bytes
                if checkpoints:
                    checkpoints.mark(file, url, items.items)
                log.info("%s: %d items written", url, items.items)
    finally:
        if direct is not None:
            direct.close()
    progress.done()
    result.consumed_write_units = writer.stats.consumed_write_units + fast.stats.consumed_write_units
    result.unprocessed_retries = writer.stats.unprocessed_retries + fast.stats.unprocessed_retries
    if checkpoints is not None and token_bucket.timeline.units:
        saved = save_write_units(checkpoints.s3, checkpoints.location, safe_part(label), token_bucket.timeline, rate,
                                 figures={"items": written_items, "bytes": written_bytes, "started": started,
                                          "finished": datetime.now(UTC).isoformat(), "files": result.files_loaded,
                                          "files_skipped": result.files_skipped})
        result.write_units = saved.uri if saved is not None else None
    return result


def target_rate_reader(dynamodb: Any, table: str, ratio: float, on_demand_capacity: float,
                       share: float, index_scales: dict[str, float] | None = None) -> Callable[[], float]:
    """Re-reads the target's capacity (tables scale) and returns this worker's rate.

    ``index_scales`` (the dict the writers pace by) is updated in place, since a
    table and its indexes scale separately.
    """
    def current() -> float:
        description = describe_table(dynamodb, table)
        retune_index_scales(index_scales, description)
        return write_rate(description, ratio, on_demand_capacity) * share

    return current
