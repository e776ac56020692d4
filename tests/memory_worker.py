"""One export worker, alone in its process, that reports its peak RSS: for the memory guarantee.

Run as a script (the test and the bench figure in docs/workers-per-terabyte.md both do)::

    python tests/memory_worker.py --table T --bucket B --passes P

It exports the whole table ``passes`` times over (segment 0 of 1, again and again, each pass over
the files of the one before), so P passes of a table of N items put P x N items through one worker
while DynamoDB and S3 hold only N. Endpoints and credentials come from the environment
(AWS_ENDPOINT_URL_DYNAMODB, AWS_ENDPOINT_URL_S3). Prints one JSON line: the items and stored bytes
the worker wrote, and its peak RSS in MB (``VmHWM``: ``ru_maxrss`` is not this process's own peak,
since Linux carries the parent's high-water mark across fork and exec, so a child of a large pytest
worker reported that worker's 485 MB).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

#: Under DynamoDB's 400 KB item limit with the key and attribute names.
ITEM_TEXT_CHARS = 399_000


def big_item(i: int) -> dict[str, Any]:
    """About 400 KB: base64 text of random bytes (compresses little, so parts fill fast)."""
    import base64

    rng = random.Random(i)
    text = base64.b64encode(rng.randbytes(ITEM_TEXT_CHARS * 3 // 4)).decode()
    return {"pk": {"S": f"big-{i:06d}"}, "body": {"S": text}}


def seed(dynamodb: Any, table: str, count: int) -> None:
    dynamodb.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")
    dynamodb.get_waiter("table_exists").wait(TableName=table)
    for start in range(0, count, 10):
        requests = [{"PutRequest": {"Item": big_item(i)}} for i in range(start, min(start + 10, count))]
        while requests:
            answer = dynamodb.batch_write_item(RequestItems={table: requests})
            requests = answer.get("UnprocessedItems", {}).get(table, [])


def own_peak_rss_kb() -> int:
    """This process's own peak RSS in KiB: its memory map's high-water mark, new at exec."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", required=True)
    parser.add_argument("--bucket", required=True)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--prefix", default="memory", help="a folder of its own: a checkpoint left there is reused")
    parser.add_argument("--compression", default="gzip")
    args = parser.parse_args(argv)

    import boto3

    from dynamodb_backup.backup.export import ExportSettings, export_share
    from dynamodb_backup.backup.plan import WorkerShare
    from dynamodb_backup.formats.layout import S3Location

    calls = {"Scan": 0, "UploadPart": 0}

    def count(event_name: str, **_: Any) -> None:
        calls[event_name.split(".")[-1]] += 1

    dynamodb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    dynamodb.meta.events.register("after-call.dynamodb.Scan", count)
    s3.meta.events.register("after-call.s3.UploadPart", count)
    share = WorkerShare(worker=0, segments=[0] * args.passes, total_segments=1, read_rate=1e9)
    result = export_share(dynamodb, s3, args.table, S3Location(args.bucket, args.prefix), share,
                          ExportSettings(compression=args.compression))
    peak_kb = own_peak_rss_kb()
    print(json.dumps({"items": result.items, "stored_bytes": result.bytes, "files": len(result.files),
                      "scan_calls": calls["Scan"], "parts": calls["UploadPart"],
                      "peak_rss_mb": round(peak_kb / 1024, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
