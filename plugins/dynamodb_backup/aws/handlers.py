"""Which event handlers on a botocore client are someone else's: a client whose calls they see must go through botocore.

A botocore ``Stubber`` answers calls from ``before-call``, moto's in-process mock from
``before-send``, a user's hook reads or changes them: aws.wire (and the body-swapping fast
path) would route around all of them. Which handlers botocore and boto3 register themselves
depends on their versions and the client's retry mode, so the reference is a freshly made
client of the same mode, made once per process (about 0.1 s of CPU). Handlers of this package
(``dynamodb_backup.*``) are its own.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

_OWN_MODULE = "dynamodb_backup."
_default_handlers: dict[str, frozenset[tuple[str, str]]] = {}
_default_lock = threading.Lock()


def _handler_name(handler: Any) -> str:
    while isinstance(handler, functools.partial):
        handler = handler.func
    function = getattr(handler, "__func__", handler)
    qualname = getattr(function, "__qualname__", None) or type(function).__qualname__
    return f"{getattr(function, '__module__', None) or type(function).__module__}.{qualname}"


def _idle_mock(handler: Any) -> bool:
    """moto's in-process mock: in every client made after moto is imported, idle unless a mock is on."""
    return type(handler).__module__.startswith("moto.") and not getattr(handler, "enabled", True)


def _handlers(client: Any) -> set[tuple[str, str]]:
    """(event, handler name) for every handler on the client that a DynamoDB call can meet."""
    found: set[tuple[str, str]] = set()
    stack: list[tuple[list[str], Any]] = [([], client.meta.events._emitter._handlers._root)]
    while stack:
        parts, node = stack.pop()
        # creating-* events fire while a client is made, never on a call; other services' events never fire here.
        relevant = not parts or not (parts[0].startswith("creating-") or (len(parts) > 1
                                                                          and parts[1] not in ("*", "dynamodb")))
        if not relevant:
            continue
        if node["values"]:
            found.update((".".join(parts), _handler_name(handler)) for section in node["values"]
                         for handler in section if not _idle_mock(handler))
        stack.extend(([*parts, chunk], child) for chunk, child in node["children"].items())
    return found


def _defaults(mode: str) -> frozenset[tuple[str, str]]:
    with _default_lock:
        if mode not in _default_handlers:
            import boto3
            from botocore.config import Config

            session = boto3.session.Session(aws_access_key_id="reference", aws_secret_access_key="reference",
                                            region_name="us-east-1")
            config = Config(retries={"mode": mode})  # type: ignore[arg-type]
            found: set[tuple[str, str]] = set()
            for endpoint in (None, "http://127.0.0.1:9"):  # with no endpoint given, botocore adds a handler
                made = session.client("dynamodb", endpoint_url=endpoint, config=config)
                found |= {handler for handler in _handlers(made) if not handler[1].startswith("moto.")}
            _default_handlers[mode] = frozenset(found)
        return _default_handlers[mode]


def foreign_handlers(client: Any) -> list[str]:
    """The client's event handlers that neither botocore, boto3 nor this package registered (sorted)."""
    try:
        handlers = _handlers(client)
    except (AttributeError, KeyError, TypeError):
        return []  # not a botocore client (a test's stand-in): no botocore hooks to honour
    mode = str((getattr(client.meta.config, "retries", None) or {}).get("mode") or "standard")
    defaults = _defaults(mode)
    return sorted(f"{event}: {name}" for event, name in handlers
                  if (event, name) not in defaults and not name.startswith(_OWN_MODULE))
