"""The point-in-time path's pure core: the window verdict, the export request, shares, line conversion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from dynamodb_backup.errors import CodecError, ParameterError
from dynamodb_backup.formats.codec.datapipeline import encode_item
from dynamodb_backup.formats.codec.native import encode_native_item, full_export_line_to_datapipeline
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.pitr.convert import BATCH_BYTES, BATCH_LINES, NativeFile, batched, plan_shares
from dynamodb_backup.pitr.native import client_token, export_request
from dynamodb_backup.pitr.steps import export_time, staging_for
from dynamodb_backup.pitr.window import PitrDisabledError, PitrWindow, judge_export_time

NOW = datetime(2026, 11, 20, 12, 0, 0, tzinfo=UTC)
WINDOW = PitrWindow("Orders", True, NOW - timedelta(days=35), NOW - timedelta(minutes=5))


def test_a_moment_inside_the_window_is_ready():
    assert judge_export_time(WINDOW, NOW - timedelta(hours=1), NOW) == "ready"
    assert judge_export_time(WINDOW, WINDOW.latest, NOW) == "ready"
    assert judge_export_time(WINDOW, WINDOW.earliest, NOW) == "ready"


def test_a_moment_in_the_trailing_lag_waits():
    assert judge_export_time(WINDOW, NOW - timedelta(minutes=1), NOW) == "wait"
    assert judge_export_time(WINDOW, NOW, NOW) == "wait"


def test_pitr_off_names_the_table_and_how_to_turn_it_on():
    with pytest.raises(PitrDisabledError, match=r"table 'Orders' has point-in-time recovery off.*"
                                                r"update-continuous-backups --table-name Orders"):
        judge_export_time(PitrWindow("Orders", False), NOW, NOW)


def test_the_future_and_the_time_before_the_window_are_refused_naming_the_window():
    with pytest.raises(ParameterError, match=r"2026-11-20T13:00:00Z is in the future"):
        judge_export_time(WINDOW, NOW + timedelta(hours=1), NOW)
    with pytest.raises(ParameterError, match=r"before the recovery window: table 'Orders' can be exported "
                                             r"from 2026-10-16T12:00:00Z to 2026-11-20T11:55:00Z"):
        judge_export_time(WINDOW, NOW - timedelta(days=40), NOW)


def test_window_reads_the_pitr_status_not_the_backups_status():
    off = {"ContinuousBackupsDescription": {"ContinuousBackupsStatus": "ENABLED",
                                            "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus":
                                                                               "DISABLED"}}}
    assert not PitrWindow.from_response("T", off).enabled
    local = datetime(2026, 11, 20, 13, 0, tzinfo=UTC).astimezone(tz=None)
    on = {"ContinuousBackupsDescription": {"PointInTimeRecoveryDescription": {
        "PointInTimeRecoveryStatus": "ENABLED", "EarliestRestorableDateTime": local,
        "LatestRestorableDateTime": local}}}
    window = PitrWindow.from_response("T", on)
    assert window.enabled and window.latest == datetime(2026, 11, 20, 13, 0, tzinfo=UTC)
    assert window.latest.tzinfo == UTC


def test_export_time_is_the_folder_second():
    assert export_time(datetime(2026, 11, 20, 0, 0, 0, 999_999, tzinfo=UTC)) == datetime(2026, 11, 20, tzinfo=UTC)


def test_client_token_is_stable_and_distinguishes_runs():
    first = client_token("dag/run-1", "Orders", "2026-11-20T00:00:00Z")
    assert first == client_token("dag/run-1", "Orders", "2026-11-20T00:00:00Z")
    assert first != client_token("dag/run-2", "Orders", "2026-11-20T00:00:00Z")
    assert "$" not in first and len(first) == 64


def test_export_request_passes_owner_and_kms_through():
    staging = S3Location("b", "p/Orders/2026-11-20-00-00-00/_native")
    request = export_request("arn:aws:dynamodb:us-east-1:1:table/Orders", NOW, staging, "tok",
                             {"ExpectedBucketOwner": "111122223333", "ServerSideEncryption": "aws:kms",
                              "SSEKMSKeyId": "alias/backups"})
    assert request["S3BucketOwner"] == "111122223333"
    assert request["S3SseAlgorithm"] == "KMS" and request["S3SseKmsKeyId"] == "alias/backups"
    assert request["S3Prefix"] == staging.prefix and request["ExportTime"] == NOW
    plain = export_request("arn:aws:dynamodb:us-east-1:1:table/Orders", NOW, staging, "tok")
    assert "S3BucketOwner" not in plain and "S3SseAlgorithm" not in plain


def test_staging_is_inside_the_folder_unless_the_folder_keeps_the_export():
    folder = S3Location("b", "p/T/2026-11-20-00-00-00")
    assert staging_for(folder, "datapipeline").prefix == "p/T/2026-11-20-00-00-00/_native"
    assert staging_for(folder, "native") == folder


def test_shares_balance_bytes_and_cover_every_file_once():
    files = [NativeFile(i, f"k{i}", size, None, None) for i, size in enumerate([100, 5, 60, 40, 0, 30])]
    shares = plan_shares(files, 3)
    assert sorted(f.index for s in shares for f in s.files) == list(range(6))
    assert all(s.total_files == 6 for s in shares)
    assert max(s.size for s in shares) == 100
    assert len(plan_shares(files, 10)) == 6
    assert len(plan_shares([], 4)) == 1


def test_a_native_line_becomes_the_data_pipeline_line_of_the_same_item():
    item = {"pk": {"S": "a\u2028b"}, "n": {"N": "123456789012345678901234567890.12345678"},
            "bin": {"B": bytes(range(256))}, "ss": {"SS": ["x", "y"]}, "ns": {"NS": ["1", "-2.5"]},
            "bs": {"BS": [b"\x00", b"\xff"]}, "m": {"M": {"l": {"L": [{"NULL": True}, {"BOOL": False}]}}},
            "empty": {"S": ""}}
    assert full_export_line_to_datapipeline(encode_native_item(item)) == encode_item(item)


@pytest.mark.parametrize("line, why", [
    (b"not json", "not JSON"),
    (b'{"Keys":{"pk":{"S":"a"}}}', "not a full export line"),
    (b"[1]", "not a full export line"),
    (b'{"Item":{"pk":{"Q":"a"}}}', "cannot encode item"),
])
def test_bad_native_lines_are_refused(line, why):
    with pytest.raises(CodecError, match=why):
        full_export_line_to_datapipeline(line)


def test_native_format_lines_stay_parseable():
    assert orjson.loads(encode_native_item({"pk": {"S": "a"}}))["Item"] == {"pk": {"S": "a"}}


def test_conversion_batches_are_bounded_by_bytes_as_well_as_lines():
    """2,000 lines of 100 KB were once a 200 MB batch, joined and compressed in one piece."""
    large = [bytes([65 + i % 26]) * 300_000 for i in range(10)]
    batches = list(batched(large))
    assert [b for batch in batches for b in batch] == large  # every line, in order, once
    assert [len(b) for b in batches] == [4, 4, 2]  # 1.2 MB reached after the 4th line
    assert all(sum(map(len, b[:-1])) < BATCH_BYTES for b in batches)
    small = [b"x" * 100] * (BATCH_LINES + 1)
    assert [len(b) for b in batched(small)] == [BATCH_LINES, 1]
    assert list(batched([])) == []
