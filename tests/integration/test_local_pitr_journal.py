"""The stand-in's write journal: images exactly as the backend (DynamoDB Local, dynalite) stores them,
takeover with a baseline, table incarnations, surviving a restart, and resuming an export the stand-in
was killed in."""

from __future__ import annotations

import base64
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from local_pitr_helpers import (
    by_pk,
    create_table,
    enable_pitr,
    raw_call,
    read_export,
    wait_export,
)

if TYPE_CHECKING:
    from conftest import LocalAws


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


TRICKY = {
    "pk": {"S": "tricky"},
    "n": {"N": "001.500"}, "neg_zero": {"N": "-0.0"}, "exp": {"N": "1E+2"}, "tiny": {"N": "1e-130"},
    "wide": {"N": "12345678901234567890123456789012345678"}, "frac": {"N": "-.000123"}, "dot": {"N": "5."},
    "ns": {"NS": ["1.10", "2E1", "-3", "0.0001e4"]},
    "ss": {"SS": ["zeta", "alpha", "\u00e9t\u00e9 \u2603"]},
    "b": {"B": _b64(b"\x00\xff\x10binary")}, "bs": {"BS": [_b64(b"\x01"), _b64(b"\x02\x03")]},
    "empty": {"S": ""}, "t": {"BOOL": True}, "nothing": {"NULL": True},
    "nested": {"M": {"l": {"L": [{"N": "007"}, {"S": ""}, {"M": {"deep": {"NS": ["10.0"]}}}, {"NULL": True}]},
                     "m": {"M": {}}, "quote": {"S": "\"\\\n\t"}}},
}


def test_the_journal_holds_exactly_what_the_backend_stores(local_aws: LocalAws, table_name: str,
                                                        s3_bucket: str) -> None:
    assert local_aws.dynalite is not None
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    url = local_aws.dynamodb_url
    for payload in (
        {"TableName": table_name, "Item": TRICKY},
        {"TableName": table_name, "Item": {"pk": {"S": "big"}, "blob": {"S": "x" * 399_000}, "n": {"N": "0400"}}},
    ):
        assert raw_call(url, "PutItem", payload).status == 200
    updated = raw_call(url, "UpdateItem", {
        "TableName": table_name, "Key": {"pk": {"S": "upd"}},
        "UpdateExpression": "SET a = :a, l = :l ADD s :s",
        "ExpressionAttributeValues": {":a": {"N": "0012.340"}, ":l": {"L": [{"N": "1e3"}]}, ":s": {"NS": ["3.30"]}}})
    assert updated.status == 200 and updated.json() == {}  # the stand-in's own ReturnValues is not shown
    for values in ("UPDATED_OLD", "ALL_OLD", "UPDATED_NEW", "ALL_NEW"):  # each way of recording an update
        answer = raw_call(url, "UpdateItem", {
            "TableName": table_name, "Key": {"pk": {"S": "upd"}}, "UpdateExpression": "ADD s :s, c :one",
            "ExpressionAttributeValues": {":s": {"NS": [f"{len(values)}.50"]}, ":one": {"N": "01"}},
            "ReturnValues": values})
        assert answer.status == 200 and "Attributes" in answer.json()
    assert raw_call(url, "BatchWriteItem", {"RequestItems": {table_name: [
        {"PutRequest": {"Item": {"pk": {"S": "batch"}, "v": {"NS": ["0.50", "100"]}}}},
        {"DeleteRequest": {"Key": {"pk": {"S": "never-there"}}}},
    ]}}).status == 200

    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket)["ExportDescription"]
    done = wait_export(ddb, started["ExportArn"])
    assert done["ExportStatus"] == "COMPLETED", done
    exported = by_pk(read_export(s3, s3_bucket, done["ExportManifest"]).items())
    assert sorted(exported) == ["batch", "big", "tricky", "upd"]
    for pk, image in exported.items():
        stored = raw_call(local_aws.dynalite.url, "GetItem", {"TableName": table_name, "Key": {"pk": {"S": pk}},
                                                              "ConsistentRead": True}).json()["Item"]
        assert image == stored, pk  # same attributes, same number spellings, same set order
    # A put's top-level numbers come back trimmed, as AWS documents ("leading and trailing zeroes are
    # trimmed"), from both backends.
    assert exported["tricky"]["n"] == {"N": "1.5"} and exported["tricky"]["neg_zero"] == {"N": "0"}
    assert exported["tricky"]["tiny"]["N"] == "0." + "0" * 129 + "1"
    if local_aws.is_ddblocal:
        # DynamoDB Local keeps a number an UpdateItem SETs as it was sent (and numbers inside maps and
        # lists, and sorts sets); the journal holds what the server holds (checked above). Pinned, so
        # a DynamoDB Local that trims like AWS's documentation says shows up here.
        assert exported["upd"]["a"] == {"N": "0012.340"}
    else:
        assert exported["upd"]["a"] == {"N": "12.34"}


def test_a_table_made_before_the_stand_in_knew_it_is_taken_over_with_a_baseline(
        local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    assert local_aws.dynalite is not None
    direct = local_aws.dynalite.client(region_name="us-east-1")
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    arn = create_table(direct, table_name)  # straight into dynalite: the journal never saw it
    for i in range(120):  # more than one page is not needed; several writes are
        direct.put_item(TableName=table_name, Item={"pk": {"S": f"old{i:03d}"}, "n": {"N": f"{i}.0"}})
    direct.delete_item(TableName=table_name, Key={"pk": {"S": "old000"}})
    enable_pitr(ddb, table_name)
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "after"}})
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "old001"}})
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket)["ExportDescription"]
    done = wait_export(ddb, started["ExportArn"])
    items = by_pk(read_export(s3, s3_bucket, done["ExportManifest"]).items())
    assert sorted(items) == sorted({f"old{i:03d}" for i in range(2, 120)} | {"after"})
    assert items["old005"] == {"pk": {"S": "old005"}, "n": {"N": "5"}}


def test_the_journal_and_an_unfinished_export_survive_a_killed_stand_in(pitr_standin, tmp_path, table_name: str,
                                                                       s3_bucket: str, local_aws: LocalAws) -> None:
    state = tmp_path / "standin"
    first = pitr_standin(state_dir=state, lag_seconds=0, min_export_seconds=600)
    ddb = first.client(region_name="us-east-1")
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    for i in range(10):
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"k{i}"}, "n": {"N": str(i)}})
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket)["ExportDescription"]
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "k0"}})  # after the export time: not in it
    assert first.pid is not None
    os.killpg(first.pid, signal.SIGKILL)  # no chance to finish anything
    assert first.process is not None
    first.process.wait(10)

    second = pitr_standin(state_dir=state, lag_seconds=0, min_export_seconds=1)
    ddb = second.client(region_name="us-east-1")
    done = wait_export(ddb, started["ExportArn"])  # resumed on restart
    assert done["ExportStatus"] == "COMPLETED" and done["ItemCount"] == 10
    s3 = local_aws.s3_client()
    assert sorted(by_pk(read_export(s3, s3_bucket, done["ExportManifest"]).items())) == [f"k{i}" for i in range(10)]
    # The journal kept the delete too: an export now has nine items.
    again = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="again")["ExportDescription"]
    assert wait_export(ddb, again["ExportArn"])["ItemCount"] == 9


def _put_items(ddb: Any, table: str, count: int) -> None:
    for i in range(count):
        ddb.put_item(TableName=table, Item={"pk": {"S": f"i{i}"}})


def test_a_deleted_table_takes_its_history_and_pitr_with_it(local_aws: LocalAws, table_name: str,
                                                            s3_bucket: str) -> None:
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    _put_items(ddb, table_name, 5)
    old = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="old")["ExportDescription"]
    wait_export(ddb, old["ExportArn"])
    ddb.delete_table(TableName=table_name)
    deadline = time.monotonic() + 30
    while table_name in ddb.list_tables()["TableNames"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    create_table(ddb, table_name)
    with_pitr = enable_pitr(ddb, table_name)
    assert with_pitr["PointInTimeRecoveryStatus"] == "ENABLED"
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "fresh"}})
    new = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="new")["ExportDescription"]
    assert new["TableId"] != old["TableId"]
    done = wait_export(ddb, new["ExportArn"])
    assert by_pk(read_export(s3, s3_bucket, done["ExportManifest"]).items()) == {"fresh": {"pk": {"S": "fresh"}}}
    assert [s["ExportArn"] for s in ddb.list_exports(TableArn=arn)["ExportSummaries"]] == [new["ExportArn"]]
