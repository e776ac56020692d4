"""Canonical bytes and order-independent table digests."""

from __future__ import annotations

import base64
import random
from typing import Any

import orjson
import pytest

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import (
    TableDigest,
    canonical_bytes,
    decode_line,
    encode_item,
    item_digest,
    key_of,
)

ITEM: dict[str, Any] = {
    "pk": {"S": "user#1"}, "n": {"N": "1.5"}, "b": {"B": b"\xff\x00"},
    "ss": {"SS": ["b", "a", "c"]}, "ns": {"NS": ["10", "2", "-3.5"]},
    "bs": {"BS": [b"\x02", b"\x01", b"\xff"]},
    "m": {"M": {"z": {"BOOL": True}, "a": {"NULL": True}, "l": {"L": [{"N": "1"}, {"S": "x"}]}}},
}


def test_numbers_compare_by_value() -> None:
    a = {"pk": {"S": "x"}, "n": {"N": "1.5"}}
    b = {"pk": {"S": "x"}, "n": {"N": "001.500"}}
    assert canonical_bytes(a) == canonical_bytes(b)
    assert item_digest(a) == item_digest(b)
    assert item_digest({"n": {"N": "1e2"}}) == item_digest({"n": {"N": "100"}})
    assert item_digest({"n": {"N": "-0"}}) == item_digest({"n": {"N": "0.00"}})
    assert item_digest({"n": {"NS": ["1.0", "2E0"]}}) == item_digest({"n": {"NS": ["2", "1"]}})


def test_order_does_not_matter() -> None:
    rng = random.Random(7)
    d = item_digest(ITEM)
    for _ in range(20):
        names = list(ITEM)
        rng.shuffle(names)
        shuffled: dict[str, Any] = {}
        for name in names:
            ((t, x),) = ITEM[name].items()
            if t in ("SS", "NS", "BS"):
                x = rng.sample(x, len(x))
            elif t == "M":
                keys = rng.sample(list(x), len(x))
                x = {k: x[k] for k in keys}
            shuffled[name] = {t: x}
        assert item_digest(shuffled) == d
        assert canonical_bytes(shuffled) == canonical_bytes(ITEM)


@pytest.mark.parametrize("change", [
    ("pk", {"S": "user#2"}), ("n", {"N": "1.50001"}), ("n", {"S": "1.5"}), ("b", {"B": b"\xff"}),
    ("ss", {"SS": ["a", "b"]}), ("extra", {"NULL": True}),
    ("m", {"M": {"z": {"BOOL": False}, "a": {"NULL": True},
                 "l": {"L": [{"N": "1"}, {"S": "x"}]}}}),
    ("m", {"M": {"z": {"BOOL": True}, "a": {"NULL": True},
                 "l": {"L": [{"S": "x"}, {"N": "1"}]}}}),  # list order matters
])
def test_any_difference_changes_digest(change: tuple[str, dict[str, Any]]) -> None:
    name, value = change
    other = dict(ITEM)
    other[name] = value
    assert item_digest(other) != item_digest(ITEM)


def test_digest_is_128_bit_and_stable() -> None:
    d = item_digest(ITEM)
    assert 0 <= d < 2**128
    assert d == item_digest(decode_line(encode_item(ITEM)))


def test_wire_form_gives_same_bytes() -> None:
    wire = dict(ITEM)
    wire["b"] = {"B": base64.b64encode(b"\xff\x00").decode()}
    wire["bs"] = {"BS": [base64.b64encode(b).decode() for b in (b"\xff", b"\x01", b"\x02")]}
    assert canonical_bytes(wire) == canonical_bytes(ITEM)


def test_canonical_bytes_are_sorted_json() -> None:
    out = canonical_bytes({"b": {"N": "010"}, "a": {"SS": ["y", "x"]}})
    assert out == b'{"a":["SS",["x","y"]],"b":["N","10"]}'
    assert orjson.loads(out)


def test_table_digest_order_independent_and_mergeable() -> None:
    items = [{"pk": {"N": str(i)}, "v": {"S": "x" * (i % 7)}} for i in range(200)]
    forward = TableDigest()
    for it in items:
        forward.add(it)
    backward = TableDigest()
    for it in reversed(items):
        backward.add(it)
    assert forward == backward and forward.count == 200
    left, right = TableDigest(), TableDigest()
    for i, it in enumerate(items):
        (left if i % 3 else right).add(it)
    left.merge(right)
    assert left == forward
    assert len(forward.hexdigest()) == 32
    missing = TableDigest()
    for it in items[1:]:
        missing.add(it)
    assert missing != forward


def test_table_digest_json_round_trip() -> None:
    t = TableDigest()
    t.add(ITEM)
    data = orjson.loads(orjson.dumps(t.to_dict()))
    assert data == {"count": 1, "digest": f"{item_digest(ITEM):032x}"}
    assert TableDigest.from_dict(data) == t
    assert TableDigest().to_dict() == {"count": 0, "digest": "0" * 32}
    for bad in ({}, {"count": -1, "digest": "0" * 32}, {"count": 1, "digest": "xyz"},
                {"count": True, "digest": "0" * 32}, {"count": 1, "digest": "g" * 32}):
        with pytest.raises(CodecError):
            TableDigest.from_dict(bad)


def test_digest_wraps_mod_2_128() -> None:
    t = TableDigest(value=2**128 - 1)
    t.add_digest(2)
    assert t.value == 1 and t.count == 1


def test_key_of() -> None:
    assert key_of(ITEM, ["pk"]) == ("user#1",)
    item = {"h": {"N": "0042.0"}, "r": {"B": b"\x00\x01"}, "x": {"S": "y"}}
    assert key_of(item, ["h", "r"]) == ("42", "AAE=")
    assert hash(key_of(item, ["h", "r"]))
    with pytest.raises(CodecError, match="lacks key attribute 'zz'"):
        key_of(item, ["zz"])
    with pytest.raises(CodecError, match="keys must be S, N or B"):
        key_of({"k": {"SS": ["a"]}}, ["k"])


def test_invalid_values_rejected() -> None:
    with pytest.raises(CodecError):
        canonical_bytes({"n": {"N": "abc"}})
    with pytest.raises(CodecError):
        canonical_bytes({"n": {"Q": "abc"}})
    with pytest.raises(CodecError):
        canonical_bytes({"b": {"B": "not base64!"}})
