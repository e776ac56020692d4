"""Restore a table as it was at a moment: the newest full backup at or before it, then its links in order.

    find the chain (refuse a gap) -> validate the full and every link -> create/replace the target
    -> load the full -> apply each link in order -> verify against the state the chain describes

Nothing is written until the chain is whole and every file has been read and
checked. Verification compares the target's digest with the full's digest
moved along by each link (``- old images + new images``); on a mismatch the
differing buckets are re-read on both sides to name keys.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar

from dynamodb_backup.aws.tableinfo import describe_table, table_identity
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import index_write_scales
from dynamodb_backup.formats.codec import item_digest
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.incremental.apply import (
    ApplyResult,
    LinkReport,
    apply_link_files,
    file_changes,
    validate_link_files,
)
from dynamodb_backup.incremental.chain import VIEW_WITH_OLD, Chain, Link, find_chain, link_files
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.progress import ProgressReport
from dynamodb_backup.repository.digest import BucketedDigest, backup_items, key_hash
from dynamodb_backup.repository.inspection import BackupSource, SourceFile
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.restore.job import (
    ClientCache,
    ClientFactory,
    Prepared,
    RestoreRequest,
    _map,
    ensure_restore_target,
    load_prepared,
    prepare_restore,
    say_pace,
)
from dynamodb_backup.restore.loadcapacity import settle_or_say
from dynamodb_backup.restore.steps import LoadResult, plan_shares, target_rate_reader, write_rate
from dynamodb_backup.restore.verify import (
    MAX_KEYS_IN_MEMORY,
    Sample,
    VerifyReport,
    _sample_passes,
    default_read_rate,
    table_digest,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class LinkFiles:
    """One link to apply: its folder, window and data files (small enough for XCom)."""

    folder: S3Location
    start: str
    end: str
    view: str | None
    files: list[SourceFile]

    @classmethod
    def of(cls, s3: Any, link: Link) -> LinkFiles:
        return cls(link.folder, iso(link.start), iso(link.end), link.view, link_files(s3, link))

    def describe(self) -> str:
        return f"{self.folder.uri}/ (changes {self.start}..{self.end}, {len(self.files)} files)"

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder.uri, "start": self.start, "end": self.end, "view": self.view,
                "files": [asdict(f) for f in self.files]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LinkFiles:
        return cls(S3Location.parse(data["folder"]), data["start"], data["end"], data.get("view"),
                   [SourceFile.from_dict(f) for f in data["files"]])


#: Changes smaller than this are validated and applied on threads of the restore's own process:
#: starting worker processes (each importing botocore and making clients) costs more than a small
#: night's writes, which mostly wait on DynamoDB anyway.
INLINE_BYTES = 16 * 1024 * 1024


def _side_by_side(processes: int, files: list[SourceFile], function: Callable[..., T],
                  calls: list[tuple[Any, ...]], report: ProgressReport | None = None) -> list[T]:
    """``function(*call)`` for every call: in worker processes for big work, on threads for small."""
    if sum(f.size for f in files) > INLINE_BYTES:
        return list(_map(processes, function, calls, report))
    with ThreadPoolExecutor(max_workers=max(1, min(processes, len(calls))), thread_name_prefix="link") as pool:
        return list(pool.map(lambda call: function(*call), calls))


def plan_links(s3: Any, chain: Chain) -> list[LinkFiles]:
    """Every link's files, checked against its folder and manifests (nothing is read from the data yet)."""
    return [LinkFiles.of(s3, link) for link in chain.links]


def verifiable(links: list[LinkFiles]) -> bool:
    """Every link carries old images, so the state the chain describes can be digested without a key map."""
    return all(link.view == VIEW_WITH_OLD for link in links)


def described_digest(full: BucketedDigest, reports: list[LinkReport]) -> BucketedDigest:
    """The digest of the state the chain describes: the full's, moved along by each link in order."""
    state = full
    for report in reports:
        state = report.after(state)
    return state


def _validate_link(make_client: ClientFactory, link: LinkFiles, rules: KeyRules) -> LinkReport:
    return validate_link_files(make_client("s3"), link.folder.bucket, link.files, rules)


def validate_links(make_client: ClientFactory, links: list[LinkFiles], rules: KeyRules,
                   processes: int = 1) -> list[LinkReport]:
    """Read and check every link's files (side by side), one report per link in order."""
    every_file = [file for link in links for file in link.files]
    reports = _side_by_side(processes, every_file, _validate_link, [(make_client, link, rules) for link in links])
    for link, report in zip(links, reports, strict=True):
        log.info("%s: %d changes valid (%d puts, %d deletes)", link.describe(), report.changes, report.puts,
                 report.deletes)
    return reports


def compare_with_table(table: str, expected: BucketedDigest, found: BucketedDigest, *,
                       was_empty: bool) -> VerifyReport:
    """The target's digest against the expected one; a target that held items before is compared by count."""
    mine, theirs = expected.total(), found.total()
    report = VerifyReport(table=table, backup_items=mine.count, table_items=theirs.count,
                          backup_digest=mine.hexdigest(), table_digest=theirs.hexdigest(), compared_digests=was_empty,
                          match=mine == theirs if was_empty else theirs.count >= mine.count)
    if not was_empty:
        report.notes.append("the target held items before the restore, so only counts were compared")
    return report


def _apply_share(make_client: ClientFactory, request: RestoreRequest, folder: S3Location, files: list[SourceFile],
                 rules: KeyRules, rate: float, share: float, label: str) -> ApplyResult:
    dynamodb, s3 = make_client("dynamodb"), make_client("s3")
    target = describe_table(dynamodb, request.table)
    scales = index_write_scales(target)
    return apply_link_files(
        dynamodb, s3, folder.bucket, files, request.table, rules, rate,
        checkpoints=request.checkpoints_for(s3, folder, table_identity(target)), label=label, index_scales=scales,
        current_rate=target_rate_reader(dynamodb, request.table, request.write_ratio, request.on_demand_capacity,
                                        share, scales))


def apply_links(make_client: ClientFactory, request: RestoreRequest, links: list[LinkFiles], rules: KeyRules,
                processes: int = 1) -> ApplyResult:
    """Apply the links in order, each split into shares of files applied side by side.

    Completion markers go where the full's went (``request.folder``), so a resumed run skips what
    it finished, links and files alike.
    """
    total, dynamodb = ApplyResult(), make_client("dynamodb")
    for number, link in enumerate(links, 1):
        rate = write_rate(describe_table(dynamodb, request.table), request.write_ratio, request.on_demand_capacity)
        shares = plan_shares(link.files, request.workers) if link.files else []
        log.info("link %d of %d: applying %s at %.0f write units/s", number, len(links), link.describe(), rate)
        calls = [(make_client, request, request.folder, share, rules, rate / len(shares), 1 / len(shares),
                  f"link {number} worker {i}") for i, share in enumerate(shares)]
        with ProgressReport(f"link {number} of {len(links)}", sum(f.items or 0 for f in link.files), log) as report:
            for result in _side_by_side(processes, link.files, _apply_share, calls, report):
                total.merge(result)
    return total


def verify_described(dynamodb: Any, s3: Any, table: str, source: BackupSource, links: list[LinkFiles],
                     rules: KeyRules, expected: BucketedDigest, *, was_empty: bool = True, segments: int = 4,
                     read_rate: float | None = None, sample_size: int = 20) -> VerifyReport:
    """Scan ``table`` and compare it with the state the full and its links describe."""
    names = rules.key_names
    rate = read_rate or default_read_rate(dynamodb, table)
    found = table_digest(dynamodb, table, segments, key_names=names, read_rate=rate, consistent=True)
    report = compare_with_table(table, expected, found, was_empty=was_empty)
    if was_empty and not report.match:
        def described(mask: bytearray, _sample: Sample) -> dict[tuple[str, ...], int]:
            ours: dict[tuple[str, ...], int] = {}
            for _, item in backup_items(s3, source):
                key = rules.key_of(item)
                if mask[key_hash(key)]:
                    ours[key] = item_digest(item)
            for link in links:
                for file in link.files:
                    for _, change in file_changes(s3, link.folder.bucket, file, rules):
                        key = rules.key_of(change.keys)
                        if not mask[key_hash(key)]:
                            continue
                        if change.new is not None:
                            ours[key] = item_digest(change.new)
                        else:
                            ours.pop(key, None)
            return ours

        report.sample = _sample_passes(described, dynamodb, table, names, expected, found, segments,
                                       TokenBucket(rate), sample_size, MAX_KEYS_IN_MEMORY)
    log.info("%s", report.summary().replace("in the backup", "in the state the chain describes"))
    return report


@dataclass
class AsOfOutcome:
    chain: Chain
    prepared: Prepared
    links: list[LinkFiles]
    reports: list[LinkReport]
    target: dict[str, Any]
    load: LoadResult
    applied: ApplyResult
    verify: VerifyReport | None
    notes: list[str] = field(default_factory=list)


def run_as_of(make_client: ClientFactory, request: RestoreRequest, base: S3Location, source_table: str,
              moment: datetime, processes: int = 1) -> AsOfOutcome:
    """Restore ``source_table`` as it was at ``moment`` (the newest chain point at or before it) into
    ``request.table``; ``request.folder`` is ignored (the chain's full is used)."""
    make_client = ClientCache.wrap(make_client)
    s3 = make_client("s3")
    chain = find_chain(s3, base, source_table, moment)
    request = replace(request, folder=chain.full.folder)
    links = plan_links(s3, chain)
    prepared = prepare_restore(make_client, request, processes)
    reports = validate_links(make_client, links, prepared.rules, processes)
    target = ensure_restore_target(make_client, request, prepared)
    say_pace(describe_table(make_client("dynamodb"), request.table), request, prepared,
             creating=bool(target["created"]))
    load = load_prepared(make_client, request, prepared, processes)
    applied = apply_links(make_client, request, links, prepared.rules, processes)
    outcome = _verified(make_client, request, chain, prepared, links, reports, target, load, applied)
    failure = settle_or_say(make_client("dynamodb"), target.get("settle"), log.info, log.warning)
    if failure:
        outcome.notes.append(failure)
    return outcome


def _verified(make_client: ClientFactory, request: RestoreRequest, chain: Chain, prepared: Prepared,
              links: list[LinkFiles], reports: list[LinkReport], target: dict[str, Any], load: LoadResult,
              applied: ApplyResult) -> AsOfOutcome:
    s3 = make_client("s3")
    outcome = AsOfOutcome(chain, prepared, links, reports, target, load, applied, None)
    if not request.verify:
        return outcome
    if not chain.verifiable:
        outcome.notes.append("not verified: a link lacks old images (view NEW_IMAGE), so the state it leaves "
                             "cannot be digested without holding every key")
        log.warning("%s", outcome.notes[-1])
        return outcome
    expected = described_digest(prepared.validation.digest, reports)
    outcome.verify = verify_described(make_client("dynamodb"), s3, request.table, prepared.source, links,
                                      prepared.rules, expected, was_empty=bool(target["was_empty"]))
    checkpoints = request.checkpoints_for(s3, prepared.source.folder)
    if outcome.verify.match and checkpoints:
        checkpoints.clear()
    return outcome
