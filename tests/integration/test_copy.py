"""Table-to-table copy between two separate local DynamoDB servers (two "regions")."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from demo_data import TABLE_SPECS, all_types_items, create_table, referrer_items
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.cli import main
from dynamodb_backup.commands.tablecopy import LocalCheckpoints
from dynamodb_backup.formats.codec.canonical import TableDigest, canonical_bytes
from dynamodb_backup.tablecopy.copier import copy_segments, verify_copy
from dynamodb_backup.tablecopy.plan import CopyRequest, prepare_copy, rate_readers
from faultproxy import DynamoDBFaultProxy, DynamoFaults

REPO = Path(__file__).resolve().parents[2]
REGION = "us-east-1"

#: The referrer table with a GSI and an LSI, on demand.
INDEXED_SPEC = {
    "KeySchema": TABLE_SPECS["ReferrerCounts"]["KeySchema"],
    "AttributeDefinitions": TABLE_SPECS["ReferrerCounts"]["AttributeDefinitions"],
    "GlobalSecondaryIndexes": [{
        "IndexName": "by-host",
        "KeySchema": [{"AttributeName": "host", "KeyType": "HASH"}, {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }],
    "LocalSecondaryIndexes": [{
        "IndexName": "by-resource-host",
        "KeySchema": [{"AttributeName": "resource", "KeyType": "HASH"}, {"AttributeName": "host", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["referrerCounts"]},
    }],
    "BillingMode": "PAY_PER_REQUEST",
}


@pytest.fixture
def source(local_aws):
    return local_aws.dynamodb_client()


@pytest.fixture
def dest(second_dynamodb):
    return second_dynamodb.client("dynamodb", region_name=REGION)


def fill(client, table: str, items, threads: int = 8) -> int:
    """Write items 25 to a call on a few threads (dynalite is fast; one thread would not keep it busy)."""
    batches, batch = [], []
    for item in items:
        batch.append({"PutRequest": {"Item": item}})
        if len(batch) == 25:
            batches.append(batch)
            batch = []
    if batch:
        batches.append(batch)

    def write(requests):
        pending = {table: requests}
        while pending:
            pending = client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, batches))
    return sum(map(len, batches))


def scan_all(client, table: str) -> list[dict]:
    return [item for page in client.get_paginator("scan").paginate(TableName=table) for item in page["Items"]]


def digest_of(client, table: str) -> TableDigest:
    digest = TableDigest()
    for item in scan_all(client, table):
        digest.add(item)
    return digest


def cli(local_aws, second_dynamodb, *args: str) -> list[str]:
    return ["copy", "--source-endpoint", local_aws.dynamodb_url, "--dest-endpoint", second_dynamodb.url,
            "--source-region", REGION, "--dest-region", REGION, *args]


def test_all_types_table_copies_exactly(local_aws, second_dynamodb, source, dest, table_name, capsys):
    create_table(source, table_name, TABLE_SPECS["AllTypes"])
    fill(source, table_name, all_types_items())
    code = main(cli(local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", table_name,
                    "--create-dest", "--verify", "--read-ratio", "1", "--write-ratio", "1"))
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"copied {len(all_types_items())} items" in out
    assert "verified:" in out
    # Same name, other server: every item identical once canonical (numbers to 38 digits, binary, sets, nesting).
    assert sorted(map(canonical_bytes, scan_all(dest, table_name))) == sorted(
        map(canonical_bytes, scan_all(source, table_name)))
    assert digest_of(dest, table_name) == digest_of(source, table_name)
    numbers = dest.get_item(TableName=table_name, Key={"pk": {"S": "numbers"}, "sk": {"N": "1"}})["Item"]
    assert numbers["big"] == {"N": "12345678901234567890123456789012345678"}


def test_destination_is_created_with_the_source_indexes(local_aws, second_dynamodb, source, dest, table_name, capsys):
    create_table(source, table_name, INDEXED_SPEC)
    fill(source, table_name, referrer_items(300))
    arn = source.describe_table(TableName=table_name)["Table"]["TableArn"]
    source.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "data"}])
    target = f"{table_name}-copy"
    assert main(cli(local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", target,
                    "--create-dest", "--verify")) == 0
    assert "verified: " in capsys.readouterr().out
    created = dest.describe_table(TableName=target)["Table"]
    want = source.describe_table(TableName=table_name)["Table"]
    assert created["KeySchema"] == want["KeySchema"]
    assert created["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    for kind in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
        assert [(i["IndexName"], i["KeySchema"], i["Projection"]) for i in created[kind]] == [
            (i["IndexName"], i["KeySchema"], i["Projection"]) for i in want[kind]]
    assert dest.list_tags_of_resource(ResourceArn=created["TableArn"])["Tags"] == [{"Key": "team", "Value": "data"}]
    # The index answers queries on the copy.
    host = scan_all(source, table_name)[0]["host"]
    by_host = dest.query(TableName=target, IndexName="by-host", KeyConditionExpression="host = :h",
                         ExpressionAttributeValues={":h": host}, Select="COUNT")["Count"]
    assert by_host == sum(1 for item in referrer_items(300) if item["host"] == host)


def test_on_demand_source_into_provisioned_destination(local_aws, second_dynamodb, source, dest, table_name,
                                                       capsys):
    local_aws.create_table(table_name)  # PAY_PER_REQUEST: the archived tool failed on capacity 0 here
    fill(source, table_name, ({"pk": {"S": f"item-{i:04d}"}, "v": {"N": str(i)}} for i in range(300)))
    dest.create_table(TableName=table_name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                      ProvisionedThroughput={"ReadCapacityUnits": 50, "WriteCapacityUnits": 100})
    dest.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
    started = time.monotonic()
    assert main(cli(local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", table_name,
                    "--read-ratio", "1", "--write-ratio", "1", "--segments", "2", "--verify")) == 0
    elapsed = time.monotonic() - started
    out = capsys.readouterr().out
    assert "copied 300 items" in out and "300.0 write units" in out and "verified:" in out
    # 300 write units at 100 units/s, one second of credit up front: about 2 s, paced by the destination.
    assert elapsed >= 1.5
    assert digest_of(dest, table_name) == digest_of(source, table_name)
    assert dest.describe_table(TableName=table_name)["Table"]["ProvisionedThroughput"]["WriteCapacityUnits"] == 100


@pytest.mark.slow
def test_sections_in_separate_processes_add_up_to_the_whole_table(
        local_aws, second_dynamodb, source, dest, table_name, tmp_path):
    create_table(source, table_name, INDEXED_SPEC)
    count = 50_000
    assert fill(source, table_name, referrer_items(count)) == count
    expected = digest_of(source, table_name)
    target = f"{table_name}-copy"
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}"}
    command = [sys.executable, "-m", "dynamodb_backup", *cli(
        local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", target, "--segments", "12",
        "--create-dest", "--read-ratio", "1.5", "--write-ratio", "1.5", "--on-demand-capacity", "100000",
        "--checkpoint-dir", str(tmp_path / "checkpoints"))]
    started = time.monotonic()
    procs = [subprocess.Popen([*command, "--total-sections", "3", "--section", str(i)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]
    outputs = [p.communicate(timeout=600) for p in procs]
    elapsed = time.monotonic() - started
    for p, (_, err) in zip(procs, outputs, strict=True):
        assert p.returncode == 0, err
    copied = [int(re.search(r"copied ([\d,]+) items", out).group(1).replace(",", "")) for out, _ in outputs]
    assert all(copied) and sum(copied) == count
    for i, (out, _) in enumerate(outputs):
        assert f"section {i} of 3: segments {4 * i}-{4 * i + 3} of 12" in out
    print(f"\n50k items in 3 sections: {elapsed:.1f} s wall, {count / elapsed:,.0f} items/s (with process start-up)")
    for out, _ in outputs:
        print(out.strip())
    assert digest_of(dest, target) == expected
    # Afterwards one run over the whole copy with the same checkpoints copies nothing and verifies.
    final = subprocess.run([*command, "--verify"], env=env, text=True, capture_output=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"copied {count:,} items, {count:,} of them by an earlier run" in final.stdout
    assert f"verified: {target} holds exactly the {count:,} items copied" in final.stdout


def test_a_worker_killed_mid_segment_resumes_from_its_last_page(local_aws, second_dynamodb, source, dest,
                                                                 table_name, tmp_path):
    local_aws.create_table(table_name)
    # ~5 KB items: a 1 MB scan page holds about 200, so each segment spans several pages.
    blob = "x" * 5000
    count = fill(source, table_name, ({"pk": {"S": f"item-{i:05d}"}, "blob": {"S": blob}} for i in range(1600)))
    plan = prepare_copy(source, dest, CopyRequest(table_name, table_name, segments=2, create_dest=True))
    scans, written = [0], [0]
    source.meta.events.register("before-call.dynamodb.Scan", lambda **_: scans.__setitem__(0, scans[0] + 1))
    dest.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem",
                              lambda params, **_: written.__setitem__(0, written[0] + len(params["RequestItems"][
                                  table_name])))
    pages = {0: 0}

    def die_on_third_page_of_segment_0(segment: int) -> None:
        if segment == 0:
            pages[0] += 1
            if pages[0] == 3:
                raise RuntimeError("worker killed")

    def run(hook=None):
        return copy_segments(source, dest, table_name, table_name, [0, 1], 2, TokenBucket(100_000),
                             TokenBucket(100_000), key_names=plan.key_names, threads=2,
                             checkpoint=LocalCheckpoints(tmp_path), before_page=hook)

    with pytest.raises(RuntimeError, match="worker killed"):
        run(die_on_third_page_of_segment_0)
    first_scans, first_written = scans[0], written[0]
    half = LocalCheckpoints(tmp_path).load(0, 2)
    assert half is not None and half.pages == 2 and not half.done and half.last_key
    assert first_written == sum(s.items for s in map(lambda n: LocalCheckpoints(tmp_path).load(n, 2), (0, 1)) if s)

    scans[0] = written[0] = 0
    result = run()
    # Every page was read once over both attempts, and every item written exactly once.
    assert first_scans + scans[0] == sum(s.pages for s in result.states)
    assert scans[0] < sum(s.pages for s in result.states)
    assert first_written + written[0] == count
    assert result.items == count and result.resumed_items == first_written
    assert result.digest == digest_of(source, table_name) == digest_of(dest, table_name)


def test_throttling_errors_and_unprocessed_items_never_lose_an_item(local_aws, second_dynamodb, source, dest,
                                                                    table_name, capsys):
    """The archived tool's issue #9 (silent partial copies under throttling), against injected faults."""
    local_aws.create_table(table_name)
    count = fill(source, table_name, ({"pk": {"S": f"k{i:05d}"}, "v": {"N": f"{i}.5"}} for i in range(1500)))
    faults = DynamoFaults(throttling=0.1, internal_error=0.03, drop_after=0.03, partial_batch=0.4)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, seed=4, faults=faults) as source_proxy, \
            DynamoDBFaultProxy(second_dynamodb.url, seed=5, faults=faults) as dest_proxy:
        code = main(["copy", "--source-endpoint", source_proxy.url, "--dest-endpoint", dest_proxy.url,
                     "--source-region", REGION, "--dest-region", REGION, "--source-table", table_name,
                     "--dest-table", table_name, "--create-dest", "--segments", "4", "--verify",
                     "--read-ratio", "1", "--write-ratio", "1"])
        injected = {kind: source_proxy.counters.get(kind, 0) + dest_proxy.counters.get(kind, 0)
                    for kind in ("partial_batch", "throttling", "internal_error", "drop_after")}
    out = capsys.readouterr().out
    assert code == 0 and f"verified: {table_name} holds exactly the {count:,} items copied" in out
    # Fates depend on request contents (the table name varies), so only their sum is certain to be large.
    assert injected["partial_batch"] > 5 and injected["throttling"] + injected["internal_error"] > 2, injected
    assert digest_of(dest, table_name) == digest_of(source, table_name)


def test_a_killed_cli_process_resumes_from_its_checkpoints(local_aws, second_dynamodb, source, dest, table_name,
                                                          tmp_path):
    local_aws.create_table(table_name)
    count = fill(source, table_name, ({"pk": {"S": f"k{i:05d}"}, "pad": {"S": "p" * 1500}} for i in range(6000)))
    dest.create_table(TableName=table_name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                      ProvisionedThroughput={"ReadCapacityUnits": 5000, "WriteCapacityUnits": 3000})
    dest.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})
    checkpoints = tmp_path / "checkpoints"
    command = [sys.executable, "-m", "dynamodb_backup", *cli(
        local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", table_name, "--segments", "2",
        "--read-ratio", "1", "--write-ratio", "1", "--checkpoint-dir", str(checkpoints))]
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'plugins'}"}
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not list(checkpoints.glob("segment-*.json")) and time.monotonic() < deadline:
        time.sleep(0.05)
    worker.kill()  # SIGKILL: no clean-up, as when a machine dies
    worker.communicate()
    partial = [LocalCheckpoints(checkpoints).load(n, 2) for n in (0, 1)]
    assert any(partial) and not all(s and s.done for s in partial)
    rerun = subprocess.run([*command, "--verify"], env=env, capture_output=True, text=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr
    earlier = int(re.search(r"([\d,]+) of them by an earlier run", rerun.stdout).group(1).replace(",", ""))
    assert 0 < earlier < count
    assert f"holds exactly the {count:,} items copied" in rerun.stdout
    assert digest_of(dest, table_name) == digest_of(source, table_name)


def test_verification_catches_a_missing_item_and_an_unexpected_one(local_aws, second_dynamodb, source, dest,
                                                                    table_name):
    local_aws.create_table(table_name)
    fill(source, table_name, ({"pk": {"S": f"k{i}"}} for i in range(50)))
    plan = prepare_copy(source, dest, CopyRequest(table_name, table_name, segments=3, create_dest=True))
    assert plan.dest_was_empty and plan.created_dest
    result = copy_segments(source, dest, table_name, table_name, range(3), 3, TokenBucket(1000), TokenBucket(1000),
                           key_names=plan.key_names)
    assert verify_copy(dest, plan, result.digest, 1.0).ok
    dest.delete_item(TableName=table_name, Key={"pk": {"S": "k7"}})
    dest.put_item(TableName=table_name, Item={"pk": {"S": "stray"}})
    check = verify_copy(dest, plan, result.digest, 1.0, source_client=source)
    assert not check.ok and "MISMATCH: copied 50 items" in check.message and "holds 50" in check.message
    # Both tables are read again to name the keys.
    assert check.sample["missing"] == [{"pk": "k7"}] and check.sample["extra"] == [{"pk": "stray"}]
    assert "missing: 1 e.g. [{'pk': 'k7'}]" in check.message
    dest.delete_item(TableName=table_name, Key={"pk": {"S": "stray"}})
    dest.put_item(TableName=table_name, Item={"pk": {"S": "k7"}, "changed": {"BOOL": True}})
    check = verify_copy(dest, plan, result.digest, 1.0, source_client=source)
    assert not check.ok and check.sample["differing"] == [{"pk": "k7"}]  # same count, different digest
    # Into a table that already held items, only the count can be compared.
    again = prepare_copy(source, dest, CopyRequest(table_name, table_name, segments=3))
    assert not again.dest_was_empty
    check = verify_copy(dest, again, result.digest, 1.0)
    assert check.ok and "was not empty before the copy" in check.message


def test_refusals_name_the_problem(local_aws, second_dynamodb, source, dest, table_name, capsys):
    local_aws.create_table(table_name)
    assert main(cli(local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", table_name)) == 2
    assert "does not exist at the destination" in capsys.readouterr().err
    local_aws.create_table(table_name, hash_key="id", client=dest)
    assert main(cli(local_aws, second_dynamodb, "--source-table", table_name, "--dest-table", table_name)) == 2
    assert "key schema (id HASH S) does not match the source's (pk HASH S)" in capsys.readouterr().err
    assert main(cli(local_aws, second_dynamodb, "--source-table", "Missing-Table", "--dest-table", table_name)) == 2
    assert "'Missing-Table' does not exist" in capsys.readouterr().err
    assert main(["copy", "--source-table", table_name, "--dest-table", table_name, "--source-endpoint",
                 local_aws.dynamodb_url, "--dest-endpoint", local_aws.dynamodb_url]) == 2
    assert "source and destination are the same table" in capsys.readouterr().err


def test_created_destination_keeps_ttl_sse_and_tags(local_aws, table_name):
    """dynalite has no TTL or SSE; moto's DynamoDB has both, so this one copies within moto."""
    moto = local_aws.moto.client("dynamodb", region_name=REGION)
    moto.create_table(TableName=table_name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                      AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                      BillingMode="PAY_PER_REQUEST", SSESpecification={"Enabled": True, "SSEType": "KMS"},
                      Tags=[{"Key": "owner", "Value": "data-team"}])
    moto.update_time_to_live(TableName=table_name,
                             TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    fill(moto, table_name, ({"pk": {"S": f"k{i}"}, "expires": {"N": str(2_000_000_000 + i)}} for i in range(40)))
    target = f"{table_name}-copy"
    plan = prepare_copy(moto, moto, CopyRequest(table_name, target, segments=2, create_dest=True))
    assert plan.created_dest and plan.dest_was_empty
    copy_segments(moto, moto, table_name, target, [0, 1], 2, TokenBucket(1000), TokenBucket(1000),
                  key_names=plan.key_names)
    created = moto.describe_table(TableName=target)["Table"]
    assert created["SSEDescription"]["SSEType"] == "KMS"
    assert created["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    ttl = moto.describe_time_to_live(TableName=target)["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"}
    assert moto.list_tags_of_resource(ResourceArn=created["TableArn"])["Tags"] == [
        {"Key": "owner", "Value": "data-team"}]
    assert digest_of(moto, target) == digest_of(moto, table_name)


def test_copy_workers_follow_capacity_changes(local_aws, second_dynamodb, source, dest, table_name):
    provisioned = {**TABLE_SPECS["AllTypes"], "BillingMode": "PROVISIONED",
                   "ProvisionedThroughput": {"ReadCapacityUnits": 100, "WriteCapacityUnits": 100}}
    create_table(source, table_name, provisioned)
    fill(source, table_name, all_types_items()[:6])
    request = CopyRequest(table_name, table_name, read_ratio=0.5, write_ratio=0.5, segments=4, create_dest=True)
    plan = prepare_copy(source, dest, request)
    read_now, write_now = rate_readers(source, dest, plan, request, [0, 1])  # half of the segments
    assert (read_now(), write_now()) == (25.0, 25.0)
    # Both tables scale while the copy runs.
    source.update_table(TableName=table_name,
                        ProvisionedThroughput={"ReadCapacityUnits": 400, "WriteCapacityUnits": 100})
    dest.update_table(TableName=table_name,
                      ProvisionedThroughput={"ReadCapacityUnits": 100, "WriteCapacityUnits": 40})
    for client in (source, dest):
        client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1})  # ACTIVE again
    read_bucket, write_bucket = TokenBucket(25.0), TokenBucket(25.0)
    copy_segments(source, dest, table_name, table_name, [0, 1], 4, read_bucket, write_bucket,
                  key_names=plan.key_names, rates_now=(read_now, write_now), rate_check_seconds=0.0)
    assert (read_bucket.rate, write_bucket.rate) == (100.0, 10.0)


def test_consistent_read_is_planned_once_and_reaches_every_source_scan(local_aws, second_dynamodb, source, dest,
                                                                        table_name):
    local_aws.create_table(table_name)
    fill(source, table_name, ({"pk": {"S": f"k{i}"}} for i in range(120)))
    request = CopyRequest(table_name, table_name, segments=3, create_dest=True, consistent_read=True)
    plan = prepare_copy(source, dest, request)
    assert plan.consistent_read
    seen: list = []
    source.meta.events.register("before-parameter-build.dynamodb.Scan",
                                lambda params, **_: seen.append(params.get("ConsistentRead")))
    result = copy_segments(source, dest, table_name, table_name, range(3), 3, TokenBucket(1000), TokenBucket(1000),
                           key_names=plan.key_names, consistent_read=plan.consistent_read)
    assert result.items == 120 and len(seen) >= 3 and set(seen) == {True}
