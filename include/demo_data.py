"""Demo tables: the seed's referrer counts, and a table holding every DynamoDB type.

Usable as a script (``python include/demo_data.py``, endpoints from the standard
AWS environment variables) and as a module by the tests and the benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import time
from collections.abc import Iterable, Iterator
from typing import Any

import boto3

REFERRER_TABLE = "ReferrerCounts"
ALL_TYPES_TABLE = "AllTypes"
HOSTS = ["www.example.com", "blog.example.com", "shop.example.com", "docs.example.com"]
REFERRERS = ["google.com", "bing.com", "news.ycombinator.com", "reddit.com", "t.co", "duckduckgo.com"]


def referrer_items(count: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Items shaped like the seed's Kinesis referrer-counts table (client form)."""
    rng = random.Random(seed)
    start = 1_700_000_000
    for i in range(count):
        resource = f"/{rng.choice(['index', 'about', 'pricing', 'blog/post-' + str(i % 97)])}.html"
        counts = [{"referrer": r, "count": rng.randint(1, 5000)} for r in rng.sample(REFERRERS, rng.randint(1, 4))]
        yield {
            "resource": {"S": resource},
            "timestamp": {"S": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(start + i * 7)) + f".{i % 1000:03d}Z"},
            "host": {"S": rng.choice(HOSTS)},
            "referrerCounts": {"S": json.dumps(counts)},
        }


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"S": "bottom"}
    for level in range(depth):
        value = {"M": {f"level{level}": value}} if level % 2 else {"L": [value, {"N": str(level)}]}
    return value


def all_types_items() -> list[dict[str, Any]]:
    """Items that exercise every type and the edges DynamoDB accepts (client form)."""
    items: list[dict[str, Any]] = [
        {"pk": {"S": "numbers"}, "sk": {"N": "1"},
         "big": {"N": "12345678901234567890123456789012345678"},
         "tiny": {"N": "1E-130"}, "huge": {"N": "9.9999999999999999999999999999999999999E+125"},
         "neg": {"N": "-9.9999999999999999999999999999999999999E+125"}, "negtiny": {"N": "-1E-130"},
         "zero": {"N": "0"}, "frac": {"N": "0.1"}, "precise": {"N": "3.14159265358979323846264338327950288"}},
        {"pk": {"S": "binary"}, "sk": {"N": "2"}, "raw": {"B": bytes(range(256))},
         "notutf8": {"B": b"\xff\xfe\x00\x80"}, "empty": {"B": b""},
         "bs": {"BS": [b"\x00", b"\xff", b"\x01\x02"]}},
        {"pk": {"S": "sets"}, "sk": {"N": "3"}, "ss": {"SS": ["a", "b", "한국어"]},
         "ns": {"NS": ["1", "2.5", "-300", "12345678901234567890123456789012345678"]},
         "bs": {"BS": [b"AAE", b"\x00\x01"]}},
        {"pk": {"S": "strings"}, "sk": {"N": "4"}, "empty": {"S": ""}, "korean": {"S": "안녕하세요 세계"},
         "controls": {"S": "".join(chr(c) for c in range(32)) + "\x7f\u2028\u2029"},
         "quotes": {"S": "\"'\\/<>&=`"}, "emoji": {"S": "😀 ∑ ß"},
         "json": {"S": '{"not":"parsed"}'}},
        {"pk": {"S": "scalars"}, "sk": {"N": "5"}, "t": {"BOOL": True}, "f": {"BOOL": False},
         "nothing": {"NULL": True}},
        {"pk": {"S": "nested"}, "sk": {"N": "6"}, "deep": nested(31),
         "mixed": {"L": [{"S": "x"}, {"N": "1"}, {"B": b"\x00"}, {"M": {}}, {"L": []},
                         {"SS": ["z"]}, {"NULL": True}, {"BOOL": False}]},
         "map": {"M": {"a b": {"S": "space"}, "k:1,2": {"N": "-0.5"}}}},
        {"pk": {"S": "large"}, "sk": {"N": "7"}, "blob": {"B": random.Random(1).randbytes(390_000)}},
        {"pk": {"S": "名前"}, "sk": {"N": "-1.5"}, "v": {"S": "non-ASCII key"}},
    ]
    return items


TABLE_SPECS: dict[str, dict[str, Any]] = {
    REFERRER_TABLE: {
        "KeySchema": [{"AttributeName": "resource", "KeyType": "HASH"},
                      {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "resource", "AttributeType": "S"},
                                 {"AttributeName": "timestamp", "AttributeType": "S"},
                                 {"AttributeName": "host", "AttributeType": "S"}],
        "GlobalSecondaryIndexes": [{
            "IndexName": "by-host",
            "KeySchema": [{"AttributeName": "host", "KeyType": "HASH"},
                          {"AttributeName": "timestamp", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "KEYS_ONLY"},
            "ProvisionedThroughput": {"ReadCapacityUnits": 10, "WriteCapacityUnits": 10},
        }],
        "ProvisionedThroughput": {"ReadCapacityUnits": 400, "WriteCapacityUnits": 400},
    },
    ALL_TYPES_TABLE: {
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                 {"AttributeName": "sk", "AttributeType": "N"}],
        "BillingMode": "PAY_PER_REQUEST",
    },
}


def create_table(client: Any, name: str, spec: dict[str, Any]) -> None:
    """Create ``name`` with ``spec`` unless it exists; wait until it is active."""
    try:
        client.create_table(TableName=name, **spec)
    except client.exceptions.ResourceInUseException:
        return
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})


def put_items(client: Any, table: str, items: Iterable[dict[str, Any]]) -> int:
    """Write items in batches of 25, retrying unprocessed ones."""
    count = 0
    batch: list[dict[str, Any]] = []

    def flush() -> None:
        pending = {table: [{"PutRequest": {"Item": item}} for item in batch]}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        batch.clear()

    for item in items:
        batch.append(item)
        count += 1
        if len(batch) == 25:
            flush()
    if batch:
        flush()
    return count


def enable_pitr(client: Any, table: str) -> None:
    """Turn point-in-time recovery on (mode pitr exports from its window)."""
    client.update_continuous_backups(TableName=table,
                                     PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


def seed(client: Any, referrer_count: int = 3000) -> dict[str, int]:
    create_table(client, REFERRER_TABLE, TABLE_SPECS[REFERRER_TABLE])
    create_table(client, ALL_TYPES_TABLE, TABLE_SPECS[ALL_TYPES_TABLE])
    for table in (REFERRER_TABLE, ALL_TYPES_TABLE):
        enable_pitr(client, table)
    return {
        REFERRER_TABLE: put_items(client, REFERRER_TABLE, referrer_items(referrer_count)),
        ALL_TYPES_TABLE: put_items(client, ALL_TYPES_TABLE, all_types_items()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=3000, help="referrer-count items")
    parser.add_argument("--bucket", help="also create this S3 bucket for the backups")
    args = parser.parse_args()
    counts = seed(boto3.client("dynamodb"), args.items)
    if args.bucket:
        s3 = boto3.client("s3")
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
            s3.create_bucket(Bucket=args.bucket)
    for table, count in counts.items():
        print(f"seeded {table}: {count} items")


if __name__ == "__main__":
    main()
