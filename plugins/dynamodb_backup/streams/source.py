"""The DynamoDB Streams API, as a tailer needs it: the table's stream, its shards, iterators, records.

Why this way:

* The stream is found through DescribeTable (``LatestStreamArn`` and ``StreamSpecification``),
  not ListStreams: DescribeTable says whether the stream is enabled now, and a disabled stream
  keeps its ARN there (DynamoDB Local), so ``StreamSpecification.StreamEnabled`` is what counts.
* botocore has no paginators for this service: DescribeStream is paged here by
  ``ExclusiveStartShardId`` until ``LastEvaluatedShardId`` is absent.
* Calls are paced below AWS's documented rates (DescribeStream 10/s, ListStreams 5/s; GetRecords
  has none documented, Lambda polls a shard 4 times a second) and retried as botocore retries
  (the client's standard mode), then by ``aws.retry``'s outer rounds; ``LimitExceededException``
  (GetRecords' throttle) is waited out here with backoff, as botocore's standard mode counts it.
* The errors that mean data may be gone (TrimmedDataAccessException, ResourceNotFoundException)
  and ExpiredIteratorException (no data lost: ask again from the last record) are left to the
  caller, which knows where it stands.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynamodb_backup.aws.retry import call_with_retries, error_code
from dynamodb_backup.errors import ParameterError

log = logging.getLogger(__name__)

#: Views that carry the item after the change: enough to rebuild the table.
VIEWS_WITH_NEW_IMAGE = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")
#: Seconds between two calls of a kind: below AWS's documented rates.
MIN_INTERVAL = {"DescribeStream": 0.1, "ListStreams": 0.2, "DescribeTable": 0.1}
#: A shard is polled at most this often (Lambda: 4 times a second).
GET_RECORDS_INTERVAL = 0.25
LIMIT_EXCEEDED_ROUNDS = 8
MAX_RECORDS = 1000


class StreamSetupError(ParameterError):
    """The table's stream cannot give a backup: off, or its view lacks the new image."""


@dataclass(frozen=True)
class StreamFacts:
    """What DescribeTable says about the table and its stream."""

    table: str
    arn: str | None
    label: str | None
    enabled: bool
    view_type: str | None
    key_schema: dict[str, Any]

    def check_usable(self) -> None:
        """Refuse a stream that is off or lacks the new image, naming the setting to change."""
        if not self.enabled or not self.arn:
            raise StreamSetupError(
                f"table {self.table!r} has no enabled stream: set StreamSpecification to StreamEnabled=true, "
                "StreamViewType=NEW_AND_OLD_IMAGES (aws dynamodb update-table --table-name "
                f"{self.table} --stream-specification StreamEnabled=true,StreamViewType=NEW_AND_OLD_IMAGES)")
        if self.view_type not in VIEWS_WITH_NEW_IMAGE:
            raise StreamSetupError(
                f"table {self.table!r}: its stream's StreamViewType is {self.view_type}, which lacks the new "
                "image a backup needs: set StreamViewType to NEW_AND_OLD_IMAGES (a view cannot be edited: "
                "disable the stream, then enable it with that view)")


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_id: str | None
    starting_sequence: str
    ending_sequence: str | None

    @property
    def closed(self) -> bool:
        return self.ending_sequence is not None

    @classmethod
    def from_api(cls, raw: dict[str, Any]) -> Shard:
        numbers = raw.get("SequenceNumberRange") or {}
        return cls(raw["ShardId"], raw.get("ParentShardId"), str(numbers.get("StartingSequenceNumber", "0")),
                   numbers.get("EndingSequenceNumber"))


class Pacer:
    """At most one call of a kind per interval (per key: a shard, an operation), across threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep):
        self.clock, self.sleep = clock, sleep
        self._next: dict[str, float] = {}
        self._lock = threading.Lock()

    def wait(self, key: str, interval: float) -> None:
        with self._lock:
            now = self.clock()
            at = max(now, self._next.get(key, now))
            self._next[key] = at + interval
        if at > now:
            self.sleep(at - now)


class StreamSource:
    """One table's stream through a ``dynamodb`` and a ``dynamodbstreams`` client."""

    def __init__(self, dynamodb: Any, streams: Any, table: str, pacer: Pacer | None = None) -> None:
        self.dynamodb, self.streams, self.table = dynamodb, streams, table
        self.pacer = pacer or Pacer()
        # Counted under a lock: one source may serve several threads (as its Pacer does), and
        # ``dict[k] = dict.get(k) + 1`` is a read then a write that two threads can interleave.
        self._calls: dict[str, int] = {}
        self._calls_lock = threading.Lock()

    @property
    def calls(self) -> dict[str, int]:
        """Calls made so far, per operation (a copy): the tail's result reports them."""
        with self._calls_lock:
            return dict(self._calls)

    def _call(self, operation: str, call: Callable[[], Any], key: str | None = None,
              interval: float | None = None) -> Any:
        self.pacer.wait(key or operation, MIN_INTERVAL.get(operation, 0.0) if interval is None else interval)
        with self._calls_lock:
            self._calls[operation] = self._calls.get(operation, 0) + 1
        for round_number in range(1, LIMIT_EXCEEDED_ROUNDS + 1):
            try:
                return call_with_retries(call)
            except Exception as exc:
                if error_code(exc) != "LimitExceededException" or round_number == LIMIT_EXCEEDED_ROUNDS:
                    raise
                wait = random.random() * min(2.0 ** round_number, 20.0)
                log.warning("%s: %s; waiting %.1f s", operation, exc, wait)
                self.pacer.sleep(wait)
        raise AssertionError("unreachable")

    def facts(self) -> StreamFacts:
        table = self._call("DescribeTable", lambda: self.dynamodb.describe_table(TableName=self.table))["Table"]
        spec = table.get("StreamSpecification") or {}
        schema = {"KeySchema": table["KeySchema"], "AttributeDefinitions": table["AttributeDefinitions"]}
        return StreamFacts(self.table, table.get("LatestStreamArn"), table.get("LatestStreamLabel"),
                           bool(spec.get("StreamEnabled")), spec.get("StreamViewType"), schema)

    def shards(self, stream_arn: str) -> tuple[str, list[Shard]]:
        """The stream's status and every shard it lists (all pages)."""
        shards: list[Shard] = []
        start: str | None = None
        status = ""
        while True:
            request = {"StreamArn": stream_arn, "Limit": 100, **({"ExclusiveStartShardId": start} if start else {})}
            description = self._call("DescribeStream", functools.partial(self.streams.describe_stream,
                                                                         **request))["StreamDescription"]
            status = description.get("StreamStatus", status)
            shards += [Shard.from_api(raw) for raw in description.get("Shards", [])]
            start = description.get("LastEvaluatedShardId")
            if not start:
                return status, shards

    def iterator(self, stream_arn: str, shard_id: str, after: str | None) -> str:
        """An iterator just after ``after``, or at the oldest record still held (``after`` None)."""
        position: dict[str, str] = ({"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": after}
                                    if after else {"ShardIteratorType": "TRIM_HORIZON"})
        answer = self._call("GetShardIterator", lambda: self.streams.get_shard_iterator(
            StreamArn=stream_arn, ShardId=shard_id, **position), key=f"iterator {shard_id}", interval=0.0)
        return str(answer["ShardIterator"])

    def records(self, shard_id: str, iterator: str) -> tuple[list[dict[str, Any]], str | None]:
        """One GetRecords page: the records (boto3 client form) and the next iterator (None: shard read)."""
        answer = self._call("GetRecords", lambda: self.streams.get_records(ShardIterator=iterator, Limit=MAX_RECORDS),
                            key=f"records {shard_id}", interval=GET_RECORDS_INTERVAL)
        return list(answer.get("Records", [])), answer.get("NextShardIterator")
