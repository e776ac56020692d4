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
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import ParameterError

#: S3's smallest multipart part (except the last) is 5 MiB.
PART_SIZE = 8 * 1024 * 1024


class Compressor(Protocol):
    """A streaming compressor for one object (formats/compression.py makes them)."""

    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


@dataclass(frozen=True)
class WrittenObject:
    key: str
    items: int
    bytes: int
    raw_bytes: int
    sha256: str


class S3ObjectWriter:
    """Writes one S3 object; small objects go up in one PutObject, large ones in parts.

    ``compressor`` is a new streaming compressor for this object (formats.compression's
    ``make_compressor``), or ``"none"``. A full part is uploaded on a thread of its own while the
    caller goes on encoding and compressing the next one, so compression never waits for the
    network; one part is in flight at most, so a writer holds two parts, never more.
    """

    def __init__(
        self, s3: Any, bucket: str, key: str, compressor: Compressor | str,
        put_extra: dict[str, Any] | None = None, part_size: int = PART_SIZE,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.put_extra = put_extra or {}
        self.part_size = part_size
        if isinstance(compressor, str):
            if compressor != "none":
                raise ParameterError(f"S3ObjectWriter takes a compressor (formats.compression.make_compressor"
                                     f"({compressor!r})) or 'none', got {compressor!r}")
            compressor = _Identity()
        self._compressor = compressor
        self._buffer = bytearray()
        self._sha = hashlib.sha256()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._uploader: ThreadPoolExecutor | None = None
        self._in_flight: Future[None] | None = None
        self.items = 0
        self.raw_bytes = 0
        self.bytes = 0

    def write(self, data: bytes, items: int) -> None:
        self.items += items
        self.raw_bytes += len(data)
        self._buffer += self._compressor.compress(data)
        if len(self._buffer) >= self.part_size:
            # The full buffer itself becomes the part (botocore sends a bytearray as it is): no 8 MB copy.
            # It is never written again, so a retry of the part sends the same bytes.
            chunk, self._buffer = self._buffer, bytearray()
            self._send_part(chunk)

    def _send_part(self, chunk: bytes | bytearray) -> None:
        """Upload ``chunk`` as the next part on the uploader thread, once the part before it is stored."""
        self._wait_for_part()
        if self._uploader is None:
            self._uploader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="s3-part")
        self._in_flight = self._uploader.submit(self._upload_part, chunk)

    def _wait_for_part(self) -> None:
        """Wait for the part in flight, raising its error here, in the caller's thread."""
        if self._in_flight is not None:
            in_flight, self._in_flight = self._in_flight, None
            in_flight.result()

    def _stop_uploader(self) -> None:
        if self._uploader is not None:
            self._uploader.shutdown(wait=True)
            self._uploader = None

    def _upload_part(self, chunk: bytes | bytearray) -> None:
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
    def multipart(self) -> bool:
        """Whether the object goes up in parts (a part was handed to the uploader)."""
        return self._upload_id is not None or self._in_flight is not None or bool(self._parts)

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
        try:
            self._wait_for_part()
        finally:
            self._stop_uploader()
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
        try:
            self._wait_for_part()
        except Exception:
            pass  # the upload is being dropped: its last part's error changes nothing
        finally:
            self._stop_uploader()
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
            self.current.write(b"\n".join([*chunk, b""]), len(chunk))  # one copy, newline-terminated
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
