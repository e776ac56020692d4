"""Cheap checks that a restored table holds the benchmark items."""

from __future__ import annotations

import random
from typing import Any

from dynamodb_backup.formats.codec import canonical_bytes

from .items import HASH_KEY, key_of, make_item


def sample_indexes(count: int, size: int = 100, seed: int = 11) -> list[int]:
    """``size`` distinct item numbers below ``count``, always including the first and last."""
    if count <= 0:
        return []
    rng = random.Random(seed)
    picks = {0, count - 1} | {rng.randrange(count) for _ in range(size)}
    return sorted(picks)[:size]


def sample_matches(ddb: Any, table: str, count: int, size: int = 100) -> str:
    """GetItem a sample of items and compare them (canonically) with what was seeded: "k/n"."""
    indexes = sample_indexes(count, size)
    good = 0
    for lo in range(0, len(indexes), 100):
        chunk = indexes[lo:lo + 100]
        keys = [{HASH_KEY: {"S": key_of(i)}} for i in chunk]
        got: dict[str, Any] = {}
        request: dict[str, Any] = {table: {"Keys": keys}}
        while request:
            response = ddb.batch_get_item(RequestItems=request)
            for item in response["Responses"].get(table, []):
                got[item[HASH_KEY]["S"]] = item
            request = response.get("UnprocessedKeys") or {}
        for i in chunk:
            item = got.get(key_of(i))
            if item is not None and canonical_bytes(item) == canonical_bytes(make_item(i)):
                good += 1
    return f"{good}/{len(indexes)}"
