"""The change line: one write to one key, as incremental exports and stream segments store it.

``{"Metadata": {...}, "Keys": {...}, "NewImage": {...}, "OldImage": {...}}`` in DynamoDB JSON
(AWS's incremental export line). NewImage present means the key holds that item afterwards;
absent means the key was deleted. Both readers of change lines (incremental links and stream
segments) decode them here, so there is one codec for them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dynamodb_backup.errors import CodecError, show
from dynamodb_backup.formats.codec import Item
from dynamodb_backup.formats.codec.datapipeline import load_json_object
from dynamodb_backup.formats.codec.native import item_field
from dynamodb_backup.repository.keyschema import KeyRules


@dataclass(frozen=True)
class Change:
    """One change line: the key, the item after the change (None: deleted), and before it (if recorded)."""

    keys: Item
    new: Item | None
    old: Item | None


def decode_change_object(raw: dict[str, Any], rules: KeyRules) -> Change:
    """A parsed change line -> :class:`Change`, its key attributes checked against the table's."""
    fields = {k.lower(): k for k in raw}
    if "keys" not in fields:
        raise CodecError(f"not an incremental export line: no Keys (fields {show(sorted(raw))})")
    keys = item_field(raw, fields["keys"])
    rules.check(keys)
    new = item_field(raw, fields["newimage"]) if "newimage" in fields else None
    old = item_field(raw, fields["oldimage"]) if "oldimage" in fields else None
    for name, image in (("NewImage", new), ("OldImage", old)):
        if image is not None:
            rules.check(image)
            if rules.key_of(image) != rules.key_of(keys):
                raise CodecError(f"{name}'s key {show(rules.key_of(image))} differs from Keys "
                                 f"{show(rules.key_of(keys))}")
    return Change(keys, new, old)


def decode_change(line: bytes | str, rules: KeyRules) -> Change:
    """An incremental line -> :class:`Change`, its key attributes checked against the table's."""
    return decode_change_object(load_json_object(line), rules)
