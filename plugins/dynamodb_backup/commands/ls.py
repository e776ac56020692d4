"""``ls`` and ``show``: list backups with their completeness, or show one folder."""

from __future__ import annotations

import argparse

from dynamodb_backup.commands import Subparsers, client_for
from dynamodb_backup.formats.catalog import FolderListing, age, list_backups, read_sidecar, scan_listings
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser("ls", help="list backups under s3://bucket/prefix[/table]")
    p.add_argument("uri", metavar="S3_URI")
    p.set_defaults(run=run_ls)
    p = subparsers.add_parser("show", help="show one backup folder: files, manifest, _SUCCESS, items")
    p.add_argument("uri", metavar="S3_FOLDER")
    p.set_defaults(run=run_show)


def run_ls(args: argparse.Namespace) -> int:
    where = S3Location.parse(args.uri, "uri")
    backups = list_backups(client_for("s3"), where)
    if not backups:
        print(f"no backups under {args.uri}")
        return 0
    print(f"{'STATUS':<10} {'MODE':<11} {'ITEMS':>12} {'SIZE':>12} {'FILES':>6} {'AGE':>6}  FOLDER")
    for b in backups:
        status = "complete" if b.listing.complete else "PARTIAL"
        items = f"{b.items:,}" if b.items is not None else "?"
        print(f"{status:<10} {b.mode or '?':<11} {items:>12} {b.data_bytes or 0:>12,} {b.data_files or 0:>6} "
              f"{age(b.listing.modified):>6}  {b.listing.folder.uri}/")
    return 0


def run_show(args: argparse.Namespace) -> int:
    folder = S3Location.parse(args.uri, "uri")
    s3 = client_for("s3")
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
