"""Verifying a restore (or a copy) by reading the data, never DescribeTable's stale counts.

Why: DescribeTable's ItemCount lags by hours, so a table is counted with a
parallel scan. For a target that was empty before the restore the comparison is
exact: an order-independent digest of every item, kept per key-hash bucket (256
buckets), so when the digests differ only the mismatched buckets are re-read to
name a sample of missing, extra or differing keys, within a bounded number of
keys in memory.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any

from dynamodb_backup.aws.tablecreate import key_names as table_key_names
from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, TableFacts, capacity_rate
from dynamodb_backup.backup.scan import ScanPage, scan_segment
from dynamodb_backup.formats.codec import item_digest, key_of
from dynamodb_backup.gcpause import few_collections
from dynamodb_backup.progress import Progress, ProgressReport
from dynamodb_backup.repository.digest import BucketedDigest, backup_digest, backup_items, key_hash
from dynamodb_backup.repository.inspection import BackupSource

log = logging.getLogger(__name__)

#: Keys held at once while naming differences (about 200 bytes each).
MAX_KEYS_IN_MEMORY = 200_000
MAX_SAMPLE_PASSES = 4


ItemFilter = Callable[[int], bool]


def _scan_items(client: Any, table: str, segments: Sequence[int], total: int, bucket: TokenBucket, consistent: bool,
                raw: bool, each: Callable[[int, ScanPage], None]) -> None:
    """Scan ``segments`` of ``total`` on threads; ``each(segment, page)`` is called per page."""
    def one(segment: int) -> None:
        for page in scan_segment(client, table, segment, total, bucket, raw=raw, consistent=consistent):
            each(segment, page)

    with ThreadPoolExecutor(max_workers=min(len(segments), 16), thread_name_prefix="verify-scan") as pool:
        list(pool.map(one, segments))


def default_read_rate(client: Any, table: str, ratio: float = 0.5,
                      on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY) -> float:
    facts = TableFacts.from_description(describe_table(client, table))
    return capacity_rate(facts.read_capacity, facts.on_demand, ratio, on_demand_capacity)


def _digest_segments(client: Any, table: str, segments: list[int], total: int, names: Sequence[str],
                     read_rate: float, consistent: bool, raw: bool, label: str) -> BucketedDigest:
    """Digest ``segments`` of ``total`` on threads, paced to ``read_rate``; progress counted as it goes."""
    bucket = TokenBucket(read_rate)
    parts = {segment: BucketedDigest() for segment in segments}
    progress = Progress(label, 0, log)
    lock = threading.Lock()

    def each(segment: int, page: ScanPage) -> None:
        nbytes = 0
        for item in page.items:
            nbytes += parts[segment].add(item, names)
        with lock:  # Progress is one worker's counter; its segments' threads share it
            progress.add(len(page.items), nbytes, page.consumed)

    with few_collections():
        _scan_items(client, table, segments, total, bucket, consistent, raw, each)
    progress.done()
    result = BucketedDigest()
    for part in parts.values():
        result.merge(part)
    return result


def _digest_share(make_client: Callable[[str], Any], table: str, segments: list[int], total: int,
                  names: Sequence[str], read_rate: float, consistent: bool, raw: bool, label: str) -> dict[str, Any]:
    """One worker process's segments (its own client; the digest back as a plain dict)."""
    return _digest_segments(make_client("dynamodb"), table, segments, total, names, read_rate, consistent, raw,
                            label).to_dict()


def table_digest(client: Any, table: str, segments: int = 4, *, key_names: Sequence[str] | None = None,
                 read_rate: float | None = None, consistent: bool = False, raw: bool = True,
                 make_client: Callable[[str], Any] | None = None, processes: int = 1,
                 expected_items: int = 0) -> BucketedDigest:
    """Digest every item of ``table`` with a parallel scan of ``segments`` segments.

    ``raw`` (the default): the export's fast scan (answers decoded by orjson, items kept in wire
    form, which the digest reads as it reads client form); ``raw=False`` goes through botocore's
    parser, which took three times as long to verify 100,000 items (43 s against 14.6 s).

    ``read_rate`` (read units per second, all segments together) defaults to half
    the table's read capacity (on-demand: half of the assumed capacity).

    With ``make_client`` and ``processes`` > 1 the segments are shared among that many worker
    processes, each with its own client: the digest is CPU-bound Python, so threads of one
    process use one core (a restore's verify of 20,000 small items took 2 s of wall time on one
    core against 0.5 s of scanning). Progress (items, MB of canonical JSON, rate, time left
    against ``expected_items``) is said every 10 s.
    """
    names = list(key_names or table_key_names(describe_table(client, table)))
    rate = read_rate or default_read_rate(client, table)
    workers = max(1, min(processes if make_client is not None else 1, segments))
    shares = [list(range(segments))[i::workers] for i in range(workers)]
    label = f"verify {table}"
    result = BucketedDigest()
    with ProgressReport(label, expected_items, log) as report:
        if workers == 1:
            result = _digest_segments(client, table, shares[0], segments, names, rate, consistent, raw, label)
        else:
            assert make_client is not None
            with ProcessPoolExecutor(max_workers=workers, initializer=report.initializer,
                                     initargs=report.initargs) as pool:
                futures = [pool.submit(_digest_share, make_client, table, share, segments, names, rate / workers,
                                       consistent, raw, label) for share in shares]
                for future in futures:
                    result.merge(BucketedDigest.from_dict(future.result()))
    log.info("%s: %d items counted by a parallel scan of %d segments", table, result.count, segments)
    return result


Sample = dict[str, list[dict[str, str]]]
"""Keys by kind of difference: missing, extra, differing, duplicated."""


def describe_sample(sample: Sample) -> str:
    parts = [f"{kind}: {len(keys)} e.g. {keys[:3]}" for kind, keys in sample.items() if keys]
    return "; ".join(parts) or "no differing key found in the sample passes"


@dataclass
class VerifyReport:
    table: str
    backup_items: int
    table_items: int
    backup_digest: str
    table_digest: str
    compared_digests: bool
    match: bool
    sample: Sample = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.match:
            how = "digests equal" if self.compared_digests else "target held items before; counts compared"
            return f"verified: {self.table_items:,} items in {self.table}, {self.backup_items:,} in the backup ({how})"
        return (f"MISMATCH: {self.table_items:,} items in {self.table}, {self.backup_items:,} in the backup; "
                + describe_sample(self.sample) + "".join(f" ({n})" for n in self.notes))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _selections(mismatched: list[int], a: BucketedDigest, b: BucketedDigest,
                max_keys: int) -> Iterator[bytearray]:
    """Masks over the 16-bit key hash; each selects about ``max_keys`` keys of mismatched buckets."""
    ranges: list[tuple[int, int, int]] = []
    for index in mismatched:
        expected = max(a.buckets[index].count, b.buckets[index].count, 1)
        pieces = min(256, math.ceil(expected / max_keys))
        width = 256 // pieces
        for start in range(0, 256, width):
            ranges.append((index * 256 + start, index * 256 + min(start + width, 256), expected * width // 256))
    mask, held = bytearray(1 << 16), 0
    for lo, hi, size in ranges:
        if held and held + size > max_keys:
            yield mask
            mask, held = bytearray(1 << 16), 0
        mask[lo:hi] = b"\x01" * (hi - lo)
        held += size
    if held or ranges:
        yield mask


def _masked_table(client: Any, table: str, names: Sequence[str], mask: bytearray, segments: int,
                  bucket: TokenBucket) -> dict[tuple[str, ...], int]:
    """Key -> item digest for the items of ``table`` whose key hash ``mask`` selects (a consistent scan)."""
    found: dict[tuple[str, ...], int] = {}

    def each(_segment: int, page: ScanPage) -> None:
        for item in page.items:
            key = key_of(item, names)
            if mask[key_hash(key)]:
                found[key] = item_digest(item)

    _scan_items(client, table, range(segments), segments, bucket, True, False, each)
    return found


def _sample_passes(expected: Callable[[bytearray, Sample], dict[tuple[str, ...], int]], dynamodb: Any, table: str,
                   names: Sequence[str], a: BucketedDigest, b: BucketedDigest, segments: int, bucket: TokenBucket,
                   sample_size: int, max_keys: int) -> Sample:
    """Re-read only the mismatched buckets on both sides and name up to ``sample_size`` keys of each kind."""
    sample: Sample = {"missing": [], "extra": [], "differing": [], "duplicated": []}
    for passes, mask in enumerate(_selections(a.differing(b), a, b, max_keys)):
        if passes >= MAX_SAMPLE_PASSES or all(len(v) >= sample_size for v in sample.values()):
            break
        ours = expected(mask, sample)
        theirs = _masked_table(dynamodb, table, names, mask, segments, bucket)
        for key, digest in ours.items():
            kind = "missing" if key not in theirs else "differing" if theirs[key] != digest else ""
            if kind and len(sample[kind]) < sample_size:
                sample[kind].append(dict(zip(names, key, strict=True)))
        for key in theirs.keys() - ours.keys():
            if len(sample["extra"]) >= sample_size:
                break
            sample["extra"].append(dict(zip(names, key, strict=True)))
    return sample


def sample_differences(dynamodb: Any, s3: Any, source: BackupSource, table: str, key_names: Sequence[str],
                       backup: BucketedDigest, target: BucketedDigest, *, segments: int = 4,
                       read_rate: float | None = None, sample_size: int = 20,
                       max_keys: int = MAX_KEYS_IN_MEMORY) -> Sample:
    """Name keys missing from, extra in or differing in ``table`` against the backup (mismatched buckets only)."""
    names = list(key_names)

    def from_backup(mask: bytearray, sample: Sample) -> dict[tuple[str, ...], int]:
        ours: dict[tuple[str, ...], int] = {}
        for _, item in backup_items(s3, source):
            key = key_of(item, names)
            if mask[key_hash(key)]:
                if key in ours and len(sample["duplicated"]) < sample_size:
                    sample["duplicated"].append(dict(zip(names, key, strict=True)))
                ours[key] = item_digest(item)
        return ours

    bucket = TokenBucket(read_rate or default_read_rate(dynamodb, table))
    return _sample_passes(from_backup, dynamodb, table, names, backup, target, segments, bucket, sample_size,
                          max_keys)


def sample_table_differences(source: Any, source_table: str, dest: Any, dest_table: str, key_names: Sequence[str],
                             *, segments: int = 4, source_rate: float | None = None, dest_rate: float | None = None,
                             sample_size: int = 20, max_keys: int = MAX_KEYS_IN_MEMORY,
                             found: BucketedDigest | None = None) -> Sample:
    """Name keys that differ between two tables: digest both per bucket, then re-read the mismatched buckets.

    ``found``: the destination's digest, if the caller has just computed it.
    """
    names = list(key_names)
    source_bucket = TokenBucket(source_rate or default_read_rate(source, source_table))
    dest_bucket = TokenBucket(dest_rate or default_read_rate(dest, dest_table))
    expected = table_digest(source, source_table, segments, key_names=names, read_rate=source_bucket.rate,
                            consistent=True)
    if found is None:
        found = table_digest(dest, dest_table, segments, key_names=names, read_rate=dest_bucket.rate,
                             consistent=True)

    def from_source(mask: bytearray, _sample: Sample) -> dict[tuple[str, ...], int]:
        return _masked_table(source, source_table, names, mask, segments, source_bucket)

    return _sample_passes(from_source, dest, dest_table, names, expected, found, segments, dest_bucket, sample_size,
                          max_keys)


def verify_restore(dynamodb: Any, s3: Any, source: BackupSource, table: str, *, was_empty: bool = True,
                   backup: BucketedDigest | None = None, key_names: Sequence[str] | None = None,
                   segments: int = 4, read_rate: float | None = None, sample_size: int = 20,
                   make_client: Callable[[str], Any] | None = None, processes: int = 1) -> VerifyReport:
    """Count ``table`` by scanning and compare it with the backup (digests too when it started empty).

    ``make_client`` and ``processes``: scan and digest the table in that many worker processes."""
    names = list(key_names or table_key_names(describe_table(dynamodb, table)))
    rate = read_rate or default_read_rate(dynamodb, table)
    backup = backup or backup_digest(s3, source, names)
    target = table_digest(dynamodb, table, segments, key_names=names, read_rate=rate, consistent=True,
                          make_client=make_client, processes=processes, expected_items=backup.count)
    mine, theirs = backup.total(), target.total()
    report = VerifyReport(table=table, backup_items=mine.count, table_items=theirs.count,
                          backup_digest=mine.hexdigest(), table_digest=theirs.hexdigest(),
                          compared_digests=was_empty, match=mine == theirs if was_empty else theirs.count >= mine.count)
    if source.expected_items is not None and source.expected_items != mine.count:
        report.match = False
        report.notes.append(
            f"the backup's metadata promises {source.expected_items} items, its files hold {mine.count}")
    if not was_empty:
        report.notes.append("the target held items before the restore, so only counts were compared")
    elif not report.match:
        report.sample = sample_differences(dynamodb, s3, source, table, names, backup, target, segments=segments,
                                           read_rate=rate, sample_size=sample_size)
    log.info("%s", report.summary())
    return report
