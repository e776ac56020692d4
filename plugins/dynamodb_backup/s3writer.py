"""Streaming S3 object writers with bounded memory.

``S3ObjectWriter`` compresses and uploads one object in multipart parts as data
arrives; ``RollingWriter`` starts a new object at an item or size limit, as Data
Pipeline's writers did every 100,000 items.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import zstandard

from .errors import ParameterError

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
            self._upload_id = self.s3.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, **self.put_extra
            )["UploadId"]
        number = len(self._parts) + 1
        extra = {k: v for k, v in self.put_extra.items() if k == "ExpectedBucketOwner"}
        response = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
            PartNumber=number, Body=chunk, **extra,
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._sha.update(chunk)
        self.bytes += len(chunk)

    def close(self) -> WrittenObject:
        self._buffer += self._compressor.flush()
        tail = bytes(self._buffer)
        self._buffer.clear()
        if self._upload_id is None:
            self.s3.put_object(Bucket=self.bucket, Key=self.key, Body=tail, **self.put_extra)
            self._sha.update(tail)
            self.bytes += len(tail)
        else:
            if tail:
                self._upload_part(tail)
            extra = {k: v for k, v in self.put_extra.items() if k == "ExpectedBucketOwner"}
            self.s3.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts}, **extra,
            )
        return WrittenObject(self.key, self.items, self.bytes, self.raw_bytes, self._sha.hexdigest())

    def abort(self) -> None:
        """Drop a half-written object so no multipart upload is left to bill."""
        if self._upload_id is not None:
            try:
                self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)
            finally:
                self._upload_id = None


class RollingWriter:
    """Splits a stream of lines into objects of at most ``max_items`` / ``max_bytes`` each."""

    def __init__(
        self, open_object: Callable[[int], S3ObjectWriter],
        max_items: int = 100_000, max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        self.open_object = open_object
        self.max_items, self.max_bytes = max_items, max_bytes
        self.current: S3ObjectWriter | None = None
        self.part = 0
        self.finished: list[WrittenObject] = []

    def write_lines(self, lines: list[bytes]) -> None:
        """Append lines (without newlines), rolling over exactly at the item limit."""
        start = 0
        while start < len(lines):
            if self.current is None:
                self.current = self.open_object(self.part)
            room = self.max_items - self.current.items
            chunk = lines[start : start + room]
            self.current.write(b"\n".join(chunk) + b"\n", len(chunk))
            start += len(chunk)
            if self.current.items >= self.max_items or self.current.raw_bytes >= self.max_bytes:
                self.roll()

    def roll(self) -> None:
        if self.current is not None:
            self.finished.append(self.current.close())
            self.current = None
            self.part += 1

    def close(self) -> list[WrittenObject]:
        self.roll()
        return self.finished

    def abort(self) -> None:
        if self.current is not None:
            self.current.abort()
            self.current = None
