"""Everything but PITR goes through the stand-in to dynalite and back unchanged, and clients that
hang up mid-request or mid-answer do not hurt it. These raw requests go to the stand-in itself
(``local_aws.standin_url``), not through the strict front door in front of it."""

from __future__ import annotations

import socket
import struct
import time
from typing import TYPE_CHECKING

from local_pitr_helpers import create_table, raw_call

if TYPE_CHECKING:
    from conftest import LocalAws

# Headers that differ between any two answers of dynalite itself, and the hop-by-hop ones
# (Connection, Keep-Alive), which describe each connection, not the answer.
_PER_ANSWER = {"x-amzn-requestid", "date", "connection", "keep-alive"}


def test_answers_come_back_as_dynalite_sent_them(local_aws: LocalAws, table_name: str) -> None:
    assert local_aws.dynalite is not None
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name)
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}, "n": {"N": "1"}})
    for operation, payload in (
        ("GetItem", {"TableName": table_name, "Key": {"pk": {"S": "a"}}}),
        ("Scan", {"TableName": table_name}),
        ("GetItem", {"TableName": table_name + "-missing", "Key": {"pk": {"S": "a"}}}),  # an error answer
        ("DescribeTimeToLive", {"TableName": table_name}),
    ):
        via = raw_call(local_aws.standin_url, operation, payload)
        direct = raw_call(local_aws.dynalite.url, operation, payload)
        assert (via.status, via.body) == (direct.status, direct.body), operation
        assert {k: v for k, v in via.headers.items() if k not in _PER_ANSWER} == {
            k: v for k, v in direct.headers.items() if k not in _PER_ANSWER}, operation
    unknown = raw_call(local_aws.standin_url, "TransactWriteItems", {"TransactItems": []})
    assert unknown.body == raw_call(local_aws.dynalite.url, "TransactWriteItems", {"TransactItems": []}).body


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)))


def test_clients_hanging_up_mid_request_or_mid_answer_do_not_hurt_it(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name)
    blob = "x" * 300_000
    for i in range(4):
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"k{i}"}, "blob": {"S": blob}})
    for _ in range(3):  # headers and part of a body, then a reset (a SIGKILLed worker)
        with _connect(local_aws.standin_url) as conn:
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                         b"X-Amz-Target: DynamoDB_20120810.PutItem\r\nContent-Length: 100000\r\n\r\n"
                         b'{"TableName": "' + table_name.encode() + b'", "Item": {')
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    scan = (b'{"TableName": "' + table_name.encode() + b'"}')
    for _ in range(3):  # a whole request, then gone after the first bytes of a ~1 MB answer
        with _connect(local_aws.standin_url) as conn:
            conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                         b"X-Amz-Target: DynamoDB_20120810.Scan\r\nX-Amz-Date: 20200101T000000Z\r\n"
                         b"Authorization: AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=0\r\n"
                         b"Content-Length: " + str(len(scan)).encode() + b"\r\n\r\n" + scan)
            assert conn.recv(100).startswith(b"HTTP/1.1 200")
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    time.sleep(0.2)  # let the server notice the resets (the assertions below do not depend on it)
    assert ddb.scan(TableName=table_name, Select="COUNT")["Count"] == 4
    assert local_aws.dynamodb.is_running()
    assert local_aws.dynalite is not None and local_aws.dynalite.is_running()
