"""Folder naming, parameter syntax, and the manifest's exact bytes."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.layout import S3Location, backup_folder, data_file_name, folder_name
from dynamodb_backup.formats.manifest import parse_manifest, render_manifest

GOLDEN = (
    b'{"name":"DynamoDB-export","version":3,\n'
    b'"entries": [\n'
    b'{"url":"s3://my-bucket/ddb/Users/2024-03-05-04-10-22/5d9c2f0e-8a4b-4c1e-9a3e-2b7f1c0d4e6a","mandatory":true},\n'
    b'{"url":"s3://my-bucket/ddb/Users/2024-03-05-04-10-22/0b1f4c57-3e2d-4f8a-b6c9-7d5e1a2f3b4c","mandatory":true}\n'
    b"]}"
)


def test_manifest_bytes_match_data_pipeline():
    folder = S3Location("my-bucket", "ddb/Users/2024-03-05-04-10-22")
    names = ["5d9c2f0e-8a4b-4c1e-9a3e-2b7f1c0d4e6a", "0b1f4c57-3e2d-4f8a-b6c9-7d5e1a2f3b4c"]
    urls = [folder.url_of(name) for name in names]
    assert render_manifest(urls) == GOLDEN


def test_manifest_round_trip_and_version_check():
    entries = parse_manifest(GOLDEN, "s3://b/m")
    assert [e.url.rsplit("/", 1)[1] for e in entries] == [
        "5d9c2f0e-8a4b-4c1e-9a3e-2b7f1c0d4e6a", "0b1f4c57-3e2d-4f8a-b6c9-7d5e1a2f3b4c"]
    with pytest.raises(BackupFolderError, match="unknown manifest version 2"):
        parse_manifest(GOLDEN.replace(b'"version":3', b'"version":2'), "s3://b/m")
    with pytest.raises(BackupFolderError, match="not valid JSON"):
        parse_manifest(b"{not json", "s3://b/m")


def test_folder_is_logical_date_in_utc():
    moment = datetime(2024, 3, 5, 13, 10, 22, tzinfo=timezone(timedelta(hours=9)))
    assert folder_name(moment) == "2024-03-05-04-10-22"
    folder = backup_folder(S3Location.parse("s3://bkt/ddb"), "Users", moment)
    assert folder.uri == "s3://bkt/ddb/Users/2024-03-05-04-10-22"


def test_data_file_names_are_stable_uuids():
    folder = S3Location("bkt", "p/T/2024-01-01-00-00-00")
    first = data_file_name(folder, 3, 0, ".gz")
    assert first == data_file_name(folder, 3, 0, ".gz")
    assert first != data_file_name(folder, 3, 1, ".gz")
    assert len(first) == 36 + 3 and first.endswith(".gz")


@pytest.mark.parametrize("uri", ["s3://Bad_Bucket/x", "s3://b/x", "http://bucket/x", "s3://bucket/a/../b",
                                 "s3://bucket/a//b", "s3://bucket/a/./b"])
def test_bad_uris_are_refused(uri):
    with pytest.raises(ParameterError):
        S3Location.parse(uri, "--to")


def test_good_uri():
    loc = S3Location.parse("s3://my.bucket-1/some/prefix/", "--to")
    assert (loc.bucket, loc.prefix) == ("my.bucket-1", "some/prefix")
    assert loc.child("T").key("f") == "some/prefix/T/f"
    assert S3Location.parse("s3://bucket", "x").key("f") == "f"


def test_folder_name_needs_timezone():
    with pytest.raises(ValueError):
        folder_name(datetime(2024, 1, 1))
    assert folder_name(datetime(2024, 1, 1, tzinfo=UTC)) == "2024-01-01-00-00-00"
