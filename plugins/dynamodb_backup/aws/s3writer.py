"""Streaming S3 object writers with bounded memory.

``S3ObjectWriter`` compresses and uploads one object in multipart parts as data
arrives; ``RollingWriter`` starts a new object at an item or size limit, as Data
Pipeline's writers did every 100,000 items.

Every S3 call is retried (``retry.call_with_retries``) on throttling, server
errors and dropped connections. A part or a whole object is sent again as it
was, so a retry never changes what is stored. A CompleteMultipartUpload whose
answer was lost is recognised on retry (``NoSuchUpload`` with the object already
there at the expected size).
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import zstandard
from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import ParameterError

#: S3's smallest multipart part (except the last) is 5 MiB.
PART_SIZE = 8 * 1024 * 1024
COMPRESSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}


class _Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def make_compressor(compression: str) -> _Compressor:
    if compression == "none":
        return _Identity()
    if compression == "gzip":
        # wbits=31: a gzip member, as Hadoop's GzipCodec wrote and gzip tools read.
        return zlib.compressobj(6, zlib.DEFLATED, 31)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3).compressobj()
    raise ParameterError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")


def extension_for(compression: str) -> str:
    if compression not in COMPRESSIONS:
        raise ParameterError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
    return COMPRESSIONS[compression]


@dataclass(frozen=True)
class WrittenObject:
    key: str
    items: int
    bytes: int
    raw_bytes: int
    sha256: str


class S3ObjectWriter:
    """Writes one S3 object; small objects go up in one PutObject, large ones in parts."""

    def __init__(
        self, s3: Any, bucket: str, key: str, compression: str,
        put_extra: dict[str, Any] | None = None, part_size: int = PART_SIZE,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.put_extra = put_extra or {}
        self.part_size = part_size
        self._compressor = make_compressor(compression)
        self._buffer = bytearray()
        self._sha = hashlib.sha256()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self.items = 0
        self.raw_bytes = 0
        self.bytes = 0

    def write(self, data: bytes, items: int) -> None:
        self.items += items
        self.raw_bytes += len(data)
        self._buffer += self._compressor.compress(data)
        if len(self._buffer) >= self.part_size:
            self._upload_part(bytes(self._buffer))
            self._buffer.clear()

    def _upload_part(self, chunk: bytes) -> None:
        if self._upload_id is None:
            self._upload_id = call_with_retries(lambda: self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.put_extra
            ))["UploadId"]
        upload_id = self._upload_id
        number = len(self._parts) + 1
        response = call_with_retries(lambda: self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=upload_id,
            PartNumber=number, Body=chunk, **self.owner_extra,
        ))
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._sha.update(chunk)
        self.bytes += len(chunk)

    @property
    def owner_extra(self) -> dict[str, Any]:
        """The arguments every call on an existing upload or object takes (ExpectedBucketOwner)."""
        return {k: v for k, v in self.put_extra.items() if k == "ExpectedBucketOwner"}

    def _complete(self, upload_id: str) -> None:
        attempts = 0

        def call() -> None:
            nonlocal attempts
            attempts += 1
            try:
                self.s3.complete_multipart_upload(
                    Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                    MultipartUpload={"Parts": self._parts}, **self.owner_extra,
                )
            except ClientError as exc:
                # An earlier attempt completed the upload but its answer was lost.
                if attempts > 1 and exc.response.get("Error", {}).get("Code") == "NoSuchUpload":
                    head = self.s3.head_object(Bucket=self.bucket, Key=self.key, **self.owner_extra)
                    if int(head["ContentLength"]) == self.bytes:
                        return
                raise

        call_with_retries(call)

    def close(self) -> WrittenObject:
        self._buffer += self._compressor.flush()
        tail = bytes(self._buffer)
        self._buffer.clear()
        if self._upload_id is None:
            call_with_retries(lambda: self.s3.put_object(
                Bucket=self.bucket, Key=self.key, Body=tail, **self.put_extra))
            self._sha.update(tail)
            self.bytes += len(tail)
        else:
            if tail:
                self._upload_part(tail)
            self._complete(self._upload_id)
        return WrittenObject(self.key, self.items, self.bytes, self.raw_bytes, self._sha.hexdigest())

    def abort(self) -> None:
        """Drop a half-written object so no multipart upload is left to bill."""
        if self._upload_id is not None:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                                               **self.owner_extra)
            finally:
                self._upload_id = None


class RollingWriter:
    """Splits a stream of lines into objects of at most ``max_items`` / ``max_bytes`` each.

    ``tokens`` (optional, one per line) lets a caller learn where each object
    ends: after an object is stored, ``on_roll(written, token of its last line)``
    is called, with ``part`` already the number of the next object. Parts are
    numbered from ``first_part`` (a resumed writer continues a sequence).
    """

    def __init__(
        self, open_object: Callable[[int], S3ObjectWriter],
        max_items: int = 100_000, max_bytes: int = 256 * 1024 * 1024,
        *, first_part: int = 0, on_roll: Callable[[WrittenObject, Any], None] | None = None,
    ) -> None:
        self.open_object = open_object
        self.max_items, self.max_bytes = max_items, max_bytes
        self.current: S3ObjectWriter | None = None
        self.part = first_part
        self.finished: list[WrittenObject] = []
        self.on_roll = on_roll
        self.last_token: Any = None

    def write_lines(self, lines: list[bytes], tokens: Sequence[Any] | None = None) -> None:
        """Append lines (without newlines), rolling over exactly at the item limit."""
        start = 0
        while start < len(lines):
            if self.current is None:
                self.current = self.open_object(self.part)
            room = self.max_items - self.current.items
            chunk = lines[start : start + room]
            self.current.write(b"\n".join(chunk) + b"\n", len(chunk))
            start += len(chunk)
            if tokens is not None:
                self.last_token = tokens[start - 1]
            if self.current.items >= self.max_items or self.current.raw_bytes >= self.max_bytes:
                self.roll()

    def roll(self) -> None:
        if self.current is not None:
            written = self.current.close()
            self.finished.append(written)
            self.current = None
            self.part += 1
            if self.on_roll is not None:
                self.on_roll(written, self.last_token)

    def close(self) -> list[WrittenObject]:
        self.roll()
        return self.finished

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None
