"""Turns successful writes forwarded to dynalite into journal entries (resulting item images).

- PutItem and BatchWriteItem puts: the request's item with its numbers normalised as dynalite
  stores them (``items.py``); nothing is read back. In front of AWS's DynamoDB Local (ARNs in the
  region ``ddblocal``) puts are read back with a consistent GetItem/BatchGetItem instead: it stores
  items its own way (top-level numbers normalised and sets sorted, numbers inside maps and lists
  as sent), and the journal must hold what the server holds.
- UpdateItem: the stand-in asks dynalite for ``ReturnValues: ALL_NEW`` when the client sent no
  ReturnValues (or NONE), records ``Attributes`` and strips them from the answer again; when
  the client asked for ALL_NEW its own answer is used; for any other ReturnValues the item is
  read back with a consistent GetItem.
- DeleteItem and BatchWriteItem deletes: "absent".
- TransactWriteItems: every key it touched, read back with a consistent GetItem.
- BatchWriteItem ``UnprocessedItems`` are left out; CreateTable starts an incarnation with an
  empty history, DeleteTable ends it.

Whether a table is followed is decided when dynalite's answer has arrived, which is what makes
taking a table over with a baseline scan safe (see ``pitr.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from local_pitr.items import KeySchema, encode_image, normalise_item
from local_pitr.journal import Entry, FollowedTable, Journal
from local_pitr.tables import incarnation_id
from local_pitr.upstream import Upstream

RECORDED_OPERATIONS = frozenset(
    {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems", "CreateTable", "DeleteTable"}
)


@dataclass
class PreparedWrite:
    """A write request on its way to dynalite: what was asked, and what the stand-in added."""

    operation: str
    request: dict[str, Any]
    body: bytes  # what goes upstream (the client's bytes unless ReturnValues was injected)
    injected_all_new: bool = False


class Recorder:
    def __init__(self, journal: Journal, on_table_deleted: Callable[[], None]) -> None:
        self.journal = journal
        self.on_table_deleted = on_table_deleted

    def prepare(self, operation: str, body: bytes) -> PreparedWrite | None:
        """Parse a write request; None when it is not something to record (or not JSON)."""
        try:
            request = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(request, dict):
            return None
        prepared = PreparedWrite(operation, request, body)
        if (operation == "UpdateItem" and request.get("ReturnValues", "NONE") == "NONE"
                and self.journal.followed(str(request.get("TableName"))) is not None):
            prepared.body = orjson.dumps({**request, "ReturnValues": "ALL_NEW"})
            prepared.injected_all_new = True
        return prepared

    def finish(self, prepared: PreparedWrite, status: int, answer: bytes, upstream: Upstream) -> bytes | None:
        """Record a successful write; returns the answer body to send when it had to change, else None."""
        if status != 200:
            return None  # dynalite refused it: nothing was written (UpdateItem errors carry no Attributes)
        request = prepared.request
        operation = prepared.operation
        if operation == "CreateTable":
            description = orjson.loads(answer)["TableDescription"]
            self.journal.follow(description["TableName"], incarnation_id(description), description["TableArn"],
                                KeySchema.from_description(description["KeySchema"]))
        elif operation == "DeleteTable":
            self.journal.forget(str(request.get("TableName")))
            self.on_table_deleted()
        elif operation == "PutItem":
            self._record_put(request["TableName"], request["Item"], upstream)
        elif operation == "DeleteItem":
            self._record_delete(request["TableName"], request["Key"])
        elif operation == "UpdateItem":
            return self._record_update(prepared, answer, upstream)
        elif operation == "BatchWriteItem":
            self._record_batch(request, orjson.loads(answer), upstream)
        elif operation == "TransactWriteItems":
            self._record_transaction(request, upstream)
        return None

    def _record_put(self, table_name: str, item: dict[str, Any], upstream: Upstream) -> None:
        table = self.journal.followed(table_name)
        if table is None:
            return
        if reads_back_puts(table):
            self.journal.append(table, read_back_many(upstream, table, [table.keys.key_of(item)]))
            return
        image = normalise_item(item)
        self.journal.append(table, [(table.keys.key_bytes(image, normalised=True), encode_image(image))])

    def _record_delete(self, table_name: str, key: dict[str, Any]) -> None:
        table = self.journal.followed(table_name)
        if table is not None:
            self.journal.append(table, [(table.keys.key_bytes(key), None)])

    def _record_update(self, prepared: PreparedWrite, answer: bytes, upstream: Upstream) -> bytes | None:
        request = prepared.request
        table = self.journal.followed(request["TableName"])
        parsed: dict[str, Any] | None = None
        if table is not None:
            if prepared.injected_all_new or request.get("ReturnValues") == "ALL_NEW":
                parsed = orjson.loads(answer)
                image = parsed.get("Attributes")
            else:
                image = read_back(upstream, table, request["Key"])
            key = table.keys.key_bytes(request["Key"])
            self.journal.append(table, [(key, None if image is None else encode_image(image))])
        if not prepared.injected_all_new:
            return None
        parsed = parsed if parsed is not None else orjson.loads(answer)
        parsed.pop("Attributes", None)  # the client asked for none
        return orjson.dumps(parsed)

    def _record_batch(self, request: dict[str, Any], answer: dict[str, Any], upstream: Upstream) -> None:
        unprocessed = answer.get("UnprocessedItems") or {}
        for table_name, writes in (request.get("RequestItems") or {}).items():
            table = self.journal.followed(table_name)
            if table is None:
                continue
            skipped = {_write_key(table.keys, write) for write in unprocessed.get(table_name) or ()}
            entries: list[Entry] = []
            if reads_back_puts(table):
                done = [write for write in writes if _write_key(table.keys, write) not in skipped]
                puts = [table.keys.key_of(write["PutRequest"]["Item"]) for write in done if "PutRequest" in write]
                images = dict(read_back_many(upstream, table, puts))  # deletes read as None
                keys = [_write_key(table.keys, write) for write in done]
                self.journal.append(table, [(key, images.get(key)) for key in keys])
                continue
            for write in writes:
                if "PutRequest" in write:
                    image = normalise_item(write["PutRequest"]["Item"])
                    entry: Entry = (table.keys.key_bytes(image, normalised=True), encode_image(image))
                else:
                    entry = (table.keys.key_bytes(write["DeleteRequest"]["Key"]), None)
                if entry[0] not in skipped:
                    entries.append(entry)
            self.journal.append(table, entries)

    def _record_transaction(self, request: dict[str, Any], upstream: Upstream) -> None:
        """Every key a transaction touched (ConditionCheck aside), read back consistently.

        dynalite 4.0 has no TransactWriteItems (it answers UnknownOperationException), so this
        only runs in front of a DynamoDB that has it.
        """
        by_table: dict[str, tuple[FollowedTable, list[Entry]]] = {}
        for action in request.get("TransactItems") or []:
            kind, body = next(iter(action.items()))
            table = self.journal.followed(body.get("TableName", ""))
            if table is None or kind not in ("Put", "Update", "Delete"):
                continue
            key = table.keys.key_of(body["Item"] if kind == "Put" else body["Key"])
            current = read_back(upstream, table, key)
            entries = by_table.setdefault(table.name, (table, []))[1]
            entries.append((table.keys.key_bytes(key), None if current is None else encode_image(current)))
        for table, entries in by_table.values():
            self.journal.append(table, entries)


def _write_key(keys: KeySchema, write: dict[str, Any]) -> bytes:
    if "PutRequest" in write:
        return keys.key_bytes(write["PutRequest"]["Item"])
    return keys.key_bytes(write["DeleteRequest"]["Key"])


def reads_back_puts(table: FollowedTable) -> bool:
    """True for a table in AWS's DynamoDB Local, whose stored images the stand-in does not compute."""
    return ":ddblocal:" in table.table_arn


def read_back_many(upstream: Upstream, table: FollowedTable, keys: list[dict[str, Any]]) -> list[Entry]:
    """(key bytes, image or None) for each key, read with consistent BatchGetItem calls of 100 keys."""
    images: dict[bytes, bytes] = {}
    for start in range(0, len(keys), 100):
        pending: dict[str, Any] = {table.name: {"Keys": keys[start:start + 100], "ConsistentRead": True}}
        while pending:
            answer = upstream.call("BatchGetItem", {"RequestItems": pending})
            for item in answer.get("Responses", {}).get(table.name, []):
                images[table.keys.key_bytes(item)] = encode_image(item)
            pending = answer.get("UnprocessedKeys") or {}
    return [(key, images.get(key)) for key in (table.keys.key_bytes(k) for k in keys)]


def read_back(upstream: Upstream, table: FollowedTable, key: dict[str, Any]) -> dict[str, Any] | None:
    """The item as dynalite stores it now (consistent read), None if it does not exist."""
    answer = upstream.call("GetItem", {"TableName": table.name, "Key": key, "ConsistentRead": True})
    item: dict[str, Any] | None = answer.get("Item")
    return item
