"""Paced BatchWriteItem loading that never drops an item (or a delete).

Items are grouped 25 to a call (and under 16 MB), each call waits for the write
budget and is charged what it consumed, ``UnprocessedItems`` are retried with
backoff until written, and an item DynamoDB refuses fails the load with the
place it came from (file and line, or table and segment). Deletes (an
incremental backup's removed items) go in the same batches as DeleteRequests.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import orjson
from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.aws.usage import UsageTimeline
from dynamodb_backup.errors import BackupError
from dynamodb_backup.formats.codec.canonical import key_of
from dynamodb_backup.formats.codec.validate import item_size
from dynamodb_backup.formats.layout import S3Location

log = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 25
MAX_BATCH_BYTES = 16 * 1024 * 1024


def unprocessed_delay(rounds: int) -> float:
    """Backoff before resending ``UnprocessedItems``: exponential, capped at 20 s, half jittered."""
    return float(min(20.0, 0.05 * 2 ** min(rounds, 9)) * random.uniform(0.5, 1.0))


def _consumed_entries(response: dict[str, Any]) -> list[dict[str, Any]]:
    consumed = response.get("ConsumedCapacity") or []
    return consumed if isinstance(consumed, list) else [consumed]  # BatchWriteItem: a list; PutItem: one


def batch_consumed(response: dict[str, Any]) -> float:
    """Write units a BatchWriteItem (or PutItem) consumed, indexes included (summed over its tables)."""
    return sum(float(c.get("CapacityUnits", 0)) for c in _consumed_entries(response))


def consumed_mode(index_scales: Mapping[str, float]) -> str:
    """Ask for the per-index breakdown only when there are index capacities to keep to."""
    return "INDEXES" if index_scales else "TOTAL"


def pacing_units(response: dict[str, Any], index_scales: Mapping[str, float]) -> float:
    """What a write call costs the pacing budget, in the table's write units.

    With a per-index breakdown (``ReturnConsumedCapacity=INDEXES``): the table's
    units (local indexes share its capacity) or any global index's units scaled
    to the table's capacity (:func:`plan.index_write_scales`), whichever is more,
    so the tightest of them sets the pace. Without one: the total.
    """
    units = 0.0
    for entry in _consumed_entries(response):
        table = entry.get("Table")
        if not index_scales or table is None:
            units += float(entry.get("CapacityUnits", 0))
            continue
        cost = float(table.get("CapacityUnits", 0)) + sum(
            float(lsi.get("CapacityUnits", 0)) for lsi in (entry.get("LocalSecondaryIndexes") or {}).values())
        for name, gsi in (entry.get("GlobalSecondaryIndexes") or {}).items():
            cost = max(cost, float(gsi.get("CapacityUnits", 0)) * index_scales.get(name, 1.0))
        units += cost
    return units


class LoadError(BackupError):
    """An item could not be written; the message names where it came from."""


@dataclass
class LoadStats:
    items: int = 0
    """Requests written: puts and deletes."""
    deletes: int = 0
    batches: int = 0
    consumed_write_units: float = 0.0
    unprocessed_retries: int = 0


@dataclass
class BatchWriter:
    """Writes items to one table in batches, paced by ``bucket``.

    ``put(item, origin)`` takes a client-form item, ``delete(keys, origin)`` the
    key attributes of an item to remove; ``origin`` says where it came from, for
    error messages. Call ``flush()`` at the end. ``index_scales``
    (:func:`plan.index_write_scales`) keeps the table's global indexes within
    their own share of capacity too.
    """

    client: Any
    table: str
    key_names: Sequence[str]
    bucket: TokenBucket
    index_scales: Mapping[str, float] = field(default_factory=dict)
    max_unprocessed_rounds: int = 50
    sleep: Callable[[float], None] = time.sleep
    stats: LoadStats = field(default_factory=LoadStats)
    _pending: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    """(request, origin): ``{"PutRequest": ...}`` or ``{"DeleteRequest": ...}``."""
    _pending_keys: set[tuple[str, ...]] = field(default_factory=set)
    _pending_bytes: int = 0

    def put(self, item: dict[str, Any], origin: str) -> None:
        self._add({"PutRequest": {"Item": item}}, item, item_size(item), origin)

    def delete(self, keys: dict[str, Any], origin: str) -> None:
        """Remove the item with these key attributes (a no-op in DynamoDB if it is not there)."""
        self._add({"DeleteRequest": {"Key": {k: keys[k] for k in self.key_names if k in keys}}}, keys,
                  item_size(keys), origin)
        self.stats.deletes += 1

    def _add(self, request: dict[str, Any], item: dict[str, Any], size: int, origin: str) -> None:
        missing = [k for k in self.key_names if k not in item]
        if missing:
            raise LoadError(f"{origin}: item has no key attribute {missing[0]!r}")
        key = key_of(item, self.key_names)
        # A batch may not name one key twice; a later copy overwrites, as plain puts do.
        if key in self._pending_keys or len(self._pending) == MAX_BATCH_ITEMS or (
            self._pending_bytes + size > MAX_BATCH_BYTES
        ):
            self.flush()
        self._pending.append((request, origin))
        self._pending_keys.add(key)
        self._pending_bytes += size

    def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        self._pending_keys = set()
        self._pending_bytes = 0
        self._write(batch)

    def _write(self, batch: list[tuple[dict[str, Any], str]]) -> None:
        requests = [request for request, _ in batch]
        origin_by_key = {key_of(_target(request), self.key_names): origin for request, origin in batch}
        rounds = 0
        while requests:
            self.bucket.wait()
            try:
                response = call_with_retries(
                    partial(self.client.batch_write_item, RequestItems={self.table: requests},
                            ReturnConsumedCapacity=consumed_mode(self.index_scales))
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ValidationException":
                    raise
                self._put_one_by_one(batch)
                return
            self.bucket.charge(pacing_units(response, self.index_scales))
            self.stats.consumed_write_units += batch_consumed(response)
            self.stats.batches += 1
            unprocessed = (response.get("UnprocessedItems") or {}).get(self.table, [])
            self.stats.items += len(requests) - len(unprocessed)
            if not unprocessed:
                return
            rounds += 1
            self.stats.unprocessed_retries += 1
            if rounds > self.max_unprocessed_rounds:
                first = key_of(_target(unprocessed[0]), self.key_names)
                where = origin_by_key.get(first, f"item with key {first}")
                raise LoadError(
                    f"{where}: DynamoDB left {len(unprocessed)} items unprocessed after {rounds} rounds"
                )
            requests = unprocessed
            delay = unprocessed_delay(rounds)
            log.info("%d items unprocessed; retrying in %.2f s (round %d)", len(unprocessed), delay, rounds)
            self.sleep(delay)

    def _put_one_by_one(self, batch: list[tuple[dict[str, Any], str]]) -> None:
        """DynamoDB refused the batch; write its requests one by one to name the one it refuses."""
        for request, origin in batch:
            if "PutRequest" in request:
                call = partial(self.client.put_item, TableName=self.table, Item=request["PutRequest"]["Item"],
                               ReturnConsumedCapacity=consumed_mode(self.index_scales))
            else:
                call = partial(self.client.delete_item, TableName=self.table, Key=request["DeleteRequest"]["Key"],
                               ReturnConsumedCapacity=consumed_mode(self.index_scales))
            try:
                self.bucket.wait()
                response = call_with_retries(call)
            except ClientError as item_exc:
                reason = item_exc.response.get("Error", {}).get("Message", str(item_exc))
                what = "item" if "PutRequest" in request else "delete"
                raise LoadError(f"{origin}: DynamoDB refused the {what}: {reason}") from None
            self.bucket.charge(pacing_units(response, self.index_scales))
            self.stats.consumed_write_units += batch_consumed(response)
            self.stats.items += 1


def _target(request: dict[str, Any]) -> dict[str, Any]:
    """The item of a PutRequest or the key of a DeleteRequest."""
    if "PutRequest" in request:
        item: dict[str, Any] = request["PutRequest"]["Item"]
        return item
    keys: dict[str, Any] = request["DeleteRequest"]["Key"]
    return keys


def write_units_location(checkpoints: S3Location) -> S3Location:
    """Where a restore run records its write units per 5 s: ``<checkpoints>.write-units/``.

    A sibling of the run's finished-file markers (``_restore_checkpoints/<folder>/<target>/<run id>``), not
    inside them, so clearing the markers after a good restore keeps the record; like the markers it sits
    beside the backup folder, never in it.
    """
    return S3Location(checkpoints.bucket, checkpoints.prefix + ".write-units")


def save_write_units(s3: Any, checkpoints: S3Location, label: str, timeline: UsageTimeline, rate: float,
                     extra: Mapping[str, Any] | None = None,
                     figures: Mapping[str, Any] | None = None) -> S3Location | None:
    """Record one load worker's write units per interval and its allowed rate; best effort (a read-only
    bucket only loses the chart). ``figures`` (items, bytes, files, started, finished) go in the record too."""
    location = write_units_location(checkpoints)
    body = orjson.dumps({**dict(figures or {}), "worker": label, "write_rate": rate, "usage": timeline.to_dict(),
                         "consumed_write_units": timeline.total})
    try:
        call_with_retries(lambda: s3.put_object(Bucket=location.bucket, Key=location.key(f"{label}.json"),
                                                Body=body, **dict(extra or {})))
    except ClientError as exc:
        log.warning("could not record write units under %s: %s", location, exc.response.get("Error", {}))
        return None
    return location
