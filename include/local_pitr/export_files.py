"""The bytes of an export: gzip data files, manifest lines, manifest summaries, checksum files.

Byte-compatible with the real 2020 export in ``tests/fixtures/native-export-2020``: compact
JSON with keys in AWS's order and explicit nulls, ``\\n`` after every manifest-files line and
none after the summary, base64 MD5 checksum files without a newline, and gzip members with a
bare 10-byte header (no flags, mtime 0, XFL 0, OS byte 0) so an empty partition is the same
20 bytes AWS writes.
"""

from __future__ import annotations

import base64
import hashlib
import os
import struct
import zlib
from dataclasses import dataclass
from typing import Any

import orjson

from local_pitr.wire import iso_ms

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x00"
FULL_VERSION = "2020-06-30"
INCREMENTAL_VERSION = "2023-08-01"
OUTPUT_FORMAT = "DYNAMODB_JSON"


class GzipMember:
    """One gzip member built in memory, line by line."""

    def __init__(self) -> None:
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._parts = [GZIP_HEADER]
        self._crc = 0
        self._size = 0
        self.lines = 0

    def add(self, line: bytes) -> None:
        self._parts.append(self._deflate.compress(line))
        self._crc = zlib.crc32(line, self._crc)
        self._size += len(line)
        self.lines += 1

    def finish(self) -> bytes:
        self._parts.append(self._deflate.flush())
        self._parts.append(struct.pack("<II", self._crc, self._size & 0xFFFFFFFF))
        return b"".join(self._parts)


def data_file_stem() -> str:
    """26 characters of [a-z2-7]: unpadded base32 of 16 random bytes, like AWS's names."""
    return base64.b32encode(os.urandom(16)).decode().rstrip("=").lower()


def md5_base64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def multipart_etag(data: bytes) -> str:
    """The S3 ETag of ``data`` uploaded as a one-part multipart upload."""
    return hashlib.md5(hashlib.md5(data).digest()).hexdigest() + "-1"


def export_root(s3_prefix: str | None) -> str:
    """``<prefix>/AWSDynamoDB`` (no doubled slash for a prefix ending in one), or ``AWSDynamoDB``."""
    stripped = (s3_prefix or "").rstrip("/")
    return f"{stripped}/AWSDynamoDB" if stripped else "AWSDynamoDB"


@dataclass(frozen=True)
class DataFile:
    key: str
    item_count: int
    md5: str
    etag: str


def manifest_files(files: list[DataFile]) -> bytes:
    return b"".join(
        orjson.dumps({"itemCount": f.item_count, "md5Checksum": f.md5, "etag": f.etag, "dataFileS3Key": f.key}) + b"\n"
        for f in files
    )


@dataclass(frozen=True)
class SummaryFacts:
    """What both kinds of manifest-summary.json say about one export."""

    export_arn: str
    start_us: int
    end_us: int
    table_arn: str
    table_id: str
    s3_bucket: str
    s3_prefix: str | None
    s3_sse_algorithm: str
    s3_sse_kms_key_id: str | None
    manifest_files_key: str
    billed_size_bytes: int
    item_count: int


def full_summary(facts: SummaryFacts, export_time_us: int) -> bytes:
    """A full export's summary: the 2020 fixture's members, in its order."""
    return orjson.dumps({
        "version": FULL_VERSION,
        "exportArn": facts.export_arn,
        "startTime": iso_ms(facts.start_us),
        "endTime": iso_ms(facts.end_us),
        "tableArn": facts.table_arn,
        "tableId": facts.table_id,
        "exportTime": iso_ms(export_time_us),
        **_destination(facts),
        "outputFormat": OUTPUT_FORMAT,
    })


def incremental_summary(facts: SummaryFacts, from_us: int, to_us: int, view: str) -> bytes:
    """An incremental export's summary (reference 2.2): version 2023-08-01 and the window."""
    return orjson.dumps({
        "version": INCREMENTAL_VERSION,
        "exportArn": facts.export_arn,
        "startTime": iso_ms(facts.start_us),
        "endTime": iso_ms(facts.end_us),
        "tableArn": facts.table_arn,
        "tableId": facts.table_id,
        "exportFromTime": iso_ms(from_us),
        "exportToTime": iso_ms(to_us),
        **_destination(facts),
        "outputFormat": OUTPUT_FORMAT,
        "outputView": view,
        "exportType": "INCREMENTAL_EXPORT",
    })


def _destination(facts: SummaryFacts) -> dict[str, Any]:
    return {
        "s3Bucket": facts.s3_bucket,
        "s3Prefix": facts.s3_prefix,
        "s3SseAlgorithm": facts.s3_sse_algorithm,
        "s3SseKmsKeyId": facts.s3_sse_kms_key_id,
        "manifestFilesS3Key": facts.manifest_files_key,
        "billedSizeBytes": facts.billed_size_bytes,
        "itemCount": facts.item_count,
    }
