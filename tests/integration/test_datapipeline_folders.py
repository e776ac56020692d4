"""Restoring real-world folders: hand-made AWS Data Pipeline backups and the native export fixture."""

from __future__ import annotations

import gzip
import logging

import pytest

from backup_folders import datapipeline_folder, dp_lines, exists, gz, native_fixture_root, put, restore, scan_all
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.codec import TableDigest
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.inspection import inspect_folder

USERS = [
    {"pk": {"S": "user#42"}, "age": {"N": "37"}, "avatar": {"B": b"\x00\x01\x02\xff"}, "active": {"BOOL": True},
     "deletedAt": {"NULL": True}},
    {"pk": {"S": "user#43"}, "tags": {"SS": ["blue", "red"]}, "scores": {"NS": ["1", "2.5", "-300"]},
     "keys": {"BS": [b"\x00\x01", b"\xff"]}},
    {"pk": {"S": "user#44"}, "profile": {"M": {"langs": {"L": [{"S": "en"}, {"BOOL": False}, {"NULL": True}]},
                                                "prefs": {"M": {}}}}, "history": {"L": []}},
]
# The same three items as the format contract's example lines, byte for byte.
CONTRACT_LINES = (
    b'{"pk":{"s":"user#42"},"age":{"n":"37"},"avatar":{"b":"AAEC/w=="},"active":{"bOOL":true},'
    b'"deletedAt":{"nULL":true}}\n'
    b'{"pk":{"s":"user#43"},"tags":{"sS":["blue","red"]},"scores":{"nS":["1","2.5","-300"]},'
    b'"keys":{"bS":["AAE=","/w=="]}}\n'
    b'{"pk":{"s":"user#44"},"profile":{"m":{"langs":{"l":[{"s":"en"},{"bOOL":false},{"nULL":true}]},'
    b'"prefs":{"m":{}}}},"history":{"l":[]}}\n'
)


def digest(items):
    d = TableDigest()
    for item in items:
        d.add(item)
    return d


def test_copied_backup_with_absolute_urls_naming_another_bucket(local_aws, s3_bucket, table_name, caplog):
    """The v3 manifest still names the original bucket; entries resolve by name, plain and .gz alike."""
    s3 = local_aws.s3_client()
    files = {"5d9c2f0e-8a4b-4c1e-9a3e-2b7f1c0d4e6a": CONTRACT_LINES[:CONTRACT_LINES.index(b"\n") + 1],
             "0b1f4c57-3e2d-4f8a-b6c9-7d5e1a2f3b4c.gz": gz(CONTRACT_LINES[CONTRACT_LINES.index(b"\n") + 1:])}
    folder = datapipeline_folder(s3, s3_bucket, "copied/Users/2024-03-05-04-10-22", files,
                                 manifest_base="s3://my-bucket/ddb/Users/2024-03-05-04-10-22",
                                 extra={"stray-from-a-retry": dp_lines([{"pk": {"S": "stray"}}])})
    local_aws.create_table(table_name)
    with caplog.at_level(logging.INFO, logger="dynamodb_backup"):
        outcome = restore(folder, table_name)
    assert outcome.source.format == "datapipeline"
    assert "s3://my-bucket/ddb/Users/2024-03-05-04-10-22; resolved them by file name" in caplog.text
    assert "ignored 1 files the manifest does not list: stray-from-a-retry" in caplog.text
    assert outcome.verify is not None and outcome.verify.match
    assert digest(scan_all(local_aws.dynamodb_client(), table_name)) == digest(USERS)


def test_manifest_entry_that_cannot_be_resolved_is_refused(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-02-01-00-00-00", {"a": CONTRACT_LINES})
    put(s3, s3_bucket, folder.key("manifest"),
        b'{"name":"DynamoDB-export","version":3,\n"entries": [\n{"url":"s3://other/x/../../etc/a","mandatory":true}\n]}')
    with pytest.raises(BackupFolderError, match=r"does not name a plain file .*'\.\.'"):
        inspect_folder(s3, folder)
    put(s3, s3_bucket, folder.key("manifest"), b'{"name":"DynamoDB-export","version":2,"entries":[]}')
    with pytest.raises(BackupFolderError, match="unknown manifest version 2"):
        inspect_folder(s3, folder)


def test_folder_without_manifest_skips_underscore_and_dot_names(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    folder = datapipeline_folder(
        s3, s3_bucket, "old/2019-01-01-00-00-00", {"part-00000": CONTRACT_LINES}, manifest_base="",
        extra={"_logs": b"not data", ".hidden": b"not data either", "_temporary_x": b"{broken"},
    )
    local_aws.create_table(table_name)
    outcome = restore(folder, table_name)
    assert outcome.source.format == "datapipeline-nomanifest"
    assert [f.name for f in outcome.source.files] == ["part-00000"]
    assert "skipped names starting with '_' or '.': .hidden, _logs, _temporary_x" in outcome.source.notes
    assert digest(scan_all(local_aws.dynamodb_client(), table_name)) == digest(USERS)


def test_hive_lines_blank_lines_and_odd_type_key_casing(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    hive = (b'pk\x03{"s":"city#1"}\x02id\x03{"s":"Seattle"}\x02scores\x03{"nS":["100","30","45"]}\n'
            b'pk\x03{"s":"city#2"}\x02a name: with, punctuation\x03{"n":"1.50"}\r\n')
    odd = (b'\n   \n{"pk":{"S":"odd#1"},"t":{"ss":["x","y"]},"b":{"bool":true},"z":{"null":true},'
           b'"m":{"M":{"n":{"N":"007"}}},"l":{"L":[{"Bs":["AAE="]}]}}\n\n')
    folder = datapipeline_folder(s3, s3_bucket, "hive/2016-05-01-00-00-00",
                                 {"hive-part": hive, "odd.gz": gz(odd)}, manifest_base="")
    outcome = restore(folder, table_name, create_table=True, key_schema="pk:S")
    assert outcome.validation.items == 3 and outcome.validation.blank_lines == 3
    assert outcome.verify is not None and outcome.verify.match
    items = {i["pk"]["S"]: i for i in scan_all(local_aws.dynamodb_client(), table_name)}
    assert items["city#2"]["a name: with, punctuation"] == {"N": "1.5"}
    assert set(items["city#1"]["scores"]["NS"]) == {"100", "30", "45"}
    assert items["odd#1"]["b"] == {"BOOL": True} and items["odd#1"]["l"] == {"L": [{"BS": [b"\x00\x01"]}]}


def test_multi_member_gzip_is_read_whole(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    body = gzip.compress(CONTRACT_LINES[:150]) + gzip.compress(CONTRACT_LINES[150:])
    folder = datapipeline_folder(s3, s3_bucket, "mm/2024-01-01-00-00-00", {"cat.gz": body})
    outcome = restore(folder, table_name, create_table=True, key_schema="pk:S")
    assert outcome.validation.items == 3 and outcome.verify is not None and outcome.verify.match


def copy_native_fixture(s3, bucket: str, prefix: str) -> S3Location:
    root = native_fixture_root()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        put(s3, bucket, f"{prefix}/{path.relative_to(root)}", path.read_bytes())
    return S3Location(bucket, prefix)


def test_native_export_fixture_restores_its_three_items(local_aws, s3_bucket, table_name, caplog):
    s3 = local_aws.s3_client()
    base = copy_native_fixture(s3, s3_bucket, "copied/native")
    with caplog.at_level(logging.INFO, logger="dynamodb_backup"):
        outcome = restore(base, table_name, create_table=True, key_schema="pk:S,sk:S")
    assert outcome.source.format == "native"
    assert outcome.source.folder.prefix == "copied/native/AWSDynamoDB/01605130432834-8a918b87"
    assert outcome.source.expected_items == 3 and len(outcome.source.files) == 4
    assert all(f.md5 for f in outcome.source.files)
    assert "exported to bucket 'dynamodb-export-to-s3-and-query-with-exportbucket-103kukqwmab7n'" in caplog.text
    assert outcome.verify is not None and outcome.verify.match and outcome.verify.table_items == 3
    keys = sorted((i["pk"]["S"], i["sk"]["S"]) for i in scan_all(local_aws.dynamodb_client(), table_name))
    assert keys == [("pk001-1605121017583", "sk001"), ("pk002-1605121017583", "sk002"),
                    ("pk003-1605121017583", "sk003")]


def test_native_export_checks_md5_and_completeness(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    base = copy_native_fixture(s3, s3_bucket, "n")
    export = base.child("AWSDynamoDB", "01605130432834-8a918b87")
    put(s3, s3_bucket, export.key("data/om5xbquzn476lo3qh5l2cy6m6i.json.gz"),
        gzip.compress(b'{"Item":{"pk":{"S":"tampered"},"sk":{"S":"sk003"}}}\n'))
    with pytest.raises(BackupFolderError, match=r"om5xbquzn476lo3qh5l2cy6m6i\.json\.gz: MD5 .* does not match"):
        restore(export, "never-created-3", create_table=True, key_schema="pk:S,sk:S")
    assert not exists(local_aws.dynamodb_client(), "never-created-3")

    s3.delete_object(Bucket=s3_bucket, Key=export.key("manifest-summary.json"))
    with pytest.raises(BackupFolderError, match=r"no complete manifest-summary\.json"):
        inspect_folder(s3, export)
    assert inspect_folder(s3, export, force=True).complete is False
