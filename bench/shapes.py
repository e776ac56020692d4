"""The per-core bench's three item shapes (and an empty table, for each contender's start-up cost).

- ``small``: about 400 B, every DynamoDB type (S, N up to 38 digits, B, BOOL, NULL, SS, NS, BS, M, L);
- ``wide``: about 4 KB of nested maps and lists (S, N with more digits than a float holds, BOOL, NULL):
  what a JSON-only tool can carry, bar its numbers;
- ``large``: 100 KB of text in one string, compressing like prose.

Item ``i`` of a shape is the same on every run (seeded per item), in boto3's client form (binary as
``bytes``, numbers as strings). ``item_size`` is DynamoDB's own size of an item (what it bills and
limits to 400 KB, by ``formats.codec.item_size``), the "MB" of the per-MB figures.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from typing import Any

from dynamodb_backup.formats.codec import item_size

HASH_KEY = "pk"
WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliett",
         "kilo", "lima", "mike", "november", "oscar", "papa", "québec", "ロメオ", "sierra", "tango"]
TABLE_SPEC: dict[str, Any] = {
    "KeySchema": [{"AttributeName": HASH_KEY, "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": HASH_KEY, "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}
LARGE_TEXT_BYTES = 100_000

#: Items per shape at each --scale: 8 MB of small and wide items and 250 MB of large ones in full, 2.4 MB
#: reduced. Ours exports and converts large items at 150-300 MB per CPU-second: at 30 MB (300 items) a
#: run was 0.1-0.2 CPU-s of work in 1 CPU-s of start-up, and the figure moved with start-up's noise.
#: 2,500 items are 1-2 CPU-s of work, and DynamoDB Local holds them in memory (-inMemory) easily.
COUNTS: dict[str, dict[str, int]] = {
    "full": {"small": 20_000, "wide": 2_000, "large": 2_500, "empty": 0},
    "small": {"small": 6_000, "wide": 600, "large": 24, "empty": 0},
}


#: Bumped when a shape's items change, so that kept tables and pickles of the old items are not reused.
VERSION = {"small": 1, "wide": 1, "large": 2, "empty": 1}


def table_name(shape: str, count: int) -> str:
    return f"pc-{shape}-{count}" + (f"-v{VERSION[shape]}" if VERSION[shape] > 1 else "")


def key_of(shape: str, i: int) -> str:
    return f"{shape}-{i:09d}"


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _digits(rng: random.Random, n: int) -> str:
    return str(rng.randint(1, 9)) + "".join(str(rng.randint(0, 9)) for _ in range(n - 1))


def small_item(i: int) -> dict[str, Any]:
    rng = random.Random(i * 7919 + 1)
    return {
        HASH_KEY: {"S": key_of("small", i)},
        "seq": {"N": str(i)},
        "big": {"N": _digits(rng, 38)},
        "frac": {"N": f"-{rng.randint(0, 99999)}.{rng.randint(1, 999):03d}"},
        "tiny": {"N": f"{rng.randint(1, 9)}E-{rng.randint(10, 120)}"},
        "name": {"S": _words(rng, 6)},
        "note": {"S": _words(rng, 5) + ("\t\"q\"\u2028" if i % 13 == 0 else "")},
        "data": {"B": rng.randbytes(64)},
        "active": {"BOOL": bool(i % 2)},
        "gone": {"NULL": True},
        "tags": {"SS": sorted({rng.choice(WORDS) for _ in range(3)})},
        "scores": {"NS": sorted({str(rng.randint(-1000, 10**6)) for _ in range(3)} | {"0.5"})},
        "hashes": {"BS": [rng.randbytes(8), rng.randbytes(8) + b"\x00"]},
        "profile": {"M": {"city": {"S": rng.choice(WORDS).title()}, "zip": {"N": str(rng.randint(10000, 99999))},
                          "prefs": {"L": [{"S": rng.choice(WORDS)}, {"BOOL": True}, {"NULL": True}]}}},
        "events": {"L": [{"M": {"at": {"N": str(1_700_000_000 + rng.randint(0, 10**7))},
                                "kind": {"S": rng.choice(WORDS)}}} for _ in range(3)]},
    }


def wide_item(i: int) -> dict[str, Any]:
    rng = random.Random(i * 104729 + 2)
    sections = {
        f"section{s:02d}": {"M": {
            "title": {"S": _words(rng, 4)},
            "count": {"N": str(rng.randint(0, 10**9))},
            # 22 significant digits: exact in DynamoDB, rounded by a float.
            "ratio": {"N": f"{rng.randint(1, 99999)}.{_digits(rng, 17)}"},
            "flags": {"L": [{"BOOL": bool(s % 2)}, {"NULL": True}, {"N": str(rng.randint(-99, 99))}]},
            "labels": {"L": [{"S": rng.choice(WORDS)} for _ in range(4)]},
            "owner": {"M": {"name": {"S": _words(rng, 2)}, "id": {"N": str(rng.randint(1, 10**6))}}},
        }} for s in range(25)
    }
    return {HASH_KEY: {"S": key_of("wide", i)}, "seq": {"N": str(i)}, "doc": {"M": sections}}


#: The large shape's words: 5,000 made-up words with English's letter frequencies, drawn by Zipf's law,
#: so that the text compresses like prose (zlib level 6 leaves 34 %; a 20-word vocabulary left 15 %,
#: and compressed twice as fast as prose does).
_LETTERS = "etaoinshrdlcumwfgypbvkjxqz"
_LETTER_WEIGHTS = [12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.4, 2.2, 2.0, 2.0, 1.9,
                   1.5, 1.0, 0.8, 0.2, 0.2, 0.1, 0.1]
_vocab_rng = random.Random(2024)
VOCABULARY = ["".join(_vocab_rng.choices(_LETTERS, _LETTER_WEIGHTS, k=_vocab_rng.choice(
    [1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12]))) for _ in range(5000)]
_ZIPF = list(itertools.accumulate(1.0 / rank for rank in range(1, len(VOCABULARY) + 1)))


def prose(rng: random.Random, size: int) -> str:
    """``size`` characters of sentence-shaped text (words, numbers, punctuation, line breaks)."""
    out, length = [], 0
    while length < size:
        words = rng.choices(VOCABULARY, cum_weights=_ZIPF, k=rng.randint(6, 20))
        words[0] = words[0].capitalize()
        if rng.random() < 0.3:
            words.insert(rng.randrange(len(words)), str(rng.randint(0, 10 ** rng.randint(1, 6))))
        sentence = " ".join(words) + rng.choice([". ", ". ", ", ", "; ", "? ", ".\n"])
        out.append(sentence)
        length += len(sentence)
    return "".join(out)[:size]


def large_item(i: int) -> dict[str, Any]:
    rng = random.Random(i * 15485863 + 3)
    return {HASH_KEY: {"S": key_of("large", i)}, "seq": {"N": str(i)}, "body": {"S": prose(rng, LARGE_TEXT_BYTES)}}


GENERATORS: dict[str, Callable[[int], dict[str, Any]]] = {
    "small": small_item, "wide": wide_item, "large": large_item, "empty": small_item,
}
#: The DynamoDB types each shape holds (what a peer must carry to carry the shape).
TYPES = {
    "small": "S, N (38 digits, 1E-120), B, BOOL, NULL, SS, NS, BS, M, L",
    "wide": "S, N (22 significant digits), BOOL, NULL, M, L",
    "large": "S (100 KB of text), N",
    "empty": "-",
}


def make_item(shape: str, i: int) -> dict[str, Any]:
    return GENERATORS[shape](i)


def shape_bytes(shape: str, count: int) -> int:
    return sum(item_size(make_item(shape, i)) for i in range(count))
