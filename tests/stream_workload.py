"""A streamed table's recorded workload for the restore-to-a-second and replica tests.

The test writes seeded puts, updates and deletes (keys written many times), each inside one
whole second, and records every write with its second: ``state_at(s)`` is the table as the
test's own writes left it at the end of second ``s``, never read back from DynamoDB.

Segments are written by :func:`store_segments` from the table's real DynamoDB Streams records
(DynamoDB Local's Streams API, through the PITR stand-in and the strict front door), in the
tail's format (``repository.segments``). DynamoDB Local stamps records to the whole MINUTE
(dynamodb-streams.md, section 4), so each record's time is the second the test recorded for
that write: records and writes are matched one to one, in order, and their keys must agree.
Every write changes its item (a new version) and deletes only existing keys, so each write
makes exactly one record.
"""

from __future__ import annotations

import copy
import gzip
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dynamodb_backup.formats.codec import key_of
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.keyschema import key_description
from dynamodb_backup.repository.segments import encode_stream_record, segment_key
from dynamodb_backup.repository.streamprogress import ShardProgress, write_progress
from incremental_history import digests as digests  # the tests compare tables as the incremental tests do
from incremental_history import scan_all as scan_all

KEYS = ["pk", "sk"]
Key = tuple[str, ...]


def create_stream_table(ddb: Any, name: str, pitr: bool = True) -> None:
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                                                {"AttributeName": "sk", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                           {"AttributeName": "sk", "AttributeType": "N"}],
                     BillingMode="PAY_PER_REQUEST",
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)
    if pitr:
        ddb.update_continuous_backups(TableName=name,
                                      PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


def next_second() -> int:
    """Wait until a new whole second has just begun; return it."""
    now = time.time()
    target = int(now) + 1
    time.sleep(max(0.0, target - now + 0.02))
    return target


@dataclass
class Write:
    second: int
    key: Key
    item: dict[str, Any] | None
    """The item after the write; None: deleted."""


@dataclass
class StreamWorkload:
    """Seeded writes to a streamed table, each recorded with the second it was made in."""

    ddb: Any
    table: str
    seed: int = 2323
    keys: int = 14
    writes: list[Write] = field(default_factory=list)
    state: dict[Key, dict[str, Any]] = field(default_factory=dict)
    wall_clock: bool = False
    """Stamp each write with the second it started in (for streams that stamp writes themselves, to the
    second); ``straddled`` lists the seconds a write started in but ended after."""
    straddled: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.version = 0

    def _item(self, pk: str, sk: int) -> dict[str, Any]:
        self.version += 1
        v = self.version
        item = {"pk": {"S": pk}, "sk": {"N": str(sk)}, "v": {"N": str(v)},
                "name": {"S": f"n{v}-" + "é" * self.rng.randint(0, 5)},
                "blob": {"B": bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 6)))},
                "doc": {"M": {"n": {"N": f"{v}.50"}, "ok": {"BOOL": v % 2 == 0}, "nil": {"NULL": True}}}}
        if self.rng.random() < 0.5:
            item["tags"] = {"SS": sorted({f"t{self.rng.randint(0, 9)}" for _ in range(3)})}
        return item

    def _record(self, second: int, key: Key, item: dict[str, Any] | None) -> None:
        self.writes.append(Write(second, key, copy.deepcopy(item)))
        if item is None:
            self.state.pop(key, None)
        else:
            self.state[key] = item

    def one_write(self, second: int) -> None:
        started = time.time()
        if self.wall_clock:
            second = int(started)
        self._one_write(second)
        if self.wall_clock and int(time.time()) != second:
            self.straddled.add(second)  # the server may have stamped it with the next second

    def _one_write(self, second: int) -> None:
        pk, sk = f"p{self.rng.randrange(3)}", self.rng.randrange(self.keys)
        key = (pk, str(sk))
        roll = self.rng.random()
        if key in self.state and roll < 0.25:
            self.ddb.delete_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"N": str(sk)}})
            self._record(second, key, None)
        elif key in self.state and roll < 0.55:
            self.version += 1
            old = self.state[key]
            self.ddb.update_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"N": str(sk)}},
                                 UpdateExpression="SET v = :v REMOVE tags",
                                 ExpressionAttributeValues={":v": {"N": str(self.version)}})
            updated = {k: v for k, v in old.items() if k != "tags"}
            updated["v"] = {"N": str(self.version)}
            self._record(second, key, updated)
        else:
            item = self._item(pk, sk)
            self.ddb.put_item(TableName=self.table, Item=item)
            self._record(second, key, item)

    def run_second(self, writes: int) -> int:
        """``writes`` writes starting at the next whole second, all stamped with that second; returns it.

        On a busy machine the writes may run into the following second: they keep the stamp (the
        segments and the model agree on it), and the next call waits for a second after them, so
        stamps stay in write order and every write lies between the same backups as its stamp.
        """
        second = next_second()
        for _ in range(writes):
            self.one_write(second)
        return second

    def run_stamped(self, writes: int, second: int) -> None:
        """``writes`` writes now, stamped with ``second`` (an earlier one: the rest of a second the test has
        already moved past, such as the second of an export made in its middle)."""
        for _ in range(writes):
            self.one_write(second)

    def state_at(self, second: int) -> dict[Key, dict[str, Any]]:
        state: dict[Key, dict[str, Any]] = {}
        for write in self.writes:
            if write.second > second:
                break
            if write.item is None:
                state.pop(write.key, None)
            else:
                state[write.key] = write.item
        return state


def stream_records(ddb: Any, streams: Any, table: str, expected: int, timeout: float = 20.0) -> tuple[Any, list[Any]]:
    """The table's one shard and its records (at least ``expected``), read from TRIM_HORIZON."""
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    deadline = time.monotonic() + timeout
    while True:
        shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
        assert len(shards) == 1, f"DynamoDB Local gives one shard per stream, got {shards}"
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shards[0]["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records: list[Any] = []
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
        if len(records) >= expected or time.monotonic() > deadline:
            return (arn, shards[0]), records
        time.sleep(0.2)


def _store_shard(s3: Any, base: S3Location, progress: ShardProgress, records: list[Any], writes: list[Write],
                 per_segment: int) -> None:
    for start in range(0, len(writes), per_segment):
        lines = []
        for record, write in zip(records[start:start + per_segment], writes[start:start + per_segment], strict=False):
            data = record["dynamodb"]
            assert key_of(data["Keys"], KEYS) == write.key, (data["Keys"], write.key)
            stamped = dict(record, dynamodb=dict(data, ApproximateCreationDateTime=datetime.fromtimestamp(
                write.second, UTC)))
            lines.append(encode_stream_record(stamped))
        first = records[start]["dynamodb"]["SequenceNumber"]
        key = segment_key(base, progress.table, progress.shard_id, first)
        s3.put_object(Bucket=base.bucket, Key=key, Body=gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
        progress.last_sequence = records[start + len(lines) - 1]["dynamodb"]["SequenceNumber"]
        progress.last_seconds = writes[start + len(lines) - 1].second
        progress.records += len(lines)
        progress.segments += 1
        write_progress(s3, base, progress)


def store_segments(ddb: Any, streams: Any, s3: Any, base: S3Location, workload: StreamWorkload,
                   per_segment: int = 9, upto: int | None = None, split_at: int | None = None,
                   parent_finished: bool = True) -> int:
    """Write the table's stream records (the first ``upto``; default all) as segments with progress; the
    record times are the seconds the test recorded. Returns how many records were stored.

    ``split_at``: records from that one on go to a child shard of the real one (as after a rollover),
    whose progress names the real shard as its parent; ``parent_finished`` says whether the parent was
    read to its end.
    """
    writes = workload.writes[:upto] if upto is not None else workload.writes
    (arn, shard), records = stream_records(ddb, streams, workload.table, len(workload.writes))
    assert len(records) == len(workload.writes), (len(records), len(workload.writes))
    description = ddb.describe_table(TableName=workload.table)["Table"]
    label, keys = description["LatestStreamLabel"], key_description(description)
    cut = len(writes) if split_at is None else min(split_at, len(writes))
    parent = ShardProgress(workload.table, arn, label, shard["ShardId"], None,
                           shard["SequenceNumberRange"]["StartingSequenceNumber"], keys)
    _store_shard(s3, base, parent, records[:cut], writes[:cut], per_segment)
    if split_at is not None:
        parent.finished = parent_finished
        write_progress(s3, base, parent)
        if cut < len(writes):
            child = ShardProgress(workload.table, arn, label, shard["ShardId"][:-8] + "c41d0000", shard["ShardId"],
                                  records[cut]["dynamodb"]["SequenceNumber"], keys)
            _store_shard(s3, base, child, records[cut:], writes[cut:], per_segment)
    return len(writes)


@dataclass
class StreamSource:
    """A source table with a stream, its clients, a seeded workload and where its segments go."""

    ddb: Any
    streams: Any
    workload: StreamWorkload
    base: S3Location


def streams_server_for(local_aws: Any, pitr_standin: Any) -> Any:
    """DynamoDB Local's own Streams through the session's stand-in; on dynalite (which has none), the
    stand-in's Streams over its journal."""
    return local_aws.dynamodb if local_aws.is_ddblocal else pitr_standin(lag_seconds=0, streams="journal")


def stream_source(streams_server: Any, table: str, bucket: str, *, seed: int, keys: int) -> StreamSource:
    """A new table with a stream on ``streams_server`` and a workload of ``keys`` x ``keys`` keys."""
    ddb = streams_server.client("dynamodb", region_name="us-east-1")
    create_stream_table(ddb, table, pitr=False)
    return StreamSource(ddb, streams_server.client("dynamodbstreams", region_name="us-east-1"),
                        StreamWorkload(ddb, table, seed=seed, keys=keys), S3Location(bucket, "streams"))
