"""The pitr path in ``make bench``: convert a native export of the benchmark table into Data Pipeline lines.

``prepare`` puts the local PITR stand-in in front of the benchmark's dynalite, turns PITR on (the
stand-in takes the table's current items as its baseline) and has it export the table into the
bench bucket, once (not measured: that is DynamoDB's work, billed per GB, not ours). The measured
part is ``python -m bench.pitr convert``: our conversion of that export, in worker processes, as
the DAG's mapped ``convert`` tasks do it. No DynamoDB server is in that loop.

    python -m bench.pitr convert --export-arn ARN --to s3://bench/pitr --table T --processes 2
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3

from dynamodb_backup.aws.clients import client
from dynamodb_backup.backup.export import ExportSettings, WorkerResult
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.pitr.convert import ConvertShare, convert_share
from dynamodb_backup.pitr.native import describe_export
from dynamodb_backup.pitr.steps import conversion_shares, export_time
from local_aws import LocalServer, free_port, start_pitr


def prepare(dynalite_url: str, s3_url: str, table: str, bucket: str, state: Path) -> tuple[LocalServer, str]:
    """Start a stand-in (lag 1 s) and export ``table`` at a moment after now; return it and the export's ARN."""
    standin = start_pitr(free_port(), state, upstream_url=dynalite_url, s3_url=s3_url, lag_seconds=1,
                         min_export_seconds=0)
    ddb = boto3.client("dynamodb", endpoint_url=standin.url)
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    while True:
        window = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"][
            "PointInTimeRecoveryDescription"]
        at = export_time(window["LatestRestorableDateTime"])
        if at >= export_time(window["EarliestRestorableDateTime"]):
            break
        time.sleep(0.5)
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    export = ddb.export_table_to_point_in_time(
        TableArn=arn, ExportTime=at, S3Bucket=bucket, S3Prefix=f"pitr-native/{datetime.now(UTC):%H%M%S}",
        ExportFormat="DYNAMODB_JSON")["ExportDescription"]["ExportArn"]
    while not describe_export(ddb, export).finished:
        time.sleep(0.5)
    describe_export(ddb, export).raise_if_failed()
    return standin, export


def _convert(table: str, folder: str, share: dict[str, Any]) -> dict[str, Any]:
    result = convert_share(client("s3"), table, S3Location.parse(folder), ConvertShare.from_dict(share),
                           ExportSettings())
    return result.to_dict()


def convert(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.pitr convert")
    p.add_argument("--export-arn", required=True)
    p.add_argument("--standin", required=True, help="DynamoDB endpoint that knows the export")
    p.add_argument("--table", required=True)
    p.add_argument("--to", required=True, help="s3://bucket/prefix of the dated folder to write")
    p.add_argument("--processes", type=int, default=1)
    args = p.parse_args(argv)
    status = describe_export(client("dynamodb", args.standin), args.export_arn)
    shares = conversion_shares(client("s3"), status, args.processes)
    started = time.perf_counter()
    if args.processes <= 1:
        results = [_convert(args.table, args.to, s.to_dict()) for s in shares]
    else:
        with ProcessPoolExecutor(args.processes) as pool:
            results = list(pool.map(_convert, [args.table] * len(shares), [args.to] * len(shares),
                                    [s.to_dict() for s in shares]))
    items = sum(WorkerResult.from_dict(r).items for r in results)
    if items != status.item_count:
        print(f"converted {items} items, the export holds {status.item_count}", file=sys.stderr)
        return 1
    print(f"converted {items} items from {shares[0].total_files} native files in "
          f"{time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] != ["convert"]:
        sys.exit("usage: python -m bench.pitr convert ...")
    sys.exit(convert(sys.argv[2:]))
