"""Item images exactly as dynalite stores them, item keys, and DynamoDB item sizes.

dynalite rewrites every number it accepts (``N`` values and ``NS`` members, at any depth of
``M``/``L``) with big.js ``new Big(text).toFixed()`` (``validations/index.js`` ``checkNum``):
plain notation, no exponent, no leading or trailing zeros, ``-0`` becomes ``0``. Nothing else
in an item changes (binary must already be canonical base64, or dynalite refuses it). So the
image of a PutItem is the request's Item with its numbers rewritten the same way; the journal
never has to read a put back.
"""

from __future__ import annotations

import decimal
import hashlib
from typing import Any

import orjson

# Wide enough that no 38-digit DynamoDB number is ever rounded (the default context has 28).
_EXACT = decimal.Context(prec=200, Emax=999_999, Emin=-999_999)

AttributeValue = dict[str, Any]
Item = dict[str, AttributeValue]


def normalise_number(text: str) -> str:
    """``001.500`` -> ``1.5``, ``1E+2`` -> ``100``, ``-0.0`` -> ``0``: big.js ``toFixed()``."""
    value = decimal.Decimal(text).normalize(_EXACT)
    if value.is_zero():
        return "0"
    return format(value, "f")


def normalise_value(value: AttributeValue) -> AttributeValue:
    """A copy of one attribute value with its numbers written as dynalite stores them."""
    if "S" in value:  # the common case first: this runs for every attribute of every write
        return value
    if "N" in value:
        return {"N": normalise_number(value["N"])}
    if "NS" in value:
        return {"NS": [normalise_number(n) for n in value["NS"]]}
    if "M" in value:
        return {"M": {name: normalise_value(inner) for name, inner in value["M"].items()}}
    if "L" in value:
        return {"L": [normalise_value(inner) for inner in value["L"]]}
    return value


def normalise_item(item: Item) -> Item:
    return {name: normalise_value(value) for name, value in item.items()}


def encode_image(item: Item) -> bytes:
    """The compact JSON the journal keeps and the export writes inside ``{"Item":...}``."""
    return orjson.dumps(item)


class KeySchema:
    """The HASH (and RANGE) attribute names of a table, and item keys built from them."""

    def __init__(self, names: list[str]) -> None:
        self.names = names

    @classmethod
    def from_description(cls, key_schema: list[dict[str, str]]) -> KeySchema:
        hash_names = [k["AttributeName"] for k in key_schema if k["KeyType"] == "HASH"]
        range_names = [k["AttributeName"] for k in key_schema if k["KeyType"] == "RANGE"]
        return cls(hash_names + range_names)

    def key_of(self, item: Item) -> Item:
        """The key attributes of an item (or of a request's Key)."""
        return {name: item[name] for name in self.names}

    def key_bytes(self, item: Item, *, normalised: bool = False) -> bytes:
        """One byte string per primary key, equal for equal keys: the journal's index.

        ``normalised``: the item's numbers are already written as dynalite stores them.
        """
        if normalised:
            return orjson.dumps([item[name] for name in self.names])
        return orjson.dumps([normalise_value(item[name]) for name in self.names])

    def key_from_bytes(self, key: bytes) -> Item:
        return dict(zip(self.names, orjson.loads(key), strict=True))


def partition_of(key: bytes, partitions: int) -> int:
    """Which of ``partitions`` hashed key ranges a key falls in (stable across runs)."""
    return int.from_bytes(hashlib.md5(key).digest()[:4], "big") * partitions >> 32


# --------------------------------------------------------------------------- sizes

def _number_size(text: str) -> int:
    digits: tuple[int, ...] = decimal.Decimal(text).normalize(_EXACT).as_tuple().digits
    significant = len(digits) if any(digits) else 1
    return 1 + (significant + 1) // 2


def _binary_size(text: str) -> int:
    """Decoded length of canonical base64 (dynalite refuses any other)."""
    return len(text) * 3 // 4 - text.count("=")


def value_size(value: AttributeValue) -> int:
    """DynamoDB's documented size of one value: UTF-8 strings, raw binary, numbers ~1 byte per 2
    significant digits plus 1, booleans and nulls 1 byte, lists and maps 3 bytes plus 1 per element."""
    kind, inner = next(iter(value.items()))
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return _number_size(inner)
    if kind == "B":
        return _binary_size(inner)
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(_number_size(n) for n in inner)
    if kind == "BS":
        return sum(_binary_size(b) for b in inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + value_size(v) for v in inner)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(v) for name, v in inner.items())
    raise ValueError(f"unknown attribute type {kind!r}")


def item_size(item: Item) -> int:
    """Attribute names plus values: what the export bills (see the package docstring)."""
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())
