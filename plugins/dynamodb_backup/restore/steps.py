"""Restore: check the target's keys, validate every file, prepare the table, load in shares.

Why in this order: a corrupt backup or a wrong target must fail before the
target is touched. So the target's key schema is checked read-only first,
then every file is read once (checksum, every line decoded and its keys
checked, items counted and digested for verification), and only then is the
table created or written. Loading is split into shares of files, each paced at
its part of ``ratio x write capacity`` and resumable through checkpoints.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tablecreate import (
    check_same_keys,
    create_table_like,
    set_ttl_and_tags,
    table_exists,
    wait_until_active,
    wait_until_gone,
)
from dynamodb_backup.aws.tableinfo import describe_table, read_table_info, table_identity
from dynamodb_backup.aws.throttle import CapacityWatcher
from dynamodb_backup.aws.usage import RecordingBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, TableFacts, capacity_rate, retune_index_scales
from dynamodb_backup.errors import BackupFolderError, CodecError, ParameterError
from dynamodb_backup.formats.codec.datapipeline import decode_line
from dynamodb_backup.loading.checkpoint import Checkpoints, safe_part
from dynamodb_backup.loading.fastwrite import WireBatchWriter
from dynamodb_backup.loading.load import BatchWriter, save_write_units
from dynamodb_backup.progress import Progress
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.inspection import BackupSource, SourceFile
from dynamodb_backup.repository.keyschema import KeyRules, key_description, parse_key_schema, show_key_schema
from dynamodb_backup.repository.reader import FileItems
from dynamodb_backup.restore.loadcapacity import (
    LoadCapacity,
    LoadPlan,
    loading_description,
    plan_for_new_table,
    settle_command,
    switch_existing,
)

log = logging.getLogger(__name__)


def expected_keys(source: BackupSource, key_schema: str | None) -> dict[str, Any] | None:
    """The backup's key schema: from our sidecar, else from the ``key_schema`` parameter, else unknown."""
    given = parse_key_schema(key_schema) if key_schema else None
    if source.table is not None:
        if given is not None:
            check_same_keys(source.table, given, "key_schema parameter")
        return source.table
    return given


def resolve_target(dynamodb: Any, source: BackupSource, table: str, *, create: bool,
                   key_schema: str | None = None) -> dict[str, Any]:
    """Check the target against the backup without changing anything; return the keys to load with.

    An existing table must have the backup's key schema (when the backup says
    it), even one that is to be replaced; a missing one needs ``create`` and a
    known key schema.
    """
    expected = expected_keys(source, key_schema)
    existing = table_exists(dynamodb, table)
    if existing is not None:
        if expected is not None:
            check_same_keys(expected, existing, f"table {table!r}")
        return key_description(existing)
    if not create:
        raise ParameterError(f"table: {table!r} does not exist; create it or ask for it to be created (create_table)")
    if expected is None:
        raise ParameterError(f"key_schema: {source.folder}/ has no sidecar, so the key schema of the new table "
                             f"{table!r} must be given, e.g. 'pk:S' or 'pk:S,sk:N'")
    return key_description(expected)


def is_empty(dynamodb: Any, table: str) -> bool:
    response = call_with_retries(lambda: dynamodb.scan(TableName=table, Limit=1, ConsistentRead=True))
    return not response.get("Items") and not response.get("LastEvaluatedKey")


REPLACE_NOTE = "replace-table"
"""The run's record of what a replaced table was, written before it is deleted."""
SETTLE_NOTE = "settle-table"
"""The run's record of the UpdateTable that settles its target after a load at a load capacity."""


def settled_table(dynamodb: Any, table: str) -> dict[str, Any] | None:
    """The table's description once it is neither being created nor deleted; None if it does not exist.

    An earlier attempt may have died mid-creation or mid-deletion: wait, as that attempt would have.
    """
    existing = table_exists(dynamodb, table)
    status = existing.get("TableStatus") if existing else None
    if status == "DELETING":
        log.info("table %s is being deleted; waiting until it is gone", table)
        wait_until_gone(dynamodb, table)
        return None
    if existing is not None and status != "ACTIVE":
        log.info("table %s is %s; waiting until it is active", table, status)
        wait_until_active(dynamodb, table)
        return describe_table(dynamodb, table)
    return existing


def _delete_table(dynamodb: Any, table: str) -> None:
    """DeleteTable, accepting a deletion an earlier call (whose answer was lost) already started."""
    try:
        call_with_retries(lambda: dynamodb.delete_table(TableName=table))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFoundException", "ResourceInUseException"):
            raise
    wait_until_gone(dynamodb, table)


def replace_table(dynamodb: Any, table: str, current: dict[str, Any] | None, *,
                  journal: Checkpoints | None = None, record: dict[str, Any] | None = None,
                  capacity: LoadCapacity | None = None) -> LoadPlan:
    """Delete ``table`` and create it again, empty, with its own keys, indexes, billing, stream, TTL and tags.

    Why: a put-only restore leaves behind the items deleted from the source
    since the target was last loaded, so a staging copy drifts from production
    night after night. A fresh table holds exactly the backup, which verify
    then proves item by item.

    Retry-safe with a ``journal`` (the run's checkpoint location): what the table
    was is recorded there before it is deleted, so an attempt that dies between
    the delete and the end of the creation is finished by the next one from that
    record, never from the half-made table, and the incarnation this run created
    is not deleted again. ``current`` is the table's settled description (None
    when an earlier attempt already deleted it); ``record`` is what the journal
    already holds, if anything. With a load ``capacity`` the table is created at it, and the plan
    returned settles it to what it was (:mod:`restore.loadcapacity`).
    """
    if record is None:
        if current is None:
            raise ParameterError(f"replace_table: table {table!r} does not exist and this run holds no record of it")
        if current.get("DeletionProtectionEnabled"):
            raise ParameterError(f"replace_table: table {table!r} has deletion protection on; turn it off to let "
                                 "the restore replace it, or restore without replacing")
        info = read_table_info(dynamodb, table)
        record = {"original_id": table_identity(info.description), "description": info.description,
                  "time_to_live": info.time_to_live, "tags": info.tags}
        if journal is not None:
            try:
                journal.write_note(REPLACE_NOTE, record)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", exc)
                raise ParameterError(f"replace_table: cannot record table {table!r} at {journal.location} before "
                                     f"deleting it ({code}); set checkpoint_uri to a writable S3 location") from None
    elif current is not None and table_identity(current) != record["original_id"]:
        log.info("table %s was already created again by an earlier attempt of this run; finishing it", table)
        set_ttl_and_tags(dynamodb, table, record["time_to_live"], record["tags"])
        return plan_for_new_table(record["description"], table, capacity)
    if current is not None:
        if (current.get("StreamSpecification") or {}).get("StreamEnabled"):
            log.warning("table %s has a stream: the new table's stream has a new ARN; point its consumers at it",
                        table)
        log.warning("replacing table %s: deleting it and creating it again like itself, then loading the backup",
                    table)
        _delete_table(dynamodb, table)
    plan = plan_for_new_table(record["description"], table, capacity)
    create_table_like(dynamodb, _at(record["description"], capacity), table, time_to_live=record["time_to_live"],
                      tags=record["tags"])
    return plan


def _at(final: dict[str, Any], capacity: LoadCapacity | None) -> dict[str, Any]:
    """The description to create from: ``final``, or ``final`` at the load capacity."""
    return final if capacity is None else loading_description(final, capacity)


def ensure_target(dynamodb: Any, source: BackupSource, table: str, keys: dict[str, Any], *,
                  create: bool, replace: bool = False, journal: Checkpoints | None = None,
                  load_capacity: LoadCapacity | None = None) -> dict[str, Any]:
    """Create the table if it is missing (from the sidecar when there is one), or replace it if asked.

    Says whether it was created, replaced, and empty (then verification
    compares every item, not only the count). ``journal`` makes a replacement
    retry-safe (see :func:`replace_table`). With a ``load_capacity`` the table is
    created at it (an existing one switched to on-demand), and ``settle`` holds the
    UpdateTable that gives it its final capacities after the load (None: nothing to do).
    """
    existing = settled_table(dynamodb, table)
    record = journal.read_note(REPLACE_NOTE) if replace and journal is not None else None
    if replace and (existing is not None or record is not None):
        if existing is not None:
            check_same_keys(keys, existing, f"table {table!r}")
        plan = replace_table(dynamodb, table, existing, journal=journal, record=record, capacity=load_capacity)
        return _said({"created": True, "replaced": True, "was_empty": True}, plan, journal)
    if existing is not None:
        check_same_keys(keys, existing, f"table {table!r}")
        empty = is_empty(dynamodb, table)
        log.info("restoring into existing table %s (%s, %s)", table, show_key_schema(existing),
                 "empty" if empty else "NOT empty: items with the backup's keys are overwritten")
        # A retry of this run (the table made or switched at the load capacity before) settles as planned then.
        earlier = journal.read_note(SETTLE_NOTE) if load_capacity is not None and journal is not None else None
        plan = (LoadPlan(earlier, "an earlier attempt of this run set the load capacity") if earlier
                else switch_existing(dynamodb, table, existing, load_capacity))
        return _said({"created": False, "replaced": False, "was_empty": empty}, plan, journal)
    if not create and not replace:
        raise ParameterError(f"table: {table!r} does not exist and create_table is off")
    if source.table is not None:
        final = source.table
        plan = plan_for_new_table(final, table, load_capacity)
        create_table_like(dynamodb, _at(final, load_capacity), table, time_to_live=source.time_to_live,
                          tags=source.tags)
    else:
        final = {**keys, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}, "GlobalSecondaryIndexes": []}
        plan = plan_for_new_table(final, table, load_capacity)
        create_table_like(dynamodb, _at(final, load_capacity), table)
    return _said({"created": True, "replaced": False, "was_empty": True}, plan, journal)


def _said(target: dict[str, Any], plan: LoadPlan, journal: Checkpoints | None) -> dict[str, Any]:
    """The target's record, with the settle plan when there is one (the record's keys stay as they were).

    The plan is also written to the run's journal, so a retry that finds the table already made (or
    switched) at the load capacity still settles it.
    """
    if plan.note:
        log.info("load capacity: %s", plan.note)
    if plan.settle is not None:
        log.info("if the run stops before it settles, finish with: %s", settle_command(plan.settle))
        target["settle"] = plan.settle
        if journal is not None:
            try:
                journal.write_note(SETTLE_NOTE, plan.settle)
            except ClientError as exc:
                log.warning("could not record the settle plan at %s (%s): a retry would not settle the table",
                            journal.location, exc.response.get("Error", {}).get("Code", exc))
    return target


@dataclass
class ValidationReport:
    items: int = 0
    blank_lines: int = 0
    files: dict[str, int] = field(default_factory=dict)
    digest: BucketedDigest = field(default_factory=BucketedDigest)

    def merge(self, other: ValidationReport) -> None:
        self.items += other.items
        self.blank_lines += other.blank_lines
        self.files.update(other.files)
        self.digest.merge(other.digest)

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "blank_lines": self.blank_lines, "files": self.files,
                "digest": self.digest.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationReport:
        return cls(int(data["items"]), int(data["blank_lines"]), dict(data["files"]),
                   BucketedDigest.from_dict(data["digest"]))


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


@contextmanager
def _few_collections() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects that exist before a load, and run it less often.

    A load makes and frees dozens of small dicts per item, all acyclic (reference counting frees
    them); each full collection nevertheless walked every object botocore and Airflow had loaded,
    which was 8% of a load worker's CPU. Restored as it was afterwards.
    """
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 10_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def load_files(dynamodb: Any, s3: Any, bucket: str, files: list[SourceFile], table: str, key_names: list[str],
               rate: float, *, checkpoints: Checkpoints | None = None,
               current_rate: Callable[[], float] | None = None, label: str = "load",
               sleep: Callable[[float], None] = time.sleep, fast_path: bool = True,
               index_scales: Mapping[str, float] | None = None) -> LoadResult:
    """Put every item of ``files`` into ``table`` at ``rate`` write units/s, skipping files already finished.

    ``index_scales`` (``backup.plan.index_write_scales``) keeps the table's global
    indexes within the same share of their own capacity. ``fast_path=False``
    sends every item through botocore's serializer (the plain path).
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
        with _few_collections():
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
