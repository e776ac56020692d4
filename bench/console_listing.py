#!/usr/bin/env python
"""How long the console's pages take on a large prefix: a year of nightly backups of 20 tables.

Starts its own moto (S3) on a free port, writes ``--tables`` x ``--days`` sealed folders (a data file,
manifest, a sidecar with two workers' read units per 5 s, _SUCCESS; a weekly restore drill record),
then times each page the way the console builds it, ``--repeats`` times, and prints the median:

* the tables page (every table's newest complete backup and its age, after finding the tables under the
  prefix), first as older backups have it (no ``_newest.json`` pointer: each table's folders are listed),
  then with the pointer the seal writes (one GET and one HEAD per table),
* a table's first page of 25 backups, and a page a few months back (through the ``before`` cursor),
* a run tab (one folder's workers and chart).

    .venv/bin/python bench/console_listing.py [--tables 20] [--days 365] [--repeats 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import orjson
from botocore.config import Config

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "plugins"), str(ROOT / "include")]

from dynamodb_backup.aws.usage import UsageTimeline  # noqa: E402
from dynamodb_backup.console.views import (  # noqa: E402
    TableSource,
    backup_page,
    discover_tables,
    run_view,
    table_rows,
    table_sources,
)
from dynamodb_backup.formats.catalog import DRILLS, write_newest  # noqa: E402
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location, backup_folder  # noqa: E402
from dynamodb_backup.formats.sidecar import FileRecord, Sidecar  # noqa: E402
from local_aws import free_port, start_moto  # noqa: E402

BUCKET = "console-bench"
START = datetime(2025, 1, 1, tzinfo=UTC)


def s3_client(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                        aws_secret_access_key="bench", config=Config(max_pool_connections=32))


def sidecar_for(table: str, day: datetime) -> bytes:
    workers = []
    for worker in range(2):
        usage = UsageTimeline()
        for second in range(0, 60, 5):
            usage.add(40.0, day.timestamp() + second)
        workers.append({"worker": worker, "segments": [worker], "items": 5000, "bytes": 400_000, "files": 1,
                        "consumed_read_units": usage.total, "started": day.isoformat(),
                        "finished": (day + timedelta(seconds=60)).isoformat(), "read_rate": 10.0,
                        "usage": usage.to_dict()})
    return Sidecar(table={"TableName": table}, logical_date=day.isoformat(), snapshot_start=day.isoformat(),
                   snapshot_end=(day + timedelta(seconds=60)).isoformat(), compression="gzip", total_segments=2,
                   files=[FileRecord(f"part-{w}.gz", w, 5000, 400_000, "0" * 64) for w in range(2)],
                   consumed_read_units=960.0, workers=workers, read_rate=20.0).to_json()


def build(s3: Any, base: S3Location, tables: list[str], days: int) -> int:
    def write_folder(job: tuple[str, int]) -> int:
        table, n = job
        day = START + timedelta(days=n)
        folder = backup_folder(base, table, day)
        for name, body in ((f"part-{0}.gz", b"x" * 64), ("part-1.gz", b"x" * 64), (MANIFEST, b"{}"),
                           (SIDECAR, sidecar_for(table, day)), (SUCCESS, b"")):
            s3.put_object(Bucket=base.bucket, Key=folder.key(name), Body=body)
        if n % 7 == 0:
            drill = {"folder": folder.uri, "result": "passed" if n % 28 else "failed", "duration_seconds": 12.0}
            s3.put_object(Bucket=base.bucket, Key=base.child(table, DRILLS).key(f"{folder.prefix.rsplit('/', 1)[-1]}"
                                                                                   ".json"), Body=orjson.dumps(drill))
        return 1

    jobs = [(t, n) for t in tables for n in range(days)]
    with ThreadPoolExecutor(16) as pool:
        return sum(pool.map(write_folder, jobs))


def median_seconds(what: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = what()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tables", type=int, default=20)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        moto = start_moto(free_port(), Path(state))
        try:
            s3 = s3_client(moto.url)
            s3.create_bucket(Bucket=BUCKET)
            base = S3Location(BUCKET, "backups")
            tables = [f"table-{i:02d}" for i in range(args.tables)]
            began = time.perf_counter()
            folders = build(s3, base, tables, args.days)
            print(f"built {folders:,} folders ({args.tables} tables x {args.days} days) in "
                  f"{time.perf_counter() - began:.0f} s")
            sources = [TableSource(t, base, "@daily") for t in tables]
            source = sources[0]
            names = [f"{START + timedelta(days=n):%Y-%m-%d-%H-%M-%S}" for n in range(args.days)]

            def tables_page() -> list[Any]:  # as the app builds it: find the tables, then one row each
                found = table_sources([], discover_tables(lambda conn: s3, sources))
                rows = table_rows(lambda conn: s3, found)
                assert len(rows) == args.tables and all(r.newest == names[-1] for r in rows), rows[:1]
                return rows

            def write_pointers() -> None:
                for table in tables:  # what the seal of each table's newest night wrote
                    write_newest(s3, base.child(table, names[-1]))

            figures: list[tuple[str, Callable[[], Any], Callable[[], None] | None]] = [
                ("tables page, no pointers (older backups: listings)", tables_page, None),
                ("tables page, with the seal's _newest.json pointers", tables_page, write_pointers),
                ("first page of 25 backups", lambda: backup_page(s3, source), None),
                ("a page of 25 backups 3 months back", lambda: backup_page(s3, source, before=names[-90]), None),
                ("run tab (one folder's workers and chart)",
                 lambda: run_view(s3, base.child(source.table, names[-1])), None),
            ]
            print(f"{'page':<55} {'median s':>9}  (of {args.repeats})")
            for label, what, setup in figures:
                if setup is not None:
                    setup()
                seconds, _ = median_seconds(what, args.repeats)
                print(f"{label:<55} {seconds:>9.3f}")
        finally:
            moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
