"""The as-of path in ``make bench``: restore a table to a moment (one full plus six incrementals) against a
plain restore of a full backup of the same final state.

``prepare`` (not measured) seeds a table of its own in the bench's dynalite, puts the local PITR
stand-in in front of it (one-second incremental windows), backs it up in full through the incremental
backup path, then six times changes about ``change`` of its items (overwrites, deletes, inserts, in
batches) and makes that night's link; finally it takes a plain full pitr backup at the last link's
moment. Both restores then run as ``dynamodb-backup restore`` in a child process, straight against
dynalite (the stand-in is stopped), with verification off as in the other restore rows.
"""

from __future__ import annotations

import functools
import logging
import os
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3

from bench.items import key_of, make_item
from bench.seed import count_items, delete_table, seed_table
from dynamodb_backup.aws.clients import client
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest
from dynamodb_backup.formats.codec.wireform import wire_item_from_client
from dynamodb_backup.formats.layout import S3Location, backup_folder
from dynamodb_backup.incremental.backup import run_incremental_link
from dynamodb_backup.pitr.job import run_pitr_backup
from dynamodb_backup.pitr.window import iso
from local_aws import LocalServer, free_port, start_pitr

log = logging.getLogger(__name__)


@dataclass
class AsOfSetup:
    table: str
    base: str
    """s3://bucket/prefix holding the table's full and its links."""
    moment: str
    final_full: str
    """A plain full backup folder of the same final state."""
    final_items: int
    changes: int
    nights: int


def _client(service: str, dynamodb_url: str, s3_url: str) -> Any:
    """Clients of the stand-in and the bench's moto (picklable, for the conversion's worker processes)."""
    return client(service, dynamodb_url if service == "dynamodb" else s3_url)


def _tick() -> datetime:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.02)
    return moment


def _night(ddb: Any, table: str, present: set[int], next_id: int, count: int, rng: random.Random) -> tuple[int, int]:
    """About ``count`` changes: half overwrites, a quarter deletes, a quarter inserts. Returns (next_id, changes)."""
    requests: list[dict[str, Any]] = []
    touched: set[int] = set()
    ids = sorted(present)
    for _ in range(count):
        roll = rng.random()
        if roll < 0.5:
            i = rng.choice(ids)
            if i in touched or i not in present:
                continue
            item = make_item(i + 10_000_000 * (1 + rng.randrange(9)))
            item["pk"] = {"S": key_of(i)}
            requests.append({"PutRequest": {"Item": wire_item_from_client(item)}})
        elif roll < 0.75:
            i = rng.choice(ids)
            if i in touched or i not in present:
                continue
            present.discard(i)
            requests.append({"DeleteRequest": {"Key": {"pk": {"S": key_of(i)}}}})
        else:
            i, next_id = next_id, next_id + 1
            present.add(i)
            requests.append({"PutRequest": {"Item": wire_item_from_client(make_item(i))}})
        touched.add(i)
    for start in range(0, len(requests), 25):
        pending: dict[str, Any] = {table: requests[start:start + 25]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return next_id, len(requests)


def prepare(dynalite_url: str, s3_url: str, items: int, bucket: str, state: Path, *, nights: int = 6,
            change: float = 0.02, processes: int = 2, seed_processes: int = 4) -> tuple[LocalServer, AsOfSetup]:
    """The table, its chain under s3://bucket/asof and a full of its final state under s3://bucket/asof-final."""
    table = f"bench-asof-{items}"
    direct = boto3.client("dynamodb", endpoint_url=dynalite_url)
    delete_table(direct, table)  # a table changed by an earlier run holds other items
    seed_table(dynalite_url, table, items, seed_processes)
    state.mkdir(parents=True, exist_ok=True)
    standin = start_pitr(free_port(), state, upstream_url=dynalite_url, s3_url=s3_url, lag_seconds=0,
                         min_export_seconds=0, min_incremental_window_seconds=1, timeout=120)
    make = functools.partial(_client, dynamodb_url=standin.url, s3_url=s3_url)
    ddb = make("dynamodb")
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    stamp = datetime.now(UTC).strftime("%H%M%S")
    base = S3Location(bucket, f"asof-{stamp}")
    request = BackupRequest(table=table, destination=base, logical_date=datetime.now(UTC), max_workers=processes,
                            settings=ExportSettings())
    times = [_tick()]
    plan, _ = run_incremental_link(make, request, times[0] - timedelta(seconds=30), times[0], processes=processes,
                                   poll_seconds=0.2)
    assert plan.role == "full", plan
    rng, present, next_id, changes = random.Random(2026), set(range(items)), items, 0
    for _ in range(nights):
        next_id, made = _night(ddb, table, present, next_id, max(1, int(items * change)), rng)
        changes += made
        times.append(_tick())
        plan, _ = run_incremental_link(make, request, times[-2], times[-1], processes=processes, poll_seconds=0.2)
        assert plan.role == "incremental", plan
    final = BackupRequest(table=table, destination=S3Location(bucket, f"asof-final-{stamp}"), logical_date=times[-1],
                          max_workers=processes, settings=ExportSettings())
    run_pitr_backup(make, final, processes=processes, poll_seconds=0.2)
    folder = backup_folder(final.destination, table, times[-1])
    return standin, AsOfSetup(table, base.uri, iso(times[-1]), folder.uri, len(present), changes, nights)


def run_asof(bench: Any, bucket: str, state: Path, python: str, big: str) -> dict[str, Any]:
    """Both restores, measured by ``bench.run``; returns the figures for the results' checks."""
    procs, items = bench.args.processes, bench.args.asof_items or bench.args.items
    standin, setup = prepare(bench.ddb_url, bench.s3_url, items, bucket, state / f"asof-pitr-{os.getpid()}",
                             processes=procs, seed_processes=bench.args.seed_processes)
    standin.stop()  # the restores read S3 and write to dynalite directly
    ddb = boto3.client("dynamodb", endpoint_url=bench.ddb_url)
    common = ["--write-ratio", "1.5", "--workers", str(procs), "--on-demand-capacity", big, "--no-verify",
              "--no-checkpoints"]
    sources = {f"ours: restore as of (full + {setup.nights} incrementals), {procs} proc":
               ["--as-of", setup.moment, "--from", setup.base, "--source-table", setup.table],
               f"ours: restore a full backup of the same final state, {procs} proc":
               [setup.final_full, "--create-table"]}
    runs = []
    for number, (label, source) in enumerate(sources.items()):
        target = f"{setup.table}-restore-{number}"
        m = bench.run(label, [python, "-m", "dynamodb_backup", "restore", *source, "--table", target, *common],
                      setup.final_items, before=functools.partial(delete_table, ddb, target))
        if m.returncode == 0:
            m.extra["restored_items"] = count_items(bench.ddb_url, target)
        runs.append(m)
    asof, full = runs
    # Wall time moves with whatever else the machine runs; CPU seconds (ours and the server's) much less.
    check = {"items": setup.final_items, "changes_applied": setup.changes, "nights": setup.nights,
             "asof_items_per_second": round(asof.items_per_second),
             "full_items_per_second": round(full.items_per_second),
             "asof_vs_full": round(asof.items_per_second / full.items_per_second, 2) if full.items_per_second else None,
             "asof_vs_full_cpu": round(asof.cpu_seconds / full.cpu_seconds, 2) if full.cpu_seconds else None}
    log.info("as-of restore: %s", check)
    return check
