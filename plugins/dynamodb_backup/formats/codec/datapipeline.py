"""AWS Data Pipeline "DynamoDB-export" lines: one item per line, SDK-v1 type keys.

Why this exists: backups must be byte-compatible with what Data Pipeline wrote
(Gson, HTML escaping off), and restores must read Data Pipeline's, third-party
and Hive-era lines. Numbers stay strings all the way through.

Escaping: orjson already writes what Gson writes (``"`` and ``\\`` escaped,
``\\b \\t \\n \\f \\r`` short escapes, other control characters as lower-case
``\\u00xx``, everything else raw UTF-8) except U+2028/U+2029, which Gson escapes.
orjson only emits non-ASCII bytes inside strings, and UTF-8 is self-synchronising,
so replacing their UTF-8 bytes in the output is exact.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

import orjson

from dynamodb_backup.errors import CodecError, show
from dynamodb_backup.formats.codec.validate import (
    MAX_NESTING_LEVEL,
    AttributeValue,
    InvalidValue,
    Item,
    ItemLike,
    validate_item,
)

# DynamoDB type -> Data Pipeline key, for types whose value passes through unchanged
# in wire form (B/BS are already base64 there).
_WIRE_RENAME = {"S": "s", "N": "n", "B": "b", "SS": "sS", "NS": "nS", "BS": "bS",
                "BOOL": "bOOL", "NULL": "nULL"}
# Any casing of a type key (lower-cased) -> DynamoDB type.
_READ_KEYS = {"s": "S", "n": "N", "b": "B", "ss": "SS", "ns": "NS", "bs": "BS",
              "m": "M", "l": "L", "bool": "BOOL", "null": "NULL"}
_JSON_KINDS = {list: "array", str: "string", int: "number", float: "number",
               bool: "boolean", type(None): "null"}
_WHITESPACE = b" \t\r\n\f\v"
_U2028 = "\u2028".encode()
_U2029 = "\u2029".encode()


def _gson_fixup(out: bytes) -> bytes:
    # A one-byte search is memchr (about 10x faster than the two-byte one on 100 KB of text, where
    # it was most of the line encoding's time); most lines have no 0xE2 byte at all.
    if b"\xe2" in out and b"\xe2\x80" in out:
        out = out.replace(_U2028, b"\\u2028").replace(_U2029, b"\\u2029")
    return out


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _client_value(v: AttributeValue) -> dict[str, Any]:
    ((t, x),) = v.items()
    if t == "M":
        return {"m": {k: _client_value(y) for k, y in x.items()}}
    if t == "L":
        return {"l": [_client_value(y) for y in x]}
    if t == "B":
        return {"b": _b64(x)}
    if t == "BS":
        return {"bS": [_b64(b) for b in x]}
    return {_WIRE_RENAME[t]: x}


def encode_item(item: ItemLike) -> bytes:
    """One Data Pipeline line (no trailing newline) from a client-form item.

    The item is trusted to be DynamoDB output; call ``validate_item`` first if not.
    Attribute order is kept. Raises :class:`CodecError` on malformed structure.
    """
    try:
        out = orjson.dumps({k: _client_value(v) for k, v in item.items()})
    except (ValueError, KeyError, AttributeError, TypeError, binascii.Error) as e:
        raise CodecError(f"cannot encode item: {type(e).__name__}: {e}") from None
    return _gson_fixup(out)


def _wire_value(v: dict[str, Any]) -> dict[str, Any]:
    ((t, x),) = v.items()
    r = _WIRE_RENAME.get(t)
    if r is not None:
        return {r: x}
    if t == "M":
        return {"m": {k: _wire_value(y) for k, y in x.items()}}
    if t == "L":
        return {"l": [_wire_value(y) for y in x]}
    raise KeyError(t)


def encode_wire_item(item: ItemLike) -> bytes:
    """Same bytes as :func:`encode_item`, from wire form (B/BS already base64 text).

    Hot path of every export: one tight recursion, base64 passed through unchanged.
    """
    rename = _WIRE_RENAME
    out: dict[str, Any] = {}
    try:
        for k, v in item.items():  # scalars inline: most attributes are top-level scalars
            ((t, x),) = v.items()
            r = rename.get(t)
            out[k] = {r: x} if r is not None else _wire_value(v)
        line = orjson.dumps(out)
    except (ValueError, KeyError, AttributeError, TypeError) as e:
        raise CodecError(f"cannot encode item: {type(e).__name__}: {e}") from None
    return _gson_fixup(line)


def encode_wire_items(items: Sequence[ItemLike]) -> bytes:
    """Lines for ``items``, each ending in ``\\n``; ``b""`` for no items (never a blank line)."""
    if not items:
        return b""
    return b"\n".join([encode_wire_item(i) for i in items]) + b"\n"


def is_blank(line: bytes | str) -> bool:
    """True for an empty or whitespace-only line; callers skip these (connector issue #154)."""
    return not line.strip()


def _b64decode(x: object) -> bytes:
    if not isinstance(x, str):
        raise InvalidValue(f"binary must be a base64 string, got {show(x)}")
    try:
        return base64.b64decode(x, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidValue(f"invalid base64 {show(x)}") from None


def typed_from_json(v: object, level: int = 1) -> AttributeValue:
    """One typed JSON value (type key in any casing, base64 binary) -> client form.

    Only the structure needed to convert is checked here; :func:`validate_item`
    checks the rest. Raises :class:`InvalidValue`.
    """
    if not isinstance(v, dict) or len(v) != 1:
        raise InvalidValue(f"typed value must be an object with exactly one type key, got {show(v)}")
    ((k, x),) = v.items()
    t = _READ_KEYS.get(k.lower())
    if t is None:
        raise InvalidValue(f"unknown type key {show(k)}")
    if t == "B":
        return {"B": _b64decode(x)}
    if t == "BS":
        if not isinstance(x, list):
            raise InvalidValue(f"BS must be a list, got {show(x)}")
        return {"BS": [_b64decode(b) for b in x]}
    if t == "M" or t == "L":
        if level >= MAX_NESTING_LEVEL and x:
            raise InvalidValue(f"nested deeper than {MAX_NESTING_LEVEL} levels")
        if t == "M":
            if not isinstance(x, dict):
                raise InvalidValue(f"M must be an object, got {show(x)}")
            out: dict[str, AttributeValue] = {}
            for name, y in x.items():
                try:
                    out[name] = typed_from_json(y, level + 1)
                except InvalidValue as e:
                    e.path.append(name)
                    raise
            return {"M": out}
        if not isinstance(x, list):
            raise InvalidValue(f"L must be an array, got {show(x)}")
        items: list[AttributeValue] = []
        for i, y in enumerate(x):
            try:
                items.append(typed_from_json(y, level + 1))
            except InvalidValue as e:
                e.path.append(i)
                raise
        return {"L": items}
    return {t: x}


def item_from_json(obj: dict[str, Any]) -> Item:
    """A parsed JSON object of typed values -> validated client-form item."""
    item: Item = {}
    for name, v in obj.items():
        try:
            item[name] = typed_from_json(v)
        except InvalidValue as e:
            e.path.append(name)
            raise e.located() from None
    validate_item(item)
    return item


def _as_bytes(line: bytes | str) -> bytes:
    if isinstance(line, str):
        try:
            return line.encode("utf-8")
        except UnicodeEncodeError:
            raise CodecError("line contains unpaired surrogates, not valid text") from None
    return bytes(line)


def _loads(data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as u:
            raise CodecError(f"line is not valid UTF-8 (bad byte at offset {u.start})") from None
        raise CodecError(f"invalid JSON: {e}") from None


def load_json_object(line: bytes | str) -> dict[str, Any]:
    """Strip and parse a line that must be one JSON object."""
    data = _as_bytes(line).strip(_WHITESPACE)
    if not data:
        raise CodecError("blank line")
    obj = _loads(data)
    if not isinstance(obj, dict):
        kind = _JSON_KINDS.get(type(obj), type(obj).__name__)
        raise CodecError(f"line is not a JSON object but a JSON {kind}")
    return obj


def _decode_hive(data: bytes) -> Item:
    obj: dict[str, Any] = {}
    for part in data.strip(b"\r\n").split(b"\x02"):
        if not part:
            continue
        raw_name, sep, raw_value = part.partition(b"\x03")
        if not sep:
            raise CodecError(f"Hive-era attribute without 0x03 separator: {show(part)}")
        try:
            name = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            raise CodecError(f"Hive-era attribute name is not valid UTF-8: {show(raw_name)}") from None
        obj[name] = _loads(raw_value)
    return item_from_json(obj)


def decode_line(line: bytes | str) -> Item:
    """One Data Pipeline line (JSON or Hive-era ``name^Cvalue^B...``) -> client form.

    Type keys are matched case-insensitively; binary is decoded strictly; the
    result is validated (numbers, sets, nesting, 400 KB). A raw 0x03 byte can never
    occur in valid JSON, so its presence marks a Hive-era line. Raises
    :class:`CodecError` (``"blank line"`` for blank input; see :func:`is_blank`).
    """
    data = _as_bytes(line)
    if b"\x03" in data:
        return _decode_hive(data)
    return item_from_json(load_json_object(data))
