"""Data Pipeline lines in DynamoDB's wire form, for requests built without botocore's serializer.

A backup line already holds the item in almost the wire form DynamoDB wants: binary is base64
text and numbers are strings; only the type keys differ (``sS`` -> ``SS``). Nothing is validated
here: DynamoDB rejects what it must, and the restore then decodes the line the validating way
(``datapipeline.decode_line``), so the error still names the file and line.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import orjson

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec.datapipeline import decode_line

# Data Pipeline type key (any casing, lower-cased) -> DynamoDB wire type.
_WIRE_TYPES = {"s": "S", "n": "N", "b": "B", "ss": "SS", "ns": "NS", "bs": "BS",
               "m": "M", "l": "L", "bool": "BOOL", "null": "NULL"}
# The scalar and set types as Data Pipeline spells them: converted without recursion.
_SCALARS = {"s": "S", "n": "N", "b": "B", "sS": "SS", "nS": "NS", "bS": "BS", "bOOL": "BOOL", "nULL": "NULL"}
# Every spelling Data Pipeline writes, looked up first (no lower() on the hot path).
_EXACT = {**_SCALARS, "m": "M", "l": "L"}


def _wire_value(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict) or len(v) != 1:
        raise CodecError(f"typed value must be an object with exactly one type key, got {type(v).__name__}")
    ((k, x),) = v.items()
    t = _EXACT.get(k) or _WIRE_TYPES.get(k.lower())
    if t is None:
        raise CodecError(f"unknown type key {k!r}")
    if t == "M":
        return {"M": _wire_map(x)}
    if t == "L":
        return {"L": _wire_list(x)}
    return {t: x}


def _wire_map(x: Any) -> dict[str, Any]:
    # The hot path of a restore (about a third of its client CPU): each typed value is unpacked
    # once and looked up once; only unusual spellings and errors take _wire_value.
    if type(x) is not dict:
        raise CodecError("M must be an object")
    scalars, out = _SCALARS, {}
    for name, v in x.items():
        if type(v) is dict and len(v) == 1:
            for k, y in v.items():
                t = scalars.get(k)
                if t is not None:
                    out[name] = {t: y}
                elif k == "m":
                    out[name] = {"M": _wire_map(y)}
                elif k == "l":
                    out[name] = {"L": _wire_list(y)}
                else:
                    out[name] = _wire_value(v)
        else:
            out[name] = _wire_value(v)
    return out


def _wire_list(x: Any) -> list[Any]:
    if type(x) is not list:
        raise CodecError("L must be an array")
    scalars, out = _SCALARS, []
    for v in x:
        if type(v) is dict and len(v) == 1:
            for k, y in v.items():
                t = scalars.get(k)
                if t is not None:
                    out.append({t: y})
                elif k == "m":
                    out.append({"M": _wire_map(y)})
                elif k == "l":
                    out.append({"L": _wire_list(y)})
                else:
                    out.append(_wire_value(v))
        else:
            out.append(_wire_value(v))
    return out


def wire_item_from_json(obj: dict[str, Any]) -> dict[str, Any]:
    """A parsed Data Pipeline line -> DynamoDB wire form (binary stays base64 text)."""
    return _wire_map(obj)


def _base64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def _client_to_wire(v: dict[str, Any]) -> dict[str, Any]:
    ((t, x),) = v.items()
    if t == "B":
        return {"B": _base64(bytes(x))}
    if t == "BS":
        return {"BS": [_base64(bytes(b)) for b in x]}
    if t == "M":
        return {"M": {k: _client_to_wire(y) for k, y in x.items()}}
    if t == "L":
        return {"L": [_client_to_wire(y) for y in x]}
    if t in ("SS", "NS"):
        return {t: list(x)}
    return {t: x}


def wire_item_from_client(item: dict[str, Any]) -> dict[str, Any]:
    """A client-form item (binary as bytes) -> wire form (binary as base64 text)."""
    return {k: _client_to_wire(v) for k, v in item.items()}


# A typed value's opening as Data Pipeline writes it, compact, and as DynamoDB's wire form spells it.
_OPENING_PAIRS = [(f'{{"{k}":'.encode(), f'{{"{t}":'.encode()) for k, t in {**_SCALARS, "m": "M", "l": "L"}.items()]
#: Those openings in Data Pipeline's spelling, found in one pass.
OPENING = re.compile(rb'\{"(?:' + b"|".join(re.escape(dp[2:-2]) for dp, _ in _OPENING_PAIRS) + rb')":')
#: Attribute names that would read like a type key in a compact line (``{"s":...`` opening a map).
TYPE_SPELLINGS = frozenset(_EXACT)


def wire_bytes_of_compact_line(line: bytes) -> bytes:
    """A compact Data Pipeline line's item in wire form, renamed byte for byte (no parsing).

    Exact only for a line that ``linecheck.check_line`` found byte-wise convertible: written
    compactly in Data Pipeline's spellings, with no attribute or map key named like a type key.
    Then every ``{"s":`` in it opens a typed value (a JSON string cannot hold an unescaped quote,
    so the sequence never occurs inside one), and renaming them all is the conversion.
    """
    for dp, wire in _OPENING_PAIRS:
        line = line.replace(dp, wire)  # one search each; a line without the opening is returned as it is
    return line


def wire_item_from_line(line: bytes | str) -> dict[str, Any]:
    """One backup line -> wire form, without validation (DynamoDB validates).

    Hive-era lines (``name^Cvalue^B...``) take the plain decoder. Raises
    :class:`CodecError` on a line that is not a JSON object of typed values.
    """
    data = line.encode("utf-8") if isinstance(line, str) else line
    if b"\x03" in data:
        return wire_item_from_client(decode_line(data))
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise CodecError(f"invalid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise CodecError("line is not a JSON object")
    return wire_item_from_json(obj)
