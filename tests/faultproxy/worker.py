"""Run one export worker (one share of segments) as its own process, as an Airflow mapped task does.

    python -m faultproxy.worker --table T --folder s3://b/p/T/2024-... --share '{"worker":0,...}' \
        --settings '{"file_max_items": 100}' --out result.json [--read-rate 50]

Endpoints and credentials come from the standard AWS environment variables. The
worker's result (``WorkerResult.to_dict()``) is written to ``--out`` only when it
succeeds, so a killed worker leaves no result: the caller retries it, as Airflow
would, and the retry resumes from the segment checkpoints.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from dynamodb_backup.aws import clients
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.backup.export import ExportSettings, export_share
from dynamodb_backup.backup.plan import WorkerShare
from dynamodb_backup.formats.layout import S3Location


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m faultproxy.worker")
    parser.add_argument("--table", required=True)
    parser.add_argument("--folder", required=True)
    parser.add_argument("--share", required=True, help="WorkerShare as JSON")
    parser.add_argument("--settings", default="{}", help="ExportSettings fields as JSON")
    parser.add_argument("--out", required=True)
    parser.add_argument("--read-rate", type=float, help="override the share's read rate")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    for noisy in ("botocore", "boto3", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    share = WorkerShare.from_dict(json.loads(args.share))
    settings = ExportSettings(**json.loads(args.settings))
    bucket = TokenBucket(rate=args.read_rate) if args.read_rate else None
    result = export_share(clients.client("dynamodb"), clients.client("s3"), args.table, S3Location.parse(args.folder),
                          share, settings, bucket=bucket)
    out = Path(args.out)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict()))
    os.replace(tmp, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
