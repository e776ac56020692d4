"""Pure parts of the restore: entry resolution, key schemas and key checks, shares, digests, line reading."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import pytest
import zstandard
from botocore.exceptions import ResponseStreamingError

from dynamodb_backup.errors import BackupFolderError, CodecError, ParameterError
from dynamodb_backup.formats.codec import encode_item
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.loading.checkpoint import default_checkpoint_base, safe_part
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.inspection import BackupSource, SourceFile, resolve_entry
from dynamodb_backup.repository.keyschema import KeyRules, parse_key_schema, show_key_schema
from dynamodb_backup.repository.reader import Checksums, CorruptFileError, FileItems, LineReader
from dynamodb_backup.restore.steps import plan_shares
from dynamodb_backup.restore.verify import _selections

FOLDER = S3Location("copy-bucket", "restored/Users/2024-03-05-04-10-22")


def test_entries_inside_the_folder_are_used_as_they_are():
    assert resolve_entry(FOLDER, "s3://copy-bucket/restored/Users/2024-03-05-04-10-22/abc") == (
        "restored/Users/2024-03-05-04-10-22/abc", False)


@pytest.mark.parametrize("url", ["s3://my-bucket/ddb/Users/2024-03-05-04-10-22/abc.gz",
                                 "s3://copy-bucket/elsewhere/abc.gz", "s3://copy-bucket/abc.gz"])
def test_entries_elsewhere_resolve_by_file_name(url):
    key, moved = resolve_entry(FOLDER, url)
    assert moved and key == FOLDER.key(url.rsplit("/", 1)[1])


@pytest.mark.parametrize("url", ["s3://b/a/../../secret", "s3://b/a/./x", "s3://b/a/", "s3://b", "s3://b/a//x"])
def test_entries_that_cannot_name_a_file_are_refused(url):
    with pytest.raises(BackupFolderError, match="does not name a plain file"):
        resolve_entry(FOLDER, url)


@pytest.mark.parametrize("name", ["manifest", "_SUCCESS", "_dynamodb_backup.json", ".hidden"])
def test_entries_naming_metadata_are_refused(name):
    with pytest.raises(BackupFolderError, match="metadata"):
        resolve_entry(FOLDER, f"s3://b/x/{name}")


def test_key_schema_parameter():
    schema = parse_key_schema(" pk:s , sk:N ")
    assert schema["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"},
                                   {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert show_key_schema(schema) == "pk:S,sk:N"
    assert show_key_schema(parse_key_schema("a:b:B")) == "a:b:B"  # names may hold ':'


@pytest.mark.parametrize("text", ["", "pk", "pk:X", "pk:S,sk:N,x:S", "pk:S,pk:N", ":S"])
def test_bad_key_schema_parameters_are_refused(text):
    with pytest.raises(ParameterError, match="key_schema"):
        parse_key_schema(text)


RULES = KeyRules.from_description({
    "KeySchema": [{"AttributeName": "sk", "KeyType": "RANGE"}, {"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "N"},
                             {"AttributeName": "host", "AttributeType": "S"}],
    "GlobalSecondaryIndexes": [{"IndexName": "by-host", "KeySchema": [{"AttributeName": "host", "KeyType": "HASH"}]}],
})


@pytest.mark.parametrize(("item", "message"), [
    ({"sk": {"N": "1"}}, "no key attribute 'pk'"),
    ({"pk": {"S": "a"}, "sk": {"S": "1"}}, "key attribute 'sk' is of type S, the table's is N"),
    ({"pk": {"S": ""}, "sk": {"N": "1"}}, "'pk' is empty"),
    ({"pk": {"S": "x" * 2049}, "sk": {"N": "1"}}, "'pk' is 2049 bytes"),
    ({"pk": {"S": "a"}, "sk": {"N": "1"}, "host": {"N": "3"}}, "index key attribute 'host' is of type N"),
    ({"pk": {"S": "a"}, "sk": {"N": "1"}, "host": {"S": ""}}, "index key attribute 'host' is empty"),
])
def test_key_rules_refuse_what_dynamodb_would(item, message):
    with pytest.raises(CodecError, match=message):
        RULES.check(item)


def test_key_rules_accept_good_items_and_sparse_indexes():
    assert RULES.key_names == ["pk", "sk"]
    RULES.check({"pk": {"S": "a"}, "sk": {"N": "1"}})
    RULES.check({"pk": {"S": "a"}, "sk": {"N": "1"}, "host": {"S": "h"}})


def test_checkpoints_live_beside_the_folder():
    assert default_checkpoint_base(FOLDER) == S3Location(
        "copy-bucket", "restored/Users/_restore_checkpoints/2024-03-05-04-10-22")
    assert default_checkpoint_base(S3Location("b", "only")).prefix == "_restore_checkpoints/only"
    assert safe_part("manual__2024-03-05T04:10:22+00:00") == "manual__2024-03-05T04_10_22_00_00"


def test_shares_are_balanced_and_never_empty():
    files = [SourceFile(f"k{i}", "datapipeline", size) for i, size in enumerate([7, 7, 7, 1, 1, 1])]
    shares = plan_shares(files, 3)
    assert [sum(f.size for f in s) for s in shares] == [8, 8, 8]
    assert len(plan_shares(files[:2], 8)) == 2
    with pytest.raises(ParameterError):
        plan_shares(files, 0)


def test_backup_source_survives_xcom():
    source = BackupSource(FOLDER, "native", True, [SourceFile("a/b.json.gz", "native", 10, md5="x==", items=3)],
                          expected_items=3, notes=["n"])
    assert BackupSource.from_dict(source.to_dict()) == source


def test_bucketed_digest_is_order_free_and_serializable():
    items = [{"pk": {"S": f"k{i}"}, "v": {"N": str(i)}} for i in range(50)]
    a, b = BucketedDigest(), BucketedDigest()
    for item in items:
        a.add(item, ["pk"])
    for item in reversed(items):
        b.add(item, ["pk"])
    assert a == b and a.differing(b) == [] and a.total() == b.total() and a.count == 50
    assert BucketedDigest.from_dict(a.to_dict()).total() == a.total()
    b.add({"pk": {"S": "extra"}}, ["pk"])
    assert len(a.differing(b)) == 1


def test_sample_selections_hold_at_most_max_keys():
    big, empty = BucketedDigest(), BucketedDigest()
    for index in range(256):
        big.buckets[index].count = 1000 if index % 2 else 10
    masks = list(_selections(big.differing(empty), big, empty, max_keys=300))
    covered = bytearray(1 << 16)
    for mask in masks:
        expected = sum(big.buckets[h >> 8].count / 256 for h in range(1 << 16) if mask[h])
        assert expected <= 300
        covered = bytearray(x | y for x, y in zip(covered, mask, strict=True))
    assert all(covered)


class FakeBody:
    def __init__(self, data: bytes, fail_at: int | None) -> None:
        self.data, self.fail_at = data, fail_at

    def iter_chunks(self, _size: int):
        for start in range(0, len(self.data), 7):  # tiny chunks: lines span chunk boundaries
            if self.fail_at is not None and start >= self.fail_at:
                raise ResponseStreamingError(error="connection reset")
            yield self.data[start:start + 7]

    def close(self) -> None:
        pass


class FakeS3:
    """A narrow stand-in for GetObject: serves one object, optionally breaking the first download."""

    def __init__(self, data: bytes, fail_at: int | None = None) -> None:
        self.data, self.fail_at, self.ranges = data, fail_at, []

    def get_object(self, Bucket: str, Key: str, **extra: Any) -> dict[str, Any]:
        start = int(extra["Range"].split("=")[1].rstrip("-")) if "Range" in extra else 0
        self.ranges.append(start)
        fail, self.fail_at = self.fail_at, None
        return {"Body": FakeBody(self.data[start:], fail), "ETag": '"e"'}


LINES = b"".join(encode_item({"pk": {"S": f"k{i}"}, "n": {"N": str(i)}}) + b"\n" for i in range(40))


@pytest.mark.parametrize("key", ["plain", "f.gz", "f.zst"])
def test_lines_stream_across_chunks_members_and_frames(key):
    half = len(LINES) // 2
    if key.endswith(".gz"):
        stored = gzip.compress(LINES[:half]) + gzip.compress(LINES[half:])
    elif key.endswith(".zst"):
        c = zstandard.ZstdCompressor()
        stored = c.compress(LINES[:half]) + c.compress(LINES[half:])
    else:
        stored = LINES
    reader = LineReader(FakeS3(stored), "b", key, Checksums(sha256=hashlib.sha256(stored).hexdigest()))
    assert [line for _, line in reader] == LINES.splitlines()
    assert reader.lines == 40 and reader.stored_bytes == len(stored)


def test_a_broken_download_resumes_where_it_broke():
    stored = gzip.compress(LINES)
    s3 = FakeS3(stored, fail_at=70)
    items = FileItems(s3, "b", SourceFile("f.gz", "datapipeline", len(stored),
                                          sha256=hashlib.sha256(stored).hexdigest()))
    assert len(list(items)) == 40 and s3.ranges == [0, 70]


@pytest.mark.parametrize(("key", "stored", "message"), [
    ("f.gz", gzip.compress(LINES)[:-30], "gzip data is truncated"),
    ("f.gz", b"not gzip at all", "not valid gzip data"),
    ("f.zst", zstandard.ZstdCompressor().compress(LINES)[:-10], "zstd data is truncated"),
    ("plain", LINES, "SHA-256 .* does not match"),
])
def test_damaged_files_are_refused_naming_the_file(key, stored, message):
    reader = LineReader(FakeS3(stored), "b", key, Checksums(sha256="0" * 64))
    with pytest.raises(CorruptFileError, match=rf"s3://b/{key}: {message}"):
        list(reader)
