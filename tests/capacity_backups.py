"""A provisioned table bound by a small GSI, backed up with its sidecar (the load-capacity tests' source)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from demo_data import create_table, put_items
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.formats.layout import S3Location, backup_folder

DATE = datetime(2024, 6, 1, 3, 0, 0, tzinfo=UTC)
TABLE_WCU, TABLE_RCU, INDEX_WCU = 200, 7, 10

SPEC: dict[str, Any] = {
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                             {"AttributeName": "sk", "AttributeType": "S"},
                             {"AttributeName": "status", "AttributeType": "S"},
                             {"AttributeName": "at", "AttributeType": "S"}],
    "BillingMode": "PROVISIONED",
    "ProvisionedThroughput": {"ReadCapacityUnits": TABLE_RCU, "WriteCapacityUnits": TABLE_WCU},
    "GlobalSecondaryIndexes": [{
        "IndexName": "byStatus", "Projection": {"ProjectionType": "ALL"},
        "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"}],
        "ProvisionedThroughput": {"ReadCapacityUnits": 3, "WriteCapacityUnits": INDEX_WCU}}],
    "LocalSecondaryIndexes": [{
        "IndexName": "byTime", "Projection": {"ProjectionType": "KEYS_ONLY"},
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "at", "KeyType": "RANGE"}]}],
}


def items(count: int) -> list[dict[str, Any]]:
    return [{"pk": {"S": f"p{i % 7}"}, "sk": {"S": f"s{i:04d}"}, "status": {"S": ("open", "done")[i % 2]},
             "at": {"S": f"2024-06-01T00:{i % 60:02d}"}, "body": {"S": "x" * 40}} for i in range(count)]


def gsi_bound_backup(local_aws: Any, bucket: str, table: str, count: int) -> S3Location:
    """A provisioned source (200 WCU, a GSI with 10 WCU, an LSI) backed up with its sidecar."""
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table, SPEC)
    put_items(ddb, table, items(count))
    request = BackupRequest(table=table, destination=S3Location(bucket, "backups"), logical_date=DATE,
                            read_ratio=1.0, segments=2, max_workers=1, settings=ExportSettings(compression="gzip"))
    run_backup(client_factory(), request)
    return backup_folder(request.destination, table, DATE)
