"""The stream bench's moving parts: a paced write workload, a probe item, the samplers, and an S3 proxy that
counts requests by kind.

**The probe.** A dedicated thread writes one item (``pk="probe"``) ten times a second, stamping it with the
bench's clock (``t``, nanoseconds, taken just before the write is sent). Stream times are whole seconds on
AWS and whole *minutes* on DynamoDB Local, so the bench measures with its own clock:

- the recovery point age is now minus the newest probe stamp found in the segments stored in S3 (what a
  restore can replay);
- the replica lag is now minus the probe stamp the replica table holds (a consistent GetItem).

``stream_status`` (what the console shows, from stream times) is sampled beside them as a cross-check.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import orjson
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:
    sys.path.insert(0, str(REPO / "tests"))

from bench.streams_figures import due_writes, s3_request_kind  # noqa: E402
from dynamodb_backup.formats.layout import S3Location  # noqa: E402
from dynamodb_backup.replica.status import stream_status  # noqa: E402
from dynamodb_backup.repository.reader import read_lines  # noqa: E402
from dynamodb_backup.repository.streamprogress import stream_location  # noqa: E402
from faultproxy.base import FaultProxy, Request  # noqa: E402

PROBE_KEY = {"pk": {"S": "probe"}, "sk": {"N": "0"}}
PROBE_EVERY = 0.1
CREDENTIALS = {"aws_access_key_id": "bench", "aws_secret_access_key": "bench", "region_name": "us-east-1"}


def client(service: str, url: str, pool: int = 10) -> Any:
    return boto3.client(service, endpoint_url=url, config=Config(max_pool_connections=pool,
                                                                 retries={"mode": "standard"}), **CREDENTIALS)


class CountingS3Proxy(FaultProxy):
    """Forwards every request to moto untouched and counts it by billed kind (PUT, GET, LIST, ...)."""

    name = "s3-counting-proxy"

    def decide(self, request: Request) -> Request:
        self.count(s3_request_kind(request.method, request.path, request.query))
        return request

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)


def create_table(ddb: Any, name: str, stream: bool) -> None:
    spec = {"StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}} if stream else {}
    ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}], **spec)
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)


class Workload:
    """``rate`` writes/s (puts 50%, updates 35%, deletes 15%) over ``keys`` keys, by ``threads`` paced threads,
    plus the probe thread; ``done`` counts the writes that succeeded."""

    def __init__(self, url: str, table: str, rate: float, keys: int = 2000, threads: int = 8, seed: int = 23) -> None:
        self.url, self.table, self.rate, self.keys, self.threads, self.seed = url, table, rate, keys, threads, seed
        self.done = 0
        self.errors = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers: list[threading.Thread] = []
        self.started = 0.0

    def start(self) -> None:
        self.started = time.monotonic()
        self._workers = [threading.Thread(target=self._write, args=(i,), daemon=True) for i in range(self.threads)]
        self._workers.append(threading.Thread(target=self._probe, daemon=True))
        for worker in self._workers:
            worker.start()

    def stop(self) -> float:
        """Stop writing; the seconds the workload ran."""
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=30)
        return time.monotonic() - self.started

    def _add(self, ok: bool) -> None:
        with self._lock:
            if ok:
                self.done += 1
            else:
                self.errors += 1

    def _write(self, index: int) -> None:
        ddb, rng = client("dynamodb", self.url, pool=2), random.Random(self.seed * 1000 + index)
        share = self.rate / self.threads
        mine = 0
        while not self._stop.is_set():
            elapsed = time.monotonic() - self.started
            if mine >= due_writes(elapsed, share):  # ahead of the schedule: wait for the next write's turn
                time.sleep(min(0.05, (mine + 1) / share - elapsed))
                continue
            mine += 1
            n = rng.randrange(self.keys)
            key = {"pk": {"S": f"k{n}"}, "sk": {"N": str(n % 7)}}
            roll = rng.random()
            try:
                if roll < 0.5:
                    ddb.put_item(TableName=self.table, Item={**key, "v": {"N": str(mine)},
                                                             "payload": {"S": "x" * rng.randrange(50, 250)}})
                elif roll < 0.85:
                    ddb.update_item(TableName=self.table, Key=key, UpdateExpression="ADD v :one SET tag = :tag",
                                    ExpressionAttributeValues={":one": {"N": "1"}, ":tag": {"S": f"t{mine}"}})
                else:
                    ddb.delete_item(TableName=self.table, Key=key)
                self._add(True)
            except Exception:
                self._add(False)

    def _probe(self) -> None:
        ddb = client("dynamodb", self.url, pool=2)
        while not self._stop.is_set():
            try:
                ddb.put_item(TableName=self.table, Item={**PROBE_KEY, "t": {"N": str(time.time_ns())}})
                self._add(True)
            except Exception:
                self._add(False)
            self._stop.wait(PROBE_EVERY)


class Sampler:
    """Once a second: the recovery point age and the replica lag by the probe; every ``status_every`` s,
    ``stream_status``'s own figures. Its S3 client goes to moto directly, so it is not counted."""

    def __init__(self, s3_url: str, replica_url: str, base: S3Location, table: str, replica_table: str,
                 status_every: float = 5.0, say: Callable[[str], None] = print) -> None:
        self.s3, self.ddb = client("s3", s3_url), client("dynamodb", replica_url)
        self.base, self.table, self.replica_table, self.status_every, self.say = (
            base, table, replica_table, status_every, say)
        self.folder = stream_location(base, table).key("")
        self.seen: set[str] = set()
        self.newest_stored_ns: int | None = None
        self.rp_ages: list[float] = []
        self.lags: list[float] = []
        self.status_rp_ages: list[float] = []
        self.status_lags: list[float] = []
        self.recording = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _stored_probe(self) -> int | None:
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=self.base.bucket, Prefix=self.folder):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                rest = key[len(self.folder):]
                if rest.startswith("_") or key in self.seen or ".json" not in rest:
                    continue
                self.seen.add(key)
                for _number, line in read_lines(self.s3, self.base.bucket, key):
                    if b'"probe"' not in line:
                        continue
                    image = orjson.loads(line).get("NewImage") or {}
                    if image.get("pk", {}).get("S") == "probe" and "t" in image:
                        self.newest_stored_ns = max(self.newest_stored_ns or 0, int(image["t"]["N"]))
        return self.newest_stored_ns

    def _replica_probe(self) -> int | None:
        item = self.ddb.get_item(TableName=self.replica_table, Key=PROBE_KEY, ConsistentRead=True).get("Item")
        return int(item["t"]["N"]) if item and "t" in item else None

    def _run(self) -> None:
        next_status = time.monotonic()
        while not self._stop.wait(1.0 - (time.monotonic() % 1.0)):
            try:
                stored, applied = self._stored_probe(), self._replica_probe()
            except Exception as error:
                self.say(f"  sampler: {type(error).__name__}: {error}")
                continue
            now = time.time_ns()
            if self.recording and stored is not None:
                self.rp_ages.append((now - stored) / 1e9)
            if self.recording and applied is not None:
                self.lags.append((now - applied) / 1e9)
            if self.recording and time.monotonic() >= next_status:
                next_status = time.monotonic() + self.status_every
                status = stream_status(self.s3, self.base, self.table)
                if status["recovery_point_age_seconds"] is not None:
                    self.status_rp_ages.append(float(status["recovery_point_age_seconds"]))
                lags = [r["lag_seconds"] for r in status["replicas"] if r["lag_seconds"] is not None]
                if lags:
                    self.status_lags.append(float(lags[0]))

