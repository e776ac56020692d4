"""``replicate``: apply a table's stream segments to a replica table, for a bounded time."""

from __future__ import annotations

import argparse

from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY
from dynamodb_backup.commands import Subparsers, client_for
from dynamodb_backup.commands.stream import parse_duration
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.replica.apply import ReplicaTarget, replicate
from dynamodb_backup.replica.progress import replica_id


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("replicate", help="apply a table's stream segments to a replica table (the source "
                                                "wins), for a bounded time")
    p.add_argument("--from", dest="base", required=True, metavar="S3_URI",
                   help="s3://bucket/prefix holding <table>/stream/ (the stream backup's segments)")
    p.add_argument("--table", required=True, help="the source table whose segments are applied")
    p.add_argument("--to-table", required=True, help="the replica table (it must exist, with the same key schema)")
    p.add_argument("--to-endpoint", help="the replica's DynamoDB endpoint URL")
    p.add_argument("--to-region", help="the replica's region")
    p.add_argument("--for", dest="duration", default="60s", help="how long to follow the segments (default 60s)")
    p.add_argument("--poll", default="2s", help="how often to look for new segments when caught up (default 2s)")
    p.add_argument("--once", action="store_true", help="apply what is stored, then stop")
    p.add_argument("--write-ratio", type=float, default=0.5,
                   help="share of the replica's write capacity to use (0.01-1.5)")
    p.add_argument("--on-demand-capacity", type=float, default=DEFAULT_ON_DEMAND_CAPACITY,
                   help="write units per second assumed for an on-demand replica")
    p.set_defaults(run=run_replicate_command)


def run_replicate_command(args: argparse.Namespace) -> int:
    base = S3Location.parse(args.base, "--from")
    check_table_name(args.table, "--table")
    check_table_name(args.to_table, "--to-table")
    duration, poll = parse_duration(args.duration, "--for"), parse_duration(args.poll, "--poll")
    target = ReplicaTarget(client_for("dynamodb", args.to_endpoint, args.to_region), args.to_table,
                           args.write_ratio, args.on_demand_capacity)
    report = replicate(client_for("s3"), base, args.table, target,
                       replica_id(args.to_table, args.to_region, args.to_endpoint), for_seconds=duration,
                       poll_seconds=poll, once=args.once, target_where=(args.to_region, args.to_endpoint))
    print(report.line())
    return 0
