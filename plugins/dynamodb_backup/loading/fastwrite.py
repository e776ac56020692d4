"""BatchWriteItem without botocore's serializer: the restore's fast path.

Why: botocore serializes a request by walking the operation's shapes for every
attribute of every item (and base64-encodes binary again), which costs more CPU
than the whole HTTP round trip against a fast server. A backup line already holds
the item in almost the wire form DynamoDB wants (binary is base64 text, numbers
are strings); only the type keys differ (``sS`` -> ``SS``). So the fast path
renames the type keys in the parsed line (``formats.codec.wireform``), builds the
whole request body with orjson, and sends it on ``aws.wire`` (the next batch is built
while one is in flight, and signed by ``aws.sigv4`` with the client's credentials
only once the answer before it is in and the pacing budget allows it: a signature
AWS receives more than 5 minutes after it was made is refused), or, where aws.wire
does not reproduce the client's transport, swaps it into a botocore call in a
``before-call`` hook after botocore has serialized a one-item placeholder. A client
with event handlers of its own (a botocore ``Stubber``, a user's hooks:
``aws.handlers``) gets plain botocore calls with the real items, so
every handler sees every write as it is.

Retries follow the client's ``retries`` configuration (``aws.retry``).

The fast path validates nothing itself: DynamoDB rejects what it must. When it
rejects a batch (``ValidationException``), :class:`WireBatchWriter` hands the
batch's lines to a fallback (the plain path decodes and validates each line and
puts them one by one, so the error still names the file and line).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from dynamodb_backup.aws.handlers import foreign_handlers
from dynamodb_backup.aws.retry import (
    MalformedResponseError,
    RetrySettings,
    call_with_retries,
    error_code,
    is_retryable,
)
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.errors import BackupError, CodecError
from dynamodb_backup.formats.codec import decode_line
from dynamodb_backup.formats.codec.wireform import wire_bytes_of_compact_line, wire_item_from_line
from dynamodb_backup.loading.load import batch_consumed, consumed_mode, pacing_units, unprocessed_delay

log = logging.getLogger(__name__)

MAX_BATCH_ITEMS = 25
_HOOKED_ATTR = "_dynamodb_backup_fast_write_hook"
_pending = threading.local()


class FastWriteError(BackupError):
    """An item could not be written on the fast path and no fallback was given."""


def batch_write_body(table: str, wire_items: Sequence[dict[str, Any]], consumed: str = "TOTAL") -> bytes:
    """The JSON body of a BatchWriteItem call putting ``wire_items`` into ``table``."""
    return orjson.dumps({
        "RequestItems": {table: [{"PutRequest": {"Item": item}} for item in wire_items]},
        "ReturnConsumedCapacity": consumed,
    })


def _swap_body(params: dict[str, Any], **_: Any) -> None:
    """botocore ``before-call`` hook: replace the placeholder body with ours (returns None)."""
    body = getattr(_pending, "body", None)
    if body is not None:
        params["body"] = body


def install_fast_batch_write(client: Any) -> None:
    """Register the body-swapping hook on a boto3 DynamoDB client (once per client)."""
    if not getattr(client, _HOOKED_ATTR, False):
        client.meta.events.register("before-call.dynamodb.BatchWriteItem", _swap_body)
        setattr(client, _HOOKED_ATTR, True)


def batch_write_wire(client: Any, table: str, wire_items: Sequence[dict[str, Any]],
                     consumed: str = "TOTAL") -> dict[str, Any]:
    """One BatchWriteItem call with a body built by orjson; returns botocore's parsed response.

    ``UnprocessedItems`` in the response are in client form (binary as bytes). The hook runs
    before any ``before-call.*`` handler (botocore calls the most specific event's first), so a
    Stubber still answers the call, but handlers before it see the one-item placeholder:
    :class:`WireBatchWriter` sends the real items for a client with handlers of its own.
    """
    install_fast_batch_write(client)
    body = batch_write_body(table, wire_items, consumed)
    placeholder: dict[str, Any] = {table: [{"PutRequest": {"Item": {}}}]}
    _pending.body = body
    try:
        response: dict[str, Any] = client.batch_write_item(RequestItems=placeholder,
                                                           ReturnConsumedCapacity=consumed)
    finally:
        _pending.body = None
    return response


@dataclass
class FastLoadStats:
    items: int = 0
    batches: int = 0
    consumed_write_units: float = 0.0
    unprocessed_retries: int = 0
    fallbacks: int = 0


Fallback = Callable[[list[tuple[bytes, str]]], None]
"""Writes ``(line, origin)`` pairs the slow, validating way (e.g. decode_line + BatchWriter)."""


@dataclass
class WireBatchWriter:
    """Writes backup lines to one table 25 to a call on the fast path, paced by ``bucket``.

    ``put(line, origin)`` takes one raw backup line; ``flush()`` at the end (it returns once
    every line put is written). Unprocessed items are retried with backoff until written; a
    batch DynamoDB refuses goes to ``fallback`` (which should name the bad line) or raises.

    ``pipelined``: a sender thread writes the batches in order while ``put`` decodes the next
    ones, and the next batch waits ready beside the one in flight, so the sender goes straight
    from one answer to the next request (a worker otherwise alternates between building a
    request and waiting for one, and the server idles through every gap). Never more than one
    batch in flight: a later copy of a key lands last. The first error stops the sender
    (nothing is sent after it) and is raised by the next ``put`` that fills a batch, or by
    ``flush``.
    """

    client: Any
    table: str
    key_names: Sequence[str]
    bucket: TokenBucket
    fallback: Fallback | None = None
    #: As ``BatchWriter.index_scales``: keeps global indexes within their share too.
    index_scales: Mapping[str, float] = field(default_factory=dict)
    max_unprocessed_rounds: int = 50
    sleep: Callable[[float], None] = time.sleep
    stats: FastLoadStats = field(default_factory=FastLoadStats)
    pipelined: bool = False
    #: A connection of ``aws.wire`` to the client's endpoint: each batch is built while the one
    #: before is in flight, then signed and sent the moment that one's answer arrives and the
    #: pacing allows, all on the caller's thread (no lock handoffs, one batch in flight). Takes
    #: precedence over ``pipelined``.
    direct: DynamoDBConnection | None = None
    #: Send the items through botocore's serializer (client form) rather than swapping in the
    #: body: set when the client has event handlers of its own (None: look at the client).
    plain_calls: bool | None = None
    _flying: tuple[list[dict[str, Any]], list[tuple[bytes, str]]] | None = field(default=None, repr=False)
    _items: list[dict[str, Any]] = field(default_factory=list)
    _lines: list[tuple[bytes, str]] = field(default_factory=list)
    _keys: set[str] = field(default_factory=set)
    _ready: queue.Queue[tuple[list[dict[str, Any]], list[tuple[bytes, str]]] | None] = field(
        default_factory=lambda: queue.Queue(maxsize=1), repr=False)
    _sender: threading.Thread | None = field(default=None, repr=False)
    _error: BaseException | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self._retries = RetrySettings.of(self.client)
        if self.plain_calls is None:
            self.plain_calls = self.direct is None and bool(foreign_handlers(self.client))

    def put(self, line: bytes, origin: str) -> None:
        try:
            item = wire_item_from_line(line)
            key = orjson.dumps([item[k] for k in self.key_names]).decode()
        except (CodecError, KeyError, TypeError) as exc:
            if self.fallback is None:
                raise FastWriteError(f"{origin}: {exc}") from None
            self.flush()
            self.stats.fallbacks += 1
            self.fallback([(line, origin)])
            return
        # A batch may not name one key twice; a later copy overwrites, as plain puts do.
        if key in self._keys or len(self._items) == MAX_BATCH_ITEMS:
            self._send()
        self._items.append(item)
        self._lines.append((line, origin))
        self._keys.add(key)

    def put_compact(self, line: bytes, origin: str) -> None:
        """A line validation found convertible byte for byte (``linecheck``): renamed, not parsed.

        Its key is not read, so a batch may name one key twice; DynamoDB refuses such a batch
        (ValidationException), which goes to the fallback, where a later copy lands last as in
        :meth:`put`.
        """
        if len(self._items) == MAX_BATCH_ITEMS:
            self._send()
        self._items.append(orjson.Fragment(wire_bytes_of_compact_line(line.strip())))  # type: ignore[arg-type]
        self._lines.append((line, origin))

    def flush(self) -> None:
        """Send what is pending and wait until everything put so far is written (or raise its error)."""
        self._send()
        self._land()
        if self._sender is not None:
            self._ready.put(None)
            self._sender.join()
            self._sender = None
        self._raise_failure()

    def _send(self) -> None:
        if not self._items:
            return
        items, lines = self._items, self._lines
        self._items, self._lines, self._keys = [], [], set()
        if self.direct is not None:
            self._send_overlapped(items, lines)
            return
        if not self.pipelined:
            self._write(items, lines)
            return
        self._raise_failure()
        if self._sender is None:
            self._sender = threading.Thread(target=self._send_in_order, name="batch-write", daemon=True)
            self._sender.start()
        self._ready.put((items, lines))  # waits while a batch is already ready: the sender is that far behind

    def _send_overlapped(self, items: list[dict[str, Any]], lines: list[tuple[bytes, str]]) -> None:
        # Built while the batch before is in flight; signed and sent once its answer is in and the
        # pacing allows (send signs: a signature made before a long wait would expire on the way).
        direct = self._direct()
        call = direct.prepare("BatchWriteItem", batch_write_body(self.table, items, consumed_mode(self.index_scales)))
        self._land()
        self.bucket.wait()
        try:
            direct.send(call)
        except (BotoConnectionError, HTTPClientError):
            self._write(items, lines)  # round trip by round trip, with retries
            return
        self._flying = (items, lines)

    def _land(self) -> None:
        """Read the answer to the batch in flight on ``direct`` and finish that batch."""
        flying, self._flying = self._flying, None
        if flying is None:
            return
        items, lines = flying
        try:
            response = self._direct().receive()
        except ClientError as exc:
            if not is_retryable(exc) or self._retries.total_attempts == 1:  # retries off: the client said so
                self._refused(exc, lines)
                return
            log.info("retrying a batch after %s", exc)
            self.sleep(self._retries.backoff(exc, 1))  # throttled or a server error: back off before sending it again
            self._write(items, lines)
            return
        except (BotoConnectionError, HTTPClientError, MalformedResponseError):
            if self._retries.total_attempts == 1:
                raise
            self._write(items, lines)  # sent again: puts are idempotent, and nothing after it is in flight
            return
        self._finish(response, items, lines)

    def _direct(self) -> DynamoDBConnection:
        if self.direct is None:
            raise RuntimeError("no aws.wire connection")
        return self.direct

    def _send_in_order(self) -> None:
        while (batch := self._ready.get()) is not None:
            if self._error is None:  # after a failure, drain without sending
                try:
                    self._write(*batch)
                except BaseException as exc:  # raised in the caller's thread by _raise_failure
                    self._error = exc

    def _raise_failure(self) -> None:
        if self._error is None:
            return
        if self._sender is not None:  # it sends nothing more: end it before raising
            self._ready.put(None)
            self._sender.join()
            self._sender = None
        error, self._error = self._error, None
        raise error

    def _write(self, items: list[dict[str, Any]], lines: list[tuple[bytes, str]]) -> None:
        """One batch, round trip by round trip: retried, its unprocessed items too, or handed to the fallback."""
        self.bucket.wait()
        mode = consumed_mode(self.index_scales)
        try:
            if self.direct is not None:
                direct, body = self.direct, batch_write_body(self.table, items, mode)
                response = call_with_retries(lambda: direct.call("BatchWriteItem", body), client=self.client,
                                             sleep=self.sleep)
            elif self.plain_calls:
                requests = [{"PutRequest": {"Item": decode_line(line)}} for line, _ in lines]
                response = call_with_retries(lambda: self.client.batch_write_item(
                    RequestItems={self.table: requests}, ReturnConsumedCapacity=mode),
                    client=self.client, sleep=self.sleep)
            else:
                response = call_with_retries(lambda: batch_write_wire(self.client, self.table, items, mode),
                                             client=self.client, sleep=self.sleep)
        except ClientError as exc:
            self._refused(exc, lines)
            return
        self._finish(response, items, lines)

    def _refused(self, exc: ClientError, lines: list[tuple[bytes, str]]) -> None:
        if error_code(exc) != "ValidationException":
            raise exc
        if self.fallback is None:
            raise FastWriteError(f"{lines[0][1]}..: DynamoDB refused the batch: {exc}") from None
        self.stats.fallbacks += 1
        self.fallback(lines)

    def _finish(self, response: dict[str, Any], items: list[dict[str, Any]], lines: list[tuple[bytes, str]]) -> None:
        """Account for a batch's answer and write what it left unprocessed."""
        self._account(response, len(items))
        unprocessed = (response.get("UnprocessedItems") or {}).get(self.table, [])
        rounds = 0
        while unprocessed:
            rounds += 1
            self.stats.unprocessed_retries += 1
            if rounds > self.max_unprocessed_rounds:
                raise FastWriteError(
                    f"{lines[0][1]}..: DynamoDB left {len(unprocessed)} items unprocessed after {rounds} rounds"
                )
            delay = unprocessed_delay(rounds)
            log.info("%d items unprocessed; retrying in %.2f s (round %d)", len(unprocessed), delay, rounds)
            self.sleep(delay)
            self.bucket.wait()
            response = self._write_unprocessed(unprocessed)
            self._account(response, len(unprocessed))
            unprocessed = (response.get("UnprocessedItems") or {}).get(self.table, [])

    def _write_unprocessed(self, unprocessed: list[dict[str, Any]]) -> dict[str, Any]:
        mode = consumed_mode(self.index_scales)
        if self.direct is not None:  # the answer was parsed by orjson: the items are still in wire form
            direct = self.direct
            body = orjson.dumps({"RequestItems": {self.table: unprocessed}, "ReturnConsumedCapacity": mode})
            return call_with_retries(lambda: direct.call("BatchWriteItem", body), client=self.client, sleep=self.sleep)
        # Rare: retried through botocore's own serializer (the items came back in client form).
        response: dict[str, Any] = call_with_retries(lambda: self.client.batch_write_item(
            RequestItems={self.table: unprocessed}, ReturnConsumedCapacity=mode), client=self.client, sleep=self.sleep)
        return response

    def _account(self, response: dict[str, Any], sent: int) -> None:
        self.bucket.charge(pacing_units(response, self.index_scales))
        self.stats.consumed_write_units += batch_consumed(response)
        self.stats.batches += 1
        left = len((response.get("UnprocessedItems") or {}).get(self.table, []))
        self.stats.items += sent - left
