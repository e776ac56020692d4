#!/usr/bin/env python
"""Apply an ``airflow_settings.yaml``-style file (connections, pools, variables) to Airflow's database.

Two files use it: ``include/local-airflow-settings.yaml`` (the local stack only: ``make run``,
``make airflow``, ``make airflow-celery``) and ``airflow_settings.yaml`` (what docker
compose's ``airflow-init`` and the Helm chart's migration job store: the pool only). The format::

    airflow:
      connections:
        - conn_id: aws_default
          conn_type: aws
          conn_host:            # optional, like conn_schema, conn_login,
          conn_password:        # conn_port and conn_description
          conn_extra:           # a mapping or a JSON string
            region_name: us-east-1
            service_config:
              s3: {endpoint_url: "${AWS_ENDPOINT_URL_S3:-http://127.0.0.1:4572}"}
      pools:
        - pool_name: dynamodb_export
          pool_slot: 4
          pool_description: Parallel DynamoDB export segments
      variables:
        - variable_name: backup_bucket
          variable_value: my-bucket

Every string value may use ``${VAR}`` (error if VAR is unset), ``${VAR:-default}``
(default if VAR is unset or empty) or ``${VAR-default}`` (default if VAR is
unset); defaults may nest (``${A:-${B}}``) and ``$${`` stands for a literal ``${``.
Substitution happens after YAML (and ``conn_extra`` JSON) parsing, so substituted
values never need quoting.

Entries whose fields are all empty (placeholders) are skipped.  Besides the keys
above, ``conn_description``, ``pool_include_deferred`` and ``variable_description``
are accepted; any other key is an error.
Non-string variable values are stored as JSON (``true``, ``5``, ``{"a": 1}``).

Errors name the file and the entry, with 0-based indexes::

    airflow_settings.yaml: connections[1]: missing conn_id

Usage::

    python include/airflow_settings_loader.py [path]              # apply (create or update)
    python include/airflow_settings_loader.py [path] --check      # validate only, no Airflow import
    python include/airflow_settings_loader.py [path] --print-env  # print AIRFLOW_CONN_* exports

Parsing (:func:`load_settings`) and :func:`connection_env` need no Airflow;
:func:`apply_settings` writes to the Airflow metadata database through the ORM
(``Connection``, ``Pool.create_or_update_pool``, ``Variable.set``), so re-running
it updates entries instead of failing.  It uses the database configured for the
current process (``AIRFLOW_HOME`` / ``AIRFLOW__DATABASE__SQL_ALCHEMY_CONN``),
which must already be migrated (``airflow db migrate``).  It refuses to store a
connection holding a secret (a password, or an extra key Airflow masks) while Airflow
has no Fernet key (``AIRFLOW__CORE__FERNET_KEY``): Airflow would store it in clear.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SETTINGS_PATH = REPO_ROOT / "include" / "local-airflow-settings.yaml"

CONNECTION_KEYS = (
    "conn_id",
    "conn_type",
    "conn_host",
    "conn_schema",
    "conn_login",
    "conn_password",
    "conn_port",
    "conn_extra",
    "conn_description",
)
POOL_KEYS = ("pool_name", "pool_slot", "pool_description", "pool_include_deferred")
VARIABLE_KEYS = ("variable_name", "variable_value", "variable_description")
SECTIONS = ("connections", "pools", "variables")

# Airflow's own rule for keys (airflow.utils.helpers.KEY_REGEX), max 200 chars for conn ids.
_KEY_RE = re.compile(r"^[\w.-]+$")
T = TypeVar("T")
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BOOL_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False, "": False}
# Extra keys Airflow's secrets masker treats as secrets (airflow's DEFAULT_SENSITIVE_FIELDS), matched as it
# does: a key containing one of these words, case-insensitively.
SENSITIVE_WORDS = ("access_token", "api_key", "apikey", "authorization", "passphrase", "passwd", "password",
                   "private_key", "secret", "token", "keyfile_dict", "service_account")


class SettingsError(ValueError):
    """The settings file is invalid; ``errors`` holds one message per problem."""

    def __init__(self, errors: Sequence[str]):
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))


@dataclass(frozen=True)
class ConnectionSetting:
    conn_id: str
    conn_type: str
    host: str | None = None
    schema: str | None = None
    login: str | None = None
    password: str | None = None
    port: int | None = None
    extra: dict[str, Any] | None = None
    description: str | None = None

    def secret_fields(self) -> list[str]:
        """The fields Airflow would store in clear without a Fernet key: the password, sensitive extra keys."""
        found = ["conn_password"] if self.password else []
        return found + [f"conn_extra.{key}" for key in _sensitive_keys(self.extra)]

    def to_json(self) -> str:
        """Airflow's JSON connection format (for ``AIRFLOW_CONN_<ID>``)."""
        data: dict[str, Any] = {"conn_type": self.conn_type}
        for key in ("description", "host", "schema", "login", "password", "port", "extra"):
            value = getattr(self, key)
            if value is not None:
                data[key] = value
        return json.dumps(data, sort_keys=True)


def _sensitive_keys(value: Any, path: str = "") -> list[str]:
    if not isinstance(value, dict):
        return []
    found: list[str] = []
    for key, item in value.items():
        name = f"{path}{key}"
        if any(word in str(key).lower() for word in SENSITIVE_WORDS) and item not in (None, ""):
            found.append(name)
        found += _sensitive_keys(item, name + ".")
    return found


@dataclass(frozen=True)
class PoolSetting:
    name: str
    slots: int
    description: str = ""
    include_deferred: bool = False


@dataclass(frozen=True)
class VariableSetting:
    key: str
    value: str
    description: str | None = None


@dataclass(frozen=True)
class Settings:
    source: str
    connections: tuple[ConnectionSetting, ...] = ()
    pools: tuple[PoolSetting, ...] = ()
    variables: tuple[VariableSetting, ...] = ()


@dataclass
class ApplyResult:
    """What :func:`apply_settings` did: ``(kind, name, "created" | "updated")`` tuples."""

    actions: list[tuple[str, str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f"{kind} {name}: {action}" for kind, name, action in self.actions)


# --------------------------------------------------------------------------- parsing


class _Ctx:
    """Collects errors, prefixed with the file and entry they belong to."""

    def __init__(self, source: str, environ: Mapping[str, str]):
        self.source = source
        self.environ = environ
        self.errors: list[str] = []

    def error(self, where: str, message: str) -> None:
        self.errors.append(f"{self.source}: {where}: {message}" if where else f"{self.source}: {message}")


def substitute(value: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$${`` in ``value``.

    Defaults may hold further substitutions (``${A:-${B}}``); they are expanded
    only when used.  Raises ``KeyError`` (with the variable name) for an unset
    variable without a default and ``ValueError`` for malformed syntax.
    """
    text, _ = _expand(value, 0, environ, nested=False, evaluate=True)
    return text


def _expand(s: str, i: int, environ: Mapping[str, str], *, nested: bool, evaluate: bool) -> tuple[str, int]:
    """Expand ``s`` from ``i``; if ``nested``, stop after the closing ``}``."""
    buf: list[str] = []
    while i < len(s):
        if s.startswith("$${", i):
            buf.append("${")
            i += 3
        elif s.startswith("${", i):
            start = i
            name_match = _NAME_RE.match(s, i + 2)
            if name_match is None:
                raise ValueError(f"bad substitution at {s[start : start + 12]!r} in {s!r}")
            name = name_match.group(0)
            i = name_match.end()
            current = environ.get(name)
            if s.startswith("}", i):
                i += 1
                if evaluate and current is None:
                    raise KeyError(name)
                if evaluate:
                    buf.append(str(current))
                continue
            op = ":-" if s.startswith(":-", i) else "-" if s.startswith("-", i) else None
            if op is None:
                if i >= len(s):
                    raise ValueError(f"unterminated '${{' in {s!r}")
                raise ValueError(f"bad substitution at {s[start : i + 1]!r} in {s!r}")
            use_default = not current if op == ":-" else current is None
            default, i = _expand(s, i + len(op), environ, nested=True, evaluate=evaluate and use_default)
            if evaluate:
                buf.append(default if use_default else str(current))
        elif nested and s[i] == "}":
            return "".join(buf), i + 1
        else:
            buf.append(s[i])
            i += 1
    if nested:
        raise ValueError(f"unterminated '${{' in {s!r}")
    return "".join(buf), i


def _subst_tree(value: Any, ctx: _Ctx, where: str, path: str) -> Any:
    """Substitute in every string inside ``value`` (dict values, list items)."""
    if isinstance(value, str):
        try:
            return substitute(value, ctx.environ)
        except KeyError as exc:
            name = exc.args[0]
            ctx.error(
                where,
                f"{path}: environment variable {name} is not set (write ${{{name}:-default}} to give a default)",
            )
        except ValueError as exc:
            ctx.error(where, f"{path}: {exc}")
        return value
    if isinstance(value, dict):
        return {k: _subst_tree(v, ctx, where, f"{path}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_subst_tree(v, ctx, where, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, str | dict | list) and len(value) == 0)


def _entries(
    raw: Any, section: str, keys: Sequence[str], ctx: _Ctx, parse: Callable[[str, dict[str, Any], _Ctx], T | None]
) -> list[T]:
    """Validate the list shape and the keys of a section, then ``parse`` each entry."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        ctx.error(f"airflow.{section}", f"must be a list, not {type(raw).__name__}")
        return []
    out: list[T] = []
    for index, entry in enumerate(raw):
        where = f"{section}[{index}]"
        if entry is None:
            continue
        if not isinstance(entry, dict):
            ctx.error(where, f"must be a mapping, not {type(entry).__name__}")
            continue
        if all(_is_blank(v) for v in entry.values()):
            continue  # a template's placeholder
        unknown = [str(k) for k in entry if k not in keys]
        name_key = keys[0]
        if isinstance(entry.get(name_key), str) and entry[name_key]:
            where = f"{where} ({entry[name_key]})"
        if unknown:
            ctx.error(where, f"unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(keys)})")
        parsed = parse(where, {k: _subst_tree(v, ctx, where, str(k)) for k, v in entry.items()}, ctx)
        if parsed is not None and not unknown:
            out.append(parsed)
    return out


def _opt_str(entry: dict[str, Any], key: str, ctx: _Ctx, where: str) -> str | None:
    value = entry.get(key)
    if value is None:
        return None
    if isinstance(value, dict | list):
        ctx.error(where, f"{key} must be a string, not {type(value).__name__}")
        return None
    if isinstance(value, bool):
        value = str(value).lower()
    text = str(value)
    return text if text != "" else None


def _req_name(entry: dict[str, Any], key: str, ctx: _Ctx, where: str, max_len: int = 250) -> str | None:
    value = _opt_str(entry, key, ctx, where)
    if value is None:
        ctx.error(where, f"missing {key}")
        return None
    if not _KEY_RE.match(value) or len(value) > max_len:
        ctx.error(
            where,
            f"{key} {value!r} must be at most {max_len} letters, digits, '_', '.' or '-'",
        )
        return None
    return value


def _opt_int(
    entry: dict[str, Any], key: str, ctx: _Ctx, where: str, minimum: int, maximum: int | None = None
) -> int | None:
    value = entry.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool | float | dict | list):
        ctx.error(where, f"{key} must be an integer, not {value!r}")
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        ctx.error(where, f"{key} must be an integer, not {value!r}")
        return None
    if number < minimum or (maximum is not None and number > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f">= {minimum}"
        ctx.error(where, f"{key} must be {bound}, not {number}")
        return None
    return number


def _parse_extra(value: Any, ctx: _Ctx, where: str) -> dict[str, Any] | None:
    if _is_blank(value):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            ctx.error(where, f"conn_extra is not valid JSON: {exc}")
            return None
        # Strings inside a JSON string were not substituted yet.
        value = _subst_tree(value, ctx, where, "conn_extra")
    if not isinstance(value, dict):
        ctx.error(where, f"conn_extra must be a mapping or a JSON object, not {type(value).__name__}")
        return None
    return value


def _parse_connection(where: str, entry: dict[str, Any], ctx: _Ctx) -> ConnectionSetting | None:
    before = len(ctx.errors)
    conn_id = _req_name(entry, "conn_id", ctx, where, max_len=200)
    conn_type = _opt_str(entry, "conn_type", ctx, where)
    if conn_type is None:
        ctx.error(where, "missing conn_type")
    port = _opt_int(entry, "conn_port", ctx, where, 0, 65535)
    extra = _parse_extra(entry.get("conn_extra"), ctx, where)
    fields = {
        key: _opt_str(entry, f"conn_{key}", ctx, where)
        for key in ("host", "schema", "login", "password", "description")
    }
    if len(ctx.errors) > before or conn_id is None or conn_type is None:
        return None
    return ConnectionSetting(conn_id=conn_id, conn_type=conn_type, port=port, extra=extra, **fields)


def _parse_pool(where: str, entry: dict[str, Any], ctx: _Ctx) -> PoolSetting | None:
    before = len(ctx.errors)
    name = _req_name(entry, "pool_name", ctx, where)
    slots: int | None = None
    if entry.get("pool_slot") in (None, ""):
        ctx.error(where, "missing pool_slot")
    else:
        slots = _opt_int(entry, "pool_slot", ctx, where, -1)  # -1 = unlimited
    description = _opt_str(entry, "pool_description", ctx, where) or ""
    deferred = entry.get("pool_include_deferred")
    if isinstance(deferred, str):  # e.g. after ${VAR} substitution
        deferred = _BOOL_WORDS.get(deferred.strip().lower(), deferred)
    if deferred is None:
        deferred = False
    if not isinstance(deferred, bool):
        ctx.error(where, f"pool_include_deferred must be true or false, not {deferred!r}")
    if len(ctx.errors) > before or name is None or slots is None:
        return None
    return PoolSetting(name=name, slots=slots, description=description, include_deferred=bool(deferred))


def _parse_variable(where: str, entry: dict[str, Any], ctx: _Ctx) -> VariableSetting | None:
    before = len(ctx.errors)
    key = _req_name(entry, "variable_name", ctx, where)
    if "variable_value" not in entry or entry["variable_value"] is None:
        ctx.error(where, "missing variable_value")
        value = None
    elif isinstance(entry["variable_value"], str):
        value = entry["variable_value"]
    else:
        value = json.dumps(entry["variable_value"], sort_keys=True, default=str)
    description = _opt_str(entry, "variable_description", ctx, where)
    if len(ctx.errors) > before or key is None or value is None:
        return None
    return VariableSetting(key=key, value=value, description=description)


def parse_settings(data: Any, source: str, environ: Mapping[str, str] | None = None) -> Settings:
    """Validate already-loaded YAML ``data``; ``source`` names it in error messages."""
    ctx = _Ctx(source, os.environ if environ is None else environ)
    if data is None:
        return Settings(source=source)
    if not isinstance(data, dict):
        raise SettingsError([f"{source}: the top level must be a mapping with an 'airflow' key"])
    unknown_top = [str(k) for k in data if k != "airflow"]
    if unknown_top:
        ctx.error("", f"unknown top-level key(s) {', '.join(sorted(unknown_top))} (only 'airflow' is allowed)")
    airflow = data.get("airflow")
    if airflow is None:
        airflow = {}
    if not isinstance(airflow, dict):
        ctx.error("airflow", f"must be a mapping, not {type(airflow).__name__}")
        airflow = {}
    unknown = [str(k) for k in airflow if k not in SECTIONS]
    if unknown:
        ctx.error("airflow", f"unknown key(s) {', '.join(sorted(unknown))} (allowed: {', '.join(SECTIONS)})")

    connections = _entries(airflow.get("connections"), "connections", CONNECTION_KEYS, ctx, _parse_connection)
    pools = _entries(airflow.get("pools"), "pools", POOL_KEYS, ctx, _parse_pool)
    variables = _entries(airflow.get("variables"), "variables", VARIABLE_KEYS, ctx, _parse_variable)
    for section, names in (
        ("connections", [c.conn_id for c in connections]),
        ("pools", [p.name for p in pools]),
        ("variables", [v.key for v in variables]),
    ):
        seen: set[str] = set()
        for name in names:
            if name in seen:
                ctx.error(section, f"{name!r} is defined more than once")
            seen.add(name)
    if ctx.errors:
        raise SettingsError(ctx.errors)
    return Settings(source=source, connections=tuple(connections), pools=tuple(pools), variables=tuple(variables))


def load_settings(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate an ``airflow_settings.yaml``; ``environ`` defaults to ``os.environ``.

    Raises :class:`SettingsError` naming the file and the entry of each problem.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SettingsError([f"{source}: cannot read: {exc.strerror or exc}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsError([f"{source}: invalid YAML: {where}{problem}"]) from exc
    return parse_settings(data, source, environ)


def connection_env(settings: Settings) -> dict[str, str]:
    """``AIRFLOW_CONN_<ID>`` -> JSON for each connection (for runs without the database)."""
    return {f"AIRFLOW_CONN_{c.conn_id.upper()}": c.to_json() for c in settings.connections}


# --------------------------------------------------------------------------- Airflow


def unencrypted_secrets(settings: Settings, fernet_is_encrypted: bool) -> list[str]:
    """One line per connection whose secrets would be stored in clear (none with a Fernet key)."""
    if fernet_is_encrypted:
        return []
    return [
        f"{settings.source}: connections ({c.conn_id}): {', '.join(c.secret_fields())} would be stored "
        "unencrypted: set AIRFLOW__CORE__FERNET_KEY (python -c 'from cryptography.fernet import Fernet; "
        "print(Fernet.generate_key().decode())')"
        for c in settings.connections if c.secret_fields()
    ]


def apply_settings(settings: Settings) -> ApplyResult:
    """Create or update the connections, pools and variables in Airflow's database.

    Raises :class:`SettingsError` before writing anything when a connection's secret would be stored
    unencrypted (Airflow has no Fernet key).
    """
    from airflow.models import Connection, Pool, Variable
    from airflow.models.crypto import get_fernet
    from airflow.utils.session import create_session
    from sqlalchemy import select

    refused = unencrypted_secrets(settings, get_fernet().is_encrypted)
    if refused:
        raise SettingsError(refused)
    result = ApplyResult()
    with create_session() as session:
        for c in settings.connections:
            extra = json.dumps(c.extra) if c.extra is not None else None
            conn = session.scalar(select(Connection).where(Connection.conn_id == c.conn_id))
            if conn is None:
                conn = Connection(conn_id=c.conn_id)
                session.add(conn)
                action = "created"
            else:
                action = "updated"
            conn.conn_type = c.conn_type
            conn.description = c.description
            conn.host = c.host
            conn.schema = c.schema
            conn.login = c.login
            conn.password = c.password
            conn.port = c.port
            conn.extra = extra
            result.actions.append(("connection", c.conn_id, action))
        session.flush()

        for p in settings.pools:
            existed = session.scalar(select(Pool).where(Pool.pool == p.name)) is not None
            Pool.create_or_update_pool(
                name=p.name,
                slots=p.slots,
                description=p.description,
                include_deferred=p.include_deferred,
                session=session,
            )
            result.actions.append(("pool", p.name, "updated" if existed else "created"))
        session.flush()

        for v in settings.variables:
            existed = session.scalar(select(Variable.id).where(Variable.key == v.key)) is not None
            Variable.set(v.key, v.value, description=v.description, session=session)
            result.actions.append(("variable", v.key, "updated" if existed else "created"))
    return result


# --------------------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="airflow_settings_loader.py",
        description="Apply a settings file (connections, pools, variables) to the Airflow metadata database.",
    )
    parser.add_argument("path", nargs="?", default=str(DEFAULT_SETTINGS_PATH), help="default: %(default)s")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="validate only (no Airflow import)")
    mode.add_argument(
        "--print-env", action="store_true", help="print `export AIRFLOW_CONN_<ID>=...` lines instead of applying"
    )
    args = parser.parse_args(argv)

    try:
        settings = load_settings(args.path)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2

    if args.check:
        print(
            f"{settings.source}: OK ({len(settings.connections)} connections, "
            f"{len(settings.pools)} pools, {len(settings.variables)} variables)"
        )
        return 0
    if args.print_env:
        for name, value in connection_env(settings).items():
            print(f"export {name}={shlex.quote(value)}")
        return 0

    try:
        result = apply_settings(settings)
    except SettingsError as exc:
        print(exc, file=sys.stderr)
        return 2
    if result.actions:
        print(result)
    else:
        print(f"{settings.source}: nothing to apply")
    return 0


if __name__ == "__main__":
    sys.exit(main())
