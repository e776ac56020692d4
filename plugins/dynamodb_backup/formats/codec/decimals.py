"""DynamoDB numbers, read exactly: split into digits and exponent, checked, normalised, sized.

Why: a number must never pass through float (``22163.54939092668587840`` keeps its 22 digits), and
DynamoDB's own rules (38 significant digits, magnitudes 1E-130 to 9.99...E+125) should fail on the
line that breaks them, not in a BatchWriteItem. Equal values give equal normalised text, which the
digests rely on.
"""

from __future__ import annotations

import re
from decimal import Decimal

from dynamodb_backup.errors import CodecError, show

MAX_NUMBER_DIGITS = 38
MIN_ADJUSTED_EXPONENT = -130  # 1E-130
MAX_ADJUSTED_EXPONENT = 125  # 9.99...9E+125 (38 nines)

_NUMBER_RE = re.compile(
    r"(?P<sign>[+-]?)(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?(?:[eE](?P<exp>[+-]?[0-9]+))?",
    re.ASCII,
)


def parse_number(s: str) -> tuple[bool, str, int]:
    """Split a DynamoDB number into (negative, significant digits, exponent).

    The value is ``(-1 if negative) * int(digits) * 10**exponent``; digits carry no
    leading or trailing zeros, so equal values give equal tuples. Zero is
    ``(False, "", 0)``. Raises :class:`CodecError` for syntax or range errors.
    """
    # Most numbers in a backup are plain integers ("42", "-7"): split them without the regex
    # (a restore parses every number twice, to validate and to digest it). isascii: isdigit
    # alone accepts other scripts' digits, which the regex refuses.
    if type(s) is str and s.isascii():
        body = s[1:] if s[:1] == "-" else s
        if body.isdigit():
            digits = body.lstrip("0")
            if not digits:
                return (False, "", 0)
            stripped = digits.rstrip("0")
            if len(stripped) <= MAX_NUMBER_DIGITS and len(digits) - 1 <= MAX_ADJUSTED_EXPONENT:
                return (body is not s, stripped, len(digits) - len(stripped))
        else:  # "-123.4500": a plain fraction, also without the regex; anything else takes it
            whole, point, frac = body.partition(".")
            if point and (whole or frac) and (not whole or whole.isdigit()) and (not frac or frac.isdigit()):
                digits = (whole + frac).lstrip("0")
                if not digits:
                    return (False, "", 0)
                stripped = digits.rstrip("0")
                exponent = len(digits) - len(stripped) - len(frac)
                adjusted = exponent + len(stripped) - 1
                if (len(stripped) <= MAX_NUMBER_DIGITS
                        and MIN_ADJUSTED_EXPONENT <= adjusted <= MAX_ADJUSTED_EXPONENT):
                    return (body is not s, stripped, exponent)
    m = _NUMBER_RE.fullmatch(s) if isinstance(s, str) else None
    if m is None or not (m["int"] or m["frac"]):
        raise CodecError(f"invalid number {show(s)}: expected digits with optional sign, "
                         "fraction and exponent")
    frac = m["frac"] or ""
    exp_text = (m["exp"] or "0").lstrip("+-").lstrip("0")
    if len(exp_text) > 9:
        raise CodecError(f"invalid number {show(s)}: exponent out of range")
    exponent = int(m["exp"] or "0") - len(frac)
    digits = (m["int"] + frac).lstrip("0")
    if not digits:
        return (False, "", 0)
    stripped = digits.rstrip("0")
    exponent += len(digits) - len(stripped)
    if len(stripped) > MAX_NUMBER_DIGITS:
        raise CodecError(f"invalid number {show(s)}: {len(stripped)} significant digits, "
                         f"at most {MAX_NUMBER_DIGITS} allowed")
    adjusted = exponent + len(stripped) - 1
    if adjusted > MAX_ADJUSTED_EXPONENT:
        raise CodecError(f"invalid number {show(s)}: magnitude larger than "
                         "9.9999999999999999999999999999999999999E+125")
    if adjusted < MIN_ADJUSTED_EXPONENT:
        raise CodecError(f"invalid number {show(s)}: magnitude smaller than 1E-130")
    return (m["sign"] == "-", stripped, exponent)


def validate_number(s: str) -> None:
    """Raise :class:`CodecError` unless DynamoDB would store ``s`` as a number."""
    parse_number(s)


def normalize_number(s: str) -> str:
    """Canonical plain-decimal text of a number: ``"001.500"`` -> ``"1.5"``, ``"1e2"`` -> ``"100"``.

    Exact (built from the digit string, never a float); ``-0`` becomes ``"0"``.
    """
    if is_normal_number(s):
        return s
    return number_text(*parse_number(s))


def is_normal_number(s: object) -> bool:
    """True when ``s`` is already :func:`normalize_number`'s text of a valid number, as DynamoDB returns them.

    A cheap check (no parsing) for the common case: ``"0"``, ``"-12"``, ``"1200"``, ``"-0.05"``,
    ``"12.5"`` with at most 38 characters (so within DynamoDB's digits and magnitudes). False only
    means "not known": the caller parses.
    """
    if type(s) is not str or not 0 < len(s) <= 38 or not s.isascii():
        return False
    body = s[1:] if s[0] == "-" else s
    whole, point, frac = body.partition(".")
    if not whole.isdigit() or (whole[0] == "0" and (len(whole) > 1 or (not point and body is not s))):
        return False  # no digits before the point, a leading zero, or "-0"
    return not point or (frac.isdigit() and frac[-1] != "0")


def number_text(negative: bool, digits: str, exponent: int) -> str:
    """Plain-decimal text of :func:`parse_number`'s parts (what :func:`normalize_number` returns)."""
    if not digits:
        return "0"
    sign = "-" if negative else ""
    if exponent >= 0:  # a whole number: its digits and zeros, as Decimal's "f" format writes it
        return f"{sign}{digits}{'0' * exponent}"
    if len(digits) > -exponent:  # a point inside the digits: "12345", -2 -> "123.45"
        return f"{sign}{digits[:exponent]}.{digits[exponent:]}"
    return format(Decimal(f"{sign}{digits}E{exponent}"), "f")


def normal_number_size(text: str) -> int:
    """:func:`number_size` of a number :func:`is_normal_number` accepts, without parsing it."""
    return (len(text.replace("-", "").replace(".", "").strip("0")) + 1) // 2 + 1


def number_size(s: str) -> int:
    """Bytes DynamoDB charges for a number: 1 per two significant digits, rounded up, plus 1."""
    return (len(parse_number(s)[1]) + 1) // 2 + 1
