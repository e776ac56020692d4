"""Bad input corpus: each case fails with an error that names what is wrong, and writes nothing.

Export cases run the export command; restore cases run the restore command on a
copy of a good backup folder with one thing broken (the sidecar's size and
checksum are updated to match a broken file, so the line-level checks are
reached, except in the checksum case). After each failure: the command exited
with status 2, the message matches, no ``_SUCCESS`` was written, no object was
added to the bucket, and the restore target table was not created.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from demo_data import create_table, put_items
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.cli import main as cli_main
from dynamodb_backup.commands import client_factory
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location

DATE = datetime(2024, 8, 1, 0, 0, 0, tzinfo=UTC)
FOLDER_NAME = "2024-08-01-00-00-00"
SPEC = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "N"}],
    "BillingMode": "PAY_PER_REQUEST",
}
ITEMS = [{"pk": {"S": f"item-{i}"}, "sk": {"N": str(i)}, "v": {"SS": ["a", "b"]}} for i in range(12)]


def run(capsys, *argv: str) -> tuple[int, str]:
    try:
        code = cli_main(list(argv))
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def bucket_keys(s3, bucket: str) -> set[str]:
    return {o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])}


# ----------------------------------------------------------------------------- export


@pytest.fixture(scope="module")
def source_table(local_aws) -> str:
    name = "bad-inputs-source"
    ddb = local_aws.dynamodb_client()
    create_table(ddb, name, SPEC)
    put_items(ddb, name, ITEMS)
    return name


EXPORT_CASES: list[tuple[str, list[str], str]] = [
    ("table does not exist", ["--table", "no-such-table-here"],
     r"table: DynamoDB table 'no-such-table-here' does not exist"),
    ("ratio above range", ["--read-ratio", "5"], r"read_ratio must be between 0.01 and 1.5, got 5"),
    ("ratio zero", ["--read-ratio", "0"], r"read_ratio must be between 0.01 and 1.5, got 0"),
    ("ratio negative", ["--read-ratio", "-0.5"], r"read_ratio must be between 0.01 and 1.5"),
    ("bucket does not exist", ["--to", "s3://no-such-bucket-for-bad-inputs/x"],
     r"bucket: S3 bucket 'no-such-bucket-for-bad-inputs' does not exist"),
    ("prefix with ..", ["--to", "s3://{bucket}/a/../b"], r"--to: .*'\.\.' path segment"),
    ("prefix with .", ["--to", "s3://{bucket}/a/./b"], r"--to: .*'\.' .*path segment"),
    ("not an s3 uri", ["--to", "/tmp/backups"], r"--to: '/tmp/backups' is not an s3:// URI"),
    ("bucket name invalid", ["--to", "s3://Bad_Bucket/x"], r"--to: 'Bad_Bucket' is not a valid S3 bucket name"),
    ("table name invalid", ["--table", "a"], r"table: 'a' is not a valid DynamoDB table name"),
    ("segments zero", ["--segments", "0"], r"segments must be between 1 and 1000000, got 0"),
    ("unsafe prefix characters", ["--to", "s3://{bucket}/a{b}"], r"--to: .*unsafe in an S3 key"),
    ("compression unknown", ["--compression", "lz4"], r"--compression: invalid choice: 'lz4'"),
    ("mode unknown", ["--mode", "snapshot"], r"--mode: invalid choice: 'snapshot'"),
    ("pitr with PITR off", ["--mode", "pitr"],
     r"table 'bad-inputs-source' has point-in-time recovery off, so mode pitr cannot export it; turn it on "
     r"with `aws dynamodb update-continuous-backups --table-name bad-inputs-source"),
    ("pitr options without pitr", ["--format", "native"],
     r"--at, --format native, --keep-native and --pitr-fallback need --mode pitr"),
]


@pytest.mark.parametrize(("case", "args", "message"), EXPORT_CASES, ids=[c[0] for c in EXPORT_CASES])
def test_bad_export_parameters(local_aws, s3_bucket, source_table, capsys, case, args, message):
    s3 = local_aws.s3_client()
    argv = {"--table": source_table, "--to": f"s3://{s3_bucket}/bk", "--date": DATE.isoformat(), "--workers": "1"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        argv[flag] = value.replace("{bucket}", s3_bucket)
    code, output = run(capsys, "export", *[x for kv in argv.items() for x in kv])
    assert code == 2, output
    assert re.search(message, output), output
    assert bucket_keys(s3, s3_bucket) == set(), "a failed export must write nothing"


# ----------------------------------------------------------------------------- restore


@pytest.fixture(scope="module")
def good_folders(local_aws, source_table, tmp_path_factory) -> dict[str, dict[str, bytes]]:
    """The objects of a good backup of ITEMS, uncompressed and gzip, by name."""
    s3 = local_aws.s3_client()
    bucket = "bad-inputs-good-backups"
    s3.create_bucket(Bucket=bucket)
    found = {}
    for compression in ("none", "gzip"):
        request = BackupRequest(table=source_table, destination=S3Location(bucket, compression), logical_date=DATE,
                                read_ratio=1.0, segments=1, settings=ExportSettings(compression=compression))
        assert run_backup(client_factory(), request) is not None
        folder = S3Location(bucket, f"{compression}/{source_table}/{FOLDER_NAME}")
        objects = {}
        for key in bucket_keys(s3, bucket):
            if key.startswith(folder.key("")):
                objects[key[len(folder.key("")):]] = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        found[compression] = {"__folder__": folder.uri.encode(), **objects}
    return found


def data_names(objects: dict[str, bytes]) -> list[str]:
    return sorted(n for n in objects if n not in (MANIFEST, SIDECAR, SUCCESS, "__folder__"))


def first_data(objects: dict[str, bytes]) -> str:
    return data_names(objects)[0]


def set_lines(objects: dict[str, bytes], lines: list[bytes], append: bool = True) -> None:
    name = first_data(objects)
    body = objects[name] if append else b""
    objects[name] = body + b"".join(line + b"\n" for line in lines)


@dataclass
class RestoreCase:
    name: str
    mutate: Callable[[dict[str, bytes]], None]
    message: str
    compression: str = "none"
    #: Recompute the sidecar's size and checksum of changed files (else the checksum check fires first).
    fix_sidecar: bool = True
    extra: tuple[str, ...] = ()
    folder_suffix: str = ""


def manifest_urls(objects: dict[str, bytes], urls: Callable[[list[str]], list[str]]) -> None:
    doc = json.loads(objects[MANIFEST])
    new = urls([e["url"] for e in doc["entries"]])
    doc["entries"] = [{"url": u, "mandatory": True} for u in new]
    objects[MANIFEST] = json.dumps(doc).encode()


def replace_manifest(value: bytes) -> Callable[[dict[str, bytes]], None]:
    def mutate(objects: dict[str, bytes]) -> None:
        objects[MANIFEST] = value
    return mutate


def add_line(line: bytes) -> Callable[[dict[str, bytes]], None]:
    return lambda objects: set_lines(objects, [line])


def delete(name: str) -> Callable[[dict[str, bytes]], None]:
    return lambda objects: objects.pop(name)


def version_2(objects: dict[str, bytes]) -> None:
    objects[MANIFEST] = objects[MANIFEST].replace(b'"version":3', b'"version":2')


def outside(objects: dict[str, bytes]) -> None:
    manifest_urls(objects, lambda urls: [*urls, "s3://bad-inputs-good-backups/elsewhere/some-file"])


def empty_file(objects: dict[str, bytes]) -> None:
    objects[first_data(objects)] = b""


def cut_gzip(objects: dict[str, bytes]) -> None:
    name = first_data(objects)
    objects[name] = objects[name][: len(objects[name]) // 2]


def flip_byte(objects: dict[str, bytes]) -> None:
    name = first_data(objects)
    data = bytearray(objects[name])
    data[5] = ord("X") if data[5] != ord("X") else ord("Y")
    objects[name] = bytes(data)


def missing_data(objects: dict[str, bytes]) -> None:
    objects.pop(first_data(objects))


def sidecar_not_json(objects: dict[str, bytes]) -> None:
    objects[SIDECAR] = b"{not json"


BIG = b'{"pk":{"s":"big"},"sk":{"n":"99"},"blob":{"s":"' + b"x" * 410_000 + b'"}}'
def data_pipeline_folder(mutate: Callable[[dict[str, bytes]], None]) -> Callable[[dict[str, bytes]], None]:
    """As Data Pipeline wrote it: no sidecar, so the manifest is the only list of files."""

    def both(objects: dict[str, bytes]) -> None:
        objects.pop(SIDECAR)
        mutate(objects)

    return both


DP = ("--key-schema", "pk:S,sk:N")
RESTORE_CASES = [
    RestoreCase("manifest version 2", data_pipeline_folder(version_2), r"unknown manifest version 2", extra=DP),
    RestoreCase("manifest not JSON", data_pipeline_folder(replace_manifest(b"{this is not json")),
                r"manifest is not valid JSON", extra=DP),
    RestoreCase("manifest not an object", data_pipeline_folder(replace_manifest(b"[1, 2]")),
                r"manifest is not a JSON object", extra=DP),
    RestoreCase("manifest without entries",
                data_pipeline_folder(replace_manifest(b'{"name":"DynamoDB-export","version":3}')),
                r"manifest has no 'entries' list", extra=DP),
    RestoreCase("entry URL outside the folder", data_pipeline_folder(outside),
                r"elsewhere/some-file.*(outside|not in)|(outside|not in).*folder", extra=DP),
    RestoreCase("no _SUCCESS", delete(SUCCESS), r"_SUCCESS"),
    RestoreCase("sidecar not JSON", sidecar_not_json, r"_dynamodb_backup\.json|sidecar"),
    RestoreCase("data file missing", missing_data, r"\.(gz|json)?.*(missing|not found|does not exist|NoSuchKey)|"
                r"(missing|not found|does not exist)"),
    RestoreCase("empty file", empty_file, r"empty|0 items|expected \d+ items|count"),
    RestoreCase("line is not an object", add_line(b"[1,2,3]"), r"line 13.*(not a JSON object|object)"),
    RestoreCase("line is not JSON", add_line(b'{"pk":{"s":"x"'), r"line 13"),
    RestoreCase("unknown type key", add_line(b'{"pk":{"s":"u"},"sk":{"n":"50"},"x":{"zz":"1"}}'),
                r"line 13.*zz"),
    RestoreCase("39-digit number", add_line(b'{"pk":{"s":"n"},"sk":{"n":"123456789012345678901234567890123456789"}}'),
                r"line 13.*(38|digits|precision)"),
    RestoreCase("number too large", add_line(b'{"pk":{"s":"n"},"sk":{"n":"1E+126"}}'),
                r"line 13.*(range|large|1E\+126)"),
    RestoreCase("item over 400 KB", add_line(BIG), r"line 13.*(400|409600|size|large)"),
    RestoreCase("duplicate set member", add_line(b'{"pk":{"s":"d"},"sk":{"n":"51"},"v":{"sS":["a","a"]}}'),
                r"line 13.*duplicate"),
    RestoreCase("empty set", add_line(b'{"pk":{"s":"e"},"sk":{"n":"52"},"v":{"sS":[]}}'), r"line 13.*(empty|set)"),
    RestoreCase("key attribute missing", add_line(b'{"pk":{"s":"nokey"},"v":{"s":"x"}}'), r"line 13.*sk"),
    RestoreCase("key attribute of the wrong type", add_line(b'{"pk":{"n":"5"},"sk":{"n":"53"}}'),
                r"line 13.*pk"),
    RestoreCase("non-UTF-8 bytes", add_line(b'{"pk":{"s":"\xff\xfe"},"sk":{"n":"54"}}'), r"line 13.*(UTF-8|utf-8)"),
    RestoreCase("invalid base64 binary", add_line(b'{"pk":{"s":"b"},"sk":{"n":"55"},"x":{"b":"@@@"}}'),
                r"line 13.*(base64|binary)"),
    RestoreCase("gzip member cut off", cut_gzip, r"(gzip|compressed|truncated|cut|end of)", compression="gzip"),
    RestoreCase("checksum mismatch", flip_byte, r"(checksum|sha256|SHA-256)", fix_sidecar=False),
    RestoreCase("write ratio out of range", lambda o: None, r"write_ratio must be between 0.01 and 1.5",
                extra=("--write-ratio", "9")),
    RestoreCase("target table name invalid", lambda o: None, r"table: 'x' is not a valid DynamoDB table name",
                extra=("--table", "x")),
    RestoreCase("folder does not exist", lambda o: None, r"(no backup|not found|does not exist|no such|empty|manifest)",
                folder_suffix="-nothing-here"),
]


def put_case(s3, bucket: str, case: RestoreCase, good: dict[str, dict[str, bytes]], table: str) -> S3Location:
    base = dict(good[case.compression])
    old_folder = base.pop("__folder__").decode()
    folder = S3Location(bucket, f"cases/{table}/{FOLDER_NAME}")
    objects = {n: v.replace(old_folder.encode(), folder.uri.encode()) if n == MANIFEST else v
               for n, v in base.items()}
    before = dict(objects)
    case.mutate(objects)
    if case.fix_sidecar and SIDECAR in objects and objects.get(SIDECAR) == before.get(SIDECAR):
        sidecar = json.loads(objects[SIDECAR])
        for record in sidecar["files"]:
            if record["name"] in objects and objects[record["name"]] != before.get(record["name"]):
                record["bytes"] = len(objects[record["name"]])
                record["sha256"] = hashlib.sha256(objects[record["name"]]).hexdigest()
        sidecar["byte_count"] = sum(r["bytes"] for r in sidecar["files"])
        objects[SIDECAR] = json.dumps(sidecar).encode()
    for name, body in objects.items():
        s3.put_object(Bucket=bucket, Key=folder.key(name), Body=body)
    return folder


@pytest.mark.parametrize("case", RESTORE_CASES, ids=[c.name for c in RESTORE_CASES])
def test_bad_restore_inputs(local_aws, s3_bucket, table_name, good_folders, capsys, case):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    folder = put_case(s3, s3_bucket, case, good_folders, table_name)
    before = bucket_keys(s3, s3_bucket)
    args = {"--table": table_name, "--workers": "1"}
    args.update(dict(zip(case.extra[::2], case.extra[1::2], strict=True)))
    argv = ["restore", folder.uri + case.folder_suffix, "--create-table",
            *[x for kv in args.items() for x in kv]]
    code, output = run(capsys, *argv)
    assert code == 2, output
    assert re.search(case.message, output, re.IGNORECASE | re.DOTALL), output
    assert bucket_keys(s3, s3_bucket) == before, "a failed restore must write nothing to S3"
    assert args["--table"] not in ddb.list_tables()["TableNames"], "a failed restore must not create the table"


def test_corpus_is_large_enough():
    assert len(EXPORT_CASES) + len(RESTORE_CASES) >= 25


def test_gzip_fixture_is_really_gzip(good_folders):
    objects = good_folders["gzip"]
    assert gzip.decompress(objects[first_data(objects)]).count(b"\n") == len(ITEMS)




# ----------------------------------------------------------------------------- a missing bucket, anywhere

MISSING_BUCKET_CASES = [
    ("ls", ["ls", "s3://no-such-bucket-for-ls/backups"], "no-such-bucket-for-ls"),
    ("restore --latest", ["restore", "--latest", "--from", "s3://no-such-bucket-for-latest/backups",
                          "--source-table", "bad-inputs-source", "--table", "never-created"],
     "no-such-bucket-for-latest"),
]


@pytest.mark.parametrize(("case", "argv", "bucket"), MISSING_BUCKET_CASES, ids=[c[0] for c in MISSING_BUCKET_CASES])
def test_a_missing_bucket_is_one_clear_line(local_aws, capsys, case, argv, bucket):
    code, output = run(capsys, *argv)
    assert code == 2, output
    assert re.search(rf"bucket: S3 bucket '{bucket}' does not exist", output), output
    assert "Traceback" not in output and "NoSuchBucket" not in output, output
    tables = local_aws.dynamodb_client().list_tables()["TableNames"]
    assert "never-created" not in tables
