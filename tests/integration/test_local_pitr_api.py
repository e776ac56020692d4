"""The PITR stand-in's UpdateContinuousBackups / DescribeContinuousBackups, and its error wire format."""

from __future__ import annotations

import time
import zlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest

from local_pitr_helpers import create_table, enable_pitr, pitr_description, raw_call, utc

if TYPE_CHECKING:
    from conftest import LocalAws

SESSION_LAG = timedelta(seconds=3)  # conftest.SESSION_PITR_LAG_SECONDS


def test_pitr_is_off_on_a_new_table_and_described_as_aws_does(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name)
    answer = ddb.describe_continuous_backups(TableName=table_name)
    assert answer["ContinuousBackupsDescription"] == {
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"},
    }


def test_enabling_gives_a_window_that_starts_and_ends_at_the_enable_second(local_aws: LocalAws,
                                                                            table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    arn = create_table(ddb, table_name)
    before = datetime.now(UTC)
    answer = ddb.update_continuous_backups(
        TableName=arn, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})  # an ARN works too
    after = datetime.now(UTC)
    description = answer["ContinuousBackupsDescription"]
    assert description["ContinuousBackupsStatus"] == "ENABLED"
    pitr = description["PointInTimeRecoveryDescription"]
    assert set(pitr) == {"PointInTimeRecoveryStatus", "RecoveryPeriodInDays", "EarliestRestorableDateTime",
                         "LatestRestorableDateTime"}
    assert pitr["PointInTimeRecoveryStatus"] == "ENABLED" and pitr["RecoveryPeriodInDays"] == 35
    earliest = utc(pitr["EarliestRestorableDateTime"])
    assert earliest == utc(pitr["LatestRestorableDateTime"])
    assert earliest.microsecond == 0
    assert before.replace(microsecond=0) <= earliest <= after
    assert pitr_description(ddb, table_name)["EarliestRestorableDateTime"] == pitr["EarliestRestorableDateTime"]


def test_latest_restorable_trails_the_clock_by_the_lag(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name)
    earliest = utc(enable_pitr(ddb, table_name)["EarliestRestorableDateTime"])
    deadline = time.monotonic() + 60
    while True:  # wait for the window to open beyond the enable second (about the lag)
        before = datetime.now(UTC)
        pitr = pitr_description(ddb, table_name)
        after = datetime.now(UTC)
        latest = utc(pitr["LatestRestorableDateTime"])
        if latest > earliest:
            break
        assert latest == earliest
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert utc(pitr["EarliestRestorableDateTime"]) == earliest
    assert latest.microsecond == 0
    assert (before - SESSION_LAG).replace(microsecond=0) <= latest <= after - SESSION_LAG


def test_the_lag_is_the_stand_ins_setting(pitr_standin, table_name: str) -> None:
    server = pitr_standin(lag_seconds=3600)
    ddb = server.client(region_name="us-east-1")
    create_table(ddb, table_name)
    enabled = enable_pitr(ddb, table_name)
    time.sleep(1.5)  # not a timing assertion: gives the clock a chance to pass the enable second
    pitr = pitr_description(ddb, table_name)
    enabled_at = enabled["EarliestRestorableDateTime"]
    assert pitr["LatestRestorableDateTime"] == pitr["EarliestRestorableDateTime"] == enabled_at


def test_recovery_period_changes_in_place_and_resets_after_off_and_on(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name)
    first = enable_pitr(ddb, table_name, RecoveryPeriodInDays=7)
    assert first["RecoveryPeriodInDays"] == 7
    changed = enable_pitr(ddb, table_name, RecoveryPeriodInDays=20)
    assert changed["RecoveryPeriodInDays"] == 20
    assert changed["EarliestRestorableDateTime"] == first["EarliestRestorableDateTime"]
    off = ddb.update_continuous_backups(TableName=table_name,
                                        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": False})
    assert off["ContinuousBackupsDescription"] == {
        "ContinuousBackupsStatus": "ENABLED",
        "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}}
    time.sleep(1.1)  # so that the next enable second differs; the assertion is on the window, not on time
    again = enable_pitr(ddb, table_name)
    assert again["RecoveryPeriodInDays"] == 35
    assert again["EarliestRestorableDateTime"] > first["EarliestRestorableDateTime"]  # history erased


def test_pitr_errors(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    with pytest.raises(ddb.exceptions.TableNotFoundException, match=f"Table not found: {table_name}"):
        ddb.describe_continuous_backups(TableName=table_name)
    with pytest.raises(ddb.exceptions.TableNotFoundException):
        enable_pitr(ddb, table_name)
    create_table(ddb, table_name)
    with pytest.raises(ddb.exceptions.ClientError) as info:
        enable_pitr(ddb, table_name, RecoveryPeriodInDays=36)
    assert info.value.response["Error"]["Code"] == "ValidationException"
    assert "less than or equal to 35" in info.value.response["Error"]["Message"]
    with pytest.raises(ddb.exceptions.ClientError) as info:
        ddb.update_continuous_backups(TableName=table_name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": False, "RecoveryPeriodInDays": 10})
    assert info.value.response["Error"] == {
        "Code": "ValidationException",
        "Message": "Cannot specify RecoveryPeriodInDays when disabling point-in-time recovery."}
    assert pitr_description(ddb, table_name) == {"PointInTimeRecoveryStatus": "DISABLED"}


def test_error_answers_have_aws_wire_format(local_aws: LocalAws, table_name: str) -> None:
    answer = raw_call(local_aws.dynamodb_url, "DescribeContinuousBackups", {"TableName": table_name})
    assert answer.status == 400
    assert answer.json() == {"__type": "com.amazonaws.dynamodb.v20120810#TableNotFoundException",
                             "message": f"Table not found: {table_name}"}
    assert answer.headers["content-type"] == "application/x-amz-json-1.0"
    assert answer.headers["content-length"] == str(len(answer.body))
    assert "x-amzn-requestid" in answer.headers
    if "x-amz-crc32" in answer.headers:  # botocore checks it only when present: then it must be right
        assert int(answer.headers["x-amz-crc32"]) == zlib.crc32(answer.body)
    bad = raw_call(local_aws.dynamodb_url, "DescribeContinuousBackups", b"{not json")
    assert bad.status == 400 and bad.json()["__type"].endswith("#SerializationException")
