"""Item codecs: Data Pipeline lines, native export lines, validation and digests.

Items are in boto3 low-level "client form" (``{"B": b"..."}``) unless a function
says "wire" (the raw HTTP JSON, binary as base64 text). Numbers are always strings.
"""

from dynamodb_backup.formats.codec.canonical import (
    TableDigest,
    canonical_bytes,
    item_digest,
    key_of,
)
from dynamodb_backup.formats.codec.datapipeline import (
    decode_line,
    encode_item,
    encode_wire_item,
    encode_wire_items,
    is_blank,
)
from dynamodb_backup.formats.codec.decimals import normalize_number, validate_number
from dynamodb_backup.formats.codec.native import (
    decode_native_line,
    decode_native_record,
    encode_native_item,
    encode_native_wire_item,
)
from dynamodb_backup.formats.codec.validate import (
    MAX_ITEM_BYTES,
    AttributeValue,
    Item,
    ItemLike,
    item_size,
    validate_item,
    validate_value,
)

__all__ = [
    "MAX_ITEM_BYTES",
    "AttributeValue",
    "Item",
    "ItemLike",
    "TableDigest",
    "canonical_bytes",
    "decode_line",
    "decode_native_line",
    "decode_native_record",
    "encode_item",
    "encode_native_item",
    "encode_native_wire_item",
    "encode_wire_item",
    "encode_wire_items",
    "is_blank",
    "item_digest",
    "item_size",
    "key_of",
    "normalize_number",
    "validate_item",
    "validate_number",
    "validate_value",
]
