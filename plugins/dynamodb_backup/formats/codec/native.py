"""DynamoDB native export lines (ExportTableToPointInTime, DYNAMODB_JSON format).

Why: a native export is a cheaper source for a backup (no read capacity) and a
restore target format for ImportTable. Full exports write ``{"Item": {...}}``;
incremental exports write ``{"Metadata":..,"Keys":..,"NewImage":..,"OldImage":..}``.
Type keys are upper-case (any casing accepted on read), binary is base64.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import Any, Literal

import orjson

from dynamodb_backup.errors import CodecError, show
from dynamodb_backup.formats.codec.datapipeline import encode_wire_item, item_from_json, load_json_object
from dynamodb_backup.formats.codec.validate import AttributeValue, Item, ItemLike

RecordKind = Literal["put", "delete"]


def item_field(obj: dict[str, Any], field: str) -> Item:
    """``obj[field]`` as an item (a native export's Item, a change line's Keys/NewImage/OldImage)."""
    value = obj[field]
    if not isinstance(value, dict):
        raise CodecError(f"{field} must be a JSON object, got {show(value)}")
    try:
        return item_from_json(value)
    except CodecError as e:
        raise CodecError(f"{field}: {e.reason}") from None


def decode_native_record(
    line: bytes | str, key_names: Sequence[str] | None = None
) -> tuple[RecordKind, Item, Item | None]:
    """Decode a full or incremental export line -> ``(kind, keys, new_image)``.

    ``kind`` is ``"put"`` when there is an ``Item`` or ``NewImage`` (the image is
    returned) and ``"delete"`` when an incremental record has ``Keys`` but no
    ``NewImage`` (image ``None``). Full-export lines carry no keys: ``keys`` is
    taken from the item when ``key_names`` is given, else ``{}``.
    """
    raw = load_json_object(line)
    obj = {k.lower(): k for k in raw}
    if "item" in obj:
        item = item_field(raw, obj["item"])
        if not key_names:
            return ("put", {}, item)
        missing = [n for n in key_names if n not in item]
        if missing:
            raise CodecError(f"item lacks key attribute(s) {', '.join(map(repr, missing))}")
        return ("put", {n: item[n] for n in key_names}, item)
    keys = item_field(raw, obj["keys"]) if "keys" in obj else {}
    if "newimage" in obj:
        return ("put", keys, item_field(raw, obj["newimage"]))
    if keys:
        return ("delete", keys, None)
    raise CodecError("not a native export line: expected an Item, or Keys with an optional "
                     f"NewImage; got fields {show(sorted(raw))}")


def decode_native_line(line: bytes | str) -> Item:
    """The item of a full-export line, or the NewImage of an incremental one.

    Raises :class:`CodecError` for an incremental delete (use
    :func:`decode_native_record` to handle those).
    """
    _kind, keys, image = decode_native_record(line)
    if image is None:
        raise CodecError(f"incremental export delete record (no NewImage) for keys {show(keys)}")
    return image


def _native_value(v: AttributeValue) -> dict[str, Any]:
    ((t, x),) = v.items()
    if t == "M":
        return {"M": {k: _native_value(y) for k, y in x.items()}}
    if t == "L":
        return {"L": [_native_value(y) for y in x]}
    if t == "B":
        return {"B": base64.b64encode(x).decode("ascii")}
    if t == "BS":
        return {"BS": [base64.b64encode(b).decode("ascii") for b in x]}
    return {t: x}


def encode_native_item(item: ItemLike) -> bytes:
    """``{"Item":{...}}`` (no trailing newline) from a client-form item."""
    try:
        return orjson.dumps({"Item": {k: _native_value(v) for k, v in item.items()}})
    except (ValueError, AttributeError, TypeError) as e:
        raise CodecError(f"cannot encode item: {type(e).__name__}: {e}") from None


def encode_native_wire_item(item: ItemLike) -> bytes:
    """``{"Item":{...}}`` from a wire-form item: the wire form already is native JSON."""
    try:
        return orjson.dumps({"Item": item})
    except TypeError as e:
        raise CodecError(f"cannot encode item: {e}") from None


def full_export_line_to_datapipeline(line: bytes) -> bytes:
    """A full-export line ``{"Item":{...}}`` as a Data Pipeline line: wire values pass through unchanged."""
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        raise CodecError(f"not JSON ({exc})") from None
    item = record.get("Item") if isinstance(record, dict) else None
    if not isinstance(item, dict):
        fields = sorted(record) if isinstance(record, dict) else type(record).__name__
        raise CodecError(f"not a full export line: expected {{\"Item\": {{...}}}}, got {fields}")
    return encode_wire_item(item)
