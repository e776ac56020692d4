"""Which backup folders of a table go, and why: the retention rules, with no S3 and no Airflow.

The rules (``retention: {keep_days, keep_min}`` in ``backups.yaml``), applied to the dated folders
directly under ``<base>/<table>/``:

* a folder we did not write (no sidecar, and none of our own resume objects: ``_checkpoints/`` of a
  scan or a conversion, ``_native/`` of a pitr export being converted) is never touched;
* the newest complete backup is always kept, and so are the ``keep_min`` newest complete ones;
* other complete backups are kept while they are at most ``keep_days`` old (by the moment the folder
  is named after: the state of the table it holds), and deleted after;
* partial folders (no ``_SUCCESS``) are abandoned attempts once their newest object is more than
  ``keep_days`` old (so a long backfill still writing into an old-dated folder is left alone);
* an incremental link that is kept keeps what it builds on: the link before it and its full,
  however old (a restore to a moment needs the whole chain). A link whose chain is already broken
  (its full or the link before is gone) is kept by the rules above and says so;
* ``protect`` (the folder the run just sealed) is kept whatever its age.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from dynamodb_backup.errors import ParameterError

KEEP, DELETE = "keep", "delete"


@dataclass(frozen=True)
class RetentionPolicy:
    keep_days: float = 35
    keep_min: int = 7

    @classmethod
    def parse(cls, value: object, where: str = "retention") -> RetentionPolicy | None:
        """``{keep_days: 35, keep_min: 7}`` from the backups file; None (or ``null``) turns pruning off."""
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ParameterError(f"{where}: expected a mapping such as {{keep_days: 35, keep_min: 7}}, got {value!r}")
        unknown = sorted(set(value) - {"keep_days", "keep_min"})
        if unknown:
            raise ParameterError(f"{where}: unknown settings {unknown} (known: keep_days, keep_min)")
        days, keep_min = value.get("keep_days", cls.keep_days), value.get("keep_min", cls.keep_min)
        if isinstance(days, bool) or not isinstance(days, int | float) or not 1 <= days <= 36500:
            raise ParameterError(f"{where}.keep_days: a number of days from 1 to 36500, got {days!r}")
        if isinstance(keep_min, bool) or not isinstance(keep_min, int) or not 1 <= keep_min <= 10000:
            raise ParameterError(f"{where}.keep_min: a whole number from 1 to 10000 (the newest complete backup "
                                 f"is always kept), got {keep_min!r}")
        return cls(float(days), keep_min)


@dataclass(frozen=True)
class FolderFacts:
    """One dated folder as listed: what retention needs to know about it."""

    uri: str
    named: datetime
    """The moment in the folder's name."""
    complete: bool
    ours: bool
    why_ours: str
    """What shows we wrote it (``sidecar``, ``_checkpoints/``, ``_native/``), or why we think not."""
    modified: datetime | None = None
    """The newest object's LastModified (partial folders: to tell an abandoned attempt from a running one)."""
    mode: str | None = None
    chain_full: str | None = None
    """Incremental links: the full they build on (its folder URI), from the sidecar's ``chain``."""
    chain_previous: str | None = None
    """Incremental links: the folder before them in the chain."""

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Decision:
    folder: FolderFacts
    action: str
    reasons: list[str] = field(default_factory=list)

    @property
    def why(self) -> str:
        return "; ".join(self.reasons)


def _days(delta: timedelta) -> str:
    return f"{delta.total_seconds() / 86400:.1f} days"


def plan_retention(folders: Iterable[FolderFacts], policy: RetentionPolicy, now: datetime,
                   protect: Iterable[str] = ()) -> list[Decision]:
    """A decision for every folder (oldest first): keep or delete, with the reasons."""
    ordered = sorted(folders, key=lambda f: f.named)
    limit = timedelta(days=policy.keep_days)
    protected = {uri.rstrip("/") for uri in protect}
    complete = [f for f in ordered if f.complete and f.ours]
    rank = {f.uri: i for i, f in enumerate(reversed(complete))}  # 0: the newest complete backup
    decisions: dict[str, Decision] = {}
    for f in ordered:
        decisions[f.uri] = _decide(f, policy, limit, now, rank, protected)
    _keep_chains(ordered, decisions)
    return [decisions[f.uri] for f in ordered]


def _decide(f: FolderFacts, policy: RetentionPolicy, limit: timedelta, now: datetime, rank: dict[str, int],
            protected: set[str]) -> Decision:
    if not f.ours:
        return Decision(f, KEEP, [f"not written by dynamodb-backup ({f.why_ours}): never touched"])
    if f.uri.rstrip("/") in protected:
        return Decision(f, KEEP, ["the folder this run wrote"])
    age = now - f.named
    if f.complete:
        position = rank[f.uri]
        if position == 0:
            return Decision(f, KEEP, [f"the newest complete backup ({_days(age)} old)"])
        if position < policy.keep_min:
            return Decision(f, KEEP, [f"one of the {policy.keep_min} newest complete backups (#{position + 1}, "
                                      f"{_days(age)} old)"])
        if age <= limit:
            return Decision(f, KEEP, [f"complete, {_days(age)} old: within keep_days ({policy.keep_days:g})"])
        return Decision(f, DELETE, [f"complete, {_days(age)} old: past keep_days ({policy.keep_days:g}) and not "
                                    f"among the {policy.keep_min} newest complete backups"])
    touched = max(f.named, f.modified) if f.modified else f.named
    idle = now - touched
    if idle <= limit:
        return Decision(f, KEEP, [f"partial (no _SUCCESS), last written {_days(idle)} ago: within keep_days "
                                  f"({policy.keep_days:g}), it may still be running or retried"])
    return Decision(f, DELETE, [f"partial (no _SUCCESS), last written {_days(idle)} ago: an abandoned attempt, "
                                f"past keep_days ({policy.keep_days:g})"])


def _keep_chains(ordered: list[FolderFacts], decisions: dict[str, Decision]) -> None:
    """Every kept complete link keeps the link before it and its full (transitively), with the reason."""
    by_uri = {f.uri.rstrip("/"): f for f in ordered}
    for f in reversed(ordered):  # newest first, so a rescued link then rescues what it builds on
        decision = decisions[f.uri]
        if decision.action != KEEP or not f.complete or f.mode != "incremental":
            continue
        for role, target in (("the link before it", f.chain_previous), ("its full", f.chain_full)):
            if not target:
                decision.reasons.append(f"its sidecar names no {role.split()[-1]} (chain unknown)")
                continue
            needed = by_uri.get(target.rstrip("/"))
            if needed is None:
                decision.reasons.append(f"chain broken: {role} ({target}/) is gone")
                continue
            if not needed.complete:
                decision.reasons.append(f"chain broken: {role} ({target}/) has no _SUCCESS")
            kept = decisions[needed.uri]
            if kept.action == DELETE:
                kept.action = KEEP
                kept.reasons = [f"kept: the kept incremental {f.name} builds on it (else: {kept.why})"]


def summary_line(decisions: list[Decision]) -> str:
    gone = [d for d in decisions if d.action == DELETE]
    foreign = [d for d in decisions if not d.folder.ours]
    return (f"{len(decisions)} folders: {len(gone)} to delete, {len(decisions) - len(gone)} kept"
            + (f" ({len(foreign)} not ours)" if foreign else ""))
