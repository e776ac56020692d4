"""DynamoDB's structural rules for items, checked locally.

Why: a restore should fail on the line that is wrong, with a message naming it,
not thousands of items later inside a BatchWriteItem ValidationException.
Everything here works on the boto3 low-level "client form" (B/BS as bytes) and
never turns a number into a float.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dynamodb_backup.errors import CodecError, show
from dynamodb_backup.formats.codec.decimals import number_size, parse_number

AttributeValue = dict[str, Any]
"""One typed value in client form, e.g. ``{"N": "12.5"}`` or ``{"B": b"\\x00"}``."""
Item = dict[str, AttributeValue]
"""An item in client form: attribute name to typed value."""
ItemLike = Mapping[str, Any]
"""What functions accept: any mapping (keeps literal test items and wire items easy to type)."""

MAX_ITEM_BYTES = 400 * 1024
MAX_NESTING_LEVEL = 32
"""A top-level attribute's value is level 1; each M or L adds one level for its
elements. Real DynamoDB accepts a value at level 32 and rejects one at level 33
(i.e. at most 31 containers around a scalar)."""

TYPE_KEYS = frozenset({"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"})



class InvalidValue(Exception):
    """Internal: a bad value somewhere inside an item; ``path`` is filled on the way out.

    Raised deep inside recursion and turned into one :class:`CodecError` naming the
    document path (``profile.langs[2]``) by :func:`located`.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []  # innermost first

    def located(self) -> CodecError:
        parts = list(reversed(self.path))
        text = ""
        for p in parts:
            if isinstance(p, int):
                text += f"[{p}]"
            else:
                text += ("." if text else "") + p
        return CodecError(f"attribute {text!r}: {self.reason}" if text else self.reason)


def _number(x: object) -> str:
    if isinstance(x, str):
        return x
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        raise InvalidValue(f"number must be given as a string, not as the number {show(x)}")
    raise InvalidValue(f"number must be a string, got {type(x).__name__}")


def _members(x: object, t: str) -> list[Any]:
    if not isinstance(x, (list, tuple)):
        raise InvalidValue(f"{t} must be a list, got {type(x).__name__}")
    if not x:
        raise InvalidValue(f"{t} must not be empty")
    return list(x)


def _check(v: object, level: int) -> int:
    """Validate one typed value at ``level``; return its size in bytes."""
    if not isinstance(v, dict) or len(v) != 1:
        raise InvalidValue(f"typed value must be a dict with exactly one type key, got {show(v)}")
    ((t, x),) = v.items()
    try:
        if t == "S":
            if not isinstance(x, str):
                raise InvalidValue(f"S must be a string, got {type(x).__name__}")
            return len(x.encode("utf-8"))
        if t == "N":
            return number_size(_number(x))
        if t == "B":
            if not isinstance(x, (bytes, bytearray)):
                raise InvalidValue(f"B must be bytes, got {type(x).__name__}")
            return len(x)
        if t == "BOOL":
            if not isinstance(x, bool):
                raise InvalidValue(f"BOOL must be true or false, got {show(x)}")
            return 1
        if t == "NULL":
            if x is not True:
                raise InvalidValue(f"NULL must be true, got {show(x)}")
            return 1
        if t == "SS":
            members = _members(x, t)
            size = 0
            for s in members:
                if not isinstance(s, str):
                    raise InvalidValue(f"SS members must be strings, got {type(s).__name__}")
                size += len(s.encode("utf-8"))
            if len(set(members)) != len(members):
                raise InvalidValue(f"SS has duplicate members: {show(members)}")
            return size
        if t == "NS":
            members = _members(x, t)
            parsed = [parse_number(_number(n)) for n in members]
            if len(set(parsed)) != len(parsed):
                raise InvalidValue(f"NS has numerically equal members: {show(members)}")
            return sum((len(p[1]) + 1) // 2 + 1 for p in parsed)
        if t == "BS":
            members = _members(x, t)
            for b in members:
                if not isinstance(b, (bytes, bytearray)):
                    raise InvalidValue(f"BS members must be bytes, got {type(b).__name__}")
            if len({bytes(b) for b in members}) != len(members):
                raise InvalidValue(f"BS has duplicate members: {show(members)}")
            return sum(len(b) for b in members)
        if t == "M" or t == "L":
            return _check_container(t, x, level)
    except CodecError as e:  # from parse_number
        raise InvalidValue(e.reason) from None
    raise InvalidValue(f"unknown type key {show(t)}")


def _check_container(t: str, x: object, level: int) -> int:
    """M and L: 3 bytes overhead plus 1 byte per element (plus key names for M)."""
    if level >= MAX_NESTING_LEVEL and x:
        raise InvalidValue(f"nested deeper than {MAX_NESTING_LEVEL} levels")
    size = 3
    if t == "M":
        if not isinstance(x, dict):
            raise InvalidValue(f"M must be a dict, got {type(x).__name__}")
        for name, y in x.items():
            if not isinstance(name, str):
                raise InvalidValue(f"map key must be a string, got {show(name)}")
            try:
                size += 1 + len(name.encode("utf-8")) + _check(y, level + 1)
            except InvalidValue as e:
                e.path.append(name)
                raise
        return size
    if not isinstance(x, list):
        raise InvalidValue(f"L must be a list, got {type(x).__name__}")
    for i, y in enumerate(x):
        try:
            size += 1 + _check(y, level + 1)
        except InvalidValue as e:
            e.path.append(i)
            raise
    return size


def validate_value(value: AttributeValue) -> int:
    """Check one top-level attribute value; return its size. Raises :class:`CodecError`."""
    try:
        return _check(value, 1)
    except InvalidValue as e:
        raise e.located() from None


def validate_item(item: ItemLike) -> int:
    """Check a whole item, including the 400 KB limit; return its size in bytes.

    Raises :class:`CodecError` with the document path of the first bad value.
    """
    if not isinstance(item, Mapping):
        raise CodecError(f"item must be a mapping, got {type(item).__name__}")
    size = 0
    for name, value in item.items():
        if not isinstance(name, str) or not name:
            raise CodecError(f"attribute name must be a non-empty string, got {show(name)}")
        try:
            size += len(name.encode("utf-8")) + _check(value, 1)
        except InvalidValue as e:
            e.path.append(name)
            raise e.located() from None
    if size > MAX_ITEM_BYTES:
        raise CodecError(f"item is {size} bytes, more than DynamoDB's limit of "
                         f"{MAX_ITEM_BYTES} bytes (400 KB)")
    return size


def _size(v: AttributeValue) -> int:
    ((t, x),) = v.items()
    if t == "S":
        return len(x.encode("utf-8"))
    if t == "N":
        return number_size(x)
    if t == "B":
        return len(x)
    if t == "SS":
        return sum(len(s.encode("utf-8")) for s in x)
    if t == "NS":
        return sum(number_size(n) for n in x)
    if t == "BS":
        return sum(len(b) for b in x)
    if t == "M":
        return 3 + sum(1 + len(k.encode("utf-8")) + _size(y) for k, y in x.items())
    if t == "L":
        return 3 + sum(1 + _size(y) for y in x)
    return 1  # BOOL, NULL


def item_size(item: ItemLike) -> int:
    """Approximate DynamoDB item size, per the Developer Guide's published rules.

    Sum over attributes of UTF-8 name length plus value size: S = UTF-8 length;
    N = ceil(significant digits / 2) + 1 (DynamoDB's exact internal encoding may
    differ by a byte); B = raw length; sets = sum of members; M/L = 3 + 1 per
    element + contents (map key names included); BOOL/NULL = 1. Does not validate.
    """
    return sum(len(k.encode("utf-8")) + _size(v) for k, v in item.items())
