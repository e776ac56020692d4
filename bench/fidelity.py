"""Did a restored table get the items exactly? A sample compared with the generated ones, the first difference named."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from .shapes import HASH_KEY, key_of, make_item
from .verify import sample_indexes

SETS = ("SS", "NS", "BS")


def _number(text: str) -> Decimal | str:
    try:
        return Decimal(text)
    except InvalidOperation:
        return text


def _same_scalar(kind: str, a: Any, b: Any) -> bool:
    if kind == "N":
        return _number(a) == _number(b)
    if kind == "NS":
        return {_number(x) for x in a} == {_number(x) for x in b}
    if kind in SETS:
        return set(a) == set(b)
    return bool(a == b)


def first_difference(expected: Any, got: Any, path: str = "") -> str | None:
    """Where two client-form items (or values) first differ, as ``path: expected -> got``; None if equal.

    Numbers compare by value (the server may write 1.50 as 1.5), sets as sets.
    """
    if isinstance(expected, dict) and isinstance(got, dict) and not _typed(expected):
        for name in sorted(set(expected) | set(got)):
            where = f"{path}.{name}" if path else name
            if name not in got:
                return f"{where}: missing"
            if name not in expected:
                return f"{where}: unexpected {_short(got[name])}"
            found = first_difference(expected[name], got[name], where)
            if found:
                return found
        return None
    if _typed(expected) and _typed(got):
        (kind, a), = expected.items()
        (other, b), = got.items()
        if kind != other:
            return f"{path}: {kind} -> {other} ({_short(b)})"
        if kind == "M":
            return first_difference(a, b, path)
        if kind == "L":
            if len(a) != len(b):
                return f"{path}: list of {len(a)} -> {len(b)}"
            for n, (x, y) in enumerate(zip(a, b, strict=True)):
                found = first_difference(x, y, f"{path}[{n}]")
                if found:
                    return found
            return None
        return None if _same_scalar(kind, a, b) else f"{path}: {_short(a)} -> {_short(b)}"
    return None if expected == got else f"{path}: {_short(expected)} -> {_short(got)}"


def _typed(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in (
        "S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def sample_fidelity(ddb: Any, table: str, shape: str, count: int, size: int = 20) -> str:
    """``"20/20 exact"``, or how many of the sample differ and the first difference."""
    indexes = sample_indexes(count, size)
    if not indexes:
        return "0/0 exact"
    request: dict[str, Any] = {table: {"Keys": [{HASH_KEY: {"S": key_of(shape, i)}} for i in indexes]}}
    got: dict[str, Any] = {}
    while request:  # a server answers at most 16 MB (dynalite 1 MB) and returns the rest as UnprocessedKeys
        response = ddb.batch_get_item(RequestItems=request)
        got.update({item[HASH_KEY]["S"]: item for item in response["Responses"].get(table, [])})
        request = response.get("UnprocessedKeys") or {}
    first, bad = None, 0
    for i in indexes:
        item = got.get(key_of(shape, i))
        found = "missing item" if item is None else first_difference(make_item(shape, i), item)
        if found:
            bad += 1
            first = first or f"{key_of(shape, i)} {found}"
    return f"{len(indexes)}/{len(indexes)} exact" if not bad else f"{bad}/{len(indexes)} differ, e.g. {first}"
