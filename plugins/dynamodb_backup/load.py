"""Paced BatchWriteItem loading that never drops an item.

Items are grouped 25 to a call (and under 16 MB), each call waits for the write
budget and is charged what it consumed, ``UnprocessedItems`` are retried with
backoff until written, and an item DynamoDB refuses fails the load with the
place it came from (file and line, or table and segment).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from botocore.exceptions import ClientError

from .codec.canonical import key_of
from .codec.validate import item_size
from .errors import BackupError
from .retry import call_with_retries
from .throttle import TokenBucket

log = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 25
MAX_BATCH_BYTES = 16 * 1024 * 1024


def unprocessed_delay(rounds: int) -> float:
    """Backoff before resending ``UnprocessedItems``: exponential, capped at 20 s, half jittered."""
    return float(min(20.0, 0.05 * 2 ** min(rounds, 9)) * random.uniform(0.5, 1.0))


def batch_consumed(response: dict[str, Any]) -> float:
    """Write units a BatchWriteItem consumed (summed over its tables)."""
    return sum(float(c.get("CapacityUnits", 0)) for c in response.get("ConsumedCapacity") or [])


class LoadError(BackupError):
    """An item could not be written; the message names where it came from."""


@dataclass
class LoadStats:
    items: int = 0
    batches: int = 0
    consumed_write_units: float = 0.0
    unprocessed_retries: int = 0


@dataclass
class BatchWriter:
    """Writes items to one table in batches, paced by ``bucket``.

    ``put(item, origin)`` takes a client-form item; ``origin`` says where it came
    from, for error messages. Call ``flush()`` at the end.
    """

    client: Any
    table: str
    key_names: Sequence[str]
    bucket: TokenBucket
    max_unprocessed_rounds: int = 50
    sleep: Callable[[float], None] = time.sleep
    stats: LoadStats = field(default_factory=LoadStats)
    _pending: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    _pending_keys: set[tuple[str, ...]] = field(default_factory=set)
    _pending_bytes: int = 0

    def put(self, item: dict[str, Any], origin: str) -> None:
        missing = [k for k in self.key_names if k not in item]
        if missing:
            raise LoadError(f"{origin}: item has no key attribute {missing[0]!r}")
        key = key_of(item, self.key_names)
        size = item_size(item)
        # A batch may not name one key twice; a later copy overwrites, as plain puts do.
        if key in self._pending_keys or len(self._pending) == MAX_BATCH_ITEMS or (
            self._pending_bytes + size > MAX_BATCH_BYTES
        ):
            self.flush()
        self._pending.append((item, origin))
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
        requests = [{"PutRequest": {"Item": item}} for item, _ in batch]
        origin_by_key = {key_of(item, self.key_names): origin for item, origin in batch}
        rounds = 0
        while requests:
            self.bucket.wait()
            try:
                response = call_with_retries(
                    partial(self.client.batch_write_item, RequestItems={self.table: requests},
                            ReturnConsumedCapacity="TOTAL")
                )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "ValidationException":
                    raise
                self._put_one_by_one(batch)
                return
            consumed = batch_consumed(response)
            self.bucket.charge(consumed)
            self.stats.consumed_write_units += consumed
            self.stats.batches += 1
            unprocessed = (response.get("UnprocessedItems") or {}).get(self.table, [])
            self.stats.items += len(requests) - len(unprocessed)
            if not unprocessed:
                return
            rounds += 1
            self.stats.unprocessed_retries += 1
            if rounds > self.max_unprocessed_rounds:
                first = key_of(unprocessed[0]["PutRequest"]["Item"], self.key_names)
                where = origin_by_key.get(first, f"item with key {first}")
                raise LoadError(
                    f"{where}: DynamoDB left {len(unprocessed)} items unprocessed after {rounds} rounds"
                )
            requests = unprocessed
            delay = unprocessed_delay(rounds)
            log.info("%d items unprocessed; retrying in %.2f s (round %d)", len(unprocessed), delay, rounds)
            self.sleep(delay)

    def _put_one_by_one(self, batch: list[tuple[dict[str, Any], str]]) -> None:
        """DynamoDB refused the batch; put its items one by one to name the one it refuses."""
        for item, origin in batch:
            try:
                self.bucket.wait()
                response = call_with_retries(
                    partial(self.client.put_item, TableName=self.table, Item=item, ReturnConsumedCapacity="TOTAL")
                )
            except ClientError as item_exc:
                reason = item_exc.response.get("Error", {}).get("Message", str(item_exc))
                raise LoadError(f"{origin}: DynamoDB refused the item: {reason}") from None
            consumed = float((response.get("ConsumedCapacity") or {}).get("CapacityUnits", 0))
            self.bucket.charge(consumed)
            self.stats.consumed_write_units += consumed
            self.stats.items += 1
