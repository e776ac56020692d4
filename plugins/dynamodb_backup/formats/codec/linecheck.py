"""One walk over a Data Pipeline line: validated, sized and put in canonical form at once.

Why: a restore's validation pass decoded each line to client form, walked it again to
validate it, and a third time to canonicalise it for the digest, parsing every number twice;
on small items of every type that was most of a restore's client CPU. This walk does the three
jobs at once, straight from the parsed JSON (binary stays base64 text, numbers are parsed once).

It is only a fast path. It must never accept what :func:`datapipeline.decode_line` refuses,
and its canonical form must be :func:`canonical.canonical_bytes`'s; when it meets anything
unusual (a Hive-era line, an odd type-key spelling, any error) it answers ``None`` and the
caller takes the reference path, which then names the problem exactly as before.
``tests/unit/test_linecheck.py`` holds the two paths to each other on generated items and on
every bad line of the codec's tests.
"""

from __future__ import annotations

import binascii
from typing import Any

import orjson

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec.decimals import is_normal_number, normal_number_size, number_text, parse_number
from dynamodb_backup.formats.codec.validate import MAX_ITEM_BYTES, MAX_NESTING_LEVEL
from dynamodb_backup.formats.codec.wireform import OPENING, TYPE_SPELLINGS

Canonical = dict[str, list[Any]]
"""An item's canonical form: attribute name -> ``[TYPE, canonical value]`` (see ``canonical._canon``)."""

_WHITESPACE = b" \t\r\n\f\v"
#: Longer lines are not converted byte-wise: a 100 KB line holds few typed values, which parsing
#: converts cheaply, while counting and renaming openings would search all of it ten times.
BYTEWISE_MAX_LINE = 16 * 1024


class _Unusual(Exception):
    """Internal: leave this line to the reference path."""


def _base64(text: object) -> tuple[str, int]:
    """Canonical base64 of a strict base64 string, and the length of its bytes."""
    if type(text) is not str:
        raise _Unusual
    try:
        raw = binascii.a2b_base64(text, strict_mode=True)
    except ValueError:  # binascii.Error, or text that is not ASCII
        raise _Unusual from None
    canonical = binascii.b2a_base64(raw, newline=False).decode("ascii")
    return canonical, len(raw)


def _number(text: object) -> tuple[str, int]:
    """Normalised text of a number and the bytes DynamoDB charges for it."""
    if type(text) is not str:
        raise _Unusual
    if is_normal_number(text):  # most numbers: already canonical text, digits counted without parsing
        return text, normal_number_size(text)
    try:
        negative, digits, exponent = parse_number(text)
    except CodecError:
        raise _Unusual from None
    return number_text(negative, digits, exponent), (len(digits) + 1) // 2 + 1


def _value(v: Any, level: int, tally: list[int]) -> tuple[list[Any], int]:
    """One typed value in Data Pipeline's spelling -> (its canonical form, its size in bytes)."""
    ((k, x),) = v.items()  # not exactly one type key: ValueError, and the reference path names it
    if k == "s":
        if type(x) is not str:
            raise _Unusual
        return ["S", x], len(x.encode("utf-8"))
    if k == "n":
        text, size = _number(x)
        return ["N", text], size
    if k == "m":
        if type(x) is not dict or (level >= MAX_NESTING_LEVEL and x):
            raise _Unusual
        out, size = _entries(x, level + 1, tally)
        return ["M", out], 3 + len(x) + size
    if k == "l":
        if type(x) is not list or (level >= MAX_NESTING_LEVEL and x):
            raise _Unusual
        members, size = _members(x, level + 1, tally)
        return ["L", members], 3 + len(x) + size
    if k == "b":
        text, size = _base64(x)
        return ["B", text], size
    if k == "bOOL":
        if type(x) is not bool:
            raise _Unusual
        return ["BOOL", x], 1
    if k == "nULL":
        if x is not True:
            raise _Unusual
        return ["NULL", True], 1
    if type(x) is not list or not x:
        raise _Unusual
    if k == "sS":
        size = 0
        for s in x:
            if type(s) is not str:
                raise _Unusual
            size += len(s.encode("utf-8"))
        if len(set(x)) != len(x):
            raise _Unusual
        return ["SS", sorted(x)], size
    if k == "nS":
        numbers = [_number(n) for n in x]
        texts = [t for t, _ in numbers]
        if len(set(texts)) != len(texts):  # normalised text is equal exactly when values are
            raise _Unusual
        return ["NS", sorted(texts)], sum(s for _, s in numbers)
    if k == "bS":
        encoded = [_base64(b) for b in x]
        texts = [t for t, _ in encoded]
        if len(set(texts)) != len(texts):
            raise _Unusual
        return ["BS", sorted(texts)], sum(s for _, s in encoded)
    raise _Unusual  # another spelling of a type key ("S", "Ss", ...): the reference path reads it


def _entries(x: dict[str, Any], level: int, tally: list[int]) -> tuple[dict[str, Any], int]:
    """A map's (or the item's) values -> (canonical map, bytes of its names and values).

    Strings and numbers, most values, are handled here without a call each (wide items hold
    hundreds); everything else goes through :func:`_value`.
    """
    tally[0] += len(x)
    if not TYPE_SPELLINGS.isdisjoint(x):
        tally[1] += 1
    out: dict[str, Any] = {}
    size = 0
    for name, v in x.items():
        if type(v) is not dict:
            raise _Unusual
        ((k, y),) = v.items()
        if k == "s" and type(y) is str:
            out[name] = ["S", y]
            size += len(name.encode("utf-8")) + len(y.encode("utf-8"))
        elif k == "n" and type(y) is str and is_normal_number(y):
            out[name] = ["N", y]
            size += len(name.encode("utf-8")) + normal_number_size(y)
        else:
            out[name], inner = _value(v, level, tally)
            size += len(name.encode("utf-8")) + inner
    return out, size


def _members(x: list[Any], level: int, tally: list[int]) -> tuple[list[Any], int]:
    """A list's values -> (canonical list, bytes of its values); strings and numbers inline, as in _entries."""
    tally[0] += len(x)
    out: list[Any] = []
    size = 0
    for v in x:
        if type(v) is not dict:
            raise _Unusual
        ((k, y),) = v.items()
        if k == "s" and type(y) is str:
            out.append(["S", y])
            size += len(y.encode("utf-8"))
        elif k == "n" and type(y) is str and is_normal_number(y):
            out.append(["N", y])
            size += normal_number_size(y)
        else:
            canon, inner = _value(v, level, tally)
            out.append(canon)
            size += inner
    return out, size


def check_line(line: bytes) -> tuple[Canonical, int, bool] | None:
    """A valid Data Pipeline JSON line -> (its item's canonical form, its size, whether it converts byte-wise);
    ``None`` for the reference path.

    ``None`` says nothing about validity: the caller decodes the line the reference way, which
    either reads it (an unusual spelling) or raises the error that names what is wrong.

    Byte-wise: ``wireform.wire_bytes_of_compact_line`` gives the line's wire form exactly. True
    when no attribute or map key is named like a type key and every typed value opens with its
    compact ``{"s":`` (their count in the bytes equals the typed values walked): then every such
    opening in the line is a typed value's, and nothing else is.
    """
    data = line.strip(_WHITESPACE)
    if not data or b"\x03" in data:
        return None
    try:
        obj = orjson.loads(data)
        if type(obj) is not dict:
            return None
        if "" in obj:  # DynamoDB refuses an empty attribute name
            return None
        tally = [0, 0]  # typed values walked, containers with a key named like a type key
        out, size = _entries(obj, 1, tally)
    except (_Unusual, ValueError, RecursionError):  # orjson.JSONDecodeError and UnicodeEncodeError are ValueErrors
        return None
    if size > MAX_ITEM_BYTES:
        return None
    bytewise = (len(data) <= BYTEWISE_MAX_LINE and tally[1] == 0
                and len(OPENING.findall(data)) == tally[0])
    return out, size, bytewise
