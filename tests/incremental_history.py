"""A table's recorded history for the restore-to-a-moment tests: a seeded random workload over
"simulated days", one full backup and a nightly incremental link per day, made by the incremental
backup path itself (``run_incremental_link``) through a PITR stand-in with one-second windows.

The state at each day's end is what the test computed from its own writes, never read back from
the stand-in or the backups.
"""

from __future__ import annotations

import copy
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest
from dynamodb_backup.commands import client_factory
from dynamodb_backup.formats.codec import item_digest, key_of
from dynamodb_backup.formats.layout import S3Location, backup_folder
from dynamodb_backup.incremental.backup import run_incremental_link

KEYS = ["pk", "sk"]
Key = tuple[str, ...]


def tick() -> datetime:
    """A whole second after every write so far, waited for so that later writes fall after it."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.02)
    return moment


def digests(items: list[dict[str, Any]] | dict[Key, dict[str, Any]]) -> dict[Key, int]:
    """Key -> item digest, for comparing a table with a state whatever the order and the number spelling."""
    values = items.values() if isinstance(items, dict) else items
    return {key_of(item, KEYS): item_digest(item) for item in values}


def scan_all(ddb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in ddb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        items += page["Items"]
    return items


class Workload:
    """Seeded random puts, updates and deletes; ``state`` is the table as the test's writes leave it."""

    def __init__(self, ddb: Any, table: str, seed: int, partitions: int = 6) -> None:
        self.ddb, self.table, self.rng, self.partitions = ddb, table, random.Random(seed), partitions
        self.state: dict[Key, dict[str, Any]] = {}
        self.deleted: list[dict[str, Any]] = []
        self.version = 0

    def item(self, pk: str, sk: int) -> dict[str, Any]:
        self.version += 1
        v, rng = self.version, self.rng
        item = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"N": str(v)},
                "name": {"S": f"n{v}-" + "x" * rng.randint(0, 40)},
                "blob": {"B": bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))},
                "doc": {"M": {"list": {"L": [{"N": str(v)}, {"S": "é"}]}, "ok": {"BOOL": v % 2 == 0},
                              "nil": {"NULL": True}}}}
        if rng.random() < 0.5:
            item["tags"] = {"SS": sorted({f"t{rng.randint(0, 9)}" for _ in range(3)})}
        return item

    def _put(self, item: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=self.table, Item=item)
        self.state[key_of(item, KEYS)] = item

    def _delete(self, key: dict[str, Any]) -> None:
        self.ddb.delete_item(TableName=self.table, Key=key)
        self.state.pop(key_of(key, KEYS), None)

    def _existing(self) -> dict[str, Any]:
        return self.state[self.rng.choice(sorted(self.state))]

    def new_key(self) -> tuple[str, int]:
        while True:
            pk, sk = f"p{self.rng.randrange(self.partitions)}", self.rng.randrange(1000)
            if (pk, str(sk)) not in self.state:
                return pk, sk

    def seed(self, count: int) -> None:
        for _ in range(count):
            self._put(self.item(*self.new_key()))

    def day(self, operations: int) -> None:
        for _ in range(operations):
            roll = self.rng.random()
            if roll < 0.3 or not self.state:
                self._put(self.item(*self.new_key()))                                  # insert
            elif roll < 0.5:
                old = self._existing()                                                 # overwrite
                self._put(self.item(old["pk"]["S"], int(old["sk"]["N"])))
            elif roll < 0.65:
                old = self._existing()                                                 # update in place
                self.version += 1
                key = {"pk": old["pk"], "sk": old["sk"]}
                self.ddb.update_item(TableName=self.table, Key=key, UpdateExpression="SET v = :v REMOVE tags",
                                     ExpressionAttributeValues={":v": {"N": str(self.version)}})
                updated = {k: v for k, v in old.items() if k != "tags"}
                updated["v"] = {"N": str(self.version)}
                self.state[key_of(updated, KEYS)] = updated
            elif roll < 0.85:
                old = self._existing()                                                 # delete
                self.deleted.append(old)
                self._delete({"pk": old["pk"], "sk": old["sk"]})
            elif roll < 0.93:
                brief = self.item(*self.new_key())                                     # insert, then delete
                self._put(brief)
                self._delete({"pk": brief["pk"], "sk": brief["sk"]})
            elif self.deleted:
                back = self.deleted.pop(self.rng.randrange(len(self.deleted)))         # bring one back
                if key_of(back, KEYS) not in self.state:
                    self._put(self.item(back["pk"]["S"], int(back["sk"]["N"])))


def create_table(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     BillingMode="PAY_PER_REQUEST")
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)
    ddb.update_continuous_backups(TableName=name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


@dataclass
class History:
    """A table's backups under ``base`` and the states they must restore to, oldest first."""

    make: Any
    """A client factory whose DynamoDB is the stand-in that journals the table."""
    base: S3Location
    table: str
    times: list[datetime]
    states: list[dict[Key, dict[str, Any]]]
    other_base: S3Location | None = None
    other_table: str | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    def folder(self, day: int, base: S3Location | None = None, table: str | None = None) -> S3Location:
        return backup_folder(base or self.base, table or self.table, self.times[day])


def record_history(standin_url: str, bucket: str, table: str, *, days: int = 5, seed: int = 1325,
                   initial: int = 40, operations: int = 25, other_table: str | None = None) -> History:
    """Seed ``table``, back it up in full, then ``days`` times: random writes, a tick, the day's link.

    ``other_table`` (optional) gets its own chain under ``<bucket>/other`` on the same ticks (a few writes a
    day), for the "link of another table" refusal.
    """
    make = client_factory(standin_url)
    ddb = make("dynamodb")
    tables = [table] + ([other_table] if other_table else [])
    for name in tables:
        create_table(ddb, name)
    workloads = [Workload(ddb, name, seed + i) for i, name in enumerate(tables)]
    workloads[0].seed(initial)
    for extra in workloads[1:]:
        extra.seed(5)
    bases = [S3Location(bucket, "inc"), S3Location(bucket, "other")]
    requests = [BackupRequest(table=name, destination=base, logical_date=datetime.now(UTC), max_workers=2,
                              settings=ExportSettings(file_max_items=15))
                for name, base in zip(tables, bases, strict=False)]
    times = [tick()]
    states = [copy.deepcopy(workloads[0].state)]
    for request in requests:
        plan, _ = run_incremental_link(make, request, times[0] - timedelta(seconds=30), times[0], poll_seconds=0.1)
        assert plan.role == "full", plan
    for _ in range(days):
        workloads[0].day(operations)
        for extra in workloads[1:]:
            extra.day(3)
        times.append(tick())
        states.append(copy.deepcopy(workloads[0].state))
        for request in requests:
            plan, _ = run_incremental_link(make, request, times[-2], times[-1], poll_seconds=0.1)
            assert plan.role == "incremental", plan
    return History(make, bases[0], table, times, states, bases[1] if other_table else None, other_table)


@pytest.fixture(scope="session", name="history")
def history_fixture(local_aws: Any, pitr_standin: Any) -> History:
    """One recorded history per test process: five days of ``asof-orders`` (and ``asof-other``)."""
    standin = pitr_standin(lag_seconds=0, min_export_seconds=0, min_incremental_window_seconds=1)
    bucket = f"asof-history-{uuid.uuid4().hex[:8]}"
    local_aws.s3_client().create_bucket(Bucket=bucket)
    suffix = uuid.uuid4().hex[:6]
    return record_history(standin.url, bucket, f"asof-orders-{suffix}", other_table=f"asof-other-{suffix}")
