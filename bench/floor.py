"""The floor: a bare boto3 client parallel scan that throws the items away.

``python -m bench.floor --endpoint URL --table T --segments S --processes P``
runs segments in P processes (contiguous runs, as our export splits them).
"""

from __future__ import annotations

import argparse
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import boto3

from .items import split_range


def scan_segments(endpoint: str, table: str, segments: list[int], total: int) -> int:
    ddb: Any = boto3.client("dynamodb", endpoint_url=endpoint)
    count = 0
    for segment in segments:
        kwargs = {"TableName": table, "Segment": segment, "TotalSegments": total}
        while True:
            page = ddb.scan(**kwargs)
            count += len(page["Items"])  # parsed by botocore, then dropped
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    return count


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--segments", type=int, default=4)
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args(argv)
    shares = [list(range(a, b)) for a, b in split_range(args.segments, args.processes)]
    if len(shares) == 1:
        total = scan_segments(args.endpoint, args.table, shares[0], args.segments)
    else:
        with ProcessPoolExecutor(len(shares)) as pool:
            total = sum(pool.map(scan_segments, [args.endpoint] * len(shares), [args.table] * len(shares),
                                 shares, [args.segments] * len(shares)))
    print(f"scanned {total} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
