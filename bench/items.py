"""Deterministic benchmark items of about 500 bytes that mix every DynamoDB type.

Item ``i`` is the same on every run and every machine (seeded per item), so a
table seeded once can be reused and any item can be regenerated to check it.
Items are in boto3's client form (binary as ``bytes``, numbers as strings).
"""

from __future__ import annotations

import random
from typing import Any

HASH_KEY = "pk"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliett", "kilo", "lima", "mike", "november", "oscar", "papa", "québec", "ロメオ", "sierra"]
TABLE_SPEC: dict[str, Any] = {
    "KeySchema": [{"AttributeName": HASH_KEY, "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": HASH_KEY, "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


def key_of(i: int) -> str:
    return f"item-{i:09d}"


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def make_item(i: int) -> dict[str, Any]:
    """Item number ``i``: strings, 38-digit and fractional numbers, binary, every set, nested maps and lists."""
    rng = random.Random(i * 7919 + 17)
    return {
        HASH_KEY: {"S": key_of(i)},
        "seq": {"N": str(i)},
        "big": {"N": _digits(rng, 38)},
        "negfrac": {"N": f"-{rng.randint(0, 99999)}.{rng.randint(1, 999):03d}"},
        "tiny": {"N": f"{rng.randint(1, 9)}E-{rng.randint(10, 130)}"},
        "name": {"S": _words(rng, 4)},
        "note": {"S": _words(rng, 6) + ("\u2028" if i % 97 == 0 else "") + ("\t\"q\"" if i % 13 == 0 else "")},
        "data": {"B": rng.randbytes(48)},
        "active": {"BOOL": bool(i % 2)},
        "gone": {"NULL": True},
        "tags": {"SS": sorted({rng.choice(WORDS) for _ in range(4)})},
        "scores": {"NS": sorted({str(rng.randint(-1000, 10**6)) for _ in range(3)} | {"0.5"})},
        "hashes": {"BS": [rng.randbytes(12), rng.randbytes(12) + b"\x00"]},
        "profile": {"M": {
            "city": {"S": rng.choice(WORDS).title()},
            "zip": {"N": str(rng.randint(10000, 99999))},
            "address": {"M": {"street": {"S": _words(rng, 2)}, "number": {"N": str(rng.randint(1, 999))}}},
            "prefs": {"L": [{"S": rng.choice(WORDS)}, {"BOOL": True}, {"NULL": True}]},
        }},
        "events": {"L": [
            {"M": {"at": {"N": str(1_700_000_000 + rng.randint(0, 10**7))}, "kind": {"S": rng.choice(WORDS)},
                   "blob": {"B": rng.randbytes(8)}}}
            for _ in range(3)
        ] + [{"L": [{"N": _digits(rng, 20)}, {"SS": ["x", "y"]}]}]},
    }


def batch(start: int, stop: int) -> list[dict[str, Any]]:
    return [make_item(i) for i in range(start, stop)]


def split_range(count: int, parts: int) -> list[tuple[int, int]]:
    """``range(count)`` as at most ``parts`` contiguous, near-equal ``(start, stop)`` runs."""
    parts = max(1, min(parts, count)) if count else 1
    base, extra = divmod(count, parts)
    runs, start = [], 0
    for p in range(parts):
        size = base + (1 if p < extra else 0)
        runs.append((start, start + size))
        start += size
    return runs
