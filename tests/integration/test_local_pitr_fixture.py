"""The stand-in's export output held against a real AWS export (tests/fixtures/native-export-2020)."""

from __future__ import annotations

import base64
import gzip
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from local_pitr_helpers import ExportOutput, create_table, enable_pitr, read_export, wait_export

if TYPE_CHECKING:
    from conftest import LocalAws

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "native-export-2020"


def _real_export() -> ExportOutput:
    folders = sorted((FIXTURE / "demo_prefix" / "AWSDynamoDB").iterdir())
    assert len(folders) == 1, f"the native export fixture is missing or changed: {FIXTURE}"
    root = folders[0]
    objects = {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}
    files = [orjson.loads(line) for line in objects["manifest-files.json"].splitlines()]
    data = {f["dataFileS3Key"]: objects[f["dataFileS3Key"].split(root.name + "/", 1)[1]] for f in files}
    return ExportOutput(f"demo_prefix/AWSDynamoDB/{root.name}", objects,
                        orjson.loads(objects["manifest-summary.json"]), files, data)


def _kinds(output: ExportOutput) -> set[str]:
    return {re.sub(r"^data/[a-z2-7]{26}\.json\.gz$", "data/*.json.gz", name) for name in output.objects}


def _shape(value: Any) -> Any:
    """The JSON types of a manifest's values (a string and null are told apart; numbers are ints)."""
    return type(value).__name__


def _consistent(output: ExportOutput) -> None:
    """md5, etag and itemCount of every manifest-files line agree with the data file; checksum files agree."""
    assert output.objects["manifest-files.json"].endswith(b"\n")
    assert all(line for line in output.objects["manifest-files.json"].split(b"\n")[:-1])
    assert not output.objects["manifest-summary.json"].endswith(b"\n")
    for name in ("manifest-files", "manifest-summary"):
        checksum = output.objects[f"{name}.md5"]
        assert len(checksum) == 24 and not checksum.endswith(b"\n")
        assert checksum == base64.b64encode(hashlib.md5(output.objects[f"{name}.json"]).digest())
    for entry in output.files:
        body = output.data[entry["dataFileS3Key"]]
        assert entry["md5Checksum"] == base64.b64encode(hashlib.md5(body).digest()).decode()
        assert entry["etag"] == hashlib.md5(hashlib.md5(body).digest()).hexdigest() + "-1"
        assert entry["itemCount"] == len(gzip.decompress(body).splitlines())
        assert body[:10] == b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x00"  # no name, mtime 0, XFL 0, OS 0
        assert entry["dataFileS3Key"].startswith(output.folder + "/data/")
    assert output.summary["itemCount"] == sum(f["itemCount"] for f in output.files)
    assert output.summary["manifestFilesS3Key"] == output.folder + "/manifest-files.json"


def test_our_export_looks_like_the_real_one(local_aws: LocalAws, table_name: str, s3_bucket: str) -> None:
    real = _real_export()
    _consistent(real)  # the rules below hold for the real export first

    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    arn = create_table(ddb, table_name, range_key="sk")
    enable_pitr(ddb, table_name)
    for i in (1, 2, 3):  # the fixture's three items, in our table
        ddb.put_item(TableName=table_name, Item={"pk": {"S": f"pk00{i}-1605121017583"}, "sk": {"S": f"sk00{i}"}})
    started = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=s3_bucket, S3Prefix="demo_prefix")
    done = wait_export(ddb, started["ExportDescription"]["ExportArn"])
    assert done["ExportStatus"] == "COMPLETED", done
    ours = read_export(s3, s3_bucket, done["ExportManifest"])
    _consistent(ours)

    assert _kinds(ours) == _kinds(real) == {"_started", "manifest-files.json", "manifest-files.md5",
                                            "manifest-summary.json", "manifest-summary.md5", "data/*.json.gz"}
    assert ours.objects["_started"] == real.objects["_started"] == b""
    assert list(ours.summary) == list(real.summary)  # same members, same order
    assert {k: _shape(v) for k, v in ours.summary.items()} == {k: _shape(v) for k, v in real.summary.items()}
    for member in ("version", "s3Prefix", "s3SseAlgorithm", "s3SseKmsKeyId", "outputFormat", "itemCount"):
        assert ours.summary[member] == real.summary[member], member
    time_format = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
    for member in ("startTime", "endTime", "exportTime"):
        assert time_format.match(ours.summary[member]) and time_format.match(real.summary[member])
    assert ours.summary["exportArn"] == done["ExportArn"] and ours.summary["tableArn"] == arn
    assert ours.objects["manifest-summary.json"] == orjson.dumps(ours.summary)  # compact, like the real one
    assert real.objects["manifest-summary.json"] == orjson.dumps(real.summary)

    assert [list(f) for f in ours.files] == [list(f) for f in real.files][:1] * len(ours.files)
    assert len(ours.files) == len(real.files) == 4  # one file per partition, empty ones included
    empty_real = {body for body in real.data.values() if len(body) == 20}
    empty_ours = {body for body in ours.data.values() if gzip.decompress(body) == b""}
    assert empty_ours and empty_ours <= empty_real  # an empty partition is byte for byte AWS's 20-byte empty gzip

    real_lines = [line for body in real.data.values() for line in gzip.decompress(body).splitlines(keepends=True)]
    our_lines = [line for body in ours.data.values() for line in gzip.decompress(body).splitlines(keepends=True)]
    if local_aws.is_ddblocal:
        # DynamoDB Local hands the stand-in an item's attributes in its own order (here sk before pk).
        # AWS's items are maps with no documented attribute order, so compare members whatever their
        # order, and the bytes of each line: compact JSON with "\n" after each, as AWS writes them.
        assert sorted(map(_members_sorted, our_lines)) == sorted(map(_members_sorted, real_lines))
        assert all(line == orjson.dumps(orjson.loads(line)) + b"\n" for line in our_lines)
    else:
        assert sorted(our_lines) == sorted(real_lines)  # same items, same bytes, "\n" after each


def _members_sorted(line: bytes) -> bytes:
    return orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)
