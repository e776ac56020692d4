"""``restore --as-of T`` when the table has stream segments: the base, its links, then the stream to T.

    plan (base + segments, refuse a gap) -> validate the full, the links and every segment line up to T
    -> create/replace the target -> load the full -> apply the links -> replay the stream in order
    -> verify against the state the base and the segments describe

Nothing is written until every file the restore reads was read and checked. The state the
segments describe is digested without a second table: the base's digest, less the base's
items for every key the stream changed, plus each such key's last image (or nothing, if its
last change was a delete). That holds one small entry (key, digest) per changed key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.formats.codec import TableDigest, item_digest
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.incremental.apply import ApplyResult, LinkReport
from dynamodb_backup.loading.load import BatchWriter
from dynamodb_backup.progress import Progress
from dynamodb_backup.repository.digest import BucketedDigest, key_hash
from dynamodb_backup.repository.inspection import BackupSource, SourceFile
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.restore.asof import (
    LinkFiles,
    apply_links,
    compare_with_table,
    described_digest,
    plan_links,
    validate_links,
)
from dynamodb_backup.restore.job import (
    ClientCache,
    ClientFactory,
    Prepared,
    RestoreRequest,
    ensure_restore_target,
    load_prepared,
    prepare_restore,
    say_pace,
)
from dynamodb_backup.restore.loadcapacity import settle_or_say
from dynamodb_backup.restore.selection import Selection, selected_state
from dynamodb_backup.restore.steps import LoadResult, write_rate
from dynamodb_backup.restore.streamchain import StreamPlan, plan_stream, stream_changes
from dynamodb_backup.restore.verify import VerifyReport, default_read_rate, table_digest

log = logging.getLogger(__name__)
Key = tuple[str, ...]
#: How often reading a long stream says where it is.
PROGRESS_SECONDS = 10.0


@dataclass
class StreamReport:
    """What validating the segments found: counts, and every changed key's last image digest (None: deleted)."""

    changes: int = 0
    puts: int = 0
    deletes: int = 0
    last: dict[Key, int | None] = field(default_factory=dict)


def validate_stream(s3: Any, plan: StreamPlan, rules: KeyRules) -> StreamReport:
    """Read every segment line the restore will replay: decoded, keys checked, sequence order per shard."""
    report = StreamReport()
    said = time.monotonic()
    for _, stored in stream_changes(s3, plan, rules):
        change = stored.change
        report.changes += 1
        if report.changes % 1000 == 0 and time.monotonic() - said >= PROGRESS_SECONDS:  # long work says where it is
            log.info("validating the stream of %s: %d changes read", plan.table, report.changes)
            said = time.monotonic()
        key = rules.key_of(change.keys)
        if change.new is not None:
            report.puts += 1
            report.last[key] = item_digest(change.new)
        else:
            report.deletes += 1
            report.last[key] = None
    log.info("stream of %s: %d changes valid to replay (%d puts, %d deletes, %d keys)", plan.table,
             report.changes, report.puts, report.deletes, len(report.last))
    return report


def replay_stream(dynamodb: Any, s3: Any, plan: StreamPlan, table: str, rules: KeyRules, rate: float,
                  expected: int = 0, progress_seconds: float | None = None) -> ApplyResult:
    """Put or delete every change of the plan in replay order, paced at ``rate`` write units/s.

    One writer, batches written one after another: a batch never names a key twice (the writer
    flushes first), so a key's changes reach the table in the order they were made.
    """
    writer = BatchWriter(dynamodb, table, rules.key_names, TokenBucket(rate))
    result = ApplyResult()
    progress = Progress(f"replay stream into {table}", expected, log, every=progress_seconds)
    charged = 0.0
    for origin, stored in stream_changes(s3, plan, rules):
        if stored.change.new is not None:
            writer.put(stored.change.new, origin)
            result.puts += 1
        else:
            writer.delete(stored.change.keys, origin)
            result.deletes += 1
        if (result.puts + result.deletes) % 1000 == 0:
            progress.add(1000, 0, writer.stats.consumed_write_units - charged)
            charged = writer.stats.consumed_write_units
    writer.flush()
    progress.add((result.puts + result.deletes) % 1000, 0, writer.stats.consumed_write_units - charged)
    progress.done()
    result.consumed_write_units = writer.stats.consumed_write_units
    result.unprocessed_retries = writer.stats.unprocessed_retries
    return result


def stream_digest(base: BucketedDigest, base_items: dict[Key, Any], report: StreamReport) -> BucketedDigest:
    """The digest of the state the base and the stream describe: each changed key's base item out, its last
    image in."""
    buckets = [TableDigest(b.count, b.value) for b in base.buckets]
    for key, digest in report.last.items():
        bucket = buckets[key_hash(key) >> 8]
        if key in base_items:
            bucket.count -= 1
            bucket.value = (bucket.value - item_digest(base_items[key])) % (1 << 128)
        if digest is not None:
            bucket.add_digest(digest)
    return BucketedDigest(buckets)


@dataclass
class StreamOutcome:
    plan: StreamPlan
    prepared: Prepared
    links: list[LinkFiles]
    reports: list[LinkReport]
    stream: StreamReport
    target: dict[str, Any]
    load: LoadResult
    applied: ApplyResult
    replayed: ApplyResult
    verify: VerifyReport | None
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the command prints: the plan, what was read and written, notes, the verification."""
        said = [self.plan.describe(),
                f"validated {self.prepared.validation.items} items, {sum(r.changes for r in self.reports)} link "
                f"changes and {self.stream.changes} stream changes ({len(self.stream.last)} keys)",
                f"loaded {self.load.items} items, applied {len(self.links)} links ({self.applied.puts} puts, "
                f"{self.applied.deletes} deletes), replayed the stream ({self.replayed.puts} puts, "
                f"{self.replayed.deletes} deletes)"]
        said += [f"  note: {note}" for note in self.notes]
        if self.verify is not None:
            said.append(self.verify.summary().replace("in the backup", "in the state the base and the stream "
                                                                       "describe"))
        return said

    @property
    def ok(self) -> bool:
        return self.verify is None or self.verify.match


def run_stream_as_of(make_client: ClientFactory, request: RestoreRequest, base: S3Location, source_table: str,
                     moment: datetime, processes: int = 1) -> StreamOutcome:
    """Restore ``source_table`` as it was at the end of ``moment``'s second into ``request.table``."""
    make_client = ClientCache.wrap(make_client)
    s3 = make_client("s3")
    plan = plan_stream(s3, base, source_table, moment)
    request = replace(request, folder=plan.chain.full.folder)
    links = plan_links(s3, plan.chain)
    prepared = prepare_restore(make_client, request, processes)
    reports = validate_links(make_client, links, prepared.rules, processes)
    stream = validate_stream(s3, plan, prepared.rules)
    target = ensure_restore_target(make_client, request, prepared)
    dynamodb = make_client("dynamodb")
    say_pace(describe_table(dynamodb, request.table), request, prepared, creating=bool(target["created"]))
    load = load_prepared(make_client, request, prepared, processes)
    applied = apply_links(make_client, request, links, prepared.rules, processes)
    rate = write_rate(describe_table(dynamodb, request.table), request.write_ratio, request.on_demand_capacity)
    log.info("replaying %d stream changes into %s at %.0f write units/s", stream.changes, request.table, rate)
    replayed = replay_stream(dynamodb, s3, plan, request.table, prepared.rules, rate, stream.changes,
                             request.progress_seconds)
    outcome = StreamOutcome(plan, prepared, links, reports, stream, target, load, applied, replayed, None,
                            list(plan.notes))
    if request.verify:
        outcome.verify = _verify(make_client, request, outcome)
    failure = settle_or_say(dynamodb, target.get("settle"), log.info, log.warning)
    if failure:
        outcome.notes.append(failure)
    return outcome


def _verify(make_client: ClientFactory, request: RestoreRequest, outcome: StreamOutcome) -> VerifyReport | None:
    plan, prepared = outcome.plan, outcome.prepared
    if not plan.chain.verifiable:
        outcome.notes.append("not verified: a link lacks old images (view NEW_IMAGE), so the state it leaves "
                             "cannot be digested without holding every key")
        return None
    s3 = make_client("s3")
    base = described_digest(prepared.validation.digest, outcome.reports)
    report = verify_stream_state(make_client("dynamodb"), s3, request.table, prepared.source,
                                 [link.files for link in outcome.links], prepared.rules, base, outcome.stream,
                                 was_empty=bool(outcome.target["was_empty"]))
    checkpoints = request.checkpoints_for(s3, prepared.source.folder)
    if report.match and checkpoints:
        checkpoints.clear()  # a resumed run skips what these marked; a verified restore needs none
    return report


def verify_stream_state(dynamodb: Any, s3: Any, table: str, source: BackupSource, links: list[list[SourceFile]],
                        rules: KeyRules, base: BucketedDigest, stream: StreamReport, *,
                        was_empty: bool = True) -> VerifyReport:
    """Scan ``table`` and compare it with the state the base (full and links, digest ``base``) and the
    stream describe; the base's items of the keys the stream changed are read back from the backup."""
    changed = Selection(rules, {key: {} for key in stream.last})
    base_items = selected_state(s3, source, links, changed) if changed.keys else {}
    expected = stream_digest(base, base_items, stream)
    found = table_digest(dynamodb, table, 4, key_names=rules.key_names, read_rate=default_read_rate(dynamodb, table),
                         consistent=True)
    report = compare_with_table(table, expected, found, was_empty=was_empty)
    if was_empty and not report.match:
        report.notes.append(f"{len(expected.differing(found))} of 256 key-hash buckets differ")
    log.info("%s", report.summary().replace("in the backup", "in the state the base and the stream describe"))
    return report
