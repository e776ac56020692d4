"""linecheck's one walk against the reference path (decode_line, validate_item, canonical_bytes, KeyRules).

The fast path may leave any line to the reference path (``None``), but it must never accept a line the
reference path refuses, and where it accepts one, its canonical form, digest, size and key must be the
reference's exactly.
"""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import decode_line, encode_item, item_digest, key_of, validate_item
from dynamodb_backup.formats.codec.canonical import canonical_bytes, canonical_digest, canonical_key
from dynamodb_backup.formats.codec.linecheck import check_line
from dynamodb_backup.formats.codec.wireform import wire_bytes_of_compact_line, wire_item_from_line
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.keyschema import KeyRules

NUMBERS = ["0", "-0", "7", "-7", "00120", "1200", "12.50", "-0.001", ".5", "5.", "1E+125",
           "9.9999999999999999999999999999999999999E+125", "1E-130", "-3.14e-5", "1" * 38, "22163.54939092668587840",
           "0.000", "+4", "4e0", "123456789012345678901234567890.12345678"]
TEXTS = ["", "x", "ロメオ", "québec", "line\nbreak", "tab\tand \"quote\" \\", "\u2028\u2029", "\U0001f600", "\x00\x1f"]


def random_value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    kind = rng.choice(["S", "N", "B", "BOOL", "NULL", "SS", "NS", "BS"] + (["M", "L"] * 2 if depth < 4 else []))
    if kind == "S":
        return {"S": rng.choice(TEXTS) + str(rng.randint(0, 9))}
    if kind == "N":
        return {"N": rng.choice(NUMBERS)}
    if kind == "B":
        return {"B": rng.randbytes(rng.randint(0, 20))}
    if kind == "BOOL":
        return {"BOOL": rng.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": rng.sample(TEXTS, rng.randint(1, len(TEXTS)))}
    if kind == "NS":
        return {"NS": [str(n) for n in rng.sample(range(-50, 50), rng.randint(1, 5))] + ["1.5E-3"]}
    if kind == "BS":
        return {"BS": [bytes([i]) + rng.randbytes(3) for i in rng.sample(range(256), rng.randint(1, 4))]}
    if kind == "M":
        return {"M": {f"k{i}{rng.choice(TEXTS)}": random_value(rng, depth + 1) for i in range(rng.randint(0, 4))}}
    return {"L": [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]}


def random_item(rng: random.Random) -> dict[str, Any]:
    item = {"pk": {"S": f"key-{rng.randint(0, 10**9)}"}, "sk": {"N": rng.choice(NUMBERS)}}
    item.update({f"a{i}": random_value(rng) for i in range(rng.randint(0, 12))})
    return item


def reference(line: bytes) -> tuple[bytes, int]:
    item = decode_line(line)
    return canonical_bytes(item), validate_item(item)


@pytest.mark.parametrize("seed", range(40))
def test_valid_lines_give_the_reference_canonical_form_digest_size_and_key(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        item = random_item(rng)
        line = encode_item(item)
        checked = check_line(line)
        assert checked is not None, line
        canonical, size, bytewise = checked
        assert bytewise  # generated names never read like type keys, and encode_item writes compactly
        assert orjson.loads(wire_bytes_of_compact_line(line)) == wire_item_from_line(line)
        assert orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS) == canonical_bytes(item)
        assert canonical_digest(canonical) == item_digest(item)
        assert size == validate_item(item)
        assert canonical_key(canonical, ["pk", "sk"]) == key_of(item, ["pk", "sk"])


def test_the_bucketed_digest_is_the_same_either_way() -> None:
    rng = random.Random(99)
    items = [random_item(rng) for _ in range(300)]
    slow, fast = BucketedDigest(), BucketedDigest()
    for item in items:
        slow.add(item, ["pk", "sk"])
        checked = check_line(encode_item(item))
        assert checked is not None
        fast.add_canonical(checked[0], ["pk", "sk"])
    assert slow == fast and slow.count == 300


BAD_LINES = [
    b'{"a":{"n":"1234567890123456789012345678901234567890"}}', b'{"a":{"n":"1E+126"}}', b'{"a":{"n":"1E-131"}}',
    b'{"a":{"n":"99999999999999999999999999999999999999.5"}}', b'{"a":{"n":"0.' + b"0" * 130 + b'1"}}',
    b'{"a":{"nS":["1","1.0"]}}', b'{"a":{"nS":["100","1e2"]}}', b'{"a":{"nS":["0","-0"]}}',
    b'{"a":{"sS":["x","x"]}}', b'{"a":{"bS":["AAE=","AAE="]}}', b'{"a":{"bS":["AAE=","AAF="]}}',
    b'{"a":{"sS":[]}}', b'{"a":{"nS":[]}}', b'{"a":{"bS":[]}}', b'{"a":{"xyz":"1"}}', b'[{"a":{"s":"x"}}]', b'"text"',
    b'{"a":{"s":"\xff\xfe"}}', b'{"a":{"n":5}}', b'{"a":{"n":1.5}}', b'{"a":{"nS":["1",2]}}', b'{"a":{"b":"AAE"}}',
    b'{"a":{"b":"AA E="}}', b'{"a":{"b":"@@@@"}}', b'{"a":{"b":5}}', b'{"a":{"b":"A==="}}', b'{"a":{"b":"=AAE"}}',
    b'{"a":{"b":"AAE=AAE="}}', b'{"a":{"b":"\xc3\xa9AAA"}}', b'{"a":{"s":"x","n":"1"}}', b'{"a":{}}', b'{"a":"x"}',
    b'{"a":{"s":1}}', b'{"a":{"nULL":false}}', b'{"a":{"bOOL":"true"}}', b'{"a":{"bOOL":1}}', b'{"a":{"m":[]}}',
    b'{"a":{"l":{}}}', b'{"":{"s":"x"}}', b'{"a":{"s":"x"}', b'{"a":{"m":{"b":{"l":[{"s":"ok"},{"n":"NaN"}]}}}}',
    b'{"a":{"n":"--1"}}', b'{"a":{"n":"1.2.3"}}', b'{"a":{"n":"."}}', b'{"a":{"n":""}}', b'{"a":{"n":"\xd9\xa3"}}',
    b'{"a":{"n":"1e"}}', b'{"a":{"n":" 1"}}', b'{"a":{"sS":"abc"}}', b'{"a":{"sS":[1]}}', b'{"a":{"s":"\\ud800"}}',
    b'{"a":{"nULL":null}}', b'{"a":{"l":[{"s":"x"},{}]}}', b'{"a":{"m":{"x":"y"}}}',
]


@pytest.mark.parametrize("line", BAD_LINES)
def test_a_line_the_reference_refuses_is_never_accepted(line: bytes) -> None:
    with pytest.raises(CodecError):
        decode_line(line)
    assert check_line(line) is None


def deep(levels: int, kind: str) -> dict[str, Any]:
    value: dict[str, Any] = {"s": "x"}
    for _ in range(levels - 1):
        value = {"m": {"k": value}} if kind == "m" else {"l": [value]}
    return value


@pytest.mark.parametrize("kind", ["m", "l"])
def test_nesting_at_the_limit_is_read_and_past_it_is_left_to_the_reference(kind: str) -> None:
    at_limit, past = orjson.dumps({"a": deep(32, kind)}), orjson.dumps({"a": deep(33, kind)})
    checked = check_line(at_limit)
    assert checked is not None and orjson.dumps(checked[0], option=orjson.OPT_SORT_KEYS) == reference(at_limit)[0]
    with pytest.raises(CodecError, match="nested deeper"):
        decode_line(past)
    assert check_line(past) is None


def test_the_400_kb_limit_is_the_reference_one() -> None:
    name = "a"
    fits = orjson.dumps({name: {"s": "x" * (400 * 1024 - 1)}})
    over = orjson.dumps({name: {"s": "x" * (400 * 1024)}})
    checked = check_line(fits)
    assert checked is not None and checked[1] == reference(fits)[1] == 400 * 1024
    with pytest.raises(CodecError, match="400 KB"):
        decode_line(over)
    assert check_line(over) is None


@pytest.mark.parametrize("line", [
    b'{"a":{"S":"v"}}', b'{"a":{"ss":["x"]}}', b'{"a":{"BOOL":true}}', b'{"a":{"Null":true}}',
    b'id\x03{"s":"x"}\x02n\x03{"n":"1"}', b"", b"  \r\n",
])
def test_other_spellings_hive_lines_and_blanks_go_to_the_reference_path(line: bytes) -> None:
    assert check_line(line) is None


def test_non_canonical_base64_is_canonicalised_as_the_reference_does() -> None:
    line = b'{"pk":{"s":"k"},"a":{"b":"AAF="},"c":{"bS":["AAF=","/w=="]}}'  # "AAF=" has stray low bits
    checked = check_line(line)
    assert checked is not None
    assert orjson.dumps(checked[0], option=orjson.OPT_SORT_KEYS) == reference(line)[0]
    assert checked[0]["a"] == ["B", "AAE="]


def test_mutated_lines_are_refused_or_read_exactly_as_the_reference_reads_them() -> None:
    rng = random.Random(5)
    swaps = [b'"n":"1e999"', b'"n":"x"', b'"sS":[]', b'"nULL":false', b'"b":"A"', b'"s":7', b'"m":[]', b'"l":{}',
             b'"bOOL":null', b'"nS":["1","01"]', b'"q":1', b'"n":"-0.0"', b'"s":""', b'"b":""']
    accepted = refused = 0
    for _ in range(3000):
        line = encode_item(random_item(rng))
        at = line.find(b'":{"', rng.randrange(len(line)))
        if at < 0:
            continue
        end = line.find(b"}", at + 4)
        mutated = line[:at + 3] + rng.choice(swaps) + line[end:]
        try:
            want = reference(mutated)
        except CodecError:
            refused += 1
            assert check_line(mutated) is None, mutated
            continue
        accepted += 1
        checked = check_line(mutated)
        if checked is not None:
            assert (orjson.dumps(checked[0], option=orjson.OPT_SORT_KEYS), checked[1]) == want
            if checked[2]:
                assert orjson.loads(wire_bytes_of_compact_line(mutated)) == wire_item_from_line(mutated)
    assert accepted > 100 and refused > 100  # both sides really exercised


KEY_RULES = KeyRules((("pk", "S"), ("sk", "B")), (("gsi", "N"),))


@pytest.mark.parametrize("item", [
    {"pk": {"S": "a"}, "sk": {"B": b"\x00"}},
    {"pk": {"S": "a"}, "sk": {"B": b"\x00" * 1024}, "gsi": {"N": "1"}},
    {"pk": {"S": "a"}, "sk": {"B": b"\x00" * 1025}},
    {"pk": {"S": "a"}, "sk": {"B": b"\x00\x01"}},
    {"pk": {"S": "a" * 2049}, "sk": {"B": b"\x00"}},
    {"pk": {"S": ""}, "sk": {"B": b"\x00"}},
    {"pk": {"S": "a"}, "sk": {"B": b""}},
    {"pk": {"N": "1"}, "sk": {"B": b"\x00"}},
    {"sk": {"B": b"\x00"}},
    {"pk": {"S": "a"}, "sk": {"B": b"\x00"}, "gsi": {"S": "1"}},
])
def test_key_rules_on_canonical_form_answer_as_on_client_form(item: dict[str, Any]) -> None:
    checked = check_line(encode_item(item))
    assert checked is not None

    def outcome(check: Any, value: Any) -> str:
        try:
            check(value)
        except CodecError as exc:
            return str(exc)
        return "ok"

    assert outcome(KEY_RULES.check_canonical, checked[0]) == outcome(KEY_RULES.check, item)


def test_binary_key_sizes_from_base64_are_exact() -> None:
    for n in range(0, 40):
        raw = bytes(range(n))
        text = base64.b64encode(raw).decode()
        assert len(text) // 4 * 3 - text.count("=", -2) == n


@pytest.mark.parametrize("line", [
    b'{"s":{"s":"an attribute named s"}}',
    b'{"pk":{"s":"k"},"doc":{"m":{"m":{"n":"1"},"z":{"s":"x"}}}}',  # a map whose first key is "m"
    b'{"pk":{"s":"k"},"doc":{"m":{"z":{"s":"x"},"l":{"n":"1"}}}}',  # "l" not first: still refused, to be sure
    b'{"pk":{"s":"k"},"nULL":{"bOOL":true}}',
    b'{"pk":{"s":"k"},"a":{"\\u0073":"x"}}',  # a type key written with an escape
    b'{"pk":{"s":"k"},"a":{ "n":"1"}}',  # a typed value not opened compactly
    b'{"pk":{"s":"k"},"a":{"n" :"1"}}',
    b'{"pk":{"s":"k"},"a":{"s":"' + b"x" * 20_000 + b'"}}',  # long: parsing converts its few values cheaply
])
def test_lines_that_would_not_convert_byte_for_byte_are_not_called_bytewise(line: bytes) -> None:
    checked = check_line(line)
    assert checked is not None and checked[2] is False
    # and the reference conversion still reads them
    assert wire_item_from_line(line)


@pytest.mark.parametrize("spaced", [False, True])
def test_a_compact_line_converts_byte_for_byte_to_what_the_parsed_conversion_gives(spaced: bool) -> None:
    line = (b'{"pk":{"s":"{\\"s\\":x"},"ss":{"sS":["{\\"n\\":","b"]},"M":{"m":{"x":{"l":[{"nULL":true},'
            b'{"bOOL":false},{"b":"AAE="},{"bS":["AAE="]},{"nS":["1"]},{"m":{}},{"l":[]}]}}}}')
    if spaced:  # spaces between a name and its value do not matter: each typed value still opens {"x":
        line = line.replace(b'":{', b'": {').replace(b",", b", ")
    checked = check_line(line)
    assert checked is not None and checked[2] is True
    assert orjson.loads(wire_bytes_of_compact_line(line)) == wire_item_from_line(line)
