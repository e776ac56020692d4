"""``ls`` and ``show``: list backups with their completeness, or show one folder."""

from __future__ import annotations

import argparse

from dynamodb_backup.commands import Subparsers, add_datapipeline_argument, add_s3_arguments, s3_client
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.catalog import (
    BackupSummary,
    FolderListing,
    age,
    list_backups,
    read_sidecar,
    scan_listings,
    summarize,
)
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location, check_table_name
from dynamodb_backup.formats.tablebackups import TableBackups, backup_listings, parse_datapipeline_outputs


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("ls", help="list backups under s3://bucket/prefix[/table]",
                              description="List the backup folders under S3_URI. With --table, list that table's "
                                          "backups: <S3_URI>/<table>/<date>/ and the dated folders of each "
                                          "--datapipeline-output.")
    p.add_argument("uri", metavar="S3_URI")
    p.add_argument("--table", help="list this table's backups (S3_URI is then s3://bucket/prefix)")
    add_datapipeline_argument(p)
    add_s3_arguments(p)
    p.set_defaults(run=run_ls)
    p = subparsers.add_parser("show", help="show one backup folder: files, manifest, _SUCCESS, items")
    p.add_argument("uri", metavar="S3_FOLDER")
    add_s3_arguments(p)
    p.set_defaults(run=run_show)


def run_ls(args: argparse.Namespace) -> int:
    where = S3Location.parse(args.uri, "uri")
    datapipeline = parse_datapipeline_outputs(args.datapipeline_output, "--datapipeline-output")
    if datapipeline and not args.table:
        raise ParameterError("--datapipeline-output: give --table too (the output folders have no table level, so "
                             "only you can say whose backups they are)")
    s3 = s3_client(args)
    if args.table:
        places = TableBackups(check_table_name(args.table, "--table"), where, datapipeline)
        backups = [summarize(s3, listing) for listing in backup_listings(s3, places)]
        heading = " or ".join(f"{root}/" for root in places.roots)
    else:
        backups, heading = list_backups(s3, where), args.uri
    if not backups:
        print(f"no backups under {heading}")
        return 0
    print(f"{'STATUS':<10} {'MODE':<11} {'ITEMS':>12} {'SIZE':>12} {'FILES':>6} {'AGE':>6}  FOLDER")
    for b in backups:
        print(_row(b))
    return 0


def _row(b: BackupSummary) -> str:
    status = "complete" if b.listing.complete else "PARTIAL"
    items = f"{b.items:,}" if b.items is not None else "?"
    return (f"{status:<10} {b.mode or '?':<11} {items:>12} {b.data_bytes or 0:>12,} {b.data_files or 0:>6} "
            f"{age(b.listing.modified):>6}  {b.listing.folder.uri}/")


def run_show(args: argparse.Namespace) -> int:
    folder = S3Location.parse(args.uri, "uri")
    s3 = s3_client(args)
    listings = [listing for listing in scan_listings(s3, folder) if listing.folder == folder]
    if not listings:
        print(f"{folder}/ is empty or not a backup folder")
        return 1
    listing: FolderListing = listings[0]
    print(f"{folder.uri}/")
    for name, size in sorted(listing.sizes.items()):
        print(f"  {size:>12,}  {name}")
    print(f"manifest: {'yes' if MANIFEST in listing.sizes else 'no'}   "
          f"_SUCCESS: {'yes (complete)' if listing.complete else 'NO (incomplete backup)'}")
    if SIDECAR in listing.sizes:
        sidecar = read_sidecar(s3, folder)
        print(f"items: {sidecar.item_count:,} in {len(sidecar.files)} data files, {sidecar.byte_count:,} bytes "
              f"({sidecar.compression}); read from {sidecar.snapshot_start} to {sidecar.snapshot_end}")
        source = sidecar.source
        if source.get("mode") == "pitr":
            print(f"mode: pitr ({source.get('format')}), the table at {source.get('export_time')} by export "
                  f"{source.get('export_arn')}; billed size {source.get('billed_size_bytes')} bytes")
        elif source.get("mode") == "incremental":
            chain = source.get("chain") or {}
            print(f"mode: incremental, the changes from {source.get('export_from')} to {source.get('export_to')} "
                  f"(not a Data Pipeline folder); builds on {chain.get('previous')}, full {chain.get('full')}")
        elif source.get("fallback_from"):
            print(f"mode: scan, FALLBACK from {source['fallback_from']}: {source.get('reason')}")
    return 0 if SUCCESS in listing.sizes else 1
