"""Data Pipeline's ``#{...}`` expressions, resolved as far as a definition allows.

``#{myParam}`` is a parameter's value; ``#{input.tableName}``/``#{output.directoryPath}`` the field of the object
the activity's ``input``/``output`` names. The run's moment (``@scheduledStartTime`` in ``format(...)``) is kept
as a marker: it is the dated folder, which our layout names the same way.
"""

from __future__ import annotations

import re

from dynamodb_backup.migrate.definition import Definition, Ref

EXPRESSION = re.compile(r"#\{([^}]*)\}")
DATE_FORMAT = re.compile(r"^format\(\s*(?:node\.)?@scheduledStartTime\s*,\s*'([^']*)'\s*\)$")
#: Where a ``format(@scheduledStartTime, pattern)`` stood: the pattern between the markers.
DATE_OPEN, DATE_CLOSE = "\x00date:", "\x00"


class Unresolved(ValueError):
    """An expression the definition gives no value for (said in the message)."""


def resolve(definition: Definition, text: str, oid: str, depth: int = 0) -> str:
    """``text`` (a field of object ``oid``) with every expression replaced; raises Unresolved naming the first
    one without a value."""
    if depth > 10:
        raise Unresolved(f"{text!r}: expressions refer to each other in a loop")
    if "#{" in text and text.count("#{") != len(EXPRESSION.findall(text)):
        raise Unresolved(f"{text!r}: an expression without its closing brace")

    def one(match: re.Match[str]) -> str:
        inner = match.group(1).strip()
        date = DATE_FORMAT.match(inner)
        if date:
            return f"{DATE_OPEN}{date.group(1)}{DATE_CLOSE}"
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", inner):
            value = definition.parameter(inner)
            if value is None:
                raise Unresolved(f"parameter {inner} has no value and no default (give --parameter-values "
                                 f"{inner}=...)")
            return resolve(definition, value, oid, depth + 1)
        ref = re.fullmatch(r"(input|output|node)\.([A-Za-z_][A-Za-z0-9_]*)", inner)
        if ref:
            target = definition.first(oid, ref.group(1), Ref)
            if target is None:
                raise Unresolved(f"#{{{inner}}}: object {oid} has no {ref.group(1)}")
            value = definition.first(target.id, ref.group(2), str)
            if value is None:
                raise Unresolved(f"#{{{inner}}}: object {target.id} has no {ref.group(2)}")
            return resolve(definition, value, target.id, depth + 1)
        raise Unresolved(f"#{{{inner}}}: an expression this tool does not evaluate")

    return EXPRESSION.sub(one, text)


def split_date(path: str) -> tuple[str, str | None, str]:
    """``<output>/<date marker>`` -> (output, the date pattern, what follows it); no marker: (path, None, "")."""
    start = path.find(DATE_OPEN)
    if start < 0:
        return path, None, ""
    end = path.index(DATE_CLOSE, start + len(DATE_OPEN))
    return path[:start], path[start + len(DATE_OPEN):end], path[end + 1:]
