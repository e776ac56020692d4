"""Helpers for the stream tail tests: a workload of puts, updates and deletes, the stand-in's hooks, a replay.

``replay`` rebuilds a table from what the tail stored (only what is in S3: segments in lineage
order, each sequence number once) over an optional base, so a test compares it with the table.
"""

from __future__ import annotations

import functools
import json
import random
import time
import urllib.request
from typing import Any

from dynamodb_backup.aws import clients
from dynamodb_backup.formats.codec import decode_line, is_blank, key_of
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.reader import read_lines
from dynamodb_backup.repository.segments import list_segments, shard_changes
from dynamodb_backup.streams.gaps import take_base_backup
from dynamodb_backup.streams.segmentwriter import SegmentSettings
from dynamodb_backup.streams.source import StreamSource
from dynamodb_backup.streams.tail import TailResult, TailSettings, tail_stream

SCHEMA = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
          "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
RULES = KeyRules.from_description(SCHEMA)
Key = tuple[str, ...]


def create_streamed_table(ddb: Any, name: str, view: str = "NEW_AND_OLD_IMAGES") -> None:
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST", **SCHEMA,
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": view})
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)


class Workload:
    """Seeded puts, updates and deletes over a few keys, so each key is written many times."""

    def __init__(self, ddb: Any, table: str, seed: int = 23, keys: int = 12) -> None:
        self.ddb, self.table, self.keys = ddb, table, keys
        self.rng = random.Random(seed)
        self.version = 0
        self.live: set[str] = set()
        self.writes = 0

    def run(self, count: int) -> None:
        for _ in range(count):
            self.one()

    def one(self) -> None:
        pk = f"k{self.rng.randrange(self.keys)}"
        self.version += 1
        roll = self.rng.random()
        if pk in self.live and roll < 0.2:
            self.ddb.delete_item(TableName=self.table, Key={"pk": {"S": pk}})
            self.live.discard(pk)
        elif pk in self.live and roll < 0.5:
            self.ddb.update_item(TableName=self.table, Key={"pk": {"S": pk}}, UpdateExpression="SET v = :v",
                                 ExpressionAttributeValues={":v": {"N": f"{self.version}.25"}})
        else:
            self.ddb.put_item(TableName=self.table, Item={
                "pk": {"S": pk}, "v": {"N": str(self.version)}, "big": {"N": "1234567890123456789012345678.9012"},
                "b": {"B": bytes([self.version % 256, 0, 255])}, "s": {"S": "é" * (self.version % 4)}})
            self.live.add(pk)
        self.writes += 1


def scan_all(ddb: Any, table: str) -> dict[Key, dict[str, Any]]:
    items: dict[Key, dict[str, Any]] = {}
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for item in page["Items"]:
            items[key_of(item, ["pk"])] = item
    return items


def base_items(s3: Any, folder: str) -> dict[Key, dict[str, Any]]:
    """The items of a base backup folder (``s3://bucket/prefix/table/date``)."""
    location = S3Location.parse(folder)
    items: dict[Key, dict[str, Any]] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=location.bucket, Prefix=location.prefix + "/"):
        for obj in page.get("Contents", []):
            name = obj["Key"].rsplit("/", 1)[-1]
            if name.startswith("_") or name == "manifest":
                continue
            for _, line in read_lines(s3, location.bucket, obj["Key"]):
                if not is_blank(line):
                    item = decode_line(line)
                    items[key_of(item, ["pk"])] = item
    return items


def replay(s3: Any, base: S3Location, table: str, start: dict[Key, dict[str, Any]] | None = None,
           after: dict[str, str | None] | None = None) -> tuple[dict[Key, dict[str, Any]], list[str]]:
    """The state the stored segments give over ``start``, and every (shard, sequence number) replayed.

    ``after``: only these shards, each from just after the sequence number given (None: all of it).
    """
    state = dict(start or {})
    seen: list[str] = []
    for shard in list_segments(s3, base, table):
        if after is not None and shard.shard_id not in after:
            continue
        since = after.get(shard.shard_id) if after is not None else None
        for _, change in shard_changes(s3, base.bucket, shard.segments, RULES, after=since):
            key = key_of(change.change.keys, ["pk"])
            if change.change.new is None:
                state.pop(key, None)
            else:
                state[key] = change.change.new
            seen.append(f"{shard.shard_id}/{change.sequence}")
    return state, seen


def stream_hook(standin_url: str, hook: str, **body: Any) -> dict[str, Any]:
    """A test hook of the stand-in's journal streams (``LocalStreams.<hook>``), sent to the stand-in itself."""
    request = urllib.request.Request(standin_url, data=json.dumps(body).encode(), method="POST", headers={
        "X-Amz-Target": f"LocalStreams.{hook}", "Content-Type": "application/x-amz-json-1.0"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        result: dict[str, Any] = json.loads(answer.read() or b"{}")
        return result


def make_client_for(endpoint: str) -> Any:
    """A client factory (as the CLI's) whose DynamoDB and DynamoDB Streams calls go to ``endpoint``."""
    def make(service: str) -> Any:
        if service in ("dynamodb", "dynamodbstreams"):
            return clients.client(service, endpoint)
        return clients.client(service)
    return make


def tail(endpoint: str, table: str, base: S3Location, seconds: float, *, take_base: bool = True,
         **settings: Any) -> TailResult:
    """Tail in this process for ``seconds`` with short test timings (segments every 0.3 s)."""
    make = make_client_for(endpoint)
    source = StreamSource(make("dynamodb"), make("dynamodbstreams"), table)
    options = {"describe_seconds": 0.3, "idle_seconds": 0.1, "progress_seconds": 1.0, **settings}
    chosen = TailSettings(duration=seconds, segments=SegmentSettings(flush_seconds=0.3), **options)
    taker = take_base_backup(functools.partial(_client, endpoint), base, poll_seconds=0.5) if take_base else None
    return tail_stream(source, make("s3"), base, chosen, taker)


def _client(endpoint: str, service: str) -> Any:
    return make_client_for(endpoint)(service)
