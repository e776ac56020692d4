"""The fault proxies themselves: capacity enforcement, each injected fault, reproducibility; and the strict
front door (signatures, clocks, keys and tokens, IAM policies, KMS through S3)."""

from __future__ import annotations

import contextlib
import http.client
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore
import botocore.auth
import pytest
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from dynamodb_backup.aws.throttle import SimulatedClock
from faultproxy import DynamoDBFaultProxy, DynamoFaults, FrontDoor, MovableClock, Principal, S3FaultProxy, S3Faults

NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=5, connect_timeout=2)


def client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", config=NO_RETRY)


def wait_for_table(ddb: Any, name: str) -> None:
    """A new table is CREATING for a moment on AWS and dynalite (DynamoDB Local: ACTIVE at once)."""
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)


def provisioned(local_aws, name: str, rcu: int, wcu: int, items: int = 0) -> None:
    ddb = local_aws.dynamodb_client()
    ddb.create_table(TableName=name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu})
    wait_for_table(ddb, name)
    for start in range(0, items, 25):
        ddb.batch_write_item(RequestItems={name: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i:05d}"}, "v": {"S": "x" * 3000}}}}
            for i in range(start, min(items, start + 25))]})


def code_of(exc: ClientError) -> str:
    return str(exc.response["Error"]["Code"])


def test_capacity_is_enforced_with_a_burst(local_aws, table_name):
    provisioned(local_aws, table_name, rcu=2, wcu=5, items=40)
    clock = SimulatedClock(100.0)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, clock=clock, initial_burst_seconds=0.0) as proxy:
        ddb = client("dynamodb", proxy.url)
        with pytest.raises(ClientError) as caught:
            ddb.scan(TableName=table_name)
        assert code_of(caught.value) == "ProvisionedThroughputExceededException"
        clock.sleep(1.0)  # two units banked: one page goes through and leaves a debt
        page = ddb.scan(TableName=table_name, Limit=20)
        assert "ConsumedCapacity" not in page  # the proxy asked for it, the client did not
        assert proxy.consumed(table_name) == 7.5  # 20 items of ~3 KB: 60 KB -> 15 x 4 KB, halved
        clock.sleep(1.0)
        with pytest.raises(ClientError):
            ddb.scan(TableName=table_name, Limit=1)  # still 3.5 units in debt
        clock.sleep(2.0)
        ddb.scan(TableName=table_name, Limit=1, ReturnConsumedCapacity="TOTAL")
        assert proxy.counters["capacity_exceeded"] == 2
        # Unused capacity banks up to 300 s: after a long idle, 300 x 2 units go at once.
        clock.sleep(1000.0)
        state = proxy.tables[table_name]
        state.read.refill(clock())
        assert state.read.tokens == pytest.approx(600.0)


def test_on_demand_tables_get_the_configured_limit(local_aws, table_name):
    local_aws.create_table(table_name)
    clock = SimulatedClock()
    with DynamoDBFaultProxy(local_aws.dynamodb_url, clock=clock, on_demand_write=1.0,
                            initial_burst_seconds=1.0) as proxy:
        ddb = client("dynamodb", proxy.url)
        ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}, "v": {"S": "x" * 5000}})  # 5 units
        with pytest.raises(ClientError) as caught:
            ddb.put_item(TableName=table_name, Item={"pk": {"S": "b"}})
        assert code_of(caught.value) == "ProvisionedThroughputExceededException"
        assert proxy.tables[table_name].on_demand


@pytest.mark.parametrize(("fault", "expected"), [
    ("internal_error", "InternalServerError"),
    ("unavailable", "ServiceUnavailable"),
    ("throttling", "ThrottlingException"),
])
def test_error_faults(local_aws, table_name, fault, expected):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(**{fault: 1.0})) as proxy:
        ddb = client("dynamodb", proxy.url)
        with pytest.raises(ClientError) as caught:
            ddb.get_item(TableName=table_name, Key={"pk": {"S": "a"}})
        assert code_of(caught.value) == expected
        ddb.describe_table(TableName=table_name)  # control-plane calls are spared by default
        assert proxy.counters[fault] == 1


@pytest.mark.parametrize("where", ["drop_before", "drop_after"])
def test_dropped_connections(local_aws, table_name, where):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(**{where: 1.0})) as proxy:
        ddb = client("dynamodb", proxy.url)
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}})
    stored = local_aws.dynamodb_client().get_item(TableName=table_name, Key={"pk": {"S": "a"}})
    # Dropped before: never reached the server. Dropped after: written, but the client cannot know.
    assert ("Item" in stored) == (where == "drop_after")
    assert proxy.counters[where] == 1


def test_slow_answers(local_aws, table_name):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(slow=1.0, slow_seconds=0.4)) as proxy:
        ddb = client("dynamodb", proxy.url)
        started = time.monotonic()
        ddb.get_item(TableName=table_name, Key={"pk": {"S": "a"}})
        assert time.monotonic() - started >= 0.4
        assert proxy.counters["slow"] == 1


def test_partial_batch_returns_the_rest_as_unprocessed(local_aws, table_name):
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, seed=5, faults=DynamoFaults(partial_batch=1.0)) as proxy:
        ddb = client("dynamodb", proxy.url)
        requests = [{"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(25)]
        answer = ddb.batch_write_item(RequestItems={table_name: requests})
        unprocessed = answer["UnprocessedItems"][table_name]
        assert 1 <= len(unprocessed) <= 24
    stored = {i["pk"]["S"] for i in local_aws.dynamodb_client().scan(TableName=table_name)["Items"]}
    withheld = {r["PutRequest"]["Item"]["pk"]["S"] for r in unprocessed}
    assert stored | withheld == {f"k{i}" for i in range(25)} and not stored & withheld
    assert proxy.counters["withheld_items"] == len(withheld)


def run_sequence(local_aws, table: str, seed: int) -> dict[str, int]:
    faults = DynamoFaults(throttling=0.3, internal_error=0.1, partial_batch=0.5)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, seed=seed, faults=faults) as proxy:
        ddb = client("dynamodb", proxy.url)
        for i in range(30):
            with contextlib.suppress(ClientError):
                ddb.batch_write_item(RequestItems={table: [
                    {"PutRequest": {"Item": {"pk": {"S": f"{i}-{j}"}}}} for j in range(5)]})
        return {k: v for k, v in proxy.counters.items()}


def test_same_seed_same_faults(local_aws, table_name):
    local_aws.create_table(table_name)
    first, second = run_sequence(local_aws, table_name, 7), run_sequence(local_aws, table_name, 7)
    assert first == second
    assert run_sequence(local_aws, table_name, 8) != first


def test_s3_faults_on_uploads_only(local_aws, s3_bucket):
    faults = S3Faults(internal_error=1.0)
    with S3FaultProxy(local_aws.s3_url, faults=faults) as proxy:
        s3 = client("s3", proxy.url)
        with pytest.raises(ClientError) as caught:
            s3.put_object(Bucket=s3_bucket, Key="a", Body=b"x")
        assert code_of(caught.value) == "InternalError"
        assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0  # reads pass through
        proxy.faults = S3Faults(unavailable=1.0)
        with pytest.raises(ClientError) as caught:
            s3.put_object(Bucket=s3_bucket, Key="a", Body=b"x")
        assert code_of(caught.value) == "SlowDown"
        upload = s3.create_multipart_upload(Bucket=s3_bucket, Key="m")["UploadId"]
        proxy.faults = S3Faults(drop_before=1.0)
        with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
            s3.upload_part(Bucket=s3_bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"y")
        proxy.faults = S3Faults()
        s3.upload_part(Bucket=s3_bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"y")
        assert proxy.counters["drop_before"] == 1


def test_a_client_killed_mid_upload_is_not_forwarded(local_aws, s3_bucket):
    """A SIGKILLed process leaves half a PutObject behind; S3 would never store it, so the proxy must not
    forward it (moto would store the stub under the full object's checksum, unreadable later)."""
    with S3FaultProxy(local_aws.s3_url, faults=S3Faults()) as proxy:
        host, port = proxy.url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port))) as conn:
            conn.sendall(f"PUT /{s3_bucket}/half HTTP/1.1\r\nHost: {host}\r\nContent-Length: 100\r\n\r\n".encode()
                         + b"only ten b")
            conn.shutdown(socket.SHUT_WR)
            assert conn.recv(100) == b""  # closed without an answer
    assert "Contents" not in local_aws.s3_client().list_objects_v2(Bucket=s3_bucket, Prefix="half")


# --- the strict front door ---------------------------------------------------------------------------------

ACCOUNT = "123456789012"
DDB_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. Check your AWS "
                     "Secret Access Key and signing method. Consult the service documentation for details.")


@dataclass
class Door:
    """A door of its own (its clock moves for this test only) with strict proxies in front of the servers."""

    door: FrontDoor
    ddb_url: str
    s3_url: str

    def client(self, service: str, key: str = "testing", secret: str = "testing", token: str | None = None,
               **config: Any) -> Any:
        url = self.ddb_url if service == "dynamodb" else self.s3_url
        return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id=key,
                            aws_secret_access_key=secret, aws_session_token=token,
                            config=NO_RETRY.merge(Config(**config)))


@pytest.fixture
def door(local_aws) -> Iterator[Door]:
    front = FrontDoor([Principal("testing", "testing")], clock=MovableClock(), account=ACCOUNT)
    with DynamoDBFaultProxy(local_aws.dynamodb.server.url, strict=front, enforce_capacity=False) as ddb, \
            S3FaultProxy(local_aws.moto.url, strict=front) as s3:
        yield Door(front, ddb.url, s3.url)


def tamper(client: Any, change: Callable[[Any], None]) -> None:
    """Change each request after botocore signed it, before it is sent."""
    client.meta.events.register("before-send", lambda request, **_: change(request))


def refusal(call: Callable[[], Any]) -> tuple[str, str, int]:
    with pytest.raises(ClientError) as caught:
        call()
    error = caught.value.response["Error"]
    return error["Code"], error.get("Message", ""), caught.value.response["ResponseMetadata"]["HTTPStatusCode"]


def test_correctly_signed_calls_pass(door, table_name, s3_bucket):
    ddb = door.client("dynamodb")
    ddb.create_table(TableName=table_name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    wait_for_table(ddb, table_name)
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a b/ü"}, "v": {"N": "1"}})
    assert ddb.get_item(TableName=table_name, Key={"pk": {"S": "a b/ü"}})["Item"]["v"] == {"N": "1"}
    s3 = door.client("s3")
    key = "dir/a b+c~ü!(x).txt"
    s3.put_object(Bucket=s3_bucket, Key=key, Body=b"small", ContentType="text/plain", Metadata={"m": "v"})
    assert s3.get_object(Bucket=s3_bucket, Key=key)["Body"].read() == b"small"
    assert s3.head_object(Bucket=s3_bucket, Key=key)["ContentLength"] == 5
    assert s3.list_objects_v2(Bucket=s3_bucket, Prefix="dir/a b")["KeyCount"] == 1
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key="big")["UploadId"]
    parts = [s3.upload_part(Bucket=s3_bucket, Key="big", UploadId=upload, PartNumber=n, Body=body)["ETag"]
             for n, body in ((1, b"x" * (5 * 1024 * 1024)), (2, b"tail"))]
    s3.complete_multipart_upload(Bucket=s3_bucket, Key="big", UploadId=upload, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(parts, 1)]})
    assert s3.head_object(Bucket=s3_bucket, Key="big")["ContentLength"] == 5 * 1024 * 1024 + 4
    s3.delete_objects(Bucket=s3_bucket, Delete={"Objects": [{"Key": "big"}]})
    url = door.client("s3", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": key}, ExpiresIn=60)
    assert "X-Amz-Signature=" in url
    with urllib.request.urlopen(url) as answer:
        assert answer.read() == b"small"
    assert door.door.refused() == 0
    counted = door.door.counters
    assert counted["allowed:s3:PutObject"] >= 5 and counted["allowed:s3:GetObject"] >= 3
    assert counted["allowed:dynamodb:PutItem"] == 1 and counted["allowed:dynamodb:CreateTable"] == 1


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self.body


def test_aws_chunked_uploads_with_trailing_checksums_are_checked(door, s3_bucket):
    """Over HTTPS botocore 1.44 sends PutObject as aws-chunked with a trailing CRC32
    (STREAMING-UNSIGNED-PAYLOAD-TRAILER). The client believes it talks HTTPS; its prepared request is
    sent to the door over plain HTTP, exactly as signed."""
    s3 = boto3.client("s3", endpoint_url=door.s3_url.replace("http://", "https://"), region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing", config=NO_RETRY)
    seen: list[dict[str, str]] = []
    corrupt: list[bool] = [False]

    def send_plain(request: Any, **_: Any) -> AWSResponse:
        body = request.body.read() if hasattr(request.body, "read") else (request.body or b"")
        if corrupt[0]:
            body = body.replace(b"payload", b"PAYLOAD")
        # urllib3 would send the aws-chunked stream in HTTP/1.1 chunks; the proxy undoes those, so send it whole
        headers = {k: v for k, v in request.headers.items() if k.lower() != "transfer-encoding"}
        seen.append({k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in headers.items()})
        parts = urllib.parse.urlsplit(request.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        conn.request(request.method, parts.path + (f"?{parts.query}" if parts.query else ""), body=body,
                     headers=headers)
        answer = conn.getresponse()
        data = answer.read()
        conn.close()
        return AWSResponse(request.url, answer.status, dict(answer.getheaders()), _Raw(data))

    s3.meta.events.register("before-send", send_plain)
    s3.put_object(Bucket=s3_bucket, Key="chunked", Body=b"the payload " * 1000)
    assert seen[-1]["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert seen[-1]["content-encoding"] == "aws-chunked" and "x-amz-trailer" in seen[-1]
    assert door.client("s3").get_object(Bucket=s3_bucket, Key="chunked")["Body"].read() == b"the payload " * 1000
    corrupt[0] = True  # the data no longer matches its trailing checksum
    code, message, status = refusal(lambda: s3.put_object(Bucket=s3_bucket, Key="chunked2", Body=b"payload " * 99))
    assert (code, status) == ("BadDigest", 400) and "CRC32" in message
    assert door.door.refused("BadDigest") == 1


def test_tampered_requests_are_refused(door, table_name, s3_bucket):
    local = door.client("dynamodb")
    local.create_table(TableName=table_name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                       KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    wait_for_table(local, table_name)
    for change in (
        lambda r: setattr(r, "body", r.body.replace(b'"a"', b'"b"')),  # the body
        lambda r: r.headers.__setitem__("X-Amz-Target", "DynamoDB_20120810.DeleteItem"),  # a signed header
        lambda r: r.headers.__setitem__("Authorization", r.headers["Authorization"][:-4] + b"0000"),  # signature
    ):
        ddb = door.client("dynamodb")
        tamper(ddb, change)
        code, message, status = refusal(lambda c=ddb: c.put_item(TableName=table_name, Item={"pk": {"S": "a"}}))
        assert (code, status) == ("InvalidSignatureException", 400) and message.startswith(DDB_BAD_SIGNATURE)
    assert door.door.refused("InvalidSignatureException") == 3
    assert "Item" not in local.get_item(TableName=table_name, Key={"pk": {"S": "a"}})
    wrong_secret = door.client("dynamodb", secret="not-the-secret")
    assert refusal(lambda: wrong_secret.list_tables())[0] == "InvalidSignatureException"

    s3 = door.client("s3")
    tamper(s3, lambda r: setattr(r, "body", b"other") if r.method == "PUT" else None)
    code, _, status = refusal(lambda: s3.put_object(Bucket=s3_bucket, Key="k", Body=b"right"))
    assert (code, status) == ("XAmzContentSHA256Mismatch", 400)
    s3 = door.client("s3")
    tamper(s3, lambda r: r.headers.__setitem__("Content-Type", "text/evil"))
    code, _, status = refusal(lambda: s3.put_object(Bucket=s3_bucket, Key="k", Body=b"right", ContentType="text/x"))
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    s3 = door.client("s3")
    tamper(s3, lambda r: r.headers.__setitem__("x-amz-meta-added", "later"))
    code, message, status = refusal(lambda: s3.put_object(Bucket=s3_bucket, Key="k", Body=b"right"))
    assert (code, status) == ("AccessDenied", 403) and "not signed" in message
    url = door.client("s3", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": "k"}, ExpiresIn=60)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url.replace("/k?", "/other?"))
    assert caught.value.code == 403 and b"<Code>SignatureDoesNotMatch</Code>" in caught.value.read()
    assert door.door.refused("SignatureDoesNotMatch") == 2
    assert "Contents" not in door.client("s3").list_objects_v2(Bucket=s3_bucket)


@pytest.fixture
def signing_at(monkeypatch) -> datetime:
    """botocore signs at a fixed moment (so the door's answer can be compared word for word)."""
    moment = datetime(2026, 5, 24, 12, 0, 0, tzinfo=UTC)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: moment.replace(tzinfo=None))
    return moment


@pytest.mark.parametrize("seconds", [301, -301])
def test_a_clock_more_than_5_minutes_off_is_refused_with_aws_words(door, signing_at, seconds):
    door.door.clock = MovableClock(signing_at + timedelta(seconds=seconds), frozen=True)
    ddb = door.client("dynamodb")
    code, message, status = refusal(ddb.list_tables)
    if seconds > 0:
        expected = ("Signature expired: 20260524T120000Z is now earlier than 20260524T120001Z "
                    "(20260524T120501Z - 5 min.)")
    else:
        expected = ("Signature not yet current: 20260524T120000Z is still later than 20260524T115959Z "
                    "(20260524T115459Z + 5 min.)")
    assert (code, message, status) == ("InvalidSignatureException", expected, 400)
    assert door.door.refused("InvalidSignatureException") == 1
    door.door.clock.advance(-seconds + (299 if seconds > 0 else -299))
    assert "TableNames" in ddb.list_tables()
    # S3 allows 15 minutes (MaxAllowedSkewMilliseconds 900000), then RequestTimeTooSkewed.
    door.door.clock.set(signing_at + timedelta(seconds=899 if seconds > 0 else -899))
    s3 = door.client("s3")
    assert "Buckets" in s3.list_buckets()
    door.door.clock.set(signing_at + timedelta(seconds=901 if seconds > 0 else -901))
    code, message, status = refusal(s3.list_buckets)
    assert (code, status) == ("RequestTimeTooSkewed", 403)
    assert message == "The difference between the request time and the current time is too large."
    assert door.door.refused() == 2


def test_a_presigned_url_expires_by_the_doors_clock(door, s3_bucket):
    door.client("s3").put_object(Bucket=s3_bucket, Key="k", Body=b"v")
    url = door.client("s3", signature_version="s3v4").generate_presigned_url(
        "get_object", Params={"Bucket": s3_bucket, "Key": "k"}, ExpiresIn=60)
    door.door.clock.advance(120)
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(url)
    assert caught.value.code == 403 and b"<Message>Request has expired</Message>" in caught.value.read()
    legacy = door.client("s3").generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "k"})
    if "X-Amz-Signature" not in legacy:  # botocore's default for S3 presigning is still Signature Version 2
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(legacy)
        assert b"<Code>InvalidRequest</Code>" in caught.value.read()


def test_unknown_keys_expired_tokens_and_missing_signatures(door, s3_bucket):
    code, message, status = refusal(door.client("dynamodb", key="AKIDUNKNOWN").list_tables)
    assert (code, message, status) == ("UnrecognizedClientException",
                                       "The security token included in the request is invalid.", 400)
    code, _, status = refusal(lambda: door.client("s3", key="AKIDUNKNOWN").list_objects_v2(Bucket=s3_bucket))
    assert (code, status) == ("InvalidAccessKeyId", 403)
    now = door.door.clock.now()
    door.door.add_principal(Principal("ASIAEXPIRED", "secret", session_token="tok", expires=now - timedelta(seconds=1)))
    door.door.add_principal(Principal("ASIAFRESH", "secret", session_token="tok", expires=now + timedelta(hours=1)))
    code, message, status = refusal(door.client("dynamodb", key="ASIAEXPIRED", secret="secret", token="tok")
                                    .list_tables)
    assert (code, message, status) == ("ExpiredTokenException",
                                       "The security token included in the request is expired", 400)
    code, _, status = refusal(lambda: door.client("s3", key="ASIAEXPIRED", secret="secret", token="tok")
                              .list_objects_v2(Bucket=s3_bucket))
    assert (code, status) == ("ExpiredToken", 400)
    assert "TableNames" in door.client("dynamodb", key="ASIAFRESH", secret="secret", token="tok").list_tables()
    wrong_token = door.client("dynamodb", key="ASIAFRESH", secret="secret", token="other")
    assert refusal(wrong_token.list_tables)[0] == "UnrecognizedClientException"
    door.door.clock.advance(3601)  # the fresh token expires too, by the door's clock
    code, _, _ = refusal(door.client("dynamodb", key="ASIAFRESH", secret="secret", token="tok").list_tables)
    assert code == "ExpiredTokenException"
    code, message, status = refusal(door.client("dynamodb", signature_version=botocore.UNSIGNED).list_tables)
    assert (code, message, status) == ("MissingAuthenticationTokenException",
                                       "Request is missing Authentication Token", 400)
    code, _, status = refusal(lambda: door.client("s3", signature_version=botocore.UNSIGNED)
                              .list_objects_v2(Bucket=s3_bucket))
    assert (code, status) == ("AccessDenied", 403)
    assert door.door.refused() == 8


def denial(user: str, action: str, resource: str, explicit: bool = False) -> str:
    why = "with an explicit deny in an identity-based policy" if explicit else \
        f"because no identity-based policy allows the {action} action"
    return (f"User: arn:aws:iam::{ACCOUNT}:user/{user} is not authorized to perform: {action} "
            f"on resource: {resource} {why}")


def test_policies_allow_deny_explicitly_and_match_wildcards(door, table_name, s3_bucket):
    door.client("dynamodb").create_table(
        TableName=table_name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")
    wait_for_table(door.client("dynamodb"), table_name)
    table = f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{table_name}"
    policy = {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": ["dynamodb:Get*", "dynamodb:PutIt?m", "dynamodb:DeleteItem"],
         "Resource": f"arn:aws:dynamodb:*:*:table/{table_name[:10]}*"},
        {"Effect": "Deny", "Action": "dynamodb:DeleteItem", "Resource": table},
        {"Effect": "Allow", "NotAction": ["s3:Delete*", "s3:PutObject"], "Resource": [
            f"arn:aws:s3:::{s3_bucket}", f"arn:aws:s3:::{s3_bucket}/public/*"]},
        {"Effect": "Allow", "Action": "s3:PutObject", "Resource": f"arn:aws:s3:::{s3_bucket}/public/*"},
    ]}
    door.door.add_principal(Principal("AKIDLIMITED", "limited", policy=policy, name="limited"))
    ddb = door.client("dynamodb", key="AKIDLIMITED", secret="limited")
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "a"}})
    assert ddb.get_item(TableName=table_name, Key={"pk": {"S": "a"}})["Item"] == {"pk": {"S": "a"}}
    code, message, status = refusal(lambda: ddb.scan(TableName=table_name))
    assert (code, message, status) == ("AccessDeniedException", denial("limited", "dynamodb:Scan", table), 400)
    code, message, _ = refusal(lambda: ddb.delete_item(TableName=table_name, Key={"pk": {"S": "a"}}))
    assert (code, message) == ("AccessDeniedException", denial("limited", "dynamodb:DeleteItem", table, True))
    code, message, _ = refusal(lambda: ddb.query(TableName=table_name, IndexName="by-v",
                                                 KeyConditionExpression="v = :v",
                                                 ExpressionAttributeValues={":v": {"S": "x"}}))
    assert message == denial("limited", "dynamodb:Query", f"{table}/index/by-v")
    code, message, _ = refusal(ddb.list_tables)
    assert message == denial("limited", "dynamodb:ListTables", "*")
    s3 = door.client("s3", key="AKIDLIMITED", secret="limited")
    s3.put_object(Bucket=s3_bucket, Key="public/a", Body=b"x")
    assert s3.get_object(Bucket=s3_bucket, Key="public/a")["Body"].read() == b"x"
    assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 1
    code, message, status = refusal(lambda: s3.put_object(Bucket=s3_bucket, Key="private/a", Body=b"x"))
    assert (code, status) == ("AccessDenied", 403)
    assert message == denial("limited", "s3:PutObject", f'"arn:aws:s3:::{s3_bucket}/private/a"')
    code, message, _ = refusal(lambda: s3.delete_object(Bucket=s3_bucket, Key="public/a"))  # NotAction
    assert message == denial("limited", "s3:DeleteObject", f'"arn:aws:s3:::{s3_bucket}/public/a"')
    assert door.door.denied() == {"dynamodb:Scan": 1, "dynamodb:DeleteItem": 1, "dynamodb:Query": 1,
                                  "dynamodb:ListTables": 1, "s3:PutObject": 1, "s3:DeleteObject": 1}
    assert door.door.counters["allowed:dynamodb:PutItem"] == 1 and door.door.counters["allowed:s3:PutObject"] == 1


def test_sse_kms_needs_the_key_permissions_s3_uses_for_the_caller(door, local_aws, s3_bucket):
    key = local_aws.client("kms").create_key()["KeyMetadata"]
    objects = {"Effect": "Allow", "Action": ["s3:PutObject", "s3:GetObject"], "Resource": f"arn:aws:s3:::{s3_bucket}/*"}
    via_s3 = {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}

    def principal(name: str, *kms_actions: str) -> Any:
        statements = [objects]
        if kms_actions:
            statements.append({"Effect": "Allow", "Action": list(kms_actions), "Resource": key["Arn"],
                               "Condition": via_s3})
        door.door.add_principal(Principal(f"AKID{name.upper()}", "s", name=name,
                                          policy={"Version": "2012-10-17", "Statement": statements}))
        return door.client("s3", key=f"AKID{name.upper()}", secret="s")

    sse = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key["KeyId"]}
    code, message, status = refusal(lambda: principal("nokms").put_object(Bucket=s3_bucket, Key="e", Body=b"x", **sse))
    assert (code, status) == ("AccessDenied", 403)
    assert message == denial("nokms", "kms:GenerateDataKey", key["Arn"])
    writer = principal("writer", "kms:GenerateDataKey")
    writer.put_object(Bucket=s3_bucket, Key="e", Body=b"secret", **sse)
    code, message, _ = refusal(lambda: writer.get_object(Bucket=s3_bucket, Key="e"))
    assert (code, message) == ("AccessDenied", denial("writer", "kms:Decrypt", key["Arn"]))
    writer.put_object(Bucket=s3_bucket, Key="plain", Body=b"p")  # no KMS asked: no KMS needed
    assert writer.get_object(Bucket=s3_bucket, Key="plain")["Body"].read() == b"p"
    upload = writer.create_multipart_upload(Bucket=s3_bucket, Key="m", **sse)["UploadId"]
    code, message, _ = refusal(lambda: writer.upload_part(Bucket=s3_bucket, Key="m", UploadId=upload, PartNumber=1,
                                                          Body=b"y"))
    assert message == denial("writer", "kms:Decrypt", key["Arn"])
    both = principal("both", "kms:GenerateDataKey", "kms:Decrypt")
    assert both.get_object(Bucket=s3_bucket, Key="e")["Body"].read() == b"secret"
    both.upload_part(Bucket=s3_bucket, Key="m", UploadId=upload, PartNumber=1, Body=b"y")
    direct = door.client("kms", key="AKIDBOTH", secret="s")  # the same key used directly: no kms:ViaService
    code, message, _ = refusal(lambda: direct.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256"))
    assert (code, message) == ("AccessDeniedException", denial("both", "kms:GenerateDataKey", key["Arn"]))
    assert door.door.denied() == {"kms:GenerateDataKey": 2, "kms:Decrypt": 2}


def test_a_fault_proxy_chained_in_front_of_the_door_takes_it(local_aws, table_name):
    """The session's door is behind local_aws.dynamodb_url: a fault proxy in front of it checks the client's
    request with that door before its faults rewrite it, so an unknown key is refused there."""
    local_aws.create_table(table_name)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, faults=DynamoFaults(partial_batch=1.0)) as proxy:
        assert proxy.strict is local_aws.door
        before = local_aws.door.refused("UnrecognizedClientException")
        stranger = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1", config=NO_RETRY,
                                aws_access_key_id="AKIDSTRANGER", aws_secret_access_key="x")
        assert refusal(stranger.list_tables)[0] == "UnrecognizedClientException"
        assert local_aws.door.refused("UnrecognizedClientException") == before + 1
        answer = client("dynamodb", proxy.url).batch_write_item(RequestItems={table_name: [
            {"PutRequest": {"Item": {"pk": {"S": f"k{i}"}}}} for i in range(5)]})
        assert answer["UnprocessedItems"]  # rewritten by the fault, still admitted behind it
