"""aws.wire against dynalite, directly and through the fault proxy: answers, errors, drops, and a writer on it."""

from __future__ import annotations

import http.server
import ssl
import subprocess
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import orjson
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError, SSLError

from backup_folders import assert_holds_exactly
from demo_data import TABLE_SPECS, all_types_items, create_table
from dynamodb_backup.aws.retry import MalformedResponseError, is_retryable
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.formats.codec import encode_item
from dynamodb_backup.loading.fastwrite import WireBatchWriter, batch_write_body
from faultproxy import DynamoDBFaultProxy, DynamoFaults


def connection_to(url: str, **config: object) -> DynamoDBConnection:
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="local", aws_secret_access_key="local", config=Config(**config))
    connection = DynamoDBConnection.for_client(client, sleep=lambda s: None)
    assert connection is not None
    return connection


def put_body(table: str, keys: range) -> bytes:
    return batch_write_body(table, [{"pk": {"S": f"k{i}"}, "v": {"N": "12345678901234567890.123"}} for i in keys])


def test_a_round_trip_writes_what_botocore_reads_back(local_aws, table_name):
    local_aws.create_table(table_name)
    connection = connection_to(local_aws.dynamodb_url)
    answer = connection.call("BatchWriteItem", put_body(table_name, range(25)))
    assert answer.get("UnprocessedItems") == {}
    assert answer["ConsumedCapacity"][0]["TableName"] == table_name
    item = local_aws.dynamodb_client().get_item(TableName=table_name, Key={"pk": {"S": "k7"}})["Item"]
    assert item == {"pk": {"S": "k7"}, "v": {"N": "12345678901234567890.123"}}


def test_send_and_receive_apart_and_one_call_at_a_time(local_aws, table_name):
    local_aws.create_table(table_name)
    connection = connection_to(local_aws.dynamodb_url)
    first = connection.prepare("BatchWriteItem", put_body(table_name, range(0, 25)))
    second = connection.prepare("BatchWriteItem", put_body(table_name, range(25, 50)))
    connection.send(first)
    with pytest.raises(RuntimeError, match="still waiting"):
        connection.send(second)
    assert connection.receive()["UnprocessedItems"] == {}
    connection.send(second)
    assert connection.receive()["UnprocessedItems"] == {}
    assert local_aws.dynamodb_client().scan(TableName=table_name, Select="COUNT")["Count"] == 50


def test_error_answers_are_botocores_client_errors(local_aws, table_name):
    connection = connection_to(local_aws.dynamodb_url)
    with pytest.raises(ClientError) as missing:
        connection.call("BatchWriteItem", put_body(table_name + "-missing", range(1)))
    with pytest.raises(ClientError) as invalid:
        connection.call("BatchWriteItem", put_body("ab", range(1)))  # names are 3 to 255 characters
    for caught, code in ((missing, "ResourceNotFoundException"), (invalid, "ValidationException")):
        assert caught.value.response["Error"]["Code"] == code
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert caught.value.operation_name == "BatchWriteItem"
        assert not is_retryable(caught.value)


@pytest.mark.parametrize(("fault", "code"), [("internal_error", "InternalServerError"),
                                            ("unavailable", "ServiceUnavailable"),
                                            ("throttling", "ThrottlingException")])
def test_injected_error_answers_carry_the_same_codes_as_botocore_sees(local_aws, table_name, fault, code):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(**{fault: 1.0})) as proxy:
        with pytest.raises(ClientError) as caught:
            connection_to(proxy.url, retries={"total_max_attempts": 1}).call("BatchWriteItem",
                                                                            put_body(table_name, range(3)))
        assert proxy.counters[fault] == 1
    assert caught.value.response["Error"]["Code"] == code
    assert is_retryable(caught.value)


@pytest.mark.parametrize(("retries", "attempts"), [({}, 4),  # botocore's standard default for DynamoDB
                                                   ({"mode": "legacy"}, 10),  # its legacy default for DynamoDB
                                                   ({"max_attempts": 2}, 3),
                                                   ({"total_max_attempts": 2}, 2)])
def test_a_call_makes_as_many_attempts_as_the_clients_retry_configuration_says(local_aws, table_name, retries,
                                                                                attempts):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(throttling=1.0)) as proxy:
        with pytest.raises(ClientError, match="ThrottlingException"):
            connection_to(proxy.url, retries=retries).call("BatchWriteItem", put_body(table_name, range(3)))
        assert proxy.counters["throttling"] == attempts


@pytest.mark.parametrize("where", ["drop_before", "drop_after"])
def test_a_dropped_connection_is_a_retryable_error_and_the_next_call_reconnects(local_aws, table_name, where):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(**{where: 1.0})) as proxy:
        connection = connection_to(proxy.url, retries={"total_max_attempts": 1})
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)) as caught:
            connection.call("BatchWriteItem", put_body(table_name, range(3)))
        assert is_retryable(caught.value) and proxy.counters[where] == 1
        proxy.faults = DynamoFaults()
        assert connection.call("BatchWriteItem", put_body(table_name, range(3)))["UnprocessedItems"] == {}


def test_a_refused_connection_is_an_endpoint_connection_error(local_aws):
    from local_aws import free_port

    connection = connection_to(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EndpointConnectionError):
        connection.call("BatchWriteItem", put_body("nothing-here", range(1)))


@contextmanager
def answering(body: bytes, crc: int, tls: tuple[Path, Path] | None = None) -> Iterator[str]:
    """A narrow stand-in for one header DynamoDB sets: an answer whose x-amz-crc32 is ``crc`` (TLS with ``tls``)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("x-amz-crc32", str(crc))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://localhost:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_an_answer_whose_crc32_does_not_match_is_malformed_and_retryable():
    body = b'{"UnprocessedItems":{}}'
    with answering(body, zlib.crc32(body)) as url:
        assert connection_to(url).call("BatchWriteItem", b"{}") == {"UnprocessedItems": {}}
    with answering(body, zlib.crc32(body) ^ 1) as url, pytest.raises(MalformedResponseError) as caught:
        connection_to(url).call("BatchWriteItem", b"{}")
    assert is_retryable(caught.value)


def test_https_checks_the_certificate_against_the_bundle_the_client_was_given(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    body = b'{"UnprocessedItems":{}}'

    def connection(url: str, verify: bool | str) -> DynamoDBConnection:
        client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", verify=verify,
                              aws_access_key_id="a", aws_secret_access_key="b")
        made = DynamoDBConnection.for_client(client)
        assert made is not None
        return made

    with answering(body, zlib.crc32(body), tls=(cert, key)) as url:
        assert connection(url, str(cert)).call("BatchWriteItem", b"{}") == {"UnprocessedItems": {}}
        with pytest.raises(SSLError):  # botocore's default bundle does not know this certificate
            connection(url, True).call("BatchWriteItem", b"{}")
        assert connection(url, False).call("BatchWriteItem", b"{}") == {"UnprocessedItems": {}}


def test_requests_are_signed_with_the_clients_credentials_region_and_session_token():
    session = boto3.session.Session(aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret",
                                    aws_session_token="token-123", region_name="eu-west-3")
    connection = DynamoDBConnection.for_client(session.client("dynamodb", endpoint_url="http://127.0.0.1:9"))
    assert connection is not None
    headers = connection.sign(connection.prepare("BatchWriteItem", b"{}"))
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-3/dynamodb/aws4_request" in headers["Authorization"]
    assert "x-amz-target" in headers["Authorization"] and "host" in headers["Authorization"]
    assert headers["X-Amz-Security-Token"] == "token-123"
    assert headers["X-Amz-Target"] == "DynamoDB_20120810.BatchWriteItem"


def test_clients_whose_transport_it_does_not_reproduce_get_none(monkeypatch):
    def make(**config: object) -> object:
        return boto3.client("dynamodb", endpoint_url="http://10.1.2.3:8000", region_name="us-east-1",
                            aws_access_key_id="a", aws_secret_access_key="b", config=Config(**config))

    assert DynamoDBConnection.for_client(make()) is not None
    assert DynamoDBConnection.for_client(make(proxies={"http": "http://proxy:3128"})) is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    assert DynamoDBConnection.for_client(make()) is None
    monkeypatch.setenv("NO_PROXY", "10.1.2.3")
    assert DynamoDBConnection.for_client(make()) is not None


def test_a_writer_on_the_connection_lands_every_item_through_every_kind_of_fault(local_aws):
    # A fixed table name: the proxy rolls each fault from the request's body, which names the table,
    # so the faults are the same on every run (a random name left drop_after uninjected 3 runs in 21).
    table_name = "wire-every-kind-of-fault"
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    items = [dict(item, pk={"S": f"{item['pk']['S']}-{n}"}) for n in range(100) for item in all_types_items()]
    faults = DynamoFaults(throttling=0.15, internal_error=0.1, drop_before=0.08, drop_after=0.08, partial_batch=0.3)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, seed=11, faults=faults) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1")
        connection = DynamoDBConnection.for_client(client, sleep=lambda s: None)
        writer = WireBatchWriter(client, table_name, ["pk", "sk"], TokenBucket(1e9), direct=connection,
                                 sleep=lambda s: None)
        for n, item in enumerate(items):
            writer.put(encode_item(item), f"file:{n + 1}")
        writer.flush()
        counters = dict(proxy.counters)
    for fault in ("throttling", "internal_error", "drop_before", "drop_after", "withheld_items"):
        assert counters.get(fault, 0) > 0, f"no {fault} was injected: {counters}"
    assert writer.stats.items == len(items) and writer.stats.unprocessed_retries > 0
    assert_holds_exactly(ddb, table_name, items)


def test_a_later_copy_of_a_key_lands_last_on_the_connection(local_aws, table_name):
    local_aws.create_table(table_name)
    client = boto3.client("dynamodb", endpoint_url=local_aws.dynamodb_url, region_name="us-east-1")
    writer = WireBatchWriter(client, table_name, ["pk"], TokenBucket(1e9), direct=DynamoDBConnection.for_client(client))
    for version in range(6):  # each copy of k0..k29 in its own batch, in flight while the next is built
        for i in range(30):
            writer.put(orjson.dumps({"pk": {"s": f"k{i}"}, "version": {"n": str(version)}}), "f")
    writer.flush()
    ddb = local_aws.dynamodb_client()
    versions = {ddb.get_item(TableName=table_name, Key={"pk": {"S": f"k{i}"}})["Item"]["version"]["N"]
                for i in range(30)}
    assert versions == {"5"}
    assert writer.stats.items == 180


def test_clients_whose_calls_someone_else_handles_go_through_botocore(monkeypatch):
    from botocore.stub import Stubber

    from dynamodb_backup.aws.handlers import foreign_handlers
    from dynamodb_backup.loading.fastwrite import install_fast_batch_write

    def make(url: str = "http://127.0.0.1:8000", **config: object) -> object:
        return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                            aws_access_key_id="a", aws_secret_access_key="b", config=Config(**config))

    for mode in ("standard", "legacy", "adaptive"):  # botocore's own handlers differ by retry mode
        assert DynamoDBConnection.for_client(make(retries={"mode": mode})) is not None, mode
    ours = make()
    install_fast_batch_write(ours)  # this package's own hooks are not someone else's
    assert foreign_handlers(ours) == [] and DynamoDBConnection.for_client(ours) is not None
    other_service = make()
    other_service.meta.events.register("before-send.s3", lambda **_: None)  # never fires on a DynamoDB call
    assert DynamoDBConnection.for_client(other_service) is not None

    stubbed = make()
    with Stubber(stubbed):
        assert DynamoDBConnection.for_client(stubbed) is None
    assert DynamoDBConnection.for_client(stubbed) is not None  # deactivated: its handlers are gone
    for event in ("before-send", "before-send.dynamodb.BatchWriteItem", "before-call.dynamodb",
                  "provide-client-params.dynamodb.BatchWriteItem", "request-created"):
        hooked = make()
        hooked.meta.events.register(event, lambda **_: None)
        assert DynamoDBConnection.for_client(hooked) is None, event
        assert [name for name in foreign_handlers(hooked) if name.startswith(f"{event}: ")], event

    from moto import mock_aws

    with mock_aws():
        assert DynamoDBConnection.for_client(make()) is None  # moto's in-process mock answers while on
    assert DynamoDBConnection.for_client(make()) is not None


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/prefix", "http://127.0.0.1:8000/prefix/",
                                 "https://gateway.example.com/dynamodb"])
def test_an_endpoint_with_a_path_goes_through_botocore(url):
    client = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id="a", aws_secret_access_key="b")
    assert DynamoDBConnection.for_client(client) is None
    with pytest.raises(ValueError, match="path"):
        DynamoDBConnection(url, "us-east-1", client._request_signer._credentials)
