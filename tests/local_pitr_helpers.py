"""Helpers for the PITR stand-in tests: raw DynamoDB calls, waiting on exports, reading them back.

Everything goes over HTTP: boto3 clients, or raw JSON requests where the test needs the bytes
(binary values as base64 text, error bodies and headers as sent).
"""

from __future__ import annotations

import gzip
import http.client
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

EXPORT_DEADLINE_SECONDS = 120.0


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def json(self) -> dict[str, Any]:
        loaded: dict[str, Any] = orjson.loads(self.body)
        return loaded


def raw_call(url: str, operation: str, payload: dict[str, Any] | bytes) -> RawAnswer:
    """One DynamoDB JSON request, as bytes, on a fresh connection, signed (SigV4, botocore's signer) with
    the environment's credentials: the front door in front of the servers checks it."""
    parts = urlsplit(url)
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/x-amz-json-1.0",
                                                          "X-Amz-Target": f"DynamoDB_20120810.{operation}"})
    credentials = Credentials(os.environ.get("AWS_ACCESS_KEY_ID", "local"),
                              os.environ.get("AWS_SECRET_ACCESS_KEY", "local"), os.environ.get("AWS_SESSION_TOKEN"))
    SigV4Auth(credentials, "dynamodb", os.environ.get("AWS_DEFAULT_REGION", "us-east-1")).add_auth(request)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=30)
    try:
        conn.request("POST", "/", body=body, headers=dict(request.headers.items()))
        response = conn.getresponse()
        return RawAnswer(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def create_table(client: Any, name: str, *, range_key: str | None = None, range_type: str = "S") -> str:
    """An on-demand table with key ``pk`` (S) [and ``range_key``], ACTIVE; returns its ARN."""
    attrs = [{"AttributeName": "pk", "AttributeType": "S"}]
    schema = [{"AttributeName": "pk", "KeyType": "HASH"}]
    if range_key:
        attrs.append({"AttributeName": range_key, "AttributeType": range_type})
        schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
    client.create_table(TableName=name, AttributeDefinitions=attrs, KeySchema=schema, BillingMode="PAY_PER_REQUEST")
    deadline = time.monotonic() + 30
    while (table := client.describe_table(TableName=name)["Table"])["TableStatus"] != "ACTIVE":
        assert time.monotonic() < deadline, f"table {name} never became ACTIVE"
        time.sleep(0.05)
    return str(table["TableArn"])


def enable_pitr(client: Any, table: str, **spec: Any) -> dict[str, Any]:
    answer = client.update_continuous_backups(
        TableName=table, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True, **spec})
    description: dict[str, Any] = answer["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    return description


def pitr_description(client: Any, table: str) -> dict[str, Any]:
    answer = client.describe_continuous_backups(TableName=table)
    description: dict[str, Any] = answer["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]
    return description


def wait_until_restorable(client: Any, table: str, moment: datetime) -> None:
    """Poll until LatestRestorableDateTime reaches ``moment`` (the lag has passed)."""
    deadline = time.monotonic() + 120
    while pitr_description(client, table)["LatestRestorableDateTime"] < moment:
        assert time.monotonic() < deadline, f"LatestRestorableDateTime never reached {moment}"
        time.sleep(0.2)


def wait_export(client: Any, export_arn: str) -> dict[str, Any]:
    """DescribeExport until the export is COMPLETED or FAILED (a generous deadline, never a timing assertion)."""
    deadline = time.monotonic() + EXPORT_DEADLINE_SECONDS
    while True:
        description: dict[str, Any] = client.describe_export(ExportArn=export_arn)["ExportDescription"]
        if description["ExportStatus"] != "IN_PROGRESS":
            return description
        assert time.monotonic() < deadline, f"export {export_arn} still IN_PROGRESS"
        time.sleep(0.1)


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


@dataclass
class ExportOutput:
    """An export read back from S3: raw bytes by key (relative to the export folder), parsed parts."""

    folder: str
    objects: dict[str, bytes]
    summary: dict[str, Any]
    files: list[dict[str, Any]]
    data: dict[str, bytes]  # full data file key -> gzip bytes

    def lines(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for body in self.data.values() for line in gzip.decompress(body).splitlines()]

    def items(self) -> list[dict[str, Any]]:
        return [line["Item"] for line in self.lines()]


def read_export(s3: Any, bucket: str, manifest_key: str) -> ExportOutput:
    folder = manifest_key.rsplit("/", 1)[0]
    objects: dict[str, bytes] = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder + "/"):
        for entry in page.get("Contents", []):
            objects[entry["Key"][len(folder) + 1:]] = s3.get_object(Bucket=bucket, Key=entry["Key"])["Body"].read()
    summary = orjson.loads(objects["manifest-summary.json"])
    files = [orjson.loads(line) for line in objects["manifest-files.json"].splitlines()]
    data = {f["dataFileS3Key"]: s3.get_object(Bucket=bucket, Key=f["dataFileS3Key"])["Body"].read() for f in files}
    return ExportOutput(folder, objects, summary, files, data)


def by_pk(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["pk"]["S"]: item for item in items}
