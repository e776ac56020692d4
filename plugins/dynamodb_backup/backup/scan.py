"""Paced, retried parallel-scan reading of one segment.

The fast (raw) path decodes each Scan answer's body with orjson, never with botocore's
parser (which costs most of a scan's CPU time). The items stay in DynamoDB's wire form
(binary as base64 text), which the codec turns into Data Pipeline lines in one pass.
Where ``aws.wire`` reproduces the client's transport, the raw path's calls after a segment's
first page go over one ``DynamoDBConnection`` per segment (signed at send, retried as the client's configuration
says, the answer's x-amz-crc32 checked): on 100 KB items botocore's request building,
signing, hooks and body reading cost about 180 us an item more than the raw HTTP scan
ceiling. Otherwise (a Stubber, a proxy, a user's hook: ``for_client`` says None) the body is
taken from botocore before its parser. The plain path uses the parsed response.
"""

from __future__ import annotations

import base64
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from botocore.exceptions import ClientError

from dynamodb_backup.aws.mistakes import CALL_KEY, call_facts
from dynamodb_backup.aws.retry import MalformedResponseError, call_with_retries
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.gcpause import loads_uncollected

_raw = threading.local()
_HOOKED_ATTR = "_dynamodb_backup_raw_scan_hook"


def _take_raw_body(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
    """botocore ``before-parse`` hook: keep the body for ourselves, give the parser nothing."""
    if getattr(_raw, "active", False) and response_dict["status_code"] < 300 and (
        "RawBody" not in customized_response_dict  # taken already: never parse the b"{}" left behind
    ):
        customized_response_dict["RawBody"] = loads_uncollected(response_dict["body"])
        response_dict["body"] = b"{}"


def install_raw_scan(client: Any) -> None:
    """Register the raw-body hook on a boto3 DynamoDB client (once per client).

    Threads share a client (a copy scans four segments at once), so two may get here together:
    the ``unique_id`` makes botocore keep one registration whatever the race.
    """
    if not getattr(client, _HOOKED_ATTR, False):
        client.meta.events.register("before-parse.dynamodb.Scan", _take_raw_body, unique_id=_HOOKED_ATTR)
        setattr(client, _HOOKED_ATTR, True)


@dataclass
class ScanPage:
    items: list[dict[str, Any]]
    """Wire form (binary as base64 text) on the raw path, client form otherwise."""
    consumed: float
    scanned: int
    last_key: dict[str, Any] | None
    """Always in client form, ready to pass back as ExclusiveStartKey."""


def wire_key_to_client(key: dict[str, Any]) -> dict[str, Any]:
    """A wire-form key (binary as base64 text) as boto3's client expects it (bytes)."""
    out: dict[str, Any] = {}
    for name, value in key.items():
        if "B" in value:
            out[name] = {"B": base64.b64decode(value["B"])}
        else:
            out[name] = value
    return out


def _checked(body: dict[str, Any]) -> dict[str, Any]:
    """A Scan answer always carries Count, and exactly that many Items."""
    count = body.get("Count")
    if not isinstance(count, int) or len(body.get("Items", [])) != count:
        raise MalformedResponseError(f"Scan answer without a matching Count (keys: {sorted(body)[:5]})")
    return body


def _key_bytes_as_base64(value: Any) -> str:
    """orjson's ``default``: a client-form key's binary (bytes) as the wire's base64 text."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not JSON: {type(value).__name__}")


def scan_page(client: Any, raw: bool, *, connection: DynamoDBConnection | None = None,
              **kwargs: Any) -> ScanPage:
    """One Scan call, retried on throttling, server errors and malformed answers.

    ``connection`` (raw path only): send it over aws.wire instead of botocore. ``kwargs`` are
    boto3's either way (ExclusiveStartKey in client form, binary as bytes).
    """
    if raw:
        if connection is not None:
            wire = connection
            request = orjson.dumps(kwargs, default=_key_bytes_as_base64)

            def call() -> dict[str, Any]:
                try:
                    return _checked(wire.call("Scan", request))
                except ClientError as exc:
                    # What aws.clients' annotate_client adds to botocore's errors: the one line names the table.
                    response: dict[str, Any] = exc.response  # type: ignore[assignment]
                    response.setdefault(CALL_KEY, call_facts("dynamodb", wire.region, kwargs))
                    raise
        else:
            install_raw_scan(client)

            def call() -> dict[str, Any]:
                _raw.active = True
                try:
                    return _checked(client.scan(**kwargs)["RawBody"])
                finally:
                    _raw.active = False

        body = call_with_retries(call)
        last = body.get("LastEvaluatedKey")
        return ScanPage(
            items=body.get("Items", []),
            consumed=float((body.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0)),
            scanned=int(body.get("ScannedCount", 0)),
            last_key=wire_key_to_client(last) if last else None,
        )
    response = call_with_retries(lambda: _checked(client.scan(**kwargs)))
    return ScanPage(
        items=response.get("Items", []),
        consumed=float((response.get("ConsumedCapacity") or {}).get("CapacityUnits", 0.0)),
        scanned=int(response.get("ScannedCount", 0)),
        last_key=response.get("LastEvaluatedKey"),
    )


@dataclass
class PageSizer:
    """Chooses Scan's Limit: about a second of the budget, and about 256 KB of small items.

    A full 1 MB page costs 128 read units; on a slow budget that would make
    pacing jerky (one call, then a long wait), so pages shrink to fit the rate.
    A full page of small items also decodes into ~100 MB of Python objects;
    capping pages near 256 KB halved a worker's peak memory at the same speed
    (measured: 175 -> 98 MB, 3.8 s for 40k items either way). Large items decode
    into a few long strings, not many objects, so from 16 KB an item the page is
    DynamoDB's full 1 MB: 100 KB items came 2 to a page, and each call's fixed
    cost (botocore, HTTP) was most of the export's CPU (measured: 743 calls for
    1,500 items).
    """

    units_per_item: float = 0.5
    #: An eventually consistent read unit covers 8 KB (0.5 unit per 4 KB).
    BYTES_PER_UNIT = 8192
    PAGE_BYTES = 256 * 1024
    #: From this size an item, pages are not capped for memory (DynamoDB stops a page at 1 MB).
    LARGE_ITEM_BYTES = 16 * 1024
    FULL_PAGE_BYTES = 1024 * 1024

    def limit(self, rate: float) -> int:
        per_item = max(self.units_per_item, 1e-6)
        item_bytes = per_item * self.BYTES_PER_UNIT
        page_bytes = self.FULL_PAGE_BYTES if item_bytes >= self.LARGE_ITEM_BYTES else self.PAGE_BYTES
        by_memory = int(page_bytes / item_bytes) + (1 if item_bytes >= self.LARGE_ITEM_BYTES else 0)
        by_rate = int(rate / per_item) if rate < 128 else by_memory
        return max(1, min(by_rate, by_memory))

    def learn(self, page: ScanPage) -> None:
        if page.scanned > 0 and page.consumed > 0:
            self.units_per_item = page.consumed / page.scanned


def scan_segment(
    client: Any,
    table: str,
    segment: int,
    total_segments: int,
    bucket: TokenBucket,
    *,
    raw: bool = True,
    start_key: dict[str, Any] | None = None,
    consistent: bool = False,
    before_page: Callable[[], None] | None = None,
) -> Iterator[ScanPage]:
    """Yield the pages of one segment, paced by ``bucket`` and charged what each page consumed.

    The raw path's calls go over a connection of this segment's own (aws.wire; a connection is
    not thread-safe, and segments are scanned on threads) where the client allows it, from the
    second page on: the first goes through the client itself, so its policy for an endpoint that
    never answered this process (``aws.clients``: fail at once, not after minutes of retries)
    still holds; once the endpoint has answered, both retry the same errors.
    """
    sizer = PageSizer()
    key = start_key
    connection: DynamoDBConnection | None = None
    first = True
    try:
        while True:
            if before_page is not None:
                before_page()
            bucket.wait()
            kwargs: dict[str, Any] = {
                "TableName": table,
                "Segment": segment,
                "TotalSegments": total_segments,
                "ReturnConsumedCapacity": "TOTAL",
                "ConsistentRead": consistent,
            }
            kwargs["Limit"] = sizer.limit(bucket.rate)
            if key:
                kwargs["ExclusiveStartKey"] = key
            page = scan_page(client, raw, connection=connection, **kwargs)
            if first and raw:
                connection = DynamoDBConnection.for_client(client)
            first = False
            bucket.charge(page.consumed)
            sizer.learn(page)
            yield page
            key = page.last_key
            if not key:
                return
    finally:
        if connection is not None:
            connection.close()


T = TypeVar("T")
_DONE = object()


class _Failed:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


def prefetched(pages: Iterator[T]) -> Iterator[T]:
    """``pages``, with the next one fetched on a thread while the caller works on the current one.

    An export worker otherwise alternates between waiting for a Scan answer and encoding,
    compressing and uploading it; DynamoDB then idles on this worker's segment meanwhile.
    One page ahead at most: the thread starts on a page only once the caller has taken the one
    before, so a worker holds two pages, never more. The thread's error is raised here, after the
    pages before it; if the caller stops early, the thread ends after the call it is in.
    """
    handed: queue.Queue[Any] = queue.Queue()
    slot = threading.Semaphore(1)
    stop = threading.Event()

    def wait_for_slot() -> bool:
        while not stop.is_set():
            if slot.acquire(timeout=0.2):
                return True
        return False

    def fetch() -> None:
        try:
            while wait_for_slot():
                page = next(pages, _DONE)
                handed.put(page)
                if page is _DONE:
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            handed.put(_Failed(exc))

    thread = threading.Thread(target=fetch, name="scan-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            value = handed.get()
            if value is _DONE:
                return
            if isinstance(value, _Failed):
                raise value.exc
            slot.release()  # the thread may fetch the next page while this one is worked on
            yield value
    finally:
        stop.set()  # the thread ends after the call it is in; nothing waits for that call
