"""Bad input corpus: each case fails with an error that names what is wrong, and writes nothing.

Export cases run the export command; restore cases run the restore command on a
copy of a good backup folder with one thing broken (the sidecar's size and
checksum are updated to match a broken file, so the line-level checks are
reached, except in the checksum case). After each failure: the command exited
with status 2, no ``_SUCCESS`` was written, no object was added to the bucket, and
the restore target table was not created.

The message is one ``error:`` line (no traceback; besides it only argparse's usage
or the restore's run-id hint) naming the exact culprit: the parameter and its
value, or the object's full s3:// URL (the folder, the manifest, the sidecar, the
data file) with the line number where there is one, and then the specific reason.
Restore patterns name the objects with placeholders filled in per case from the
case's own folder and the good backup's objects: ``<folder>``, ``<manifest>``,
``<sidecar>``, ``<data>`` (the first data file), ``<line>`` (the line appended to
it) and ``<sha256>`` (the data file's recorded checksum).
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


#: What the restore prints after its error so that a run can be resumed; the only other line it may add.
RUN_ID_HINT = re.compile(r"run id restore-\S+ \(give --run-id restore-\S+ to resume it\)")
#: argparse's usage block (first line, then indented continuations) before its one error line.
USAGE = re.compile(r"usage: dynamodb-backup \S|\s{2,}\S")


def error_line(output: str) -> str:
    """The one line saying what is wrong; fails on a traceback, a second error or any other stray line."""
    assert "Traceback" not in output, output
    lines = output.rstrip("\n").split("\n")
    errors = [line for line in lines if re.match(r"(dynamodb-backup \w+: )?error: ", line)]
    assert len(errors) == 1, f"expected exactly one error line:\n{output}"
    for line in lines:
        assert line == errors[0] or RUN_ID_HINT.fullmatch(line) or USAGE.match(line), \
            f"stray line {line!r} in:\n{output}"
    return errors[0]


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


RATIO = r"must be between 0\.01 and 1\.5, got"
EXPORT_CASES: list[tuple[str, list[str], str]] = [
    ("table does not exist", ["--table", "no-such-table-here"],
     r"^error: table: DynamoDB table 'no-such-table-here' does not exist in region us-east-1: check the name, "
     r"and the region \(--region, AWS_DEFAULT_REGION\)$"),
    ("ratio above range", ["--read-ratio", "5"], rf"^error: read_ratio {RATIO} 5\.0$"),
    ("ratio zero", ["--read-ratio", "0"], rf"^error: read_ratio {RATIO} 0\.0$"),
    ("ratio negative", ["--read-ratio", "-0.5"], rf"^error: read_ratio {RATIO} -0\.5$"),
    ("bucket does not exist", ["--to", "s3://no-such-bucket-for-bad-inputs/x"],
     r"^error: bucket: S3 bucket 'no-such-bucket-for-bad-inputs' does not exist$"),
    ("prefix with ..", ["--to", "s3://{bucket}/a/../b"],
     r"^error: --to: 'a/\.\./b' has an empty, '\.' or '\.\.' path segment$"),
    ("prefix with .", ["--to", "s3://{bucket}/a/./b"],
     r"^error: --to: 'a/\./b' has an empty, '\.' or '\.\.' path segment$"),
    ("not an s3 uri", ["--to", "/tmp/backups"], r"^error: --to: '/tmp/backups' is not an s3:// URI$"),
    ("bucket name invalid", ["--to", "s3://Bad_Bucket/x"],
     r"^error: --to: 'Bad_Bucket' is not a valid S3 bucket name \(3-63 characters"),
    ("table name invalid", ["--table", "a"],
     r"^error: table: 'a' is not a valid DynamoDB table name \(3-255 characters"),
    ("segments zero", ["--segments", "0"], r"^error: segments must be between 1 and 1000000, got 0$"),
    ("unsafe prefix characters", ["--to", "s3://{bucket}/a{b}"],
     r"^error: --to: 'a\{b\}' contains characters unsafe in an S3 key$"),
    ("compression unknown", ["--compression", "lz4"],
     r"^dynamodb-backup export: error: argument --compression: invalid choice: 'lz4' \(choose from "),
    ("mode unknown", ["--mode", "snapshot"],
     r"^dynamodb-backup export: error: argument --mode: invalid choice: 'snapshot' \(choose from "),
    ("pitr with PITR off", ["--mode", "pitr"],
     r"^error: table 'bad-inputs-source' has point-in-time recovery off, so mode pitr cannot export it; turn it on "
     r"with `aws dynamodb update-continuous-backups --table-name bad-inputs-source "),
    ("pitr options without pitr", ["--format", "native"],
     r"^error: --format native: only with --mode pitr \(or incremental\)$"),
    ("incremental without --since", ["--mode", "incremental"],
     r"^error: --since: give it with --mode incremental \(and --at\), and only then$"),
]


@pytest.mark.parametrize(("case", "args", "message"), EXPORT_CASES, ids=[c[0] for c in EXPORT_CASES])
def test_bad_export_parameters(local_aws, s3_bucket, source_table, capsys, case, args, message):
    s3 = local_aws.s3_client()
    argv = {"--table": source_table, "--to": f"s3://{s3_bucket}/bk", "--date": DATE.isoformat(), "--workers": "1"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        argv[flag] = value.replace("{bucket}", s3_bucket)
    code, output = run(capsys, "export", *[x for kv in argv.items() for x in kv])
    assert code == 2, output
    assert re.search(message, error_line(output)), f"{message!r} does not match:\n{output}"
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


OUTSIDE_URL = "s3://bad-inputs-good-backups/elsewhere/some-file"


def outside(objects: dict[str, bytes]) -> None:
    manifest_urls(objects, lambda urls: [*urls, OUTSIDE_URL])


def empty_file(objects: dict[str, bytes]) -> None:
    objects[first_data(objects)] = b""


def cut_gzip(objects: dict[str, bytes]) -> None:
    name = first_data(objects)
    objects[name] = objects[name][: len(objects[name]) // 2]


def flip_byte(objects: dict[str, bytes]) -> None:
    """One byte changed inside a key's string value: every line still decodes, only the checksum can tell."""
    name = first_data(objects)
    assert objects[name].count(b'"item-') == len(ITEMS)
    objects[name] = objects[name].replace(b'"item-', b'"item_', 1)


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
AT_LINE = "^error: <data> line <line>: "
RESTORE_CASES = [
    RestoreCase("manifest version 2", data_pipeline_folder(version_2),
                r"^error: <manifest>: unknown manifest version 2 \(only version 3 is supported\)$", extra=DP),
    RestoreCase("manifest not JSON", data_pipeline_folder(replace_manifest(b"{this is not json")),
                r"^error: <manifest>: manifest is not valid JSON \(", extra=DP),
    RestoreCase("manifest not an object", data_pipeline_folder(replace_manifest(b"[1, 2]")),
                r"^error: <manifest>: manifest is not a JSON object$", extra=DP),
    RestoreCase("manifest without entries",
                data_pipeline_folder(replace_manifest(b'{"name":"DynamoDB-export","version":3}')),
                r"^error: <manifest>: manifest has no 'entries' list$", extra=DP),
    # A relocated Data Pipeline manifest's URLs are resolved by file name, so an entry from elsewhere is "missing".
    RestoreCase("entry URL outside the folder", data_pipeline_folder(outside),
                rf"^error: <manifest>: entry {re.escape(OUTSIDE_URL)} \(resolved by file name to <folder>/some-file\) "
                r"is missing from the folder$", extra=DP),
    RestoreCase("no _SUCCESS", delete(SUCCESS),
                r"^error: <folder>/ has no _SUCCESS marker \(the backup did not finish\); refusing to restore it "),
    RestoreCase("sidecar not JSON", sidecar_not_json,
                r"^error: <sidecar>: sidecar is not readable \(JSONDecodeError\("),
    RestoreCase("data file missing", missing_data,
                r"^error: <data>: listed in the sidecar but missing from the folder$"),
    RestoreCase("empty file", empty_file,
                rf"^error: <data>: holds 0 items, the backup's metadata says {len(ITEMS)}$"),
    RestoreCase("line is not an object", add_line(b"[1,2,3]"),
                AT_LINE + r"line is not a JSON object but a JSON array$"),
    RestoreCase("line is not JSON", add_line(b'{"pk":{"s":"x"'), AT_LINE + r"invalid JSON: unexpected end of data"),
    RestoreCase("unknown type key", add_line(b'{"pk":{"s":"u"},"sk":{"n":"50"},"x":{"zz":"1"}}'),
                AT_LINE + r"attribute 'x': unknown type key 'zz'$"),
    RestoreCase("39-digit number", add_line(b'{"pk":{"s":"n"},"sk":{"n":"123456789012345678901234567890123456789"}}'),
                AT_LINE + r"attribute 'sk': invalid number '123456789012345678901234567890123456789': "
                r"39 significant digits, at most 38 allowed$"),
    RestoreCase("number too large", add_line(b'{"pk":{"s":"n"},"sk":{"n":"1E+126"}}'),
                AT_LINE + r"attribute 'sk': invalid number '1E\+126': magnitude larger than "
                r"9\.9999999999999999999999999999999999999E\+125$"),
    RestoreCase("item over 400 KB", add_line(BIG),
                AT_LINE + r"item is 4\d{5} bytes, more than DynamoDB's limit of 409600 bytes \(400 KB\)$"),
    RestoreCase("duplicate set member", add_line(b'{"pk":{"s":"d"},"sk":{"n":"51"},"v":{"sS":["a","a"]}}'),
                AT_LINE + r"attribute 'v': SS has duplicate members: \['a', 'a'\]$"),
    RestoreCase("empty set", add_line(b'{"pk":{"s":"e"},"sk":{"n":"52"},"v":{"sS":[]}}'),
                AT_LINE + r"attribute 'v': SS must not be empty$"),
    RestoreCase("key attribute missing", add_line(b'{"pk":{"s":"nokey"},"v":{"s":"x"}}'),
                AT_LINE + r"item has no key attribute 'sk'$"),
    RestoreCase("key attribute of the wrong type", add_line(b'{"pk":{"n":"5"},"sk":{"n":"53"}}'),
                AT_LINE + r"key attribute 'pk' is of type N, the table's is S$"),
    RestoreCase("non-UTF-8 bytes", add_line(b'{"pk":{"s":"\xff\xfe"},"sk":{"n":"54"}}'),
                AT_LINE + r"line is not valid UTF-8 \(bad byte at offset 12\)$"),
    RestoreCase("invalid base64 binary", add_line(b'{"pk":{"s":"b"},"sk":{"n":"55"},"x":{"b":"@@@"}}'),
                AT_LINE + r"attribute 'x': invalid base64 '@@@'$"),
    RestoreCase("gzip member cut off", cut_gzip,
                r"^error: <data>: gzip data is truncated \(the file ends inside a compressed member\); "
                r"the object is incomplete or corrupt$", compression="gzip"),
    RestoreCase("checksum mismatch", flip_byte,
                r"^error: <data>: SHA-256 [0-9a-f]+ does not match the backup's record <sha256> \(\d+ bytes read\); "
                r"the file was changed or damaged$", fix_sidecar=False),
    RestoreCase("write ratio out of range", lambda o: None, rf"^error: write_ratio {RATIO} 9\.0$",
                extra=("--write-ratio", "9")),
    RestoreCase("target table name invalid", lambda o: None,
                r"^error: table: 'x' is not a valid DynamoDB table name \(3-255 characters", extra=("--table", "x")),
    RestoreCase("folder does not exist", lambda o: None,
                r"^error: <folder>-nothing-here/: no backup here "
                r"\(no data files, manifest, sidecar or native export\)$",
                folder_suffix="-nothing-here"),
]


def expected_message(case: RestoreCase, folder: S3Location, good: dict[str, dict[str, bytes]]) -> str:
    """The case's pattern with its placeholders replaced by this run's (escaped) URLs, line and checksum."""
    objects = good[case.compression]
    data = first_data(objects)
    text = gzip.decompress(objects[data]) if data.endswith(".gz") else objects[data]
    assert text.endswith(b"\n"), "an appended line must start a line of its own"
    values = {"<folder>": folder.uri, "<manifest>": f"{folder.uri}/{MANIFEST}", "<sidecar>": f"{folder.uri}/{SIDECAR}",
              "<data>": f"{folder.uri}/{data}", "<line>": str(text.count(b"\n") + 1),
              "<sha256>": hashlib.sha256(objects[data]).hexdigest()}
    pattern = case.message
    for token, value in values.items():
        pattern = pattern.replace(token, re.escape(value))
    return pattern


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
    message = expected_message(case, folder, good_folders)
    assert re.search(message, error_line(output)), f"{message!r} does not match:\n{output}"
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
    assert re.search(rf"^error: bucket: S3 bucket '{re.escape(bucket)}' does not exist$", error_line(output)), output
    assert "NoSuchBucket" not in output, output
    tables = local_aws.dynamodb_client().list_tables()["TableNames"]
    assert "never-created" not in tables
