"""Native export (DYNAMODB_JSON) lines: the real 2020 fixture, round trips, incremental records."""

from __future__ import annotations

import gzip
from pathlib import Path

import orjson
import pytest

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import (
    decode_line,
    decode_native_line,
    decode_native_record,
    encode_item,
    encode_native_item,
    encode_native_wire_item,
)

# The real 2020 export, copied into the repository byte for byte; missing means broken, not skipped.
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "native-export-2020"


def test_real_native_export_fixture_has_three_items() -> None:
    assert FIXTURE.is_dir(), f"the native export fixture is missing: {FIXTURE}"
    files = sorted(FIXTURE.glob("**/data/*.json.gz"))
    assert len(files) == 4
    items = []
    for f in files:
        with gzip.open(f, "rb") as fh:
            for line in fh:
                items.append(decode_native_line(line))
    assert len(items) == 3
    assert sorted(i["sk"]["S"] for i in items) == ["sk001", "sk002", "sk003"]
    assert {"pk": {"S": "pk001-1605121017583"}, "sk": {"S": "sk001"}} in items
    for item in items:  # orjson writes the same bytes AWS wrote for these plain items
        assert decode_native_line(encode_native_item(item)) == item
    for f in files:
        with gzip.open(f, "rb") as fh:
            for line in fh:
                assert encode_native_item(decode_native_line(line)) == line.rstrip(b"\n")


ITEM = {
    "pk": {"S": "user#43"}, "tags": {"SS": ["blue", "red"]}, "avatar": {"B": b"\x00\x01\x02\xff"},
    "n": {"N": "-1E-130"}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"\xff\xfe\x00"]},
    "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}, {"S": "\u2028한"}]}}},
}


def test_round_trip_and_format() -> None:
    line = encode_native_item(ITEM)
    assert line.startswith(b'{"Item":{"pk":{"S":"user#43"},"tags":{"SS":["blue","red"]},'
                           b'"avatar":{"B":"AAEC/w=="}')
    assert decode_native_line(line) == ITEM
    assert decode_native_line(line.decode() + "\n") == ITEM
    wire = orjson.loads(line)["Item"]
    assert encode_native_wire_item(wire) == line


def test_reference_example_line() -> None:
    line = b'{"Item":{"pk":{"S":"user#43"},"tags":{"SS":["blue","red"]},"avatar":{"B":"AAEC/w=="}}}'
    item = decode_native_line(line)
    assert item == {"pk": {"S": "user#43"}, "tags": {"SS": ["blue", "red"]},
                    "avatar": {"B": b"\x00\x01\x02\xff"}}
    assert encode_native_item(item) == line
    # converting to Data Pipeline is a rename of the type keys
    assert decode_line(encode_item(item)) == item


def test_any_casing_accepted() -> None:
    assert decode_native_line(b'{"item":{"a":{"s":"x"},"b":{"Bool":true}}}') == {
        "a": {"S": "x"}, "b": {"BOOL": True}}


def test_incremental_records() -> None:
    put = (b'{"Metadata":{"WriteTimestampMicros":{"N":"1700000000000000"}},'
           b'"Keys":{"pk":{"S":"a"}},"NewImage":{"pk":{"S":"a"},"v":{"N":"2"}},'
           b'"OldImage":{"pk":{"S":"a"},"v":{"N":"1"}}}')
    assert decode_native_record(put) == ("put", {"pk": {"S": "a"}}, {"pk": {"S": "a"}, "v": {"N": "2"}})
    assert decode_native_line(put) == {"pk": {"S": "a"}, "v": {"N": "2"}}
    delete = (b'{"Metadata":{"WriteTimestampMicros":{"N":"1"}},"Keys":{"pk":{"S":"a"}},'
              b'"OldImage":{"pk":{"S":"a"}}}')
    assert decode_native_record(delete) == ("delete", {"pk": {"S": "a"}}, None)
    with pytest.raises(CodecError, match="delete record"):
        decode_native_line(delete)


def test_full_export_record_keys() -> None:
    line = encode_native_item(ITEM)
    assert decode_native_record(line) == ("put", {}, ITEM)
    assert decode_native_record(line, ["pk"]) == ("put", {"pk": {"S": "user#43"}}, ITEM)
    with pytest.raises(CodecError, match="lacks key attribute"):
        decode_native_record(line, ["pk", "sk"])


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"Metadata":{}}', "not a native export line"),
    (b"[]", "not a JSON object"),
    (b'{"Item":[]}', "Item must be a JSON object"),
    (b'{"Item":{"a":{"N":"1E+126"}}}', "Item: attribute 'a': invalid number"),
    (b'{"Item":{"a":{"B":"***"}}}', "invalid base64"),
    (b'{"Item":{"a":{"N":7}}}', "number must be given as a string"),
    (b"", "blank line"),
    (b'{"Item":{"a":{"S":"\xff"}}}', "not valid UTF-8"),
])
def test_rejections(line: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_native_line(line)
    assert reason in str(info.value)
