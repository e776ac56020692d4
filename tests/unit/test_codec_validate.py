"""DynamoDB structural rules: numbers, sets, nesting, item size."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import (
    MAX_ITEM_BYTES,
    item_size,
    normalize_number,
    validate_item,
    validate_number,
    validate_value,
)
from dynamodb_backup.formats.codec.decimals import number_size, parse_number

MAX_N = "9.9999999999999999999999999999999999999E+125"


@pytest.mark.parametrize("s", [
    "0", "-0", "+0", "0.0", "0E+999", "1", "-1", "+7", "1.", ".5", "-.5", "1e2", "1E-2", "1e+2",
    "1E-130", "-1E-130", "0.0000000000001E-117", MAX_N, "-" + MAX_N,
    "12345678901234567890123456789012345678", "-1234567890123456789012345678901234567.8",
    "1" + "0" * 125, "0" * 500 + "1", "12345678901234567890123456789012345678" + "0" * 88,
    "1.2345678901234567890123456789012345678000000",
])
def test_valid_numbers(s: str) -> None:
    validate_number(s)


@pytest.mark.parametrize(("s", "reason"), [
    ("123456789012345678901234567890123456789", "39 significant digits"),
    ("1.23456789012345678901234567890123456789", "39 significant digits"),
    ("1E+126", "magnitude larger"),
    ("-1E+126", "magnitude larger"),
    ("10" + "0" * 125, "magnitude larger"),
    ("1E-131", "magnitude smaller"),
    ("-0.1E-130", "magnitude smaller"),
    ("NaN", "invalid number"), ("Infinity", "invalid number"), ("-inf", "invalid number"),
    ("0x10", "invalid number"), (" 1", "invalid number"), ("1 ", "invalid number"),
    ("1\n", "invalid number"), ("", "invalid number"), (".", "invalid number"),
    ("1e", "invalid number"), ("--1", "invalid number"), ("1_000", "invalid number"),
    ("\u0661", "invalid number"), ("1,5", "invalid number"),
    ("1e9999999999999", "exponent out of range"),
])
def test_invalid_numbers(s: str, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        validate_number(s)
    assert reason in str(info.value)


def test_long_values_are_shortened_in_messages() -> None:
    with pytest.raises(CodecError) as info:
        validate_number("9" * 5000)
    assert len(str(info.value)) < 200
    assert "5000 significant digits" in str(info.value)


@pytest.mark.parametrize(("s", "canonical"), [
    ("001.500", "1.5"), ("1e2", "100"), ("100", "100"), ("-0", "0"), ("0.000", "0"),
    ("+3", "3"), (".5", "0.5"), ("1E-130", "0." + "0" * 129 + "1"), ("-12.340E1", "-123.4"),
    (MAX_N, "9" * 38 + "0" * 88),
])
def test_normalize_number(s: str, canonical: str) -> None:
    assert normalize_number(s) == canonical


def test_parse_number_identity() -> None:
    assert parse_number("1") == parse_number("1.0") == parse_number("0.1E1") == (False, "1", 0)
    assert parse_number("-0.0") == parse_number("0") == (False, "", 0)


def test_number_size() -> None:
    assert number_size("0") == 1
    assert number_size("7") == 2
    assert number_size("12345") == 4
    assert number_size("1234") == 3
    assert number_size("1000000") == 2  # trailing zeros are not significant
    assert number_size("12345678901234567890123456789012345678") == 20


def test_item_size_follows_developer_guide() -> None:
    item = {"id": {"S": "abc"}, "n": {"N": "12345"}, "flag": {"BOOL": True},
            "l": {"L": [{"S": "xy"}]}}
    # 2+3, 1+4, 4+1, 1+(3 + 1 + 2)
    assert item_size(item) == 22 == validate_item(item)
    m = {"m": {"M": {"ab": {"NULL": True}, "한": {"B": b"\x00\x01"}}}, "e": {"M": {}}}
    # m: 1 + 3 + (1+2+1) + (1+3+2) ; e: 1 + 3
    assert item_size(m) == 14 + 4 == validate_item(m)
    sets = {"ss": {"SS": ["a", "bc"]}, "ns": {"NS": ["1", "22"]}, "bs": {"BS": [b"\x00", b""]}}
    assert item_size(sets) == (2 + 3) + (2 + 2 + 2) + (2 + 1) == validate_item(sets)


def test_size_limit_boundary() -> None:
    base = {"pk": {"S": "k"}, "s": {"S": ""}}
    room = MAX_ITEM_BYTES - item_size(base)
    ok = {"pk": {"S": "k"}, "s": {"S": "한" * (room // 3) + "x" * (room % 3)}}
    assert validate_item(ok) == MAX_ITEM_BYTES
    ok["s"]["S"] += "x"
    with pytest.raises(CodecError, match=rf"item is {MAX_ITEM_BYTES + 1} bytes"):
        validate_item(ok)


def deep(levels: int, kind: str) -> dict[str, Any]:
    v: dict[str, Any] = {"N": "1"}
    for _ in range(levels - 1):
        v = {"M": {"k": v}} if kind == "M" else {"L": [v]}
    return v


@pytest.mark.parametrize("kind", ["M", "L"])
def test_nesting(kind: str) -> None:
    validate_value(deep(32, kind))
    empty_at_32 = deep(31, kind)
    inner = empty_at_32
    while True:  # replace the leaf with an empty container: still 32 levels
        nxt = inner["M"]["k"] if kind == "M" else inner["L"][0]
        if "N" in nxt:
            break
        inner = nxt
    if kind == "M":
        inner["M"]["k"] = {"M": {}}
    else:
        inner["L"][0] = {"L": []}
    validate_value(empty_at_32)
    with pytest.raises(CodecError, match="nested deeper than 32 levels"):
        validate_item({"a": deep(33, kind)})


@pytest.mark.parametrize(("value", "reason"), [
    ({"SS": []}, "must not be empty"),
    ({"NS": []}, "must not be empty"),
    ({"BS": []}, "must not be empty"),
    ({"SS": ["a", "a"]}, "duplicate"),
    ({"NS": ["1", "1.0"]}, "numerically equal"),
    ({"NS": ["100", "1e2"]}, "numerically equal"),
    ({"NS": ["0", "-0"]}, "numerically equal"),
    ({"BS": [b"a", b"a"]}, "duplicate"),
    ({"SS": "abc"}, "must be a list"),
    ({"SS": [1]}, "must be strings"),
    ({"BS": ["AAE="]}, "must be bytes"),
    ({"B": "AAE="}, "B must be bytes"),
    ({"S": b"x"}, "S must be a string"),
    ({"N": 5}, "not as the number 5"),
    ({"N": None}, "number must be a string"),
    ({"N": "1E+126"}, "magnitude larger"),
    ({"BOOL": 1}, "BOOL must be true or false"),
    ({"NULL": False}, "NULL must be true"),
    ({"M": []}, "M must be a dict"),
    ({"L": {}}, "L must be a list"),
    ({"M": {1: {"S": "x"}}}, "map key must be a string"),
    ({"Q": 1}, "unknown type key 'Q'"),
    ({}, "exactly one type key"),
    ({"S": "a", "N": "1"}, "exactly one type key"),
    ("x", "exactly one type key"),
])
def test_invalid_values(value: Any, reason: str) -> None:
    with pytest.raises(CodecError) as info:
        validate_value(value)
    assert reason in str(info.value)


def test_error_names_document_path() -> None:
    item = {"pk": {"S": "x"}, "doc": {"M": {"list": {"L": [{"S": "ok"}, {"M": {"n": {"N": "x"}}}]}}}}
    with pytest.raises(CodecError) as info:
        validate_item(item)
    assert str(info.value).startswith("attribute 'doc.list[1].n': invalid number 'x'")


def test_item_level_checks() -> None:
    with pytest.raises(CodecError, match="non-empty"):
        validate_item({"": {"S": "x"}})
    with pytest.raises(CodecError, match="item must be a mapping"):
        validate_item([])  # type: ignore[arg-type]
    assert validate_item({}) == 0
    assert validate_item({"b": {"B": bytearray(b"ab")}}) == 3


@pytest.mark.parametrize("text", ["0", "-0", "000", "7", "-7", "00120", "-1200", "1" * 38, "1" + "0" * 125,
                                  "9" * 38 + "0" * 88])
def test_plain_integers_take_the_same_answer_as_their_decimal_spelling(text: str) -> None:
    # Plain integers skip the regex; "<text>.0" goes through it and must agree (or both refuse).
    from dynamodb_backup.formats.codec.decimals import normalize_number, parse_number
    try:
        expected = parse_number(text + ".0"), normalize_number(text + ".0")
    except CodecError as exc:
        with pytest.raises(CodecError, match="magnitude larger"):
            parse_number(text)
        assert "magnitude larger" in str(exc)
        return
    assert (parse_number(text), normalize_number(text)) == expected
    value = Decimal(text)
    assert normalize_number(text) == ("0" if value == 0 else format(value, "f"))


@pytest.mark.parametrize("text", ["1" * 39, "1" + "0" * 126, "٣", "-", "", "--1"])
def test_plain_integer_spellings_out_of_range_or_not_ascii_are_refused(text: str) -> None:
    from dynamodb_backup.formats.codec.decimals import parse_number
    with pytest.raises(CodecError):
        parse_number(text)
