"""The write floor: a bare boto3 client's BatchWriteItem of items already in memory, nothing else.

``python -m bench.floor_write --endpoint URL --table T --items FILE --processes P``: FILE is a
pickle of the items in boto3's client form (made once by the bench, before the clock); each
process unpickles its share and sends it 25 at a time, resending ``UnprocessedItems``. The
restore's own work (reading, decompressing, decoding, verifying) is what it leaves out.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import boto3

from .items import split_range


def write_share(endpoint: str, table: str, path: str, start: int, stop: int) -> int:
    items: list[dict[str, Any]] = pickle.loads(Path(path).read_bytes())[start:stop]
    ddb: Any = boto3.client("dynamodb", endpoint_url=endpoint)
    for lo in range(0, len(items), 25):
        pending = {table: [{"PutRequest": {"Item": item}} for item in items[lo:lo + 25]]}
        while pending:
            pending = ddb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
    return len(items)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--endpoint", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--items", required=True, help="pickle of the items in boto3's client form")
    p.add_argument("--processes", type=int, default=2)
    args = p.parse_args(argv)
    count = len(pickle.loads(Path(args.items).read_bytes()))
    runs = split_range(count, args.processes)
    with ProcessPoolExecutor(len(runs)) as pool:
        total = sum(pool.map(write_share, [args.endpoint] * len(runs), [args.table] * len(runs),
                             [args.items] * len(runs), [a for a, _ in runs], [b for _, b in runs]))
    print(f"wrote {total} items")
    return 0


if __name__ == "__main__":
    sys.exit(main())
