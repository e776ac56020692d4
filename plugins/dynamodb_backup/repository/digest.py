"""Digesting a backup's items: an order-independent digest per key-hash bucket.

Restore and copy verification compare a table with a backup through these
digests; incremental and stream chains digest the state they compute. Equal
data gives equal buckets in any order, so when digests differ only the
mismatched buckets need re-reading.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import orjson

from dynamodb_backup.formats.codec import ItemLike, TableDigest, canonical_bytes, key_of
from dynamodb_backup.formats.codec.canonical import bytes_digest, canonical_digest, canonical_key
from dynamodb_backup.repository.inspection import BackupSource
from dynamodb_backup.repository.reader import FileItems

BUCKETS = 256


def key_hash(key: tuple[str, ...]) -> int:
    """A stable 16-bit hash of a canonical key; the high byte picks the bucket."""
    return int.from_bytes(hashlib.blake2b(orjson.dumps(key), digest_size=2).digest(), "big")


class BucketedDigest:
    """A :class:`TableDigest` per key-hash bucket: equal data gives equal buckets, in any order."""

    def __init__(self, buckets: list[TableDigest] | None = None) -> None:
        self.buckets = buckets or [TableDigest() for _ in range(BUCKETS)]

    def add(self, item: ItemLike, key_names: Sequence[str]) -> int:
        """Add one item; return the length of its canonical bytes (a measure of what was read)."""
        data = canonical_bytes(item)
        self.buckets[key_hash(key_of(item, key_names)) >> 8].add_digest(bytes_digest(data))
        return len(data)

    def add_canonical(self, canonical: dict[str, Any], key_names: Sequence[str]) -> None:
        """:meth:`add` of an item already in canonical form (``linecheck.check_line``'s): the same buckets."""
        self.buckets[key_hash(canonical_key(canonical, key_names)) >> 8].add_digest(canonical_digest(canonical))

    def merge(self, other: BucketedDigest) -> None:
        for mine, theirs in zip(self.buckets, other.buckets, strict=True):
            mine.merge(theirs)

    def total(self) -> TableDigest:
        total = TableDigest()
        for bucket in self.buckets:
            total.merge(bucket)
        return total

    @property
    def count(self) -> int:
        return sum(b.count for b in self.buckets)

    def hexdigest(self) -> str:
        return self.total().hexdigest()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BucketedDigest):
            return NotImplemented
        return self.buckets == other.buckets

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"BucketedDigest(count={self.count}, digest={self.hexdigest()})"

    def differing(self, other: BucketedDigest) -> list[int]:
        return [i for i, (a, b) in enumerate(zip(self.buckets, other.buckets, strict=True)) if a != b]

    def to_dict(self) -> dict[str, Any]:
        return {"buckets": [[b.count, b.hexdigest()] for b in self.buckets]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BucketedDigest:
        return cls([TableDigest.from_dict({"count": c, "digest": d}) for c, d in data["buckets"]])


def backup_items(s3: Any, source: BackupSource) -> Iterator[tuple[str, dict[str, Any]]]:
    for file in source.files:
        yield from FileItems(s3, source.folder.bucket, file)


def backup_digest(s3: Any, source: BackupSource, key_names: Sequence[str]) -> BucketedDigest:
    """Digest every item of the backup (one streaming pass over its files)."""
    result = BucketedDigest()
    for _, item in backup_items(s3, source):
        result.add(item, key_names)
    return result
