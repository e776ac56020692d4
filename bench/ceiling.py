"""The local server's own ceiling: how fast it answers when the client does almost nothing.

``python -m bench.ceiling scan --endpoint URL --table T --segments S --processes P``
    Scan over raw HTTP (one keep-alive connection per segment, the segments of a process on
    threads, as our export runs them), parsing each answer with orjson only to read ``Count``
    and follow ``LastEvaluatedKey``. The items are dropped.

``python -m bench.ceiling prepare-writes --source T --table T2 --out FILE``
    Scans ``T`` once and writes one BatchWriteItem body (25 puts into ``T2``) per line of FILE:
    the requests are built before the clock starts. They ask for ``ReturnConsumedCapacity: TOTAL``
    as ours do (our pacing needs the figure; it costs dynalite about 8% more CPU per write).

``python -m bench.ceiling write --endpoint URL --bodies FILE --processes P``
    Sends those bodies over raw HTTP from P processes, one connection each (our restore's
    ``--workers``), resending ``UnprocessedItems`` if any (never seen locally).

No AWS signature is computed: the local servers do not check it, and signing is client CPU
that the ceiling should not pay. Each prints ``<verb> <n> items in <s> s`` on its last line.
"""

from __future__ import annotations

import argparse
import http.client
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import orjson

from .items import split_range

HEADERS = {
    "Content-Type": "application/x-amz-json-1.0",
    "Authorization": "AWS4-HMAC-SHA256 Credential=local/20240101/us-east-1/dynamodb/aws4_request, "
                     "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=" + "0" * 64,
    "X-Amz-Date": "20240101T000000Z",
}


#: As our export and restore ask: they pace themselves by what each call consumed.
CONSUMED = {"ReturnConsumedCapacity": "TOTAL"}


class Connection:
    """One keep-alive HTTP connection to the DynamoDB endpoint."""

    def __init__(self, endpoint: str) -> None:
        parts = urlsplit(endpoint)
        self.http = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=120)

    def call(self, target: str, body: bytes) -> dict[str, Any]:
        self.http.request("POST", "/", body=body,
                          headers={**HEADERS, "X-Amz-Target": f"DynamoDB_20120810.{target}"})
        response = self.http.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{target}: HTTP {response.status}: {data[:300]!r}")
        answer: dict[str, Any] = orjson.loads(data)
        return answer


def scan_segment(endpoint: str, table: str, segment: int, total: int) -> int:
    conn, count = Connection(endpoint), 0
    request: dict[str, Any] = {"TableName": table, "Segment": segment, "TotalSegments": total, **CONSUMED}
    while True:
        page = conn.call("Scan", orjson.dumps(request))
        count += int(page["Count"])
        if "LastEvaluatedKey" not in page:
            return count
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def scan_share(endpoint: str, table: str, segments: list[int], total: int) -> int:
    counts = [0] * len(segments)

    def run(i: int) -> None:
        counts[i] = scan_segment(endpoint, table, segments[i], total)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(segments))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


def source_items(endpoint: str, table: str) -> Iterator[dict[str, Any]]:
    conn = Connection(endpoint)
    request: dict[str, Any] = {"TableName": table}
    while True:
        page = conn.call("Scan", orjson.dumps(request))
        yield from page["Items"]
        if "LastEvaluatedKey" not in page:
            return
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def prepare_writes(endpoint: str, source: str, table: str, out: str) -> int:
    written, batch = 0, []
    with open(out, "wb") as f:
        for item in source_items(endpoint, source):
            batch.append({"PutRequest": {"Item": item}})
            if len(batch) == 25:
                f.write(orjson.dumps({"RequestItems": {table: batch}, **CONSUMED}) + b"\n")
                written, batch = written + len(batch), []
        if batch:
            f.write(orjson.dumps({"RequestItems": {table: batch}, **CONSUMED}) + b"\n")
            written += len(batch)
    return written


def write_bodies(endpoint: str, path: str, start: int, stop: int) -> int:
    with open(path, "rb") as f:
        bodies = f.read().splitlines()[start:stop]
    conn, written = Connection(endpoint), 0
    for body in bodies:
        answer = conn.call("BatchWriteItem", body)
        pending = answer.get("UnprocessedItems") or {}
        while pending:
            answer = conn.call("BatchWriteItem", orjson.dumps({"RequestItems": pending}))
            pending = answer.get("UnprocessedItems") or {}
        written += body.count(b'"PutRequest"')
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="verb", required=True)
    scan = sub.add_parser("scan")
    scan.add_argument("--endpoint", required=True)
    scan.add_argument("--table", required=True)
    scan.add_argument("--segments", type=int, default=4)
    scan.add_argument("--processes", type=int, default=2)
    prep = sub.add_parser("prepare-writes")
    prep.add_argument("--endpoint", required=True)
    prep.add_argument("--source", required=True)
    prep.add_argument("--table", required=True)
    prep.add_argument("--out", required=True)
    write = sub.add_parser("write")
    write.add_argument("--endpoint", required=True)
    write.add_argument("--bodies", required=True)
    write.add_argument("--processes", type=int, default=2)
    args = p.parse_args(argv)
    started = time.perf_counter()
    if args.verb == "prepare-writes":
        total = prepare_writes(args.endpoint, args.source, args.table, args.out)
    elif args.verb == "scan":
        shares = [list(range(a, b)) for a, b in split_range(args.segments, args.processes)]
        with ProcessPoolExecutor(len(shares)) as pool:
            total = sum(pool.map(scan_share, [args.endpoint] * len(shares), [args.table] * len(shares),
                                 shares, [args.segments] * len(shares)))
    else:
        with open(args.bodies, "rb") as f:
            runs = split_range(sum(1 for _ in f), args.processes)
        with ProcessPoolExecutor(len(runs)) as pool:
            total = sum(pool.map(write_bodies, [args.endpoint] * len(runs), [args.bodies] * len(runs),
                                 [a for a, _ in runs], [b for _, b in runs]))
    print(f"{args.verb} {total} items in {time.perf_counter() - started:.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
