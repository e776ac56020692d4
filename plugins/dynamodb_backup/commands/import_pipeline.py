"""``import-pipeline``: turn AWS Data Pipeline definitions into backups.yaml entries (printed, nothing written)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dynamodb_backup.commands import Subparsers
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.migrate.definition import read_definition
from dynamodb_backup.migrate.mapping import Mapping, map_definition
from dynamodb_backup.migrate.render import render


def register(subparsers: Subparsers) -> None:
    p = subparsers.add_parser(
        "import-pipeline", help="print backups.yaml entries for AWS Data Pipeline definitions",
        description="Read pipeline definitions (a definition file, a console template, or what `aws datapipeline "
                    "get-pipeline-definition` prints) and print the backups.yaml entries they become. What does "
                    "not map is a '# NOT MAPPED' comment with the reason; a definition that gives no entry is "
                    "named on stderr.")
    p.add_argument("files", nargs="+", metavar="FILE", help="pipeline definition JSON files")
    p.add_argument("--parameter-values", action="append", default=[], metavar="ID=VALUE",
                   help="a parameter's value, as for `aws datapipeline put-pipeline-definition` (repeatable); "
                        "overrides the file's values")
    p.add_argument("--parameter-values-uri", metavar="FILE",
                   help='a {"values": {...}} file of parameter values (file:// optional)')
    p.set_defaults(run=run)


def _read_json(path: str, what: str) -> object:
    path = path.removeprefix("file://")
    try:
        return json.loads(Path(path).read_text())
    except OSError as exc:
        raise ParameterError(f"{what}: cannot read {path} ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise ParameterError(f"{what}: {path} line {exc.lineno}: not JSON ({exc.msg})") from None


def _given_values(args: argparse.Namespace) -> dict[str, str]:
    values: dict[str, str] = {}
    if args.parameter_values_uri:
        doc = _read_json(args.parameter_values_uri, "--parameter-values-uri")
        found = doc.get("values") if isinstance(doc, dict) else None
        if not isinstance(found, dict):
            raise ParameterError(f"--parameter-values-uri: {args.parameter_values_uri}: expected "
                                 '{"values": {...}}')
        values.update({str(k): str(v) for k, v in found.items()})
    for item in args.parameter_values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ParameterError(f"--parameter-values: {item!r} is not ID=VALUE")
        values[key] = value
    return values


def run(args: argparse.Namespace) -> int:
    given = _given_values(args)
    mappings: list[Mapping] = []
    tables: dict[str, str] = {}
    for path in args.files:
        definition = read_definition(_read_json(path, "FILE"), path)
        definition.values.update(given)
        mapping = map_definition(definition)
        for entry in list(mapping.entries):  # the loader refuses a table listed twice
            table = entry.settings["table"]
            if table in tables:
                mapping.entries.remove(entry)
                mapping.skipped.append(f"{entry.source}: table {table!r} is already the entry from {tables[table]}; "
                                       f"left out (merge the two by hand)")
            else:
                tables[table] = entry.source
        mappings.append(mapping)
    print(render(mappings), end="")
    for mapping in mappings:
        for line in mapping.skipped:
            print(f"not mapped: {line}", file=sys.stderr)
    return 0 if tables else 1
