"""The background half of an export: reads the journal at the export's time and writes the
documented layout into S3 (moto) through boto3, then turns the record COMPLETED or FAILED.

Write order: ``_started`` (shows the bucket is writable), the data files (each a one-part
multipart upload, so its ETag is ``hex(md5(md5))-1`` as in real manifests),
``manifest-files.json`` and its ``.md5``, then ``manifest-summary.json`` and its ``.md5``. The
summary's endTime is the record's EndTime, taken once ``--min-export-seconds`` have passed.

S3 errors end the export FAILED, as AWS reports them: asynchronously. A stand-in killed
mid-export resumes its IN_PROGRESS exports on restart: the journal and the record hold all
an export needs, so it is simply written again (files of the lost attempt stay unlisted).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import orjson
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from local_pitr import incremental
from local_pitr.database import Database
from local_pitr.export_files import (
    DataFile,
    GzipMember,
    SummaryFacts,
    data_file_stem,
    export_root,
    full_summary,
    incremental_summary,
    manifest_files,
    md5_base64,
)
from local_pitr.items import KeySchema, item_size, partition_of
from local_pitr.journal import Journal
from local_pitr.records import COMPLETED, FAILED, ExportRecord, ExportRecords
from local_pitr.settings import Settings
from local_pitr.wire import ms_us, now_us

# AWS's FailureCode for the S3 errors it names [reference 3.2]; anything else gets "S3<code>".
_FAILURE_CODES = {"NoSuchBucket": "S3NoSuchBucket", "AccessDenied": "S3AccessDenied",
                  "KMS.NotFoundException": "KmsNotFoundException"}


class ExportFailed(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _failure(error: ClientError) -> ExportFailed:
    details = error.response.get("Error", {})
    code = str(details.get("Code", "Unknown"))
    meta = error.response.get("ResponseMetadata", {})
    status = meta.get("HTTPStatusCode", 400)
    request_id = meta.get("RequestId", "")
    extended = meta.get("HostId", "")
    message = (f"{details.get('Message', code)} (Service: Amazon S3; Status Code: {status}; Error Code: {code}; "
               f"Request ID: {request_id}; S3 Extended Request ID: {extended}; Proxy: null)")
    return ExportFailed(_FAILURE_CODES.get(code, f"S3{code}"), message)


class S3Destination:
    """Puts objects the way the export asked: SSE settings and expected bucket owner on every call."""

    def __init__(self, endpoint: str, description: dict[str, Any]) -> None:
        make_client: Any = boto3.client
        self.client = make_client(
            "s3", endpoint_url=endpoint, region_name=os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or "local",
            aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "local",
            config=Config(retries={"max_attempts": 3, "mode": "standard"}),
        )
        self.bucket = description["S3Bucket"]
        self.extra: dict[str, str] = {}
        if description.get("S3SseAlgorithm") == "KMS":
            self.extra["ServerSideEncryption"] = "aws:kms"
            if description.get("S3SseKmsKeyId"):
                self.extra["SSEKMSKeyId"] = description["S3SseKmsKeyId"]
        else:
            self.extra["ServerSideEncryption"] = "AES256"
        self.owner = {"ExpectedBucketOwner": description["S3BucketOwner"]} if description.get("S3BucketOwner") else {}

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=body, **self.extra, **self.owner)

    def put_one_part(self, key: str, body: bytes) -> str:
        """Upload ``body`` as a one-part multipart upload; returns S3's ETag (``...-1``)."""
        upload = self.client.create_multipart_upload(Bucket=self.bucket, Key=key, **self.extra, **self.owner)
        part = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload["UploadId"], PartNumber=1,
                                       Body=body, **self.owner)
        done = self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=key, UploadId=upload["UploadId"],
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]}, **self.owner)
        return str(done["ETag"]).strip('"')


class ExportJobs:
    """Runs each export in a thread of its own."""

    def __init__(self, db: Database, journal: Journal, records: ExportRecords, settings: Settings) -> None:
        self.db = db
        self.journal = journal
        self.records = records
        self.settings = settings
        self._running: dict[str, int] = {}  # export ARN -> incarnation it reads
        self._lock = threading.Lock()

    def busy_incarnations(self) -> set[int]:
        with self._lock:
            return set(self._running.values())

    def start(self, record: ExportRecord, keys: KeySchema) -> None:
        with self._lock:
            self._running[record.export_arn] = record.incarnation
        threading.Thread(target=self._run, args=(record, keys), name=f"export-{record.export_id}", daemon=True).start()

    def resume_unfinished(self, keys_of: Callable[[ExportRecord], KeySchema]) -> None:
        for record in self.records.in_progress():
            self.start(record, keys_of(record))

    def _run(self, record: ExportRecord, keys: KeySchema) -> None:
        try:
            self._write(record, keys)
        except ExportFailed as failure:
            self._fail(record, failure.code, failure.message)
        except ClientError as error:
            s3_failure = _failure(error)
            self._fail(record, s3_failure.code, s3_failure.message)
        except BotoCoreError as error:
            self._fail(record, "S3ConnectionError", str(error))
        except Exception as exc:  # a bug must end the export, not leave it IN_PROGRESS forever
            self._fail(record, "InternalServerError", repr(exc))
        finally:
            with self._lock:
                self._running.pop(record.export_arn, None)
            self.journal.purge_deleted(self.busy_incarnations())

    def _fail(self, record: ExportRecord, code: str, message: str) -> None:
        self._wait_minimum(record)
        end_us = ms_us(now_us())
        self.records.finish(record, FAILED, end_us, {
            "EndTime": end_us / 1_000_000, "ItemCount": 0, "BilledSizeBytes": 0,
            "ExportManifest": self._folder(record) + "/manifest-summary.json",
            "FailureCode": code, "FailureMessage": message,
        })

    def _wait_minimum(self, record: ExportRecord) -> None:
        remaining = record.start_us / 1_000_000 + self.settings.min_export_seconds - time.time()
        if remaining > 0:
            time.sleep(remaining)

    def _folder(self, record: ExportRecord) -> str:
        return f"{export_root(record.description.get('S3Prefix'))}/{record.export_id}"

    def _write(self, record: ExportRecord, keys: KeySchema) -> None:
        description = record.description
        s3 = S3Destination(self.settings.s3_endpoint, description)
        folder = self._folder(record)
        s3.put(f"{folder}/_started", b"")
        plan = record.plan
        window = None
        if "from_us" in plan:
            window = incremental.Window(plan["from_us"], plan["to_us"], plan["view"])
        members = [GzipMember() for _ in range(self.settings.partitions)]
        with self.db.reader() as conn:
            if window is None:
                billed = 0
                for key, image in self.journal.state_at(conn, record.incarnation, plan["export_time_us"]):
                    members[partition_of(key, len(members))].add(b'{"Item":' + image + b"}\n")
                    billed += item_size(orjson.loads(image))
            else:
                tally = incremental.ChangeTally()
                history = self.journal.history_before(conn, record.incarnation, window.to_us)
                for change in incremental.changes(history, window, keys, tally):
                    members[partition_of(change.key, len(members))].add(change.line)
                billed = incremental.billed_bytes(tally)
        # Incremental data files share one folder under the prefix; full ones sit in the export's own.
        data_folder = f"{export_root(description.get('S3Prefix'))}/data" if window else f"{folder}/data"
        files = list(self._upload(s3, data_folder, members))
        listing = manifest_files(files)
        s3.put(f"{folder}/manifest-files.json", listing)
        s3.put(f"{folder}/manifest-files.md5", md5_base64(listing).encode())
        self._wait_minimum(record)
        end_us = ms_us(now_us())
        facts = SummaryFacts(
            export_arn=record.export_arn, start_us=record.start_us, end_us=end_us, table_arn=record.table_arn,
            table_id=record.table_id, s3_bucket=description["S3Bucket"], s3_prefix=description.get("S3Prefix"),
            s3_sse_algorithm=description["S3SseAlgorithm"], s3_sse_kms_key_id=description.get("S3SseKmsKeyId"),
            manifest_files_key=f"{folder}/manifest-files.json", billed_size_bytes=billed,
            item_count=sum(f.item_count for f in files),
        )
        if window is None:
            summary = full_summary(facts, plan["export_time_us"])
        else:
            summary = incremental_summary(facts, window.from_us, window.to_us, window.view)
        s3.put(f"{folder}/manifest-summary.json", summary)
        s3.put(f"{folder}/manifest-summary.md5", md5_base64(summary).encode())
        self.records.finish(record, COMPLETED, end_us, {
            "EndTime": end_us / 1_000_000, "ExportManifest": f"{folder}/manifest-summary.json",
            "ItemCount": facts.item_count, "BilledSizeBytes": billed,
        })

    @staticmethod
    def _upload(s3: S3Destination, data_folder: str, members: list[GzipMember]) -> Iterator[DataFile]:
        for member in members:
            body = member.finish()
            key = f"{data_folder}/{data_file_stem()}.json.gz"
            etag = s3.put_one_part(key, body)
            yield DataFile(key=key, item_count=member.lines, md5=md5_base64(body), etag=etag)
