"""Order-independent digests of items and tables, for verifying a backup or restore.

Why: a scan of the source table, the backup files and a scan of the restored
table list the same items in different orders, with attributes, set members and
map keys in different orders, and numbers possibly spelled differently
("1.50" vs "1.5"). Canonical bytes make items that DynamoDB considers equal
byte-equal, and summing 128-bit digests makes the table digest order-free.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from dynamodb_backup.errors import CodecError, show
from dynamodb_backup.formats.codec.decimals import is_normal_number, normalize_number
from dynamodb_backup.formats.codec.validate import AttributeValue, ItemLike

_MOD = 1 << 128


def _b64(x: object) -> str:
    """Base64 of binary; also accepts wire-form base64 text (re-encoded canonically)."""
    if isinstance(x, str):
        try:  # strict a2b_base64 accepts a subset of what b64decode(validate=True) does, in C
            x = binascii.a2b_base64(x, strict_mode=True)
        except ValueError:
            try:
                x = base64.b64decode(x, validate=True)
            except (binascii.Error, ValueError):
                raise CodecError(f"invalid base64 {show(x)}") from None
    if not isinstance(x, (bytes, bytearray)):
        raise CodecError(f"binary must be bytes, got {type(x).__name__}")
    return base64.b64encode(x).decode("ascii")


def _canon(v: AttributeValue) -> Any:
    ((t, x),) = v.items()
    if t == "S":
        return ["S", x]
    if t == "N":
        return ["N", normalize_number(x)]
    if t == "M":
        return ["M", _canon_map(x)]
    if t == "L":
        return ["L", [_canon(y) for y in x]]
    if t == "B":
        return ["B", _b64(x)]
    if t == "SS":
        return ["SS", sorted(x)]
    if t == "NS":
        return ["NS", sorted(normalize_number(n) for n in x)]
    if t == "BS":
        return ["BS", sorted(_b64(b) for b in x)]
    if t == "BOOL":
        return ["BOOL", bool(x)]
    if t == "NULL":
        return ["NULL", True]
    raise CodecError(f"unknown type key {show(t)}")


def _canon_map(x: ItemLike) -> dict[str, Any]:
    # The verify scan's hot path: strings and numbers, most attributes, without a call each.
    out: dict[str, Any] = {}
    for k, v in x.items():
        ((t, y),) = v.items()
        if t == "S":
            out[k] = ["S", y]
        elif t == "N":
            out[k] = ["N", y if is_normal_number(y) else normalize_number(y)]
        else:
            out[k] = _canon(v)
    return out


def canonical_bytes(item: ItemLike) -> bytes:
    """Canonical JSON of an item: names and map keys sorted, set members sorted,
    numbers normalised (``"001.500"`` == ``"1.5"``), binary as base64.

    Accepts client form, and wire form (base64 text for B/BS) with the same result.
    """
    try:
        return orjson.dumps(_canon_map(item), option=orjson.OPT_SORT_KEYS)
    except (ValueError, AttributeError, TypeError) as e:
        raise CodecError(f"cannot canonicalise item: {type(e).__name__}: {e}") from None


def item_digest(item: ItemLike) -> int:
    """128-bit BLAKE2b digest of :func:`canonical_bytes`, as an int."""
    return bytes_digest(canonical_bytes(item))


def bytes_digest(canonical: bytes) -> int:
    """The digest of an item's canonical bytes."""
    return int.from_bytes(hashlib.blake2b(canonical, digest_size=16).digest(), "big")


def canonical_digest(canonical: Mapping[str, Any]) -> int:
    """:func:`item_digest` of an item already in canonical form (``linecheck.check_line``'s)."""
    return bytes_digest(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS))


def canonical_key(canonical: Mapping[str, Any], key_names: Sequence[str]) -> tuple[str, ...]:
    """:func:`key_of` of an item already in canonical form (the values are already canonical)."""
    out: list[str] = []
    for name in key_names:
        value = canonical.get(name)
        if value is None:
            raise CodecError(f"item lacks key attribute {name!r}")
        if value[0] not in ("S", "N", "B"):
            raise CodecError(f"key attribute {name!r} has type {value[0]}, keys must be S, N or B")
        out.append(value[1])
    return tuple(out)


def key_of(item: ItemLike, key_names: Sequence[str]) -> tuple[str, ...]:
    """Hashable canonical key values (numbers normalised, binary as base64), for reports."""
    out: list[str] = []
    for name in key_names:
        v = item.get(name)
        if v is None:
            raise CodecError(f"item lacks key attribute {name!r}")
        ((t, x),) = v.items()
        if t == "S":
            out.append(x)
        elif t == "N":
            out.append(normalize_number(x))
        elif t == "B":
            out.append(_b64(x))
        else:
            raise CodecError(f"key attribute {name!r} has type {t}, keys must be S, N or B")
    return tuple(out)


class TableDigest:
    """Count and sum (mod 2**128) of item digests: equal tables give equal digests
    whatever the order; partial digests from parallel segments :meth:`merge`."""

    __slots__ = ("count", "value")

    def __init__(self, count: int = 0, value: int = 0) -> None:
        self.count = count
        self.value = value % _MOD

    def add(self, item: ItemLike) -> int:
        """Add one item; return its digest."""
        d = item_digest(item)
        self.add_digest(d)
        return d

    def add_digest(self, digest: int) -> None:
        self.count += 1
        self.value = (self.value + digest) % _MOD

    def merge(self, other: TableDigest) -> None:
        self.count += other.count
        self.value = (self.value + other.value) % _MOD

    def hexdigest(self) -> str:
        return f"{self.value:032x}"

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "digest": self.hexdigest()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TableDigest:
        count, digest = data.get("count"), data.get("digest")
        if (not isinstance(count, int) or isinstance(count, bool) or count < 0
                or not isinstance(digest, str) or len(digest) != 32):
            raise CodecError(f"not a table digest: {show(dict(data))}")
        try:
            return cls(count, int(digest, 16))
        except ValueError:
            raise CodecError(f"not a table digest: {show(dict(data))}") from None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, TableDigest):
            return NotImplemented
        return (self.count, self.value) == (other.count, other.value)

    def __hash__(self) -> int:
        return hash((self.count, self.value))

    def __repr__(self) -> str:
        return f"TableDigest(count={self.count}, digest={self.hexdigest()})"
