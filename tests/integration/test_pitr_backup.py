"""Point-in-time backups end to end, against the local PITR stand-in and moto over HTTP.

The expected content of every folder is computed from the writes the test made
itself, never from the stand-in's journal.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from demo_data import TABLE_SPECS, all_types_items, create_table, put_items
from dynamodb_backup.aws.clients import client
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.catalog import latest_complete, list_backups
from dynamodb_backup.formats.codec.datapipeline import decode_line, encode_item
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location
from dynamodb_backup.pitr.job import run_pitr_backup
from dynamodb_backup.pitr.native import STAGING, ExportFailedError, describe_export
from dynamodb_backup.pitr.steps import begin_export, conversion_shares
from dynamodb_backup.repository.inspection import inspect_folder
from faultproxy import DynamoDBFaultProxy

FAST = {"poll_seconds": 0.3, "restorable_timeout": 60.0, "export_timeout": 120.0}


def factory(dynamodb_url: str | None = None):
    def make(service: str) -> Any:
        return client(service, endpoint_url=dynamodb_url) if service == "dynamodb" and dynamodb_url else \
            client(service)
    return make


def enable_pitr(ddb, table: str) -> None:
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


def next_second() -> datetime:
    """A whole second after every write so far, waited for so later writes fall after it."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.05)
    return moment


def folder_lines(s3, folder: S3Location) -> list[bytes]:
    listed = s3.list_objects_v2(Bucket=folder.bucket, Prefix=folder.key(""))["Contents"]
    lines: list[bytes] = []
    for obj in listed:
        name = obj["Key"][len(folder.key("")):]
        if "/" in name or name.startswith("_") or name == MANIFEST:
            continue
        lines += gzip.decompress(s3.get_object(Bucket=folder.bucket, Key=obj["Key"])["Body"].read()).splitlines()
    return lines


def request(table: str, bucket: str, at: datetime, **kwargs: Any) -> BackupRequest:
    settings = kwargs.pop("settings", ExportSettings(file_max_items=7))
    return BackupRequest(table=table, destination=S3Location(bucket, "pitr"), logical_date=at, max_workers=2,
                         settings=settings, **kwargs)


def items_named(count: int, tag: str) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"item-{i:03d}"}, "v": {"S": tag}, "n": {"N": str(10 ** 30 + i)}} for i in range(count)]


def test_folder_holds_the_table_at_its_moment_not_now(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    first = items_named(30, "first")
    put_items(ddb, table_name, first)
    at = next_second()
    # After the moment: an update, a delete and an insert that the folder must not show.
    ddb.update_item(TableName=table_name, Key={"pk": {"S": "item-000"}}, UpdateExpression="SET v = :v",
                    ExpressionAttributeValues={":v": {"S": "later"}})
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "item-001"}})
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "late"}, "v": {"S": "later"}})

    sidecar = run_pitr_backup(factory(), request(table_name, s3_bucket, at), processes=1, **FAST)

    assert sidecar is not None and sidecar.item_count == 30
    folder = S3Location(s3_bucket, f"pitr/{table_name}/{at:%Y-%m-%d-%H-%M-%S}")
    # An item's attributes in any order: AWS's items are maps and it keeps no attribute order (dynalite
    # keeps the order written, DynamoDB Local its own); every value and number spelling must still match.
    assert sorted(map(_keys_sorted, folder_lines(s3, folder))) == sorted(
        _keys_sorted(encode_item(_client(i))) for i in first)
    doc = orjson.loads(s3.get_object(Bucket=s3_bucket, Key=folder.key(SIDECAR))["Body"].read())
    assert doc["source"]["mode"] == "pitr" and doc["source"]["export_time"].startswith(at.strftime("%Y-%m-%dT%H:%M:%S"))
    assert doc["snapshot_start"] == doc["snapshot_end"] == doc["source"]["export_time"]
    assert "/export/" in doc["source"]["export_arn"] and doc["consumed_read_units"] == 0
    names = {o["Key"][len(folder.key("")):] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder.key(""))
             ["Contents"]}
    assert {SUCCESS, MANIFEST, SIDECAR} <= names
    assert not any(n.startswith((STAGING, "_checkpoints")) for n in names), "staging or checkpoints left behind"


def _keys_sorted(line: bytes) -> bytes:
    """A Data Pipeline line with its attributes (and map members) in name order; values as they are."""
    return orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)


def _client(item: dict[str, Any]) -> dict[str, Any]:
    return {k: {t: v} for k, tv in item.items() for t, v in tv.items()}


def test_pitr_and_scan_backups_of_all_types_hold_the_same_lines(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, all_types_items())
    at = next_second()
    pitr = run_pitr_backup(factory(), request(table_name, s3_bucket, at), **FAST)
    scan = run_backup(factory(), BackupRequest(table=table_name, destination=S3Location(s3_bucket, "scan"),
                                               logical_date=at, read_ratio=1.0))
    assert pitr is not None and scan is not None and pitr.item_count == scan.item_count == len(all_types_items())
    pitr_lines = folder_lines(s3, S3Location(s3_bucket, f"pitr/{table_name}/{at:%Y-%m-%d-%H-%M-%S}"))
    scan_lines = folder_lines(s3, S3Location(s3_bucket, f"scan/{table_name}/{at:%Y-%m-%d-%H-%M-%S}"))
    assert len(pitr_lines) == len(all_types_items())
    assert set(pitr_lines) == set(scan_lines)


def test_a_pitr_backup_reads_nothing_from_the_table(local_aws, s3_bucket, table_name):
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, items_named(20, "x"))
    at = next_second()
    with DynamoDBFaultProxy(local_aws.dynamodb_url, enforce_capacity=False) as proxy:
        sidecar = run_pitr_backup(factory(proxy.url), request(table_name, s3_bucket, at), **FAST)
    assert sidecar is not None and sidecar.item_count == 20
    calls = {k[3:]: v for k, v in proxy.counters.items() if k.startswith("op:")}
    assert calls.get("ExportTableToPointInTime") == 1 and calls.get("DescribeExport", 0) >= 1
    assert not {"Scan", "Query", "GetItem", "BatchGetItem"} & set(calls), calls


def test_native_format_keeps_the_export_and_restores_like_any_backup(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, items_named(25, "n"))
    at = next_second()
    sidecar = run_pitr_backup(factory(), request(table_name, s3_bucket, at), output_format="native", **FAST)
    assert sidecar is not None and sidecar.item_count == 25
    folder = S3Location(s3_bucket, f"pitr/{table_name}/{at:%Y-%m-%d-%H-%M-%S}")
    source = inspect_folder(s3, folder)
    assert source.complete and source.expected_items == 25 and source.table is not None
    assert all("/AWSDynamoDB/" in f.key and f.md5 for f in source.files)
    assert latest_complete(s3, S3Location(s3_bucket, "pitr"), table_name) == folder
    listed = [b for b in list_backups(s3, S3Location(s3_bucket, "pitr")) if b.listing.folder == folder]
    assert listed and listed[0].listing.complete and listed[0].items == 25
    names = {o["Key"][len(folder.key("")):] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder.key(""))
             ["Contents"]}
    assert MANIFEST not in names, "a native folder must not claim a Data Pipeline manifest"
    from dynamodb_backup.cli import main

    restored = f"{table_name}-restored"
    assert main(["restore", folder.uri, "--table", restored, "--create-table", "--workers", "1"]) == 0
    back = ddb.scan(TableName=restored)["Items"]
    assert sorted(i["pk"]["S"] for i in back) == sorted(i["pk"]["S"] for i in items_named(25, "n"))


def test_keep_native_keeps_the_staging_copy(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, items_named(5, "k"))
    at = next_second()
    run_pitr_backup(factory(), request(table_name, s3_bucket, at), keep_native=True, **FAST)
    prefix = f"pitr/{table_name}/{at:%Y-%m-%d-%H-%M-%S}/{STAGING}/AWSDynamoDB/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=prefix)["Contents"]]
    assert any(k.endswith("manifest-summary.json") for k in keys)


def test_pitr_off_fails_at_once_naming_the_table(local_aws, s3_bucket, table_name):
    local_aws.create_table(table_name)
    with pytest.raises(ParameterError, match=rf"table '{table_name}' has point-in-time recovery off.*"
                                             "update-continuous-backups"):
        run_pitr_backup(factory(), request(table_name, s3_bucket, datetime.now(UTC)), **FAST)
    assert not local_aws.s3_client().list_objects_v2(Bucket=s3_bucket).get("Contents")


def test_times_outside_the_window_fail_naming_it(local_aws, s3_bucket, table_name):
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    with pytest.raises(ParameterError, match="is in the future"):
        run_pitr_backup(factory(), request(table_name, s3_bucket, datetime.now(UTC) + timedelta(hours=1)), **FAST)
    with pytest.raises(ParameterError, match=rf"before the recovery window: table '{table_name}' can be exported "
                                             "from"):
        run_pitr_backup(factory(), request(table_name, s3_bucket, datetime.now(UTC) - timedelta(days=2)), **FAST)
    assert not local_aws.s3_client().list_objects_v2(Bucket=s3_bucket).get("Contents")


def test_a_failed_export_names_aws_failure_code(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    at = next_second()
    while describe_window_latest(ddb, table_name) < at:
        time.sleep(0.2)
    folder = S3Location("no-such-bucket-for-export", f"pitr/{table_name}/x")
    arn = begin_export(ddb, table_name, at, folder, "datapipeline", "test")
    status = describe_export(ddb, arn)
    while not status.finished:
        time.sleep(0.2)
        status = describe_export(ddb, arn)
    with pytest.raises(ExportFailedError, match=r"FAILED: S3NoSuchBucket: The specified bucket does not exist"):
        conversion_shares(s3, status, 2)


def describe_window_latest(ddb, table: str) -> datetime:
    pitr = ddb.describe_continuous_backups(TableName=table)["ContinuousBackupsDescription"][
        "PointInTimeRecoveryDescription"]
    return pitr["LatestRestorableDateTime"].astimezone(UTC)


def finished_export(local_aws, s3_bucket: str, table_name: str, count: int) -> tuple[Any, S3Location, datetime]:
    """An export of ``count`` items, finished, and the dated folder it belongs to."""
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, items_named(count, "d"))
    at = next_second()
    while describe_window_latest(ddb, table_name) < at:
        time.sleep(0.2)
    folder = S3Location(s3_bucket, f"pitr/{table_name}/{at:%Y-%m-%d-%H-%M-%S}")
    arn = begin_export(ddb, table_name, at, folder, "datapipeline", "test")
    status = describe_export(ddb, arn)
    while not status.finished:
        time.sleep(0.2)
        status = describe_export(ddb, arn)
    return status, folder, at


def _data_keys(s3, status) -> list[str]:
    export = status.export_folder()
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=export.bucket, Prefix=export.key("data/"))["Contents"]
                  if o["Size"] > 20)


def test_a_damaged_data_file_fails_the_conversion_naming_it(local_aws, s3_bucket, table_name):
    from dynamodb_backup.pitr.convert import convert_share

    s3 = local_aws.s3_client()
    status, folder, _ = finished_export(local_aws, s3_bucket, table_name, 40)
    victim = _data_keys(s3, status)[0]
    body = gzip.decompress(s3.get_object(Bucket=s3_bucket, Key=victim)["Body"].read())
    s3.put_object(Bucket=s3_bucket, Key=victim, Body=gzip.compress(body.replace(b"d", b"e", 1)))
    shares = conversion_shares(s3, status, 1)
    with pytest.raises(BackupFolderError, match=rf"s3://{s3_bucket}/{victim}: MD5 .* does not match the export "
                                                "manifest's"):
        convert_share(s3, table_name, folder, shares[0], ExportSettings())
    assert not any(o["Key"].endswith(SUCCESS) for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"])


def test_a_missing_data_file_is_refused_naming_it(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    status, _, _ = finished_export(local_aws, s3_bucket, table_name, 40)
    victim = _data_keys(s3, status)[0]
    s3.delete_object(Bucket=s3_bucket, Key=victim)
    with pytest.raises(BackupFolderError, match=rf"manifest-files.json line \d+: data file '{victim}' is missing"):
        conversion_shares(s3, status, 2)


def test_a_count_that_differs_from_the_manifest_fails_naming_the_file(local_aws, s3_bucket, table_name):
    import base64
    import hashlib

    from dynamodb_backup.pitr.convert import convert_share

    s3 = local_aws.s3_client()
    status, folder, _ = finished_export(local_aws, s3_bucket, table_name, 40)
    export = status.export_folder()
    files_key = export.key("manifest-files.json")
    lines = s3.get_object(Bucket=s3_bucket, Key=files_key)["Body"].read().splitlines()
    entries = [orjson.loads(line) for line in lines]
    victim = next(e for e in entries if e["itemCount"] > 0)
    victim["itemCount"] += 1
    body = b"".join(orjson.dumps(e) + b"\n" for e in entries)
    s3.put_object(Bucket=s3_bucket, Key=files_key, Body=body)
    s3.put_object(Bucket=s3_bucket, Key=export.key("manifest-files.md5"),
                  Body=base64.b64encode(hashlib.md5(body).digest()))
    # The summary agrees with the doctored list, so only reading the file itself can tell.
    summary = orjson.loads(s3.get_object(Bucket=s3_bucket, Key=export.key("manifest-summary.json"))["Body"].read())
    summary["itemCount"] += 1
    body = orjson.dumps(summary)
    s3.put_object(Bucket=s3_bucket, Key=export.key("manifest-summary.json"), Body=body)
    s3.put_object(Bucket=s3_bucket, Key=export.key("manifest-summary.md5"),
                  Body=base64.b64encode(hashlib.md5(body).digest()))
    status = type(status)(**{**status.to_dict(), "item_count": status.item_count + 1})
    shares = conversion_shares(s3, status, 1)
    with pytest.raises(BackupFolderError, match=rf"{victim['dataFileS3Key']}: \d+ items, but manifest-files.json "
                                                "lists"):
        convert_share(s3, table_name, folder, shares[0], ExportSettings())


def test_a_retried_conversion_resumes_per_file(local_aws, s3_bucket, table_name, caplog):
    from dynamodb_backup.pitr.convert import convert_share

    s3 = local_aws.s3_client()
    status, folder, _ = finished_export(local_aws, s3_bucket, table_name, 60)
    share = conversion_shares(s3, status, 1)[0]
    first = convert_share(s3, table_name, folder, share, ExportSettings(file_max_items=7))
    caplog.clear()
    with caplog.at_level("INFO"):
        again = convert_share(s3, table_name, folder, share, ExportSettings(file_max_items=7))
    skipped = [r for r in caplog.records if "already converted" in r.getMessage()]
    assert len(skipped) == len(share.files)
    assert again.files == first.files and again.items == 60
    assert {tuple(sorted(decode_line(line))) for line in folder_lines(s3, folder)} == {("n", "pk", "v")}
