"""Applying incremental links to a table: NewImage present -> put it, absent -> delete the key.

Why this way:

* Every link file is read once before anything is written (checksum, every line
  decoded, keys checked, lines counted), as a full restore validates its files.
* The digest of the state a chain describes is computed without holding keys:
  a link with old images says exactly what each change replaces, so the state
  after it is ``before - sum(old images) + sum(new images)`` per key-hash bucket.
  If the links do not fit the full (a wrong old image), verification says so.
* Writes go through :class:`~dynamodb_backup.loading.load.BatchWriter` (pacing,
  retried UnprocessedItems, nothing dropped), resumable per file with the
  restore's completion markers. Inside a link a key appears once (compacted),
  so the order of its files does not matter; links are applied in order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dynamodb_backup.aws.throttle import CapacityWatcher, TokenBucket
from dynamodb_backup.errors import BackupFolderError, CodecError
from dynamodb_backup.formats.codec import TableDigest, is_blank
from dynamodb_backup.loading.checkpoint import Checkpoints
from dynamodb_backup.loading.load import BatchWriter
from dynamodb_backup.progress import Progress
from dynamodb_backup.repository.changes import Change as Change  # re-exported: restore.catchup reads it here
from dynamodb_backup.repository.changes import decode_change as decode_change  # re-exported for tests
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.inspection import SourceFile
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.reader import Checksums, LineReader

log = logging.getLogger(__name__)


def file_changes(s3: Any, bucket: str, file: SourceFile, rules: KeyRules,
                 verify_checksum: bool = True) -> Iterator[tuple[str, Change]]:
    """``(origin, change)`` for every line of one link file; errors name the file and line."""
    reader = LineReader(s3, bucket, file.key, Checksums(file.sha256, file.md5) if verify_checksum else Checksums())
    count = 0
    for number, line in reader:
        if is_blank(line):
            continue
        where = f"{reader.url} line {number}"
        try:
            change = decode_change(line, rules)
        except CodecError as exc:
            raise exc.at(where) from None
        count += 1
        yield where, change
    if file.items is not None and count != file.items:
        raise BackupFolderError(f"{reader.url}: holds {count} changes, the backup's sidecar says {file.items}")


def subtract(total: BucketedDigest, part: BucketedDigest) -> BucketedDigest:
    """``total - part`` bucket by bucket (digests are sums mod 2**128, so they subtract)."""
    return BucketedDigest([TableDigest(a.count - b.count, a.value - b.value)
                           for a, b in zip(total.buckets, part.buckets, strict=True)])


@dataclass
class LinkReport:
    """What validating a link's files found: counts, and the digests of what it puts and what it replaces."""

    changes: int = 0
    puts: int = 0
    deletes: int = 0
    without_old: int = 0
    """Changes with no OldImage (inserts, or every change of a NEW_IMAGE export)."""
    files: dict[str, int] = field(default_factory=dict)
    added: BucketedDigest = field(default_factory=BucketedDigest)
    removed: BucketedDigest = field(default_factory=BucketedDigest)

    def merge(self, other: LinkReport) -> None:
        self.changes += other.changes
        self.puts += other.puts
        self.deletes += other.deletes
        self.without_old += other.without_old
        self.files.update(other.files)
        self.added.merge(other.added)
        self.removed.merge(other.removed)

    def after(self, before: BucketedDigest) -> BucketedDigest:
        """The digest of the state this link leaves, given the state it starts from."""
        result = BucketedDigest()
        result.merge(before)
        result.merge(self.added)
        return subtract(result, self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {"changes": self.changes, "puts": self.puts, "deletes": self.deletes, "without_old": self.without_old,
                "files": self.files, "added": self.added.to_dict(), "removed": self.removed.to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LinkReport:
        return cls(int(data["changes"]), int(data["puts"]), int(data["deletes"]), int(data["without_old"]),
                   dict(data["files"]), BucketedDigest.from_dict(data["added"]),
                   BucketedDigest.from_dict(data["removed"]))


def validate_link_files(s3: Any, bucket: str, files: list[SourceFile], rules: KeyRules) -> LinkReport:
    """Read every file of a link once: checksums, every line, keys, counts; digest what it puts and replaces."""
    report = LinkReport()
    names = rules.key_names
    for file in files:
        count = 0
        for _, change in file_changes(s3, bucket, file, rules):
            count += 1
            if change.new is not None:
                report.puts += 1
                report.added.add(change.new, names)
            else:
                report.deletes += 1
            if change.old is not None:
                report.removed.add(change.old, names)
            else:
                report.without_old += 1
        report.changes += count
        report.files[file.key] = count
        log.info("s3://%s/%s: %d changes valid", bucket, file.key, count)
    return report


@dataclass
class ApplyResult:
    puts: int = 0
    deletes: int = 0
    files_applied: int = 0
    files_skipped: int = 0
    consumed_write_units: float = 0.0
    unprocessed_retries: int = 0

    def merge(self, other: ApplyResult) -> None:
        for name in ("puts", "deletes", "files_applied", "files_skipped", "unprocessed_retries"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.consumed_write_units += other.consumed_write_units


def apply_link_files(dynamodb: Any, s3: Any, bucket: str, files: list[SourceFile], table: str, rules: KeyRules,
                     rate: float, *, checkpoints: Checkpoints | None = None,
                     current_rate: Callable[[], float] | None = None, label: str = "apply",
                     index_scales: Mapping[str, float] | None = None,
                     sleep: Callable[[float], None] = time.sleep) -> ApplyResult:
    """Put or delete every change of ``files`` in ``table`` at ``rate`` write units/s; skip finished files.

    A file is marked finished only after all its writes were flushed, so a retry redoes
    at most the files it had not finished (writing the same images again is harmless).
    """
    token_bucket = TokenBucket(rate)
    watcher = CapacityWatcher(token_bucket, current_rate) if current_rate else None
    writer = BatchWriter(dynamodb, table, rules.key_names, token_bucket, index_scales=dict(index_scales or {}),
                         sleep=sleep)
    result = ApplyResult()
    progress = Progress(label, sum(f.items or 0 for f in files), log)
    for file in files:
        url = f"s3://{bucket}/{file.key}"
        done = checkpoints.finished(file, url) if checkpoints else None
        if done is not None:
            log.info("%s: skipped, an earlier attempt of this run applied its %d changes", url, done)
            result.files_skipped += 1
            continue
        count, charged = 0, writer.stats.consumed_write_units
        for origin, change in file_changes(s3, bucket, file, rules):
            if change.new is not None:
                writer.put(change.new, origin)
                result.puts += 1
            else:
                writer.delete(change.keys, origin)
                result.deletes += 1
            count += 1
            if count % 1000 == 0:
                if watcher:
                    watcher.refresh_if_due()
                progress.add(1000, 0, writer.stats.consumed_write_units - charged)
                charged = writer.stats.consumed_write_units
        writer.flush()
        progress.add(count % 1000, file.size, writer.stats.consumed_write_units - charged)
        result.files_applied += 1
        if checkpoints:
            checkpoints.mark(file, url, count)
        log.info("%s: %d changes applied", url, count)
    progress.done()
    result.consumed_write_units = writer.stats.consumed_write_units
    result.unprocessed_retries = writer.stats.unprocessed_retries
    return result
