"""``export``: back up a table to a dated S3 folder."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta

from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY
from dynamodb_backup.commands import Subparsers, client_factory, parse_date, positive_int
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.incremental.backup import run_incremental_link
from dynamodb_backup.pitr import DATAPIPELINE, INCREMENTAL, MODES, OUTPUT_FORMATS, PITR, SCAN
from dynamodb_backup.pitr.job import run_pitr_backup
from dynamodb_backup.pitr.window import PitrDisabledError


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("export", help="back up a table to a dated S3 folder")
    p.add_argument("--table", required=True)
    p.add_argument("--to", required=True, metavar="S3_URI",
                   help="s3://bucket/prefix; <table>/<YYYY-MM-DD-HH-MM-SS>/ is appended")
    p.add_argument("--segments", type=int, help="parallel scan segments (default: from table size and capacity)")
    p.add_argument("--read-ratio", type=float, default=0.25, help="share of the table's read capacity (0.01-1.5)")
    p.add_argument("--workers", type=positive_int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--compression", choices=["gzip", "none", "zstd"], default="gzip")
    p.add_argument("--consistent-read", action="store_true",
                   help="strongly consistent scan pages (twice the read units; the ratio still holds)")
    p.add_argument("--date", type=parse_date, help="logical date naming the folder (default: now, UTC)")
    p.add_argument("--mode", choices=MODES, default=SCAN,
                   help="scan: read the table now (read capacity); pitr: DynamoDB's export of the table as it "
                        "was at --at (no read capacity; PITR must be on); incremental: the changes from --since "
                        "to --at as the next link of the table's chain (or a full at --at when none reaches "
                        "--since)")
    p.add_argument("--since", type=parse_date, metavar="TIME",
                   help="incremental: where the interval starts (the end of the chain's last link)")
    p.add_argument("--full-every", type=float, default=7.0, metavar="DAYS",
                   help="incremental: make a full instead when the chain's full is older (default 7)")
    p.add_argument("--at", type=parse_date, metavar="TIME",
                   help="pitr: the moment to back up, e.g. 2026-11-20T00:00:00Z (default: --date, else now); "
                        "it names the folder")
    p.add_argument("--format", choices=OUTPUT_FORMATS, default=DATAPIPELINE, dest="output_format",
                   help="pitr: datapipeline converts the export; native keeps DynamoDB's export as the folder")
    p.add_argument("--keep-native", action="store_true", help="pitr: keep the export's files in _native/")
    p.add_argument("--pitr-fallback", choices=[SCAN],
                   help="pitr: back up by scanning when PITR is off (the sidecar says so); default: fail")
    p.add_argument("--overwrite", action="store_true", help="redo a folder that is already complete")
    p.add_argument("--on-demand-capacity", type=float, default=DEFAULT_ON_DEMAND_CAPACITY,
                   help="read units per second assumed for on-demand tables")
    p.add_argument("--endpoint", help="DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, else AWS)")
    p.add_argument("--region")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    given = [flag for flag, value in (("--at", args.at), ("--format native", args.output_format != DATAPIPELINE),
                                      ("--keep-native", args.keep_native), ("--pitr-fallback", args.pitr_fallback))
             if value]
    if args.mode == SCAN and given:
        raise ParameterError(f"{' and '.join(given)}: only with --mode pitr (or incremental)")
    if (args.mode == INCREMENTAL) != (args.since is not None):
        raise ParameterError("--since: give it with --mode incremental (and --at), and only then")
    request = BackupRequest(
        table=args.table,
        destination=S3Location.parse(args.to, "--to"),
        logical_date=(args.at or args.date or datetime.now(UTC)).replace(microsecond=0),
        read_ratio=args.read_ratio,
        segments=args.segments,
        max_workers=max(1, args.workers),
        on_demand_capacity=args.on_demand_capacity,
        overwrite=args.overwrite,
        settings=ExportSettings(compression=args.compression, consistent_read=args.consistent_read),
    )
    request.check()  # every parameter before any client is built: a bad one is not hidden behind AWS's errors
    if args.mode == INCREMENTAL and args.at is None:
        raise ParameterError("--at: mode incremental needs the end of its interval")
    if args.full_every <= 0:
        raise ParameterError(f"--full-every must be positive, got {args.full_every}")
    make_client = client_factory(args.endpoint, args.region)
    source = None
    if args.mode == INCREMENTAL:
        assert args.at is not None
        plan, sidecar = run_incremental_link(make_client, request, args.since, args.at,
                                             timedelta(days=args.full_every), processes=request.max_workers)
        print(plan.describe())
        return report(sidecar)
    if args.mode == PITR:
        try:
            sidecar = run_pitr_backup(make_client, request, processes=request.max_workers,
                                      output_format=args.output_format, keep_native=args.keep_native)
            return report(sidecar)
        except PitrDisabledError as exc:
            if args.pitr_fallback != SCAN:
                raise
            print(f"warning: {exc}; backing up by scanning instead (--pitr-fallback scan)", file=sys.stderr)
            source = {"mode": SCAN, "fallback_from": PITR, "reason": str(exc)}
    return report(run_backup(make_client, request, processes=request.max_workers, source=source))


def report(sidecar: Sidecar | None) -> int:
    if sidecar is None:
        print("backup already complete; nothing to do (use --overwrite to redo it)")
        return 0
    mode = sidecar.source.get("mode", SCAN)
    print(f"{sidecar.item_count} items in {len(sidecar.files)} files ({sidecar.byte_count} bytes), mode {mode}")
    return 0
