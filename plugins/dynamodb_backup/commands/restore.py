"""``restore`` and ``verify``: load a backup folder into a table, and check a table against a backup."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY
from dynamodb_backup.commands import Subparsers, add_datapipeline_argument, client_factory, client_for, positive_int
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.catalog import latest_complete
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.formats.tablebackups import parse_datapipeline_outputs
from dynamodb_backup.incremental.chain import parse_moment
from dynamodb_backup.repository.inspection import inspect_folder
from dynamodb_backup.repository.keyschema import parse_key_schema
from dynamodb_backup.restore.asof import run_as_of
from dynamodb_backup.restore.catchup import run_apply
from dynamodb_backup.restore.job import RestoreRequest, new_run_id, run_restore
from dynamodb_backup.restore.selection import run_items
from dynamodb_backup.restore.streamchain import has_stream
from dynamodb_backup.restore.streamrestore import run_stream_as_of
from dynamodb_backup.restore.verify import verify_restore


def _source_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", nargs="?", metavar="S3_FOLDER",
                   help="the backup folder: ours, AWS Data Pipeline's, or a native export (AWSDynamoDB/<id>/)")
    p.add_argument("--latest", action="store_true",
                   help="use the newest complete backup of --source-table under --from instead of S3_FOLDER")
    p.add_argument("--from", dest="base", metavar="S3_URI", help="s3://bucket/prefix holding <table>/<date>/ folders")
    p.add_argument("--source-table", help="the table whose newest complete backup --latest picks")
    add_datapipeline_argument(p)
    p.add_argument("--table", required=True, help="the target table")
    p.add_argument("--force", action="store_true", help="accept a folder without _SUCCESS (or a complete manifest)")
    p.add_argument("--endpoint", help="DynamoDB endpoint URL (default: AWS_ENDPOINT_URL_DYNAMODB, else AWS)")
    p.add_argument("--region", help="the target table's region")


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("restore", help="restore a backup folder into a table, then verify by counting")
    _source_arguments(p)
    p.add_argument("--create-table", action="store_true",
                   help="create the table if missing (from the sidecar; else from --key-schema, on-demand)")
    p.add_argument("--replace-table", action="store_true",
                   help="delete the table and create it again like itself before loading (after validation), "
                        "so it holds exactly the backup")
    p.add_argument("--write-ratio", type=float, default=0.5,
                   help="share of the table's write capacity to use (0.01-1.5)")
    p.add_argument("--key-schema", metavar="PK:T[,SK:T]",
                   help="key schema for backups without a sidecar, e.g. pk:S,sk:N")
    p.add_argument("--workers", type=positive_int, default=4,
                   help="worker processes, each loading a share of the files")
    p.add_argument("--on-demand-capacity", type=float, default=DEFAULT_ON_DEMAND_CAPACITY,
                   help="write units per second assumed for on-demand tables")
    p.add_argument("--load-capacity", metavar="on-demand|WCU",
                   help="load fast, then settle: create the table on demand (or with WCU write units on the table "
                        "and each GSI), load and verify, then apply the backup's capacities; an existing "
                        "provisioned table is switched to on-demand for the load and back afterwards")
    p.add_argument("--no-verify", action="store_true", help="skip counting and comparing afterwards")
    p.add_argument("--checkpoint", metavar="S3_URI",
                   help="where completion markers go (default: _restore_checkpoints/ beside the folder)")
    p.add_argument("--no-checkpoints", action="store_true", help="write no completion markers")
    p.add_argument("--run-id", help="resume this earlier run: files it finished are skipped")
    p.add_argument("--as-of", metavar="TIME",
                   help="restore --source-table as it was at TIME (e.g. 2026-11-25T06:00:00Z) from its backups under "
                        "--from: the newest full backup at or before TIME, then its incremental links in order, "
                        "then, if the table has a stream backup (<table>/stream/), its changes up to the end of "
                        "TIME's second (the target is created if missing)")
    p.add_argument("--apply", metavar="S3_FOLDER",
                   help="apply one incremental backup (a night's changes) to --table, an existing table that holds "
                        "the state the link starts from")
    p.add_argument("--keys", metavar="FILE",
                   help="restore only these items into the existing --table: one key per line in DynamoDB JSON, "
                        'e.g. {"pk": {"S": "a"}, "sk": {"N": "1"}}')
    p.add_argument("--partition-key", metavar="VALUE",
                   help="restore only the items with this partition key value into the existing --table")
    p.set_defaults(run=run_restore_command)

    p = subparsers.add_parser("verify", help="count a table by scanning and compare it with a backup")
    _source_arguments(p)
    p.add_argument("--segments", type=int, default=4, help="parallel scan segments")
    p.add_argument("--counts-only", action="store_true",
                   help="the table held other items before the restore: compare counts, not digests")
    p.set_defaults(run=run_verify_command)


def source_folder(args: argparse.Namespace) -> S3Location:
    if args.latest:
        if args.folder or not args.base or not args.source_table:
            raise ParameterError("--latest needs --from s3://bucket/prefix and --source-table, and no S3_FOLDER")
        datapipeline = parse_datapipeline_outputs(args.datapipeline_output, "--datapipeline-output")
        folder = latest_complete(client_for("s3"), S3Location.parse(args.base, "--from"), args.source_table,
                                 datapipeline)
        print(f"newest complete backup of {args.source_table}: {folder.uri}/")
        return folder
    if not args.folder:
        raise ParameterError("give S3_FOLDER, or --latest --from s3://bucket/prefix --source-table T")
    return S3Location.parse(args.folder, "S3_FOLDER")


def check_parameters(args: argparse.Namespace) -> None:
    """Every parameter that can be checked without AWS, before any client is built (restore and verify)."""
    for flag, value in (("S3_FOLDER", args.folder), ("--from", args.base),
                        ("--checkpoint", getattr(args, "checkpoint", None)), ("--apply", getattr(args, "apply", None))):
        if value:
            S3Location.parse(value, flag)
    if getattr(args, "segments", None) is not None and args.segments < 1:
        raise ParameterError(f"--segments must be at least 1, got {args.segments}")
    if getattr(args, "as_of", None):
        parse_moment(args.as_of, "--as-of")
    if getattr(args, "key_schema", None):
        parse_key_schema(args.key_schema)
    if getattr(args, "keys", None):
        try:
            with open(args.keys, "rb"):
                pass
        except OSError as exc:
            raise ParameterError(f"keys: cannot read {args.keys} ({exc.strerror})") from None
    if hasattr(args, "write_ratio"):  # restore (verify has no load settings)
        some_folder = args.folder or args.base or args.apply or "s3://placeholder"
        _request(args, S3Location.parse(some_folder, "S3_FOLDER")).check()
    else:
        check_table_name(args.table)


def run_restore_command(args: argparse.Namespace) -> int:
    check_parameters(args)
    if args.apply:
        return run_apply_command(args)
    if args.keys or args.partition_key is not None:
        return run_items_command(args)
    if args.as_of:
        return run_as_of_command(args)
    return _run_folder(args)


def _chain_source(args: argparse.Namespace) -> tuple[S3Location, str, datetime]:
    if args.folder or args.latest or not args.base or not args.source_table:
        raise ParameterError("--as-of needs --from s3://bucket/prefix and --source-table, and no S3_FOLDER or --latest")
    return S3Location.parse(args.base, "--from"), args.source_table, parse_moment(args.as_of, "--as-of")


def _request(args: argparse.Namespace, folder: S3Location, create: bool = False) -> RestoreRequest:
    return RestoreRequest(
        folder=folder, table=args.table, write_ratio=args.write_ratio,
        create_table=args.create_table or create, replace_table=args.replace_table, key_schema=args.key_schema,
        force=args.force, workers=args.workers,
        on_demand_capacity=args.on_demand_capacity, verify=not args.no_verify,
        checkpoint_base=S3Location.parse(args.checkpoint, "--checkpoint") if args.checkpoint else None,
        checkpoints=not args.no_checkpoints, run_id=args.run_id or new_run_id(),
        load_capacity=getattr(args, "load_capacity", None),
    )


def _run_folder(args: argparse.Namespace) -> int:
    request = _request(args, source_folder(args))
    outcome = run_restore(client_factory(args.endpoint, args.region), request, processes=request.workers,
                          on_validated=lambda: print(f"run id {request.run_id} (give --run-id {request.run_id} "
                                                     "to resume it)", flush=True))
    print(outcome.source.describe())
    for note in outcome.source.notes:
        print(f"  note: {note}")
    print(f"validated {outcome.validation.items} items in {len(outcome.validation.files)} files; "
          f"{_table_fate(outcome.target)} table {request.table}")
    print(f"loaded {outcome.load.items} items ({outcome.load.files_loaded} files, {outcome.load.files_skipped} "
          f"skipped as already done, {outcome.load.consumed_write_units:.0f} write units)")
    print("phases: " + ", ".join(f"{phase} {seconds:.2f} s" for phase, seconds in outcome.seconds.items()))
    if outcome.settle_failure:
        print(outcome.settle_failure, file=sys.stderr)
    if outcome.verify is None:
        return 1 if outcome.settle_failure else 0
    print(outcome.verify.summary())
    return 0 if outcome.verify.match and not outcome.settle_failure else 1


def _table_fate(target: dict[str, object]) -> str:
    if target.get("replaced"):
        return "replaced"
    return "created" if target["created"] else "existing"


def run_verify_command(args: argparse.Namespace) -> int:
    check_parameters(args)
    make_client = client_factory(args.endpoint, args.region)
    s3 = make_client("s3")
    source = inspect_folder(s3, source_folder(args), force=args.force)
    report = verify_restore(make_client("dynamodb"), s3, source, args.table, was_empty=not args.counts_only,
                            segments=args.segments)
    print(report.summary())
    for kind, keys in report.sample.items():
        for key in keys:
            print(f"  {kind}: {key}")
    return 0 if report.match else 1


def run_as_of_command(args: argparse.Namespace) -> int:
    base, source_table, moment = _chain_source(args)
    request = _request(args, base, create=True)
    print(f"run id {request.run_id} (give --run-id {request.run_id} to resume it)")
    if has_stream(client_for("s3"), base, source_table):  # stream segments: restore to the second
        streamed = run_stream_as_of(client_factory(args.endpoint, args.region), request, base, source_table, moment,
                                    processes=request.workers)
        print("\n".join(streamed.lines()))
        return 0 if streamed.ok else 1
    outcome = run_as_of(client_factory(args.endpoint, args.region), request, base, source_table, moment,
                        processes=request.workers)
    print(outcome.chain.describe())
    print(f"validated {outcome.prepared.validation.items} items and "
          f"{sum(r.changes for r in outcome.reports)} changes; {_table_fate(outcome.target)} table {request.table}")
    print(f"loaded {outcome.load.items} items, then applied {len(outcome.links)} links: {outcome.applied.puts} puts, "
          f"{outcome.applied.deletes} deletes ({outcome.applied.files_skipped} files skipped as already done)")
    for note in outcome.notes:
        print(f"  note: {note}")
    if outcome.verify is None:
        return 0
    print(outcome.verify.summary().replace("in the backup", "in the state the chain describes"))
    return 0 if outcome.verify.match else 1


def run_apply_command(args: argparse.Namespace) -> int:
    if args.folder or args.latest or args.as_of or args.keys or args.partition_key is not None:
        raise ParameterError("--apply takes one incremental folder and --table; no other source")
    outcome = run_apply(client_factory(args.endpoint, args.region), S3Location.parse(args.apply, "--apply"),
                        args.table, write_ratio=args.write_ratio, on_demand_capacity=args.on_demand_capacity,
                        run_id=args.run_id or new_run_id(),
                        checkpoint_base=S3Location.parse(args.checkpoint, "--checkpoint") if args.checkpoint else None,
                        checkpoints=not args.no_checkpoints, verify=not args.no_verify, force=args.force)
    print(f"applied {outcome.link.describe()} to {args.table}: {outcome.applied.puts} puts, "
          f"{outcome.applied.deletes} deletes")
    if outcome.verify is None:
        return 0
    print(f"verified: {outcome.verify.after} of {outcome.report.changes} changed keys hold the link's result"
          + (f"; {outcome.verify.other} DIFFER, e.g. {outcome.verify.sample[:3]}" if outcome.verify.other else ""))
    return 1 if outcome.verify.other else 0


def run_items_command(args: argparse.Namespace) -> int:
    if args.create_table or args.replace_table:
        raise ParameterError("--keys and --partition-key write into an existing table; drop --create-table and "
                             "--replace-table")
    make_client = client_factory(args.endpoint, args.region)
    settings = {"keys_file": args.keys, "partition_key": args.partition_key, "write_ratio": args.write_ratio,
                "on_demand_capacity": args.on_demand_capacity, "verify": not args.no_verify, "force": args.force}
    if args.as_of:
        base, source_table, moment = _chain_source(args)
        outcome = run_items(make_client, args.table, base=base, source_table=source_table, moment=moment, **settings)
    else:
        outcome = run_items(make_client, args.table, folder=source_folder(args), **settings)
    print(f"from {outcome.point}: wrote {len(outcome.written)} items into {args.table}")
    for key in outcome.written:
        print(f"  written: {key}")
    for key in outcome.missing:
        print(f"  not in the backup (left alone): {key}")
    if outcome.differing is None:
        return 0
    print("verified: every written item reads back as restored" if not outcome.differing else
          f"MISMATCH: {outcome.differing} written items read back differently, e.g. {outcome.sample[:3]}")
    return 1 if outcome.differing else 0
