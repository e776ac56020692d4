"""Starting DynamoDB's ExportTableToPointInTime and reading its status.

Why the token matters: botocore fills in a fresh ``ClientToken`` when the caller
gives none, so a retried task would start (and pay for) a second export. The
token here is derived from what identifies the run, so a retry replays the
first request and AWS answers with the same export.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import BackupFolderError, ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.pitr.window import iso, utc

log = logging.getLogger(__name__)

IN_PROGRESS, COMPLETED, FAILED = "IN_PROGRESS", "COMPLETED", "FAILED"
#: Staging prefix inside the dated folder for a export that is converted (its name starts with '_',
#: so Data Pipeline's importer and our catalog never take it for data).
STAGING = "_native"


class ExportFailedError(BackupFolderError):
    """The export ended FAILED; the message carries AWS's FailureCode and FailureMessage."""


def client_token(*parts: str) -> str:
    """A stable idempotency token for ``parts`` (DAG, run, table, ...): the same run replays one export."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:64]


def export_request(
    table_arn: str, at: datetime, staging: S3Location, token: str, put_extra: dict[str, Any] | None = None,
    since: datetime | None = None,
) -> dict[str, Any]:
    """ExportTableToPointInTime's arguments: the bucket owner and SSE settings of the backup pass through.

    A full export of the table at ``at``; with ``since``, an incremental export of what changed in
    ``[since, at)`` with both images (what a restore needs to put or delete, and to check).
    """
    extra = put_extra or {}
    request: dict[str, Any] = {
        "TableArn": table_arn, "S3Bucket": staging.bucket, "ClientToken": token, "ExportFormat": "DYNAMODB_JSON",
    }
    if since is None:
        request.update(ExportTime=utc(at), ExportType="FULL_EXPORT")
    else:
        request.update(ExportType="INCREMENTAL_EXPORT", IncrementalExportSpecification={
            "ExportFromTime": utc(since), "ExportToTime": utc(at), "ExportViewType": "NEW_AND_OLD_IMAGES"})
    if staging.prefix:
        request["S3Prefix"] = staging.prefix
    if extra.get("ExpectedBucketOwner"):
        request["S3BucketOwner"] = extra["ExpectedBucketOwner"]
    if extra.get("ServerSideEncryption") == "aws:kms":
        request["S3SseAlgorithm"] = "KMS"
        if extra.get("SSEKMSKeyId"):
            request["S3SseKmsKeyId"] = extra["SSEKMSKeyId"]
    return request


def start_export(dynamodb: Any, request: dict[str, Any]) -> str:
    """Start the export (or replay the same request); return its ARN."""
    try:
        response = call_with_retries(lambda: dynamodb.export_table_to_point_in_time(**request))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        table = request["TableArn"].rsplit("/", 1)[-1]
        if code == "PointInTimeRecoveryUnavailableException":
            raise ParameterError(f"table {table!r}: {message}") from None
        if code in ("InvalidExportTimeException", "TableNotFoundException", "ValidationException",
                    "ExportConflictException"):
            raise ParameterError(f"cannot export table {table!r} {_when(request)}: {code}: {message}") from None
        raise
    arn: str = response["ExportDescription"]["ExportArn"]
    log.info("export %s of %s %s: %s into s3://%s/%s", response["ExportDescription"].get("ExportStatus"),
             request["TableArn"], _when(request), arn, request["S3Bucket"], request.get("S3Prefix", ""))
    return arn


def _when(request: dict[str, Any]) -> str:
    window = request.get("IncrementalExportSpecification")
    if window:
        return f"changes from {iso(window['ExportFromTime'])} to {iso(window['ExportToTime'])}"
    return f"at {iso(request['ExportTime'])}"


@dataclass(frozen=True)
class ExportStatus:
    arn: str
    status: str
    bucket: str
    manifest_key: str | None = None
    export_time: str | None = None
    item_count: int | None = None
    billed_size_bytes: int | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    #: An incremental export's window, ``[export_from, export_to)``; None for a full export.
    export_from: str | None = None
    export_to: str | None = None

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> ExportStatus:
        moment = description.get("ExportTime")
        window = description.get("IncrementalExportSpecification") or {}
        return cls(
            arn=description["ExportArn"], status=description["ExportStatus"], bucket=description["S3Bucket"],
            manifest_key=description.get("ExportManifest"),
            export_time=_iso_or_none(moment) if description.get("ExportType") != "INCREMENTAL_EXPORT" else None,
            export_from=_iso_or_none(window.get("ExportFromTime")),
            export_to=_iso_or_none(window.get("ExportToTime")),
            item_count=description.get("ItemCount"), billed_size_bytes=description.get("BilledSizeBytes"),
            failure_code=description.get("FailureCode"), failure_message=description.get("FailureMessage"),
        )

    @property
    def incremental(self) -> bool:
        return self.export_to is not None

    @property
    def finished(self) -> bool:
        return self.status in (COMPLETED, FAILED)

    def export_folder(self) -> S3Location:
        """``<prefix>/AWSDynamoDB/<export id>``: where the manifests and data files are."""
        if not self.manifest_key:
            raise BackupFolderError(f"export {self.arn} is {self.status} and names no manifest")
        return S3Location(self.bucket, self.manifest_key.rsplit("/", 1)[0])

    def raise_if_failed(self) -> None:
        if self.status == FAILED:
            raise ExportFailedError(f"export {self.arn} FAILED: {self.failure_code}: {self.failure_message}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportStatus:
        return cls(**data)


def _iso_or_none(moment: Any) -> str | None:
    return iso(moment) if isinstance(moment, datetime) else moment


def describe_export(dynamodb: Any, arn: str) -> ExportStatus:
    response = call_with_retries(lambda: dynamodb.describe_export(ExportArn=arn))
    return ExportStatus.from_description(response["ExportDescription"])
