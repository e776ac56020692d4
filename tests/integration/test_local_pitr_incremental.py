"""Incremental exports from the PITR stand-in: window rules and messages, and the change lines.

The change-line test runs its own stand-in with a 2-second minimum window (AWS: 15 minutes),
so that a window can be written and exported within a test.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import orjson
import pytest

from local_pitr_helpers import create_table, enable_pitr, read_export, utc, wait_export

if TYPE_CHECKING:
    from conftest import LocalAws


def _cut() -> datetime:
    """A millisecond boundary after every write answered so far; returns once the clock has passed it."""
    moment = datetime.now(UTC) + timedelta(milliseconds=2)
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    while datetime.now(UTC) <= moment + timedelta(milliseconds=2):
        time.sleep(0.001)
    return moment


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _item(pk: str, v: str) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"S": v}}


def test_an_incremental_export_writes_the_net_change_of_each_key(local_aws: LocalAws, pitr_standin,
                                                                 table_name: str, s3_bucket: str) -> None:
    ddb = pitr_standin(lag_seconds=0, min_export_seconds=0.5, min_incremental_window_seconds=2).client(
        region_name="us-east-1")
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    for pk in ("a", "b", "d"):
        ddb.put_item(TableName=table_name, Item=_item(pk, "before"))
    start = _cut()
    ddb.put_item(TableName=table_name, Item=_item("a", "during"))  # update
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "b"}})  # delete
    ddb.put_item(TableName=table_name, Item=_item("c", "new"))  # insert
    ddb.put_item(TableName=table_name, Item=_item("e", "brief"))  # insert, then delete: nothing
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "e"}})
    ddb.update_item(TableName=table_name, Key={"pk": {"S": "d"}}, UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": "first"}})
    ddb.update_item(TableName=table_name, Key={"pk": {"S": "d"}}, UpdateExpression="SET v = :v, n = :n",
                    ExpressionAttributeValues={":v": {"S": "last"}, ":n": {"N": "2"}})
    while datetime.now(UTC) < start + timedelta(seconds=2.1):  # the window must be at least 2 s here
        time.sleep(0.05)
    end = _cut()
    ddb.put_item(TableName=table_name, Item=_item("a", "after"))  # outside the window
    ddb.put_item(TableName=table_name, Item=_item("z", "after"))

    s3 = local_aws.s3_client()
    outputs = {}
    for view in ("NEW_AND_OLD_IMAGES", "NEW_IMAGE"):
        started = ddb.export_table_to_point_in_time(
            TableArn=arn, S3Bucket=s3_bucket, S3Prefix="inc", ExportType="INCREMENTAL_EXPORT",
            IncrementalExportSpecification={"ExportFromTime": start, "ExportToTime": end, "ExportViewType": view},
        )["ExportDescription"]
        assert started["ExportStatus"] == "IN_PROGRESS" and "ExportTime" not in started
        assert started["ExportType"] == "INCREMENTAL_EXPORT"
        spec = started["IncrementalExportSpecification"]
        assert (utc(spec["ExportFromTime"]), utc(spec["ExportToTime"]), spec["ExportViewType"]) == (start, end, view)
        done = wait_export(ddb, started["ExportArn"])
        assert done["ExportStatus"] == "COMPLETED", done
        assert done["ItemCount"] == 4 and done["BilledSizeBytes"] == 10_000_000  # the minimum
        outputs[view] = read_export(s3, s3_bucket, done["ExportManifest"])

    full = outputs["NEW_AND_OLD_IMAGES"]
    export_id = full.folder.rsplit("/", 1)[1]
    assert full.folder == f"inc/AWSDynamoDB/{export_id}"
    assert set(full.objects) == {"_started", "manifest-files.json", "manifest-files.md5", "manifest-summary.json",
                                 "manifest-summary.md5"}  # data files are elsewhere:
    assert all(f["dataFileS3Key"].startswith("inc/AWSDynamoDB/data/") for f in full.files)
    assert list(full.summary) == ["version", "exportArn", "startTime", "endTime", "tableArn", "tableId",
                                  "exportFromTime", "exportToTime", "s3Bucket", "s3Prefix", "s3SseAlgorithm",
                                  "s3SseKmsKeyId", "manifestFilesS3Key", "billedSizeBytes", "itemCount",
                                  "outputFormat", "outputView", "exportType"]
    assert full.summary["version"] == "2023-08-01" and full.summary["exportType"] == "INCREMENTAL_EXPORT"
    assert (full.summary["exportFromTime"], full.summary["exportToTime"]) == (_iso(start), _iso(end))
    assert full.summary["outputView"] == "NEW_AND_OLD_IMAGES" and full.summary["itemCount"] == 4

    lines = {line["Keys"]["pk"]["S"]: line for line in full.lines()}
    for line in lines.values():
        assert list(line)[:2] == ["Metadata", "Keys"]
        micros = int(line["Metadata"]["WriteTimestampMicros"]["N"])
        assert start.timestamp() * 1e6 <= micros < end.timestamp() * 1e6
    assert {pk: {k: v for k, v in line.items() if k != "Metadata"} for pk, line in lines.items()} == {
        "a": {"Keys": {"pk": {"S": "a"}}, "NewImage": _item("a", "during"), "OldImage": _item("a", "before")},
        "b": {"Keys": {"pk": {"S": "b"}}, "OldImage": _item("b", "before")},
        "c": {"Keys": {"pk": {"S": "c"}}, "NewImage": _item("c", "new")},
        "d": {"Keys": {"pk": {"S": "d"}}, "NewImage": {**_item("d", "last"), "n": {"N": "2"}},
              "OldImage": _item("d", "before")},
    }
    new_only = {line["Keys"]["pk"]["S"]: {k: v for k, v in line.items() if k != "Metadata"}
                for line in outputs["NEW_IMAGE"].lines()}
    assert new_only == {
        "a": {"Keys": {"pk": {"S": "a"}}, "NewImage": _item("a", "during")},
        "b": {"Keys": {"pk": {"S": "b"}}},  # a delete: keys only
        "c": {"Keys": {"pk": {"S": "c"}}, "NewImage": _item("c", "new")},
        "d": {"Keys": {"pk": {"S": "d"}}, "NewImage": {**_item("d", "last"), "n": {"N": "2"}}},
    }
    assert outputs["NEW_IMAGE"].summary["outputView"] == "NEW_IMAGE"
    for body in full.data.values():  # compact JSON lines, "\n" after each
        for raw in gzip.decompress(body).splitlines(keepends=True):
            assert raw.endswith(b"}\n") and raw == orjson.dumps(orjson.loads(raw)) + b"\n"
    summaries = ddb.list_exports(TableArn=arn)["ExportSummaries"]
    assert [s["ExportType"] for s in summaries] == ["INCREMENTAL_EXPORT", "INCREMENTAL_EXPORT"]


def test_incremental_window_rules(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)

    def error(**spec: Any) -> dict[str, str]:
        with pytest.raises(ddb.exceptions.ClientError) as info:
            ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, ExportType="INCREMENTAL_EXPORT",
                                              **({"IncrementalExportSpecification": spec} if spec else {}))
        return dict(info.value.response["Error"])

    now = datetime.now(UTC)
    assert error(ExportFromTime=now - timedelta(hours=1)) == {
        "Code": "InvalidExportTimeException", "Message": "Incremental export start time outside PITR window"}
    enabled = utc(enable_pitr(ddb, table_name)["EarliestRestorableDateTime"])
    assert error() == {"Code": "ValidationException",
                       "Message": "Invalid Request: ExportFromTime must be provided in IncrementalExportSpecification"}
    assert error(ExportToTime=datetime.now(UTC))["Message"] == (
        "Invalid Request: ExportFromTime must be provided in IncrementalExportSpecification")
    early = error(ExportFromTime=enabled - timedelta(hours=1), ExportToTime=enabled)
    assert early == {"Code": "InvalidExportTimeException",
                     "Message": "Incremental export period from time cannot be less than the table creation time : "
                                + enabled.strftime("%Y-%m-%dT%H:%M:%SZ")}
    future = error(ExportFromTime=enabled, ExportToTime=datetime.now(UTC) + timedelta(hours=1))
    assert future["Code"] == "InvalidExportTimeException"
    assert future["Message"].startswith("Incremental export period to time cannot be greater than the current time : ")
    assert error(ExportFromTime=enabled) == {
        "Code": "InvalidExportTimeException",
        "Message": "Difference between export period from time and export period to time is less than 15 minutes"}
    view = error(ExportFromTime=enabled, ExportViewType="NEW_IMAGES")
    assert view["Code"] == "ValidationException"
    assert "'incrementalExportSpecification.exportViewType' failed to satisfy constraint" in view["Message"]
    with pytest.raises(ddb.exceptions.ClientError, match="Export Type expected to be Incremental Export"):
        ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, ExportType="FULL_EXPORT",
                                          IncrementalExportSpecification={"ExportFromTime": enabled})
