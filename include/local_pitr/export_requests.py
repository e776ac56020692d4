"""An ExportTableToPointInTime request, validated like AWS validates it (reference 3.1).

Messages AWS is known to use are used as they are; for the rest the model's constraint
wording (``1 validation error detected: Value ... failed to satisfy constraint: ...``).
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from local_pitr.incremental import RequestedWindow, parse_specification
from local_pitr.tables import name_from_arn
from local_pitr.wire import constraint_error, timestamp_us, validation_error

S3_BUCKET = re.compile(r"^[a-z0-9A-Z]+[\.\-\w]*[a-z0-9A-Z]+$")
BUCKET_OWNER = re.compile(r"[0-9]{12}")
CLIENT_TOKEN = re.compile(r"^[^\$]+$")
SSE_ALGORITHMS = ("AES256", "KMS")
EXPORT_FORMATS = ("DYNAMODB_JSON", "ION")
EXPORT_TYPES = ("FULL_EXPORT", "INCREMENTAL_EXPORT")
# Members a replay under the same ClientToken must repeat exactly.
_REPLAYED = ("TableArn", "ExportTime", "S3Bucket", "S3BucketOwner", "S3Prefix", "S3SseAlgorithm", "S3SseKmsKeyId",
             "ExportFormat", "ExportType", "IncrementalExportSpecification", "FilterSpecification")


@dataclass(frozen=True)
class ExportRequest:
    table_arn: str
    table_name: str
    s3_bucket: str
    s3_bucket_owner: str | None
    s3_prefix: str | None
    s3_sse_algorithm: str
    s3_sse_kms_key_id: str | None
    export_format: str
    export_type_sent: str | None  # DescribeExport echoes ExportType only when it was sent
    export_time_us: int | None
    incremental: RequestedWindow | None
    client_token: str
    replay_key: dict[str, Any]


def _enum(value: object, member: str, allowed: tuple[str, ...]) -> None:
    if value is not None and value not in allowed:
        raise constraint_error(value, member, f"Member must satisfy enum value set: [{', '.join(allowed)}]")


def _string(body: dict[str, Any], name: str, member: str, *, required: bool = False, max_length: int | None = None,
            pattern: re.Pattern[str] | None = None) -> str | None:
    value = body.get(name)
    if value is None:
        if required:
            raise constraint_error(None, member, "Member must not be null")
        return None
    if not isinstance(value, str):
        raise validation_error(f"Invalid type for {name}: {value!r}")
    if max_length is not None and len(value) > max_length:
        raise constraint_error(value, member, f"Member must have length less than or equal to {max_length}")
    if pattern is not None and not pattern.fullmatch(value):
        raise constraint_error(value, member, f"Member must satisfy regular expression pattern: {pattern.pattern}")
    return value


def parse_export_request(body: dict[str, Any]) -> ExportRequest:
    table_arn = _string(body, "TableArn", "tableArn", required=True, max_length=1024)
    assert table_arn is not None
    table_name = name_from_arn(table_arn)
    if table_name is None:
        raise constraint_error(table_arn, "tableArn", "tableArn is not a valid ARN")
    s3_bucket = _string(body, "S3Bucket", "s3Bucket", required=True, max_length=255, pattern=S3_BUCKET)
    assert s3_bucket is not None
    owner = _string(body, "S3BucketOwner", "s3BucketOwner", pattern=BUCKET_OWNER)
    prefix = _string(body, "S3Prefix", "s3Prefix", max_length=1024)
    algorithm = body.get("S3SseAlgorithm")
    _enum(algorithm, "s3SseAlgorithm", SSE_ALGORITHMS)
    kms_key = _string(body, "S3SseKmsKeyId", "s3SseKmsKeyId", max_length=2048)
    if kms_key is not None and algorithm != "KMS":
        raise validation_error("KMS Key Id is not supported for this encryption type")
    if kms_key == "":
        raise constraint_error(kms_key, "s3SseKmsKeyId", "Member must have length greater than or equal to 1")
    export_format = body.get("ExportFormat")
    _enum(export_format, "exportFormat", EXPORT_FORMATS)
    if export_format == "ION":
        raise validation_error("ExportFormat ION is not implemented by the local PITR stand-in; use DYNAMODB_JSON")
    export_type = body.get("ExportType")
    _enum(export_type, "exportType", EXPORT_TYPES)
    token = _string(body, "ClientToken", "clientToken", pattern=CLIENT_TOKEN)
    if body.get("FilterSpecification") is not None:
        if not body["FilterSpecification"]:
            raise validation_error("FilterSpecification must not be empty")
        raise validation_error("FilterSpecification is not implemented by the local PITR stand-in")
    spec = body.get("IncrementalExportSpecification")
    window: RequestedWindow | None = None
    if spec is not None and export_type != "INCREMENTAL_EXPORT":
        raise validation_error(
            "Export Type expected to be Incremental Export when incremental export specification is provided")
    if export_type == "INCREMENTAL_EXPORT":
        window = parse_specification(spec)
        if body.get("ExportTime") is not None:
            raise validation_error("ExportTime cannot be provided for an incremental export; "
                                   "use IncrementalExportSpecification")
    export_time_us = None if body.get("ExportTime") is None else timestamp_us(body["ExportTime"], "ExportTime")
    return ExportRequest(
        table_arn=table_arn, table_name=table_name, s3_bucket=s3_bucket, s3_bucket_owner=owner, s3_prefix=prefix,
        s3_sse_algorithm=str(algorithm or "AES256"), s3_sse_kms_key_id=kms_key,
        export_format=str(export_format or "DYNAMODB_JSON"), export_type_sent=export_type,
        export_time_us=export_time_us, incremental=window,
        # botocore fills in a uuid4 when the caller leaves the token out; a raw client gets one here.
        client_token=token or str(uuid.uuid4()),
        replay_key={name: body.get(name) for name in _REPLAYED},
    )
