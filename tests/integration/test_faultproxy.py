"""The fault proxies themselves: capacity enforcement, each injected fault, reproducibility."""

from __future__ import annotations

import contextlib
import socket
import time

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from dynamodb_backup.aws.throttle import SimulatedClock
from faultproxy import DynamoDBFaultProxy, DynamoFaults, S3FaultProxy, S3Faults

NO_RETRY = Config(retries={"total_max_attempts": 1}, read_timeout=5, connect_timeout=2)


def client(service: str, url: str):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", config=NO_RETRY)


def provisioned(local_aws, name: str, rcu: int, wcu: int, items: int = 0) -> None:
    ddb = local_aws.dynamodb_client()
    ddb.create_table(TableName=name, AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     ProvisionedThroughput={"ReadCapacityUnits": rcu, "WriteCapacityUnits": wcu})
    while ddb.describe_table(TableName=name)["Table"]["TableStatus"] != "ACTIVE":
        time.sleep(0.05)
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
