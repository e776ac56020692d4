"""Data Pipeline line codec: golden lines, Gson escaping, wire/client identity, rejections."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import (
    MAX_ITEM_BYTES,
    decode_line,
    encode_item,
    encode_wire_item,
    encode_wire_items,
    is_blank,
    item_size,
)

GOLDEN = [
    (b'{"pk":{"s":"user#42"},"age":{"n":"37"},"avatar":{"b":"AAEC/w=="},'
     b'"active":{"bOOL":true},"deletedAt":{"nULL":true}}'),
    (b'{"pk":{"s":"user#43"},"tags":{"sS":["blue","red"]},"scores":{"nS":["1","2.5","-300"]},'
     b'"keys":{"bS":["AAE=","/w=="]}}'),
    (b'{"pk":{"s":"user#44"},"profile":{"m":{"langs":{"l":[{"s":"en"},{"bOOL":false},'
     b'{"nULL":true}]},"prefs":{"m":{}}}},"history":{"l":[]}}'),
]

MAX_N = "9.9999999999999999999999999999999999999E+125"


def to_wire(v: Any) -> Any:
    """Client form -> wire form (what DynamoDB sends over HTTP)."""
    if isinstance(v, dict) and len(v) == 1:
        ((t, x),) = v.items()
        if t == "B":
            return {"B": base64.b64encode(x).decode()}
        if t == "BS":
            return {"BS": [base64.b64encode(b).decode() for b in x]}
        if t == "M":
            return {"M": {k: to_wire(y) for k, y in x.items()}}
        if t == "L":
            return {"L": [to_wire(y) for y in x]}
        return {t: x}
    raise AssertionError(v)


def wire_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: to_wire(v) for k, v in item.items()}


def gson_string(s: str) -> str:
    """Independent reference for Gson's string escaping with HTML escaping off."""
    short = {'"': '\\"', "\\": "\\\\", "\t": "\\t", "\b": "\\b", "\n": "\\n",
             "\r": "\\r", "\f": "\\f", "\u2028": "\\u2028", "\u2029": "\\u2029"}
    out = []
    for c in s:
        if c in short:
            out.append(short[c])
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


NASTY = "".join(chr(i) for i in range(0x20)) + "\x7f\u2028\u2029\"\\<>&='/ 한국어 😀 é"


def check_round_trip(item: dict[str, Any]) -> bytes:
    line = encode_item(item)
    assert b"\n" not in line
    assert decode_line(line) == item
    assert encode_wire_item(wire_item(item)) == line
    return line


@pytest.mark.parametrize("line", GOLDEN)
def test_golden_lines_round_trip_byte_for_byte(line: bytes) -> None:
    item = decode_line(line)
    assert encode_item(item) == line
    assert encode_wire_item(wire_item(item)) == line


def test_golden_decoded_values() -> None:
    a, b, c = (decode_line(g) for g in GOLDEN)
    assert a == {"pk": {"S": "user#42"}, "age": {"N": "37"}, "avatar": {"B": b"\x00\x01\x02\xff"},
                 "active": {"BOOL": True}, "deletedAt": {"NULL": True}}
    assert b["scores"] == {"NS": ["1", "2.5", "-300"]}
    assert b["keys"] == {"BS": [b"\x00\x01", b"\xff"]}
    assert c["profile"]["M"]["langs"]["L"][1] == {"BOOL": False}
    assert c["history"] == {"L": []}
    assert list(a) == ["pk", "age", "avatar", "active", "deletedAt"]


def test_every_type_round_trips() -> None:
    item = {
        "s": {"S": "x"}, "empty": {"S": ""}, "n38": {"N": "1234567890123456789012345678901234567.8"},
        "tiny": {"N": "1E-130"}, "ntiny": {"N": "-1E-130"}, "huge": {"N": MAX_N},
        "nhuge": {"N": "-" + MAX_N}, "zero": {"N": "0"}, "b": {"B": b"\xff\xfe\x00"},
        "eb": {"B": b""}, "ss": {"SS": ["a", "", "한"]}, "ns": {"NS": ["1", "-1E-130", MAX_N]},
        "bs": {"BS": [b"\xff\xfe\x00", b"\x00", b""]}, "t": {"BOOL": True}, "f": {"BOOL": False},
        "z": {"NULL": True}, "m": {"M": {"": {"S": "empty key"}, "x": {"L": []}}},
        "l": {"L": [{"N": "1"}, {"M": {}}, {"SS": ["q"]}]},
    }
    line = check_round_trip(item)
    assert b'"n38":{"n":"1234567890123456789012345678901234567.8"}' in line
    assert b'"b":{"b":"//4A"}' in line


def test_gson_escaping_of_every_awkward_character() -> None:
    item = {"k" + NASTY: {"S": NASTY}, "set": {"SS": [NASTY, "\x00"]}}
    line = check_round_trip(item)
    expected = ('{' + gson_string("k" + NASTY) + ':{"s":' + gson_string(NASTY) + '},"set":{"sS":['
                + gson_string(NASTY) + ',' + gson_string("\x00") + ']}}').encode()
    assert line == expected
    assert b"\\u001f" in line and b"\\u001F" not in line
    assert b"\x7f" in line and "한국어".encode() in line
    assert "\u2028".encode() not in line and b"\\u2028" in line and b"\\u2029" in line
    assert b"<>&='" in line


def test_korean_text_is_raw_utf8() -> None:
    line = check_round_trip({"이름": {"S": "홍길동"}})
    assert line == '{"이름":{"s":"홍길동"}}'.encode()


def nested(depth: int, kind: str) -> dict[str, Any]:
    """A value at level 1 whose innermost scalar sits at level ``depth``."""
    v: dict[str, Any] = {"S": "leaf"}
    for _ in range(depth - 1):
        v = {"M": {"a": v}} if kind == "M" else {"L": [v]}
    return v


@pytest.mark.parametrize("kind", ["M", "L"])
def test_nesting_32_levels_ok_33_rejected(kind: str) -> None:
    check_round_trip({"pk": {"S": "x"}, "deep": nested(32, kind)})
    line = encode_item({"deep": nested(33, kind)})
    with pytest.raises(CodecError, match="nested deeper than 32"):
        decode_line(line)


def test_item_near_400kb_accepted_and_over_rejected() -> None:
    base = {"pk": {"S": "k"}, "blob": {"B": b""}}
    room = MAX_ITEM_BYTES - item_size(base)
    blob = bytes(range(256)) * (room // 256) + b"\x01" * (room % 256)
    ok = {"pk": {"S": "k"}, "blob": {"B": blob}}
    assert item_size(ok) == MAX_ITEM_BYTES
    check_round_trip(ok)
    over = {"pk": {"S": "k"}, "blob": {"B": blob + b"\x00"}}
    with pytest.raises(CodecError, match=f"item is {MAX_ITEM_BYTES + 1} bytes"):
        decode_line(encode_item(over))


def random_value(rng: random.Random, level: int) -> dict[str, Any]:
    alphabet = "ab<>&='\"\\\x00\x1f\x7f\u2028\u2029é한😀 \t\n"

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))

    def num() -> str:
        digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 38)))
        sign = rng.choice(["", "-"])
        return rng.choice([f"{sign}{digits}", f"{sign}0.{digits}", f"{sign}{digits}E{rng.randint(-90, 87)}"])

    def blob() -> bytes:
        return rng.randbytes(rng.randint(0, 9))

    kinds = ["S", "N", "B", "SS", "NS", "BS", "BOOL", "NULL"] + (["M", "L"] * 2 if level < 32 else [])
    t = rng.choice(kinds)
    if t == "S":
        return {"S": text()}
    if t == "N":
        return {"N": num()}
    if t == "B":
        return {"B": blob()}
    if t in ("SS", "BS"):
        gen = text if t == "SS" else blob
        members = list(dict.fromkeys(gen() for _ in range(rng.randint(1, 4))))
        return {t: members}
    if t == "NS":
        return {"NS": [str(i * rng.choice([1, -1])) + "." + str(rng.randint(1, 9))
                       for i in rng.sample(range(1000), rng.randint(1, 4))]}
    if t == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if t == "NULL":
        return {"NULL": True}
    n = rng.randint(0, 3) if level < 6 else 0
    if t == "M":
        return {"M": {text(): random_value(rng, level + 1) for _ in range(n)}}
    return {"L": [random_value(rng, level + 1) for _ in range(n)]}


def test_random_items_wire_equals_client_and_round_trip() -> None:
    rng = random.Random(20240305)
    items = []
    for i in range(400):
        item = {"pk": {"S": f"id#{i}"}}
        for _ in range(rng.randint(0, 6)):
            item["a" + "".join(rng.choice("xyz<\u2028한") for _ in range(3))] = random_value(rng, 1)
        items.append(item)
        check_round_trip(item)
    blob = encode_wire_items([wire_item(i) for i in items])
    assert blob.endswith(b"\n") and blob.count(b"\n") == len(items)
    assert [decode_line(x) for x in blob.splitlines()] == items


def test_encode_wire_items_empty_and_joined() -> None:
    assert encode_wire_items([]) == b""
    items = [decode_line(g) for g in GOLDEN]
    assert encode_wire_items([wire_item(i) for i in items]) == b"\n".join(GOLDEN) + b"\n"


def test_hive_lines() -> None:
    assert decode_line(b'id\x03{"s":"Seattle"}\x02scores\x03{"nS":["100","30","45"]}\n') == {
        "id": {"S": "Seattle"}, "scores": {"NS": ["100", "30", "45"]}}
    odd = "a name: with, punctuation"
    item = decode_line(f'{odd}\x03{{"n":"1"}}\x02{{x}}\x03{{"m":{{"k":{{"bS":["AAE="]}}}}}}'.encode())
    assert item == {odd: {"N": "1"}, "{x}": {"M": {"k": {"BS": [b"\x00\x01"]}}}}
    with pytest.raises(CodecError, match="0x03"):
        decode_line(b'id\x03{"s":"x"}\x02noseparator')
    with pytest.raises(CodecError, match="not valid UTF-8"):
        decode_line(b'\xff\x03{"s":"x"}')


@pytest.mark.parametrize("line", [
    b'{"a":{"ss":["x"]},"b":{"bool":true},"c":{"null":true},"d":{"S":"v"},"e":{"N":"1"}}',
    b'{"a":{"SS":["x"]},"b":{"BOOL":true},"c":{"NULL":true},"d":{"s":"v"},"e":{"n":"1"}}',
    b'{"a":{"Ss":["x"]},"b":{"Bool":true},"c":{"nULL":true},"d":{"s":"v"},"e":{"n":"1"}}',
])
def test_type_keys_case_insensitive(line: bytes) -> None:
    item = decode_line(line)
    assert item == {"a": {"SS": ["x"]}, "b": {"BOOL": True}, "c": {"NULL": True},
                    "d": {"S": "v"}, "e": {"N": "1"}}
    assert encode_item(item) == (b'{"a":{"sS":["x"]},"b":{"bOOL":true},"c":{"nULL":true},'
                                 b'"d":{"s":"v"},"e":{"n":"1"}}')


def test_str_input_and_surrounding_whitespace() -> None:
    assert decode_line("  " + GOLDEN[0].decode() + "\r\n") == decode_line(GOLDEN[0])
    assert decode_line(b"\t" + GOLDEN[1] + b" \n") == decode_line(GOLDEN[1])


def test_blank_lines() -> None:
    for blank in (b"", b"\n", b"  \r\n", "", " \t"):
        assert is_blank(blank)
        with pytest.raises(CodecError, match="blank line"):
            decode_line(blank)
    assert not is_blank(GOLDEN[0])


@pytest.mark.parametrize(("line", "reason"), [
    (b'{"a":{"n":"1234567890123456789012345678901234567890"}}', "39 significant digits"),
    (b'{"a":{"n":"1E+126"}}', "magnitude larger"),
    (b'{"a":{"n":"1E-131"}}', "magnitude smaller"),
    (b'{"a":{"nS":["1","1.0"]}}', "numerically equal"),
    (b'{"a":{"sS":["x","x"]}}', "duplicate"),
    (b'{"a":{"bS":["AAE=","AAE="]}}', "duplicate"),
    (b'{"a":{"sS":[]}}', "must not be empty"),
    (b'{"a":{"nS":[]}}', "must not be empty"),
    (b'{"a":{"xyz":"1"}}', "unknown type key 'xyz'"),
    (b'[{"a":{"s":"x"}}]', "not a JSON object but a JSON array"),
    (b'"text"', "JSON string"),
    (b'{"a":{"s":"\xff\xfe"}}', "not valid UTF-8"),
    (b'{"a":{"n":5}}', "number must be given as a string"),
    (b'{"a":{"n":1.5}}', "number must be given as a string"),
    (b'{"a":{"nS":["1",2]}}', "number must be given as a string"),
    (b'{"a":{"b":"AAE"}}', "invalid base64"),
    (b'{"a":{"b":"AA E="}}', "invalid base64"),
    (b'{"a":{"b":"@@@@"}}', "invalid base64"),
    (b'{"a":{"b":5}}', "base64 string"),
    (b'{"a":{"s":"x","n":"1"}}', "exactly one type key"),
    (b'{"a":{}}', "exactly one type key"),
    (b'{"a":"x"}', "exactly one type key"),
    (b'{"a":{"s":1}}', "S must be a string"),
    (b'{"a":{"nULL":false}}', "NULL must be true"),
    (b'{"a":{"bOOL":"true"}}', "BOOL must be true or false"),
    (b'{"a":{"m":[]}}', "M must be an object"),
    (b'{"a":{"l":{}}}', "L must be an array"),
    (b'{"":{"s":"x"}}', "non-empty"),
    (b'{"a":{"s":"x"}', "invalid JSON"),
    (b'{"a":{"m":{"b":{"l":[{"s":"ok"},{"n":"NaN"}]}}}}', "'a.b[1]': invalid number 'NaN'"),
])
def test_rejections(line: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        decode_line(line)
    assert reason in str(info.value)


def test_error_can_be_located() -> None:
    with pytest.raises(CodecError) as info:
        decode_line(b'{"a":{"n":"x"}}')
    located = info.value.at("s3://b/k line 7")
    assert str(located).startswith("s3://b/k line 7: attribute 'a': invalid number 'x'")


def test_encode_rejects_malformed_structure() -> None:
    for bad in ({"a": {"XYZ": "1"}}, {"a": {"S": "x", "N": "1"}}, {"a": "x"}):
        with pytest.raises(CodecError):
            encode_item(bad)
        with pytest.raises(CodecError):
            encode_wire_item(bad)


def test_wire_numbers_are_untouched_strings() -> None:
    raw = orjson.loads(b'{"n":{"N":"0001.50000"},"e":{"N":"1e-130"}}')
    assert encode_wire_item(raw) == b'{"n":{"n":"0001.50000"},"e":{"n":"1e-130"}}'
