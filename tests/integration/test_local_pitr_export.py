"""Full exports from the PITR stand-in: the table as it was at ExportTime, asynchronous status,
ClientToken semantics, asynchronous S3 failures."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from local_pitr_helpers import by_pk, create_table, enable_pitr, read_export, utc, wait_export, wait_until_restorable

if TYPE_CHECKING:
    from conftest import LocalAws


def _item(pk: str, **attrs: Any) -> dict[str, Any]:
    item: dict[str, Any] = {"pk": {"S": pk}}
    for name, value in attrs.items():
        item[name] = {"N": str(value)} if isinstance(value, int) else {"S": value}
    return item


def _cut() -> datetime:
    """A millisecond boundary after every write answered so far; returns once the clock has passed it."""
    moment = datetime.now(UTC) + timedelta(milliseconds=2)
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    while datetime.now(UTC) <= moment + timedelta(milliseconds=2):
        time.sleep(0.001)
    return moment


def test_an_export_at_a_past_time_is_the_table_as_it_was_then(local_aws: LocalAws, table_name: str,
                                                               s3_bucket: str) -> None:
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    model: dict[str, dict[str, Any]] = {}  # the test's own idea of the table, write by write
    states: list[tuple[datetime, dict[str, dict[str, Any]]]] = []

    for i in range(6):
        model[f"k{i}"] = _item(f"k{i}", n=i, s="first")
        ddb.put_item(TableName=table_name, Item=model[f"k{i}"])
    states.append((_cut(), {k: dict(v) for k, v in model.items()}))

    ddb.update_item(TableName=table_name, Key={"pk": {"S": "k1"}}, UpdateExpression="SET s = :s, n = n + :one",
                    ExpressionAttributeValues={":s": {"S": "updated"}, ":one": {"N": "1"}})
    model["k1"] = _item("k1", n=2, s="updated")
    ddb.update_item(TableName=table_name, Key={"pk": {"S": "new"}}, UpdateExpression="SET s = :s",
                    ExpressionAttributeValues={":s": {"S": "made by update"}}, ReturnValues="UPDATED_OLD")
    model["new"] = _item("new", s="made by update")
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "k2"}})
    del model["k2"]
    batch = [_item(f"b{i}", n=100 + i) for i in range(30)]
    for start in range(0, 30, 25):
        puts = [{"PutRequest": {"Item": it}} for it in batch[start:start + 25]]
        ddb.batch_write_item(RequestItems={table_name: puts})
    model.update(by_pk(batch))
    states.append((_cut(), {k: dict(v) for k, v in model.items()}))

    ddb.batch_write_item(RequestItems={table_name: [
        {"DeleteRequest": {"Key": {"pk": {"S": "b0"}}}}, {"DeleteRequest": {"Key": {"pk": {"S": "k3"}}}},
        {"PutRequest": {"Item": _item("k4", s="replaced")}},
    ]})
    for key in ("b0", "k3"):
        del model[key]
    model["k4"] = _item("k4", s="replaced")
    states.append((_cut(), {k: dict(v) for k, v in model.items()}))

    wait_until_restorable(ddb, table_name, states[-1][0])
    for moment, expected in states:
        started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix=f"at/{moment:%H%M%S%f}",
                                                    ExportTime=moment)["ExportDescription"]
        assert utc(started["ExportTime"]) == moment
        done = wait_export(ddb, started["ExportArn"])
        assert done["ExportStatus"] == "COMPLETED", done
        output = read_export(s3, s3_bucket, done["ExportManifest"])
        assert by_pk(output.items()) == expected, moment
        assert done["ItemCount"] == len(expected) == output.summary["itemCount"]
        assert output.summary["exportTime"] == moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_an_export_is_in_progress_at_once_then_completed(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    ddb.put_item(TableName=table_name, Item=_item("only"))
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, ClientToken="tok-1")
    description = started["ExportDescription"]
    assert description["ExportStatus"] == "IN_PROGRESS"
    assert set(description) == {"ExportArn", "ExportStatus", "StartTime", "ExportTime", "TableArn", "TableId",
                                "ClientToken", "S3Bucket", "S3SseAlgorithm", "ExportFormat"}
    assert description["ExportTime"] == description["StartTime"]  # "now"
    assert description["S3SseAlgorithm"] == "AES256" and description["ExportFormat"] == "DYNAMODB_JSON"
    export_id = description["ExportArn"].rsplit("/", 1)[1]
    assert description["ExportArn"] == f"{arn}/export/{export_id}"
    millis = round(utc(description["StartTime"]).timestamp() * 1000)
    assert export_id.startswith(f"{millis:014d}-") and len(export_id) == 23
    assert ddb.describe_export(ExportArn=description["ExportArn"])["ExportDescription"]["ExportStatus"] in (
        "IN_PROGRESS", "COMPLETED")
    done = wait_export(ddb, description["ExportArn"])
    assert done["ExportStatus"] == "COMPLETED"
    assert done["ExportManifest"] == f"AWSDynamoDB/{export_id}/manifest-summary.json"  # no prefix, no slash
    assert done["ItemCount"] == 1 and done["BilledSizeBytes"] > 0
    assert utc(done["EndTime"]) > utc(done["StartTime"])
    assert {k: v for k, v in done.items() if k not in ("ExportStatus", "EndTime", "ExportManifest", "ItemCount",
                                                        "BilledSizeBytes")} == {
        k: v for k, v in description.items() if k != "ExportStatus"}


def test_client_token_replays_and_conflicts(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    first = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="p", ClientToken="same")
    arn_1 = first["ExportDescription"]["ExportArn"]
    replay = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="p", ClientToken="same")
    assert replay["ExportDescription"]["ExportArn"] == arn_1
    with pytest.raises(ddb.exceptions.ExportConflictException,
                       match="Export conflict: Duplicate request detected with conflicting parameters"):
        ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="other", ClientToken="same")
    wait_export(ddb, arn_1)
    after = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="p", ClientToken="same")
    assert after["ExportDescription"]["ExportArn"] == arn_1
    assert after["ExportDescription"]["ExportStatus"] == "COMPLETED"
    # botocore fills in a fresh token when none is given: a second, separate export.
    other = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="p")
    assert other["ExportDescription"]["ExportArn"] != arn_1
    wait_export(ddb, other["ExportDescription"]["ExportArn"])


def test_a_missing_bucket_fails_the_export_asynchronously(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="no-such-bucket-for-pitr")
    assert started["ExportDescription"]["ExportStatus"] == "IN_PROGRESS"
    done = wait_export(ddb, started["ExportDescription"]["ExportArn"])
    assert done["ExportStatus"] == "FAILED"
    assert done["FailureCode"] == "S3NoSuchBucket"
    assert done["FailureMessage"].startswith("The specified bucket does not exist (Service: Amazon S3; ")


def test_export_request_errors(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)

    def error(**kwargs: Any) -> dict[str, str]:
        with pytest.raises(ddb.exceptions.ClientError) as info:
            ddb.export_table_to_point_in_time(**{"TableArn": arn, "S3Bucket": s3_bucket, **kwargs})
        return dict(info.value.response["Error"])

    # PITR off: refused before anything is checked in S3 (this bucket does not even exist).
    assert error(S3Bucket="missing-bucket-xyz") == {
        "Code": "PointInTimeRecoveryUnavailableException",
        "Message": f"Point in time recovery is not enabled for table '{table_name}'"}
    assert error(TableArn=table_name)["Code"] == "ValidationException"
    assert "tableArn is not a valid ARN" in error(TableArn=table_name)["Message"]
    assert error(TableArn=arn + "-gone") == {"Code": "TableNotFoundException",
                                             "Message": f"Table not found: {arn}-gone"}
    assert error(S3SseKmsKeyId="key-1") == {"Code": "ValidationException",
                                           "Message": "KMS Key Id is not supported for this encryption type"}
    assert error(S3Bucket="-bad-")["Code"] == "ValidationException"
    assert error(ExportFormat="CSV")["Code"] == "ValidationException"
    assert error(IncrementalExportSpecification={"ExportFromTime": datetime.now(UTC)})["Message"] == (
        "Export Type expected to be Incremental Export when incremental export specification is provided")



def test_export_time_outside_the_window_is_refused(pitr_standin, table_name: str, s3_bucket: str) -> None:
    # A lag of an hour keeps LatestRestorable at the enable second for the whole test.
    ddb = pitr_standin(lag_seconds=3600).client(region_name="us-east-1")
    arn = create_table(ddb, table_name)
    enabled = utc(enable_pitr(ddb, table_name)["EarliestRestorableDateTime"])

    def error(moment: datetime, **kwargs: Any) -> dict[str, str]:
        with pytest.raises(ddb.exceptions.InvalidExportTimeException) as info:
            ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, ExportTime=moment, **kwargs)
        return dict(info.value.response["Error"])

    assert error(datetime.now(UTC) + timedelta(hours=1))["Message"] == "Export Time is invalid"
    assert error(enabled - timedelta(seconds=5))["Message"] == "Export Time is invalid"
    later = enabled + timedelta(milliseconds=500)
    while datetime.now(UTC) <= later:
        time.sleep(0.01)
    assert error(later)["Message"] == "Point in Time Recovery is not available for specified export time"
    # A rejected request reserves no token; the enable second itself is restorable.
    error(later, ClientToken="free-again")
    accepted = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, ClientToken="free-again",
                                                 ExportTime=enabled)
    assert wait_export(ddb, accepted["ExportDescription"]["ExportArn"])["ExportStatus"] == "COMPLETED"


def test_off_and_on_erases_the_history_exports_may_use(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)
    first = utc(enable_pitr(ddb, table_name)["EarliestRestorableDateTime"])
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    time.sleep(1.1)  # the next enable falls in a later second
    second = utc(enable_pitr(ddb, table_name)["EarliestRestorableDateTime"])
    assert second > first
    with pytest.raises(ddb.exceptions.InvalidExportTimeException, match="Export Time is invalid"):
        ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, ExportTime=first)


def test_describe_and_list_exports(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    arns = []
    for i in range(3):
        started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix=f"l{i}",
                                                    ExportType="FULL_EXPORT")
        assert started["ExportDescription"]["ExportType"] == "FULL_EXPORT"  # echoed because it was sent
        arns.append(started["ExportDescription"]["ExportArn"])
        time.sleep(0.002)  # distinct millisecond start times
    listed, token = [], None
    while True:
        page = ddb.list_exports(TableArn=arn, MaxResults=1, **({"NextToken": token} if token else {}))
        assert len(page["ExportSummaries"]) <= 1
        listed += page["ExportSummaries"]
        token = page.get("NextToken")
        if token is None:
            break
    assert [s["ExportArn"] for s in listed] == arns[::-1]  # newest first
    assert all(s["ExportType"] == "FULL_EXPORT" and s["ExportStatus"] in ("IN_PROGRESS", "COMPLETED") for s in listed)
    with pytest.raises(ddb.exceptions.ClientError, match="less than or equal to 25"):
        ddb.list_exports(TableArn=arn, MaxResults=26)
    with pytest.raises(ddb.exceptions.ClientError, match="Invalid Export ARN"):
        ddb.describe_export(ExportArn=arn + "/not-an-export-id-at-all")
    missing = f"{arn}/export/01700000000000-0123abcd"
    with pytest.raises(ddb.exceptions.ExportNotFoundException, match=f"Export not found: {missing}"):
        ddb.describe_export(ExportArn=missing)
    for export_arn in arns:
        wait_export(ddb, export_arn)

    # The records outlive the table; ListExports by its ARN then lists nothing.
    ddb.delete_table(TableName=table_name)
    deadline = time.monotonic() + 30
    while table_name in ddb.list_tables()["TableNames"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert ddb.describe_export(ExportArn=arns[0])["ExportDescription"]["ExportStatus"] == "COMPLETED"
    assert ddb.list_exports(TableArn=arn)["ExportSummaries"] == []

    # A re-created table starts afresh: PITR off, no exports listed, none of the old items.
    create_table(ddb, table_name)
    assert ddb.describe_continuous_backups(TableName=table_name)["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"] == {"PointInTimeRecoveryStatus": "DISABLED"}
    assert ddb.list_exports(TableArn=arn)["ExportSummaries"] == []


def test_sse_kms_and_bucket_owner_reach_s3(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    arn = create_table(ddb, table_name)
    enable_pitr(ddb, table_name)
    ddb.put_item(TableName=table_name, Item=_item("a"))
    key_id = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3SseAlgorithm="KMS",
                                                S3SseKmsKeyId=key_id, S3BucketOwner="123456789012")
    description = started["ExportDescription"]
    assert description["S3SseAlgorithm"] == "KMS" and description["S3SseKmsKeyId"] == key_id
    assert description["S3BucketOwner"] == "123456789012"
    done = wait_export(ddb, description["ExportArn"])
    assert done["ExportStatus"] == "COMPLETED", done
    output = read_export(s3, s3_bucket, done["ExportManifest"])
    assert output.summary["s3SseAlgorithm"] == "KMS" and output.summary["s3SseKmsKeyId"] == key_id
    for key in [f"{output.folder}/manifest-summary.json", *output.data]:
        head = s3.head_object(Bucket=s3_bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == key_id
