"""What the PITR stand-in costs a scan: items/s straight to dynalite vs through the stand-in.

Starts its own dynalite, moto and stand-in on free ports (state in a temporary folder), seeds
one table straight into dynalite, then scans it with parallel segments against each endpoint,
alternating, and prints the median of each::

    .venv/bin/python bench/standin_overhead.py --items 50000 --segments 4 --repeats 3

Two clients: ``raw`` (HTTP + orjson, so the client costs little and the servers dominate) and
``boto3`` (what the product does, with botocore parsing every item). ``--limit`` sets the
Scan page size (default: DynamoDB's 1 MB pages); small pages stress the per-request cost.
``--writes`` also times BatchWriteItem loads (8 threads) into a table created through the
stand-in, which journals every item, against the same load straight into dynalite.
Imports neither the product nor Airflow.
"""

from __future__ import annotations

import argparse
import http.client
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import orjson
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "include"))

from local_aws import LocalServer, free_port, start_dynalite, start_moto, start_pitr

TABLE = "standin-overhead"
AUTH = ("AWS4-HMAC-SHA256 Credential=bench/20200101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0")


def client(url: str) -> Any:
    make: Any = boto3.client
    return make("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="bench",
                aws_secret_access_key="bench", config=Config(max_pool_connections=32, retries={"max_attempts": 10}))


def seed(url: str, items: int, table: str = TABLE) -> float:
    """Create ``table`` through ``url`` and load ``items`` items into it; returns the load's items/s."""
    ddb = client(url)
    ddb.create_table(TableName=table, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    while ddb.describe_table(TableName=table)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)
    payload = "p" * 250  # with the key, the number and the names: about 300 bytes per item

    def write(start: int) -> None:
        batch = [{"PutRequest": {"Item": {"pk": {"S": f"item-{i:08d}"}, "n": {"N": str(i)}, "payload": {"S": payload}}}}
                 for i in range(start, min(start + 25, items))]
        request: dict[str, Any] = {table: batch}
        while request:
            request = ddb.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(0, items, 25)))
    return items / (time.perf_counter() - started)


def raw_scan_segment(url: str, segment: int, segments: int, limit: int | None) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=300)
    request: dict[str, Any] = {"TableName": TABLE, "Segment": segment, "TotalSegments": segments}
    if limit:
        request["Limit"] = limit
    count: int = 0
    try:
        while True:
            conn.request("POST", "/", body=orjson.dumps(request), headers={
                "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.Scan",
                "X-Amz-Date": "20200101T000000Z", "Authorization": AUTH})
            response = conn.getresponse()
            page: dict[str, Any] = orjson.loads(response.read())
            assert response.status == 200, page
            count += int(page["Count"])
            if "LastEvaluatedKey" not in page:
                return count
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
    finally:
        conn.close()


def boto3_scan_segment(url: str, segment: int, segments: int, limit: int | None) -> int:
    ddb = client(url)
    kwargs: dict[str, Any] = {"TableName": TABLE, "Segment": segment, "TotalSegments": segments}
    if limit:
        kwargs["Limit"] = limit
    count = 0
    for page in ddb.get_paginator("scan").paginate(**kwargs):
        count += page["Count"]
    return count


def cpu_seconds(server: LocalServer) -> float:
    """User + system CPU seconds the server process has used so far (from /proc)."""
    fields = Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(url: str, mode: str, segments: int, limit: int | None, items: int) -> float:
    scan = raw_scan_segment if mode == "raw" else boto3_scan_segment
    started = time.perf_counter()
    with ThreadPoolExecutor(segments) as pool:
        counted = sum(pool.map(lambda s: scan(url, s, segments, limit), range(segments)))
    elapsed = time.perf_counter() - started
    assert counted == items, (counted, items)
    return items / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--segments", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="Scan Limit per page (0: 1 MB pages)")
    parser.add_argument("--modes", default="raw,boto3")
    parser.add_argument("--writes", action="store_true", help="also time BatchWriteItem loads")
    args = parser.parse_args(argv)
    servers: list[LocalServer] = []
    with tempfile.TemporaryDirectory(prefix="standin-bench-") as state:
        try:
            dynalite = start_dynalite(free_port(), Path(state))
            servers.append(dynalite)
            moto = start_moto(free_port(), Path(state))
            servers.append(moto)
            standin = start_pitr(free_port(), Path(state), upstream_url=dynalite.url, s3_url=moto.url)
            servers.append(standin)
            seed(dynalite.url, args.items)
            endpoints = {"dynalite": dynalite.url, "stand-in": standin.url}
            for mode in args.modes.split(","):
                rates: dict[str, list[float]] = {name: [] for name in endpoints}
                measure(standin.url, mode, args.segments, args.limit or None, args.items)  # warm both paths
                standin_cpu, dynalite_cpu = cpu_seconds(standin), cpu_seconds(dynalite)
                for _ in range(args.repeats):
                    for name, url in endpoints.items():  # alternate, so drift hits both alike
                        rates[name].append(measure(url, mode, args.segments, args.limit or None, args.items))
                # Load-independent: the stand-in's CPU per item relayed against dynalite's per item served.
                standin_cpu = cpu_seconds(standin) - standin_cpu
                dynalite_cpu = (cpu_seconds(dynalite) - dynalite_cpu) / 2  # it served both endpoints' scans
                direct, proxied = (statistics.median(rates[name]) for name in endpoints)
                page = f"Limit={args.limit}" if args.limit else "1 MB pages"
                print(f"{mode:5} scan, {args.items} items, {args.segments} segments, {page}: "
                      f"dynalite {direct:,.0f} items/s, stand-in {proxied:,.0f} items/s "
                      f"({(proxied / direct - 1) * 100:+.1f}%); runs: "
                      + "; ".join(f"{n} " + ", ".join(f"{r:,.0f}" for r in rs) for n, rs in rates.items()))
                print(f"      CPU: stand-in {standin_cpu / args.repeats:.2f} s per scan of {args.items} items, "
                      f"dynalite {dynalite_cpu / args.repeats:.2f} s ({standin_cpu / dynalite_cpu * 100:.0f}%)")
            if args.writes:
                loads: dict[str, list[float]] = {name: [] for name in endpoints}
                for run in range(args.repeats):
                    for name, url in endpoints.items():
                        loads[name].append(seed(url, args.items, f"{TABLE}-w{run}-{name}"))
                direct, proxied = (statistics.median(loads[name]) for name in endpoints)
                print(f"batch writes, {args.items} items, 8 threads (journaled through the stand-in): "
                      f"dynalite {direct:,.0f} items/s, stand-in {proxied:,.0f} items/s "
                      f"({(proxied / direct - 1) * 100:+.1f}%)")
        finally:
            for server in reversed(servers):
                server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
