"""One link of an incremental chain: decide full or incremental, export it, seal it.

A chain is a full point-in-time backup followed by incremental links, each holding the changes
of one data interval ``[since, until)``. Every folder is named after the moment its chain state
reaches (a full's export time, a link's ``until``), so the chain can be read off the folder names.

A run exports its interval as a link when the chain reaches exactly its start; it makes a full
backup at its interval's end instead on the first run, when the chain has a gap (a failed or
missing night), when the table was re-created, and every ``full_every``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Literal

from dynamodb_backup.aws.tableinfo import describe_table, table_identity
from dynamodb_backup.backup.job import BackupRequest
from dynamodb_backup.formats.catalog import read_sidecar, scan_listings
from dynamodb_backup.formats.layout import S3Location, backup_folder, parse_folder_name
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.incremental.chain import FULL, INCREMENTAL, Link, link_of
from dynamodb_backup.pitr.job import EXPORT_TIMEOUT, convert_all, poll, wait_restorable
from dynamodb_backup.pitr.native import describe_export
from dynamodb_backup.pitr.steps import begin_export, conversion_shares, open_pitr_folder, seal_pitr
from dynamodb_backup.pitr.window import iso, utc

log = logging.getLogger(__name__)

Role = Literal["full", "incremental"]


def chain_points(s3: Any, base: S3Location, table: str) -> list[Link]:
    """The table's complete pitr fulls and incremental links directly under ``<base>/<table>/``, oldest first
    (one listing; a link read off each complete folder's sidecar by :func:`chain.link_of`)."""
    table_base = base.child(table)
    points = []
    for listing in scan_listings(s3, table_base):
        folder = listing.folder
        if not listing.complete or folder.prefix.rsplit("/", 1)[0] != table_base.prefix:
            continue
        if parse_folder_name(folder.prefix.rsplit("/", 1)[-1]) is None:
            continue
        link = link_of(folder, read_sidecar(s3, folder))
        if link is not None:
            points.append(link)
    return sorted(points, key=lambda p: (p.end, p.role == INCREMENTAL))


def identity_of(link: Link) -> str:
    """The table a link was made from: the chain's recorded id, else the one its sidecar's description gives."""
    return link.table_id or table_identity(link.sidecar.table)


@dataclass(frozen=True)
class LinkPlan:
    role: Role
    since: datetime | None
    until: datetime
    folder: S3Location
    chain: dict[str, Any]
    reason: str

    def describe(self) -> str:
        what = f"changes {iso(self.since)}..{iso(self.until)}" if self.since else f"a full export at {iso(self.until)}"
        return f"{what} into {self.folder} ({self.reason})"


def plan_link(points: list[Link], base: S3Location, table: str, table_id: str, start: datetime,
              end: datetime, full_every: timedelta) -> LinkPlan:
    """Full or incremental for the data interval ``[start, end)``, given the chain so far."""
    start, end = utc(start), utc(end)
    folder = backup_folder(base, table, end)
    mine = [p for p in points if identity_of(p) == table_id]
    previous = next((p for p in reversed(mine) if p.end == start), None)
    full = _full_of(previous, mine) if previous else None

    def as_full(reason: str) -> LinkPlan:
        return LinkPlan("full", None, end, folder, {"role": "full", "table_id": table_id}, reason)

    if not mine:
        return as_full("the first backup of this table's chain" if not points else
                       "the table was re-created since the last chain (another TableId)")
    if previous is None:
        last = max(p.end for p in mine)
        return as_full(f"the chain has a gap: nothing reaches {iso(start)} (its last point is {iso(last)})")
    if full is None:
        return as_full(f"the chain reaching {iso(start)} has lost its full backup")
    if end - full.end > full_every:
        return as_full(f"the last full ({iso(full.end)}) is older than full_every ({full_every})")
    return LinkPlan("incremental", start, end, folder, {
        "role": "incremental", "table_id": table_id, "full": full.folder.uri, "previous": previous.folder.uri,
    }, f"builds on {previous.folder.uri}")


def _full_of(point: Link, points: list[Link]) -> Link | None:
    if point.role == FULL:
        return point
    wanted = (point.sidecar.source.get("chain") or {}).get("full")
    return next((p for p in points if p.role == FULL and p.folder.uri == wanted), None)


def plan_for_table(dynamodb: Any, s3: Any, request: BackupRequest, start: datetime, end: datetime,
                   full_every: timedelta) -> LinkPlan:
    table_id = table_identity(describe_table(dynamodb, request.table))
    plan = plan_link(chain_points(s3, request.destination, request.table), request.destination, request.table,
                     table_id, start, end, full_every)
    log.info("%s: %s", request.table, plan.describe())
    return plan


ClientFactory = Callable[[str], Any]


def run_incremental_link(make_client: ClientFactory, request: BackupRequest, start: datetime, end: datetime,
                         full_every: timedelta = timedelta(days=7), *, processes: int = 1, run_key: str = "cli",
                         poll_seconds: float = 10.0) -> tuple[LinkPlan, Sidecar | None]:
    """Back up the interval ``[start, end)`` of ``request.table`` as the next link (or a full)."""
    dynamodb, s3 = make_client("dynamodb"), make_client("s3")
    plan = plan_for_table(dynamodb, s3, request, start, end, full_every)
    wait_restorable(dynamodb, request.table, plan.until, poll_seconds)
    folder, proceed = open_pitr_folder(s3, replace(request, logical_date=plan.until))
    if not proceed:
        return plan, None
    arn = begin_export(dynamodb, request.table, plan.until, folder, "datapipeline", run_key,
                       request.settings.put_extra, since=plan.since, s3=s3)
    status = poll(lambda: describe_export(dynamodb, arn), lambda s: s.finished, f"export {arn}",
                  EXPORT_TIMEOUT, poll_seconds)
    shares = conversion_shares(s3, status, request.max_workers)
    results = convert_all(make_client, request.table, folder, shares, request.settings,
                          write=plan.role == "full", processes=processes)
    sidecar = seal_pitr(dynamodb, s3, table=request.table, folder=folder, status=status, results=results,
                        total_files=shares[0].total_files, output_format="datapipeline",
                        compression=request.settings.compression, logical_date=request.logical_date,
                        keep_native=False, put_extra=request.settings.put_extra, chain=plan.chain)
    return plan, sidecar

