"""Command line: the same core as the DAGs, with no Airflow.

Endpoints and credentials come from the standard AWS environment variables.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from . import aws
from .backup import BackupRequest, run_backup
from .errors import BackupError
from .export import ExportSettings
from .layout import S3Location

Command = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, Command] = {}


def _date(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def add_export_parser(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = commands.add_parser("export", help="back up a table to a dated S3 folder")
    p.add_argument("--table", required=True)
    p.add_argument("--to", required=True, metavar="S3_URI", help="s3://bucket/prefix; the table and date are appended")
    p.add_argument("--segments", type=int, help="parallel scan segments (default: from table size and capacity)")
    p.add_argument("--read-ratio", type=float, default=0.25, help="share of the table's read capacity (0.01-1.5)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes")
    p.add_argument("--compression", choices=["gzip", "none", "zstd"], default="gzip")
    p.add_argument("--date", type=_date, help="logical date naming the folder (default: now, UTC)")
    p.add_argument("--overwrite", action="store_true", help="redo a folder that is already complete")
    p.add_argument("--on-demand-capacity", type=float, default=10_000.0,
                   help="read units assumed for on-demand tables")
    p.add_argument("--endpoint", help="DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB or AWS)")
    p.add_argument("--region")


def run_export(args: argparse.Namespace) -> int:
    request = BackupRequest(
        table=args.table,
        destination=S3Location.parse(args.to, "--to"),
        logical_date=(args.date or datetime.now(timezone.utc)).replace(microsecond=0),
        read_ratio=args.read_ratio,
        segments=args.segments,
        max_workers=max(1, args.workers),
        on_demand_capacity=args.on_demand_capacity,
        overwrite=args.overwrite,
        settings=ExportSettings(compression=args.compression),
    )
    make_client = functools.partial(_client, dynamodb_endpoint=args.endpoint, region=args.region)
    sidecar = run_backup(make_client, request, processes=request.max_workers)
    if sidecar is None:
        print("backup already complete; nothing to do (use --overwrite to redo it)")
        return 0
    print(f"{sidecar.item_count} items in {len(sidecar.files)} files ({sidecar.byte_count} bytes)")
    return 0


def _client(service: str, dynamodb_endpoint: str | None = None, region: str | None = None) -> object:
    return aws.client(service, dynamodb_endpoint if service == "dynamodb" else None, region)


COMMANDS["export"] = run_export


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dynamodb_backup", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true")
    commands = parser.add_subparsers(dest="command", required=True)
    add_export_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)
    try:
        return COMMANDS[args.command](args)
    except BackupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
