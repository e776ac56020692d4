"""Key schemas for a restore: parsed from a parameter, and checked against every item.

Why: a backup without a sidecar does not say which attributes are the keys, and
an item whose key is missing, mistyped or empty would only fail deep inside a
load. Checking each item against the target's keys (and its index keys) in the
validation pass fails before any write, naming the file and line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dynamodb_backup.errors import CodecError, ParameterError
from dynamodb_backup.formats.codec.canonical import key_of
from dynamodb_backup.formats.codec.validate import ItemLike

KEY_TYPES = ("S", "N", "B")
#: DynamoDB's limits on key values, in bytes.
MAX_HASH_KEY_BYTES, MAX_RANGE_KEY_BYTES = 2048, 1024


def parse_key_schema(text: str, param: str = "key_schema") -> dict[str, Any]:
    """``"pk:S"`` or ``"pk:S,sk:N"`` -> ``{"KeySchema": [...], "AttributeDefinitions": [...]}``."""
    parts = [p.strip() for p in text.split(",")] if text and text.strip() else []
    if not 1 <= len(parts) <= 2:
        raise ParameterError(f"{param}: expected 'partition:TYPE' or 'partition:TYPE,sort:TYPE', got {text!r}")
    schema, definitions = [], []
    for part, key_type in zip(parts, ("HASH", "RANGE"), strict=False):
        name, sep, attr_type = part.rpartition(":")
        attr_type = attr_type.strip().upper()
        if not sep or not name.strip() or attr_type not in KEY_TYPES:
            raise ParameterError(f"{param}: {part!r} is not 'name:TYPE' with TYPE one of S, N, B")
        schema.append({"AttributeName": name.strip(), "KeyType": key_type})
        definitions.append({"AttributeName": name.strip(), "AttributeType": attr_type})
    if len(parts) == 2 and schema[0]["AttributeName"] == schema[1]["AttributeName"]:
        raise ParameterError(f"{param}: the partition and sort keys must differ, got {text!r}")
    return {"KeySchema": schema, "AttributeDefinitions": definitions}


def show_key_schema(description: dict[str, Any]) -> str:
    """The reverse of :func:`parse_key_schema`: ``"pk:S,sk:N"``."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    schema = sorted(description["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    return ",".join(f"{k['AttributeName']}:{types.get(k['AttributeName'], '?')}" for k in schema)


def key_description(description: dict[str, Any]) -> dict[str, Any]:
    """Only what KeyRules needs from a table description (small enough for XCom)."""
    indexes = [
        {"IndexName": i.get("IndexName", ""), "KeySchema": i["KeySchema"]}
        for group in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
        for i in description.get(group) or []
    ]
    return {"KeySchema": description["KeySchema"], "AttributeDefinitions": description["AttributeDefinitions"],
            "GlobalSecondaryIndexes": indexes}


@dataclass(frozen=True)
class KeyRules:
    """The table's key attributes (required) and index key attributes (optional, typed)."""

    keys: tuple[tuple[str, str], ...]
    index_keys: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> KeyRules:
        types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
        schema = sorted(description["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
        keys = tuple((k["AttributeName"], types.get(k["AttributeName"], "S")) for k in schema)
        names = {n for n, _ in keys}
        index_keys = sorted({
            (k["AttributeName"], types[k["AttributeName"]])
            for group in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes")
            for index in description.get(group) or []
            for k in index["KeySchema"]
            if k["AttributeName"] not in names and k["AttributeName"] in types
        })
        return cls(keys, tuple(index_keys))

    @property
    def key_names(self) -> list[str]:
        return [n for n, _ in self.keys]

    def key_of(self, item: ItemLike) -> tuple[str, ...]:
        return key_of(item, self.key_names)

    def check(self, item: ItemLike) -> None:
        """Raise :class:`CodecError` if DynamoDB would refuse ``item``'s keys in this table."""
        self._check(item.get, base64=False)

    def check_canonical(self, canonical: dict[str, list[Any]]) -> None:
        """:meth:`check` of an item in canonical form (``linecheck.check_line``'s: ``[TYPE, value]``, B as base64)."""

        def typed(name: str) -> dict[str, Any] | None:
            value = canonical.get(name)
            return None if value is None else {value[0]: value[1]}

        self._check(typed, base64=True)

    def _check(self, typed: Callable[[str], Any], base64: bool) -> None:
        """``typed(name)``: the attribute as ``{TYPE: value}``, or None when the item lacks it."""
        for position, (name, want) in enumerate(self.keys):
            value = typed(name)
            if value is None:
                raise CodecError(f"item has no key attribute {name!r}")
            limit = MAX_HASH_KEY_BYTES if position == 0 else MAX_RANGE_KEY_BYTES
            self._check_value(name, want, value, "key attribute", limit, base64)
        for name, want in self.index_keys:
            value = typed(name)
            if value is not None:
                self._check_value(name, want, value, "index key attribute", MAX_HASH_KEY_BYTES, base64)

    @staticmethod
    def _check_value(name: str, want: str, value: dict[str, Any], what: str, limit: int, base64: bool) -> None:
        ((have, x),) = value.items()
        if have != want:
            raise CodecError(f"{what} {name!r} is of type {have}, the table's is {want}")
        if have == "S":
            size = len(x.encode("utf-8"))
        elif have == "B":  # canonical base64 (padded): 3 bytes per 4 characters, less the padding
            size = len(x) // 4 * 3 - x.count("=", -2) if base64 else len(x)
        else:
            return
        if size == 0:
            raise CodecError(f"{what} {name!r} is empty; DynamoDB refuses empty key values")
        if size > limit:
            raise CodecError(f"{what} {name!r} is {size} bytes; DynamoDB allows at most {limit}")
