"""Helpers for the restore tests: our own backups via run_backup, hand-made Data Pipeline folders."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from demo_data import TABLE_SPECS, all_types_items, create_table, put_items
from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.formats.codec import TableDigest, canonical_bytes, encode_item
from dynamodb_backup.formats.layout import S3Location, backup_folder
from dynamodb_backup.formats.manifest import render_manifest
from dynamodb_backup.restore.job import RestoreOutcome, RestoreRequest, run_restore

DATE = datetime(2024, 3, 5, 4, 10, 22, tzinfo=UTC)
# A real 2020 export, kept in the repository byte for byte (tests/fixtures/.gitattributes).
NATIVE_FIXTURE = str(Path(__file__).resolve().parent / "fixtures" / "native-export-2020")


def native_fixture_root() -> Path:
    """The fixture's ``demo_prefix`` folder; a missing fixture is a failure, never a skip."""
    root = Path(NATIVE_FIXTURE) / "demo_prefix"
    assert root.is_dir(), f"the native export fixture is missing: {root}"
    return root


def all_types_backup(local_aws: Any, bucket: str, table: str, compression: str = "gzip",
                     spec: str = "AllTypes", items: list[dict[str, Any]] | None = None) -> S3Location:
    """Create ``table`` with the all-types items (or ``items``), back it up, return the folder."""
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table, TABLE_SPECS[spec])
    put_items(ddb, table, items if items is not None else all_types_items())
    request = BackupRequest(table=table, destination=S3Location(bucket, "backups"), logical_date=DATE,
                            read_ratio=1.0, segments=3, max_workers=2,
                            settings=ExportSettings(compression=compression))
    run_backup(client_factory(), request)
    return backup_folder(request.destination, table, DATE)


def restore(folder: S3Location, table: str, **kwargs: Any) -> RestoreOutcome:
    kwargs.setdefault("write_ratio", 1.0)
    kwargs.setdefault("workers", 2)
    return run_restore(client_factory(), RestoreRequest(folder=folder, table=table, **kwargs))


def dp_lines(items: list[dict[str, Any]]) -> bytes:
    return b"".join(encode_item(item) + b"\n" for item in items)


def put(s3: Any, bucket: str, key: str, body: bytes) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def datapipeline_folder(s3: Any, bucket: str, prefix: str, files: dict[str, bytes], *,
                        manifest_base: str | None = None, success: bool = True,
                        extra: dict[str, bytes] | None = None) -> S3Location:
    """Write a Data Pipeline folder: data files, a manifest whose URLs start with ``manifest_base``
    (default: the folder itself; None-like "" writes no manifest), and ``_SUCCESS``."""
    folder = S3Location(bucket, prefix)
    for name, body in {**files, **(extra or {})}.items():
        put(s3, bucket, folder.key(name), body)
    if manifest_base != "":
        base = manifest_base or folder.uri
        put(s3, bucket, folder.key("manifest"), render_manifest(f"{base}/{name}" for name in files))
    if success:
        put(s3, bucket, folder.key("_SUCCESS"), b"")
    return folder


def gz(data: bytes) -> bytes:
    return gzip.compress(data)


def scan_all(client: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": table}
    while True:
        page = client.scan(**kwargs)
        items += page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def assert_holds_exactly(client: Any, table: str, items: list[dict[str, Any]]) -> None:
    """The table holds these items and no others, value for value (in any order)."""
    stored = scan_all(client, table)
    assert sorted(canonical_bytes(i) for i in stored) == sorted(canonical_bytes(i) for i in items)


def digest(client: Any, table: str) -> tuple[int, str]:
    """Item count and order-independent digest of a whole table (a plain boto3 scan: the test's own oracle)."""
    total = TableDigest()
    for item in scan_all(client, table):
        total.add(item)
    return total.count, total.hexdigest()


def exists(client: Any, table: str) -> bool:
    return table_exists(client, table) is not None


def simple_items(count: int, prefix: str = "k") -> list[dict[str, Any]]:
    return [{"pk": {"S": f"{prefix}{i:05d}"}, "n": {"N": str(i)}, "s": {"S": "x" * (i % 50)}} for i in range(count)]
