"""``export``: back up a table to a dated S3 folder."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime

from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY
from dynamodb_backup.commands import Subparsers, client_factory, parse_date
from dynamodb_backup.formats.layout import S3Location


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("export", help="back up a table to a dated S3 folder")
    p.add_argument("--table", required=True)
    p.add_argument("--to", required=True, metavar="S3_URI",
                   help="s3://bucket/prefix; <table>/<YYYY-MM-DD-HH-MM-SS>/ is appended")
    p.add_argument("--segments", type=int, help="parallel scan segments (default: from table size and capacity)")
    p.add_argument("--read-ratio", type=float, default=0.25, help="share of the table's read capacity (0.01-1.5)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--compression", choices=["gzip", "none", "zstd"], default="gzip")
    p.add_argument("--consistent-read", action="store_true",
                   help="strongly consistent scan pages (twice the read units; the ratio still holds)")
    p.add_argument("--date", type=parse_date, help="logical date naming the folder (default: now, UTC)")
    p.add_argument("--overwrite", action="store_true", help="redo a folder that is already complete")
    p.add_argument("--on-demand-capacity", type=float, default=DEFAULT_ON_DEMAND_CAPACITY,
                   help="read units per second assumed for on-demand tables")
    p.add_argument("--endpoint", help="DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, else AWS)")
    p.add_argument("--region")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = BackupRequest(
        table=args.table,
        destination=S3Location.parse(args.to, "--to"),
        logical_date=(args.date or datetime.now(UTC)).replace(microsecond=0),
        read_ratio=args.read_ratio,
        segments=args.segments,
        max_workers=max(1, args.workers),
        on_demand_capacity=args.on_demand_capacity,
        overwrite=args.overwrite,
        settings=ExportSettings(compression=args.compression, consistent_read=args.consistent_read),
    )
    sidecar = run_backup(client_factory(args.endpoint, args.region), request, processes=request.max_workers)
    if sidecar is None:
        print("backup already complete; nothing to do (use --overwrite to redo it)")
        return 0
    print(f"{sidecar.item_count} items in {len(sidecar.files)} files ({sidecar.byte_count} bytes)")
    return 0
