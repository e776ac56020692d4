"""The raw Scan path over aws.wire: the export and verification read through it, botocore where the client needs it."""

from __future__ import annotations

import base64
import http.server
import itertools
import random
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import orjson
import pytest
from botocore.config import Config
from test_export import DATE, read_folder

from demo_data import TABLE_SPECS, create_table, put_items, referrer_items
from dynamodb_backup.aws.retry import RetrySettings
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.backup.export import ExportSettings, export_share
from dynamodb_backup.backup.job import BackupRequest, plan_backup, seal_backup
from dynamodb_backup.backup.scan import scan_page, scan_segment
from dynamodb_backup.formats.codec import decode_line
from dynamodb_backup.formats.layout import S3Location
from faultproxy import DynamoDBFaultProxy, DynamoFaults


def client_at(url: str, **config: Any) -> Any:
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="local",
                        aws_secret_access_key="local", config=Config(**config))


class RecordingProxy(DynamoDBFaultProxy):
    """The fault proxy, keeping every Scan request's body as sent (to see what went over the wire)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scans: list[dict[str, Any]] = []

    def decide(self, request: Any) -> Any:
        if self.operation(request) == "Scan":
            self.scans.append(orjson.loads(request.body))
        return super().decide(request)


def botocore_scans_counted(client: Any) -> list[dict[str, Any]]:
    """The parameters of each Scan the client itself makes (a segment's first page: see ``scan_segment``)."""
    calls: list[dict[str, Any]] = []
    real = client.scan

    def counted(**kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(**kwargs)
    client.scan = counted  # an attribute of this client only: no event handler, so aws.wire stays allowed
    return calls


def test_an_export_scans_over_aws_wire_and_not_botocore(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    items = list(referrer_items(600))
    put_items(ddb, table_name, items)
    with RecordingProxy(local_aws.dynamodb_url) as proxy:
        through = client_at(proxy.url)
        request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "backups"), logical_date=DATE,
                                read_ratio=1.0, segments=3, max_workers=1,
                                settings=ExportSettings(consistent_read=True, file_max_items=100))
        plan = plan_backup(through, s3, request)
        by_botocore = botocore_scans_counted(through)
        results = [export_share(through, s3, table_name, plan.folder, share, request.settings) for share in plan.shares]
        assert proxy.counters["op:Scan"] == len(proxy.scans) > len(by_botocore)
    # Each segment's first page through the client (its first-contact policy), every later one over aws.wire.
    assert sorted(call["Segment"] for call in by_botocore) == [0, 1, 2]
    assert not any("ExclusiveStartKey" in call for call in by_botocore)
    sidecar = seal_backup(ddb, s3, request, plan, results)
    _, lines = read_folder(s3, plan.folder)
    assert sidecar.item_count == len(lines) == len(set(lines)) == len(items)
    assert sorted(decode_line(line)["resource"]["S"] + decode_line(line)["timestamp"]["S"] for line in lines) == sorted(
        item["resource"]["S"] + item["timestamp"]["S"] for item in items)
    assert {scan["Segment"] for scan in proxy.scans} == {0, 1, 2}
    assert all(scan["ConsistentRead"] is True and scan["TotalSegments"] == 3 for scan in proxy.scans)
    assert any("ExclusiveStartKey" in scan for scan in proxy.scans)  # more than one page a segment


def test_a_client_with_an_event_handler_still_scans_through_botocore(local_aws, table_name):
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, list(referrer_items(120)))
    hooked, seen = local_aws.dynamodb_client(), []
    hooked.meta.events.register("before-send.dynamodb.Scan", lambda request, **_: seen.append(request.url))
    assert DynamoDBConnection.for_client(hooked) is None
    pages = list(scan_segment(hooked, table_name, 0, 1, TokenBucket(10_000), raw=True))
    assert sum(len(page.items) for page in pages) == 120
    assert len(seen) == len(pages) >= 1  # every page went through botocore, and the handler saw it


def test_binary_keys_page_over_the_wire_in_the_form_callers_keep(local_aws, table_name):
    """ExclusiveStartKey goes out as base64 text; LastEvaluatedKey comes back in client form (bytes)."""
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table_name, hash_type="B")
    keys = [bytes([i, 0, 255 - i]) for i in range(40)]
    for key in keys:
        ddb.put_item(TableName=table_name, Item={"pk": {"B": key}, "v": {"S": ""}})
    connection = DynamoDBConnection.for_client(ddb)
    assert connection is not None
    seen: list[bytes] = []
    start: dict[str, Any] | None = None
    while True:
        extra = {"ExclusiveStartKey": start} if start else {}
        page = scan_page(ddb, True, connection=connection, TableName=table_name, Limit=7, **extra)
        seen.extend(base64.b64decode(item["pk"]["B"]) for item in page.items)
        start = page.last_key
        if not start:
            break
        assert isinstance(start["pk"]["B"], bytes)
    assert sorted(seen) == sorted(keys)


class EveryOtherScanFaulted(DynamoDBFaultProxy):
    """Rolls 0.0 then 0.99 in turn: at any rate between, every other request gets its fault, the next one none
    (whatever the table's name, which the proxy's own rolls depend on)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._requests = itertools.count()

    def rng_for(self, *parts: str | bytes) -> random.Random:
        rng = random.Random(0)
        roll = 0.0 if next(self._requests) % 2 == 0 else 0.99
        rng.random = lambda: roll  # type: ignore[method-assign]
        return rng


@pytest.mark.parametrize("fault", ["throttling", "internal_error", "drop_after"])
def test_faults_on_scans_over_the_wire_are_retried(local_aws, table_name, monkeypatch, fault):
    monkeypatch.setattr(RetrySettings, "backoff", lambda self, exc, attempt: 0.0)  # no waits; the count is the test
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, list(referrer_items(400)))
    faults = DynamoFaults(**{fault: 0.5}, operations=frozenset({"Scan"}))
    with EveryOtherScanFaulted(local_aws.dynamodb_url, faults=faults) as proxy:
        client = client_at(proxy.url)
        by_botocore = botocore_scans_counted(client)
        scanned = [item for segment in range(2)
                   for page in scan_segment(client, table_name, segment, 2, TokenBucket(10_000), raw=True)
                   for item in page.items]
        # Every call met its fault once, the first pages' (botocore) and the later ones' (aws.wire).
        assert proxy.counters[fault] * 2 == proxy.counters["op:Scan"] > 2 * len(by_botocore) == 4
    assert len(scanned) == len({(i["resource"]["S"], i["timestamp"]["S"]) for i in scanned}) == 400


@contextmanager
def scan_answers(bodies: list[tuple[bytes, int]]) -> Iterator[tuple[str, list[int]]]:
    """A stand-in answering each POST with the next (body, x-amz-crc32); the list of request sizes it got."""
    got: list[int] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            got.append(len(self.rfile.read(int(self.headers["Content-Length"]))))
            body, crc = bodies[min(len(got), len(bodies)) - 1]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amz-crc32", str(crc))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def test_a_scan_answer_whose_crc32_is_wrong_is_retried(monkeypatch):
    monkeypatch.setattr(RetrySettings, "backoff", lambda self, exc, attempt: 0.0)
    first = b'{"Count":1,"Items":[{"pk":{"S":"a"}}],"ScannedCount":1,"LastEvaluatedKey":{"pk":{"S":"a"}}}'
    good = b'{"Count":1,"Items":[{"pk":{"S":"b"}}],"ScannedCount":1}'
    answers = [(first, zlib.crc32(first)), (good, zlib.crc32(good) ^ 1), (good, zlib.crc32(good))]
    with scan_answers(answers) as (url, got):
        client = client_at(url)
        by_botocore = botocore_scans_counted(client)
        pages = list(scan_segment(client, "table", 0, 1, TokenBucket(10_000), raw=True))
    assert len(got) == 3 and len(by_botocore) == 1  # the second page's first answer (aws.wire) refused, asked again
    assert [page.items for page in pages] == [[{"pk": {"S": "a"}}], [{"pk": {"S": "b"}}]]


def test_a_segments_first_page_keeps_the_clients_fail_fast_on_an_endpoint_never_reached(monkeypatch):
    """aws.clients fails a call at once when its endpoint has never answered this process (a wrong endpoint);
    over aws.wire from the first page, a refused connection would be retried for minutes instead."""
    from dynamodb_backup.aws import clients
    from dynamodb_backup.aws.mistakes import EndpointUnreachableError
    from local_aws import free_port

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "local")
    client = clients.client("dynamodb", f"http://127.0.0.1:{free_port()}", "us-east-1")
    assert DynamoDBConnection.for_client(client) is not None  # aws.wire would be allowed
    with pytest.raises(EndpointUnreachableError):
        list(scan_segment(client, "table", 0, 1, TokenBucket(10_000), raw=True))
