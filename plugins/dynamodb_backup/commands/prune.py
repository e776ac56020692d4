"""``prune``: apply the retention rules to the backups under a prefix (``--dry-run``: only say what would go)."""

from __future__ import annotations

import argparse

from dynamodb_backup.commands import Subparsers, add_datapipeline_argument, add_s3_arguments, s3_client
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.formats.tablebackups import parse_datapipeline_outputs
from dynamodb_backup.retention.inventory import tables_under
from dynamodb_backup.retention.plan import RetentionPolicy
from dynamodb_backup.retention.prune import prune_table


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "prune", help="delete backups past retention (keep_days, keep_min); --dry-run shows what would go and why")
    p.add_argument("--from", dest="base", required=True, metavar="S3_URI",
                   help="s3://bucket/prefix holding <table>/<date>/ folders")
    p.add_argument("--table", action="append", help="only this table (repeatable; default: every table folder)")
    p.add_argument("--keep-days", type=float, default=RetentionPolicy.keep_days,
                   help="delete complete backups older than this many days (default %(default)g)")
    p.add_argument("--keep-min", type=int, default=RetentionPolicy.keep_min,
                   help="but always keep this many newest complete backups (default %(default)d)")
    p.add_argument("--dry-run", action="store_true", help="print what would be deleted and why; delete nothing")
    add_datapipeline_argument(p)
    add_s3_arguments(p)
    p.set_defaults(run=run_prune)


def run_prune(args: argparse.Namespace) -> int:
    policy = RetentionPolicy.parse({"keep_days": args.keep_days, "keep_min": args.keep_min}, "--keep-days/--keep-min")
    assert policy is not None
    base = S3Location.parse(args.base, "--from")
    named = [check_table_name(t, "--table") for t in args.table] if args.table else None
    datapipeline = parse_datapipeline_outputs(args.datapipeline_output, "--datapipeline-output")
    if datapipeline and (named is None or len(named) != 1):
        raise ParameterError("--datapipeline-output: give exactly one --table (the output folders have no table "
                             "level, so only you can say whose backups they are)")
    s3 = s3_client(args)
    tables = named if named is not None else tables_under(s3, base)
    if not tables:
        print(f"no table folders under {base}/")
        return 0
    failed = False
    for table in tables:
        report = prune_table(s3, base, table, policy, dry_run=args.dry_run, datapipeline=datapipeline)
        print("\n".join(report.lines()))
        failed = failed or bool(report.errors)
    return 1 if failed else 0
