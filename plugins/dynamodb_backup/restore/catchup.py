"""Catch up a copy: apply one night's incremental link to a table that holds the previous night.

Why: a staging copy that follows production with a night's lag, without a full
reload. Before writing, every key the link changes is read from the target
(strongly consistent, paced) and must hold what the link says it replaces (its
old image, or nothing), or already what it leaves (an earlier attempt applied
it): a table that is not at the link's start is refused, naming keys. After
applying, every changed key is read again and must hold the link's new image
(or be gone). Only the changed keys are read or written; nothing else is touched.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dynamodb_backup.aws.tablecreate import check_same_keys
from dynamodb_backup.aws.tableinfo import describe_table, table_identity
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, index_write_scales
from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.catalog import read_sidecar
from dynamodb_backup.formats.codec import Item, item_digest
from dynamodb_backup.formats.layout import SIDECAR, SUCCESS, S3Location
from dynamodb_backup.incremental.apply import (
    ApplyResult,
    Change,
    LinkReport,
    apply_link_files,
    file_changes,
    validate_link_files,
)
from dynamodb_backup.incremental.chain import INCREMENTAL, VIEW_WITH_OLD, Link, link_files, link_of
from dynamodb_backup.loading.checkpoint import Checkpoints, default_checkpoint_base
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.repository.inspection import SourceFile, list_children
from dynamodb_backup.repository.keyschema import KeyRules, key_description
from dynamodb_backup.restore.selection import read_items
from dynamodb_backup.restore.steps import target_rate_reader, write_rate
from dynamodb_backup.restore.verify import default_read_rate

log = logging.getLogger(__name__)

Key = tuple[str, ...]
#: Changes held at once while comparing them with the table.
CHUNK = 1000


def read_link(s3: Any, folder: S3Location, force: bool = False) -> Link:
    """The incremental link in ``folder``; refuses anything else, and an incomplete one unless ``force``."""
    files = list_children(s3, folder)[0]
    if SIDECAR not in files:
        raise BackupFolderError(f"{folder}/: no {SIDECAR}, so not an incremental backup of this tool")
    link = link_of(folder, read_sidecar(s3, folder))
    if link is None or link.role != INCREMENTAL:
        raise BackupFolderError(f"{folder}/ is not an incremental backup (its sidecar's mode is "
                                f"{read_sidecar(s3, folder).source.get('mode')!r}); restore it without --apply")
    if SUCCESS not in files and not force:
        raise BackupFolderError(f"{folder}/ has no {SUCCESS} (the backup did not finish); refusing to apply it")
    return link


def _chunks(s3: Any, bucket: str, files: list[SourceFile], rules: KeyRules) -> Iterator[list[tuple[str, Change]]]:
    chunk: list[tuple[str, Change]] = []
    for file in files:
        for origin, change in file_changes(s3, bucket, file, rules):
            chunk.append((origin, change))
            if len(chunk) >= CHUNK:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def _same(item: Item | None, want: Item | None) -> bool:
    if item is None or want is None:
        return item is None and want is None
    return item_digest(item) == item_digest(want)


@dataclass
class StateCheck:
    """How the changed keys of a link stand in the table."""

    before: int = 0
    after: int = 0
    other: int = 0
    sample: list[str] = field(default_factory=list)

    def add(self, state: str, origin: str, key: dict[str, Any]) -> None:
        setattr(self, state, getattr(self, state) + 1)
        if state == "other" and len(self.sample) < 10:
            self.sample.append(f"{key} ({origin})")


def check_state(dynamodb: Any, s3: Any, table: str, link: Link, files: list[SourceFile], rules: KeyRules,
                bucket: TokenBucket, *, expect_after: bool) -> StateCheck:
    """Read every changed key: holds the old image (``before``), the new one (``after``) or neither (``other``)."""
    check = StateCheck()
    for chunk in _chunks(s3, link.folder.bucket, files, rules):
        by_key = {rules.key_of(change.keys): (origin, change) for origin, change in chunk}
        for key, item in read_items(dynamodb, table, [c.keys for _, c in by_key.values()], rules, bucket):
            origin, change = by_key[key]
            shown = dict(zip(rules.key_names, key, strict=True))
            if _same(item, change.new):
                check.add("after", origin, shown)
            elif not expect_after and _same(item, change.old):
                check.add("before", origin, shown)
            else:
                check.add("other", origin, shown)
    return check


@dataclass
class CatchUpOutcome:
    link: Link
    report: LinkReport
    precheck: StateCheck | None
    applied: ApplyResult
    verify: StateCheck | None


def run_apply(make_client: Any, folder: S3Location, table: str, *, write_ratio: float = 0.5,
              on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY, run_id: str = "apply",
              checkpoint_base: S3Location | None = None, checkpoints: bool = True, verify: bool = True,
              force: bool = False) -> CatchUpOutcome:
    """Apply the incremental link in ``folder`` to the existing ``table`` (which holds the link's start)."""
    s3, dynamodb = make_client("s3"), make_client("dynamodb")
    link = read_link(s3, folder, force)
    target = describe_table(dynamodb, table)
    check_same_keys(link.sidecar.table, target, f"table {table!r}")
    rules = KeyRules.from_description(key_description(target))
    files = link_files(s3, link)
    report = validate_link_files(s3, folder.bucket, files, rules)
    log.info("%s: changes %s..%s, %d valid (%d puts, %d deletes)", folder, iso(link.start), iso(link.end),
             report.changes, report.puts, report.deletes)
    reads = TokenBucket(default_read_rate(dynamodb, table, write_ratio, on_demand_capacity))
    precheck = None
    if link.view == VIEW_WITH_OLD:
        precheck = check_state(dynamodb, s3, table, link, files, rules, reads, expect_after=False)
        log.info("%s before applying: %d keys at the link's start, %d already applied, %d neither", table,
                 precheck.before, precheck.after, precheck.other)
        if precheck.other and not force:
            raise ParameterError(
                f"table {table!r} does not hold the state this link starts from ({iso(link.start)}): "
                f"{precheck.other} changed keys hold neither the link's old nor its new image, e.g. "
                f"{'; '.join(precheck.sample[:3])}. Apply the links before it first (or restore --as-of "
                f"{iso(link.start)}); force applies it anyway")
    else:
        log.warning("%s: view %s has no old images; cannot check that %s holds %s", folder, link.view, table,
                    iso(link.start))
    scales = index_write_scales(target)
    marks = None
    if checkpoints:
        marks = Checkpoints.for_run(s3, checkpoint_base or default_checkpoint_base(folder), table, run_id,
                                    table_identity(target))
    applied = apply_link_files(
        dynamodb, s3, folder.bucket, files, table, rules, write_rate(target, write_ratio, on_demand_capacity),
        checkpoints=marks, index_scales=scales, label=f"apply {folder.prefix.rsplit('/', 1)[-1]}",
        current_rate=target_rate_reader(dynamodb, table, write_ratio, on_demand_capacity, 1.0, scales))
    outcome = CatchUpOutcome(link, report, precheck, applied, None)
    if verify:
        outcome.verify = check_state(dynamodb, s3, table, link, files, rules, reads, expect_after=True)
        log.info("%s after applying: %d of %d changed keys hold the link's result%s", table, outcome.verify.after,
                 report.changes, f"; {outcome.verify.other} DIFFER, e.g. {outcome.verify.sample[:3]}"
                 if outcome.verify.other else "")
        if not outcome.verify.other and marks:
            marks.clear()
    return outcome
