"""The fast export path must write the same bytes as the plain path.

Exports one small table (the all-types items plus benchmark items) twice with
``export_share``: once on the raw path (``ExportSettings(raw_scan=True)``), once
on the plain path (botocore's parser, ``raw_scan=False``), for each compression,
and compares the decompressed data files name by name.
"""

from __future__ import annotations

import gzip
from typing import Any

import boto3

from demo_data import all_types_items, put_items
from dynamodb_backup.backup.export import ExportSettings, export_share
from dynamodb_backup.backup.plan import WorkerShare
from dynamodb_backup.formats.layout import S3Location

from .items import batch
from .seed import create_table, delete_table

TABLE = "bench-identity"
SPEC: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingMode": "PAY_PER_REQUEST",
}


def _items() -> list[dict[str, Any]]:
    """All-types items keyed by a string pk (their sk folded in), and 3000 benchmark items."""
    out = []
    for item in all_types_items():
        item = dict(item)
        sk = item.pop("sk")
        item["pk"] = {"S": f"{item['pk']['S']}#{sk['N']}"}
        out.append(item)
    return out + batch(0, 3000)


def _read(s3: Any, bucket: str, prefix: str) -> dict[str, bytes]:
    files = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read()
            files[obj["Key"].rsplit("/", 1)[1]] = gzip.decompress(body) if obj["Key"].endswith(".gz") else body
    return files


def check_fast_path_identity(ddb_url: str, s3_url: str, bucket: str) -> dict[str, Any]:
    ddb = boto3.client("dynamodb", endpoint_url=ddb_url)
    s3 = boto3.client("s3", endpoint_url=s3_url)
    delete_table(ddb, TABLE)
    create_table(ddb, TABLE, SPEC)
    count = put_items(ddb, TABLE, _items())
    share = WorkerShare(worker=0, segments=[0, 1, 2, 3], total_segments=4, read_rate=1e9)
    outcome: dict[str, Any] = {"items": count}
    for compression in ("none", "gzip"):
        outputs = {}
        for raw in (True, False):
            prefix = f"identity/{compression}/{'raw' if raw else 'plain'}"
            folder = S3Location(bucket, prefix)
            # The file names are derived from the folder, so compare names relative to each folder.
            result = export_share(ddb, s3, TABLE, folder, share,
                                  ExportSettings(compression=compression, raw_scan=raw))
            files = _read(s3, bucket, prefix + "/")
            order = [f.name for f in result.files]
            outputs[raw] = [files[name] for name in order]
        same = outputs[True] == outputs[False]
        lines = sum(b.count(b"\n") for b in outputs[True])
        if not same or lines != count:
            raise AssertionError(f"fast path differs from plain path ({compression}): same={same}, "
                                 f"{lines} lines for {count} items")
        outcome[compression] = f"identical ({len(outputs[True])} files, {lines} lines)"
    delete_table(ddb, TABLE)
    return outcome
