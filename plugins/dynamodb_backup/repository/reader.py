"""Streaming the lines of one backup file out of S3, in bounded memory.

Why: a backup file can be gigabytes; a restore must read it line by line,
decompressing on the fly (formats/compression.py: by extension, ``.gz`` gzip,
``.zst`` zstandard, else plain), and check the stored bytes' checksum in the
same pass so a file is downloaded once. A file that ends early (truncated gzip or zstd) or whose
checksum differs is an error naming the file, never a silently short restore.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.exceptions import IncompleteReadError, ReadTimeoutError, ResponseStreamingError
from urllib3.exceptions import HTTPError as Urllib3Error

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import BackupFolderError, CodecError
from dynamodb_backup.formats.codec import Item, decode_line, decode_native_line, is_blank
from dynamodb_backup.formats.compression import CorruptFileError, make_decompressor

if TYPE_CHECKING:
    from dynamodb_backup.repository.inspection import SourceFile

log = logging.getLogger(__name__)

#: Bytes read from S3 per chunk.
CHUNK_BYTES = 1024 * 1024
#: A 400 KB item is well under this even with every character escaped; longer is corruption.
MAX_LINE_BYTES = 16 * 1024 * 1024
#: Times a broken download is resumed (with a Range request) before giving up.
RESUME_ATTEMPTS = 5

_STREAM_ERRORS = (ResponseStreamingError, IncompleteReadError, ReadTimeoutError, BotoConnectionError,
                  Urllib3Error, ConnectionError)


__all__ = ["Checksums", "CorruptFileError", "FileItems", "LineReader", "read_lines", "read_small", "stored_chunks"]


@dataclass(frozen=True)
class Checksums:
    """Expected checksums of the stored (compressed) bytes; either may be unknown."""

    sha256: str | None = None
    """Hex, as our sidecar records it."""
    md5: str | None = None
    """Base64, as a native export's manifest-files.json records it."""


def stored_chunks(s3: Any, bucket: str, key: str, chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """The object's bytes in chunks; a dropped connection resumes where it broke (Range, If-Match)."""
    offset, etag, failures = 0, None, 0
    while True:
        extra: dict[str, str] = {}
        if offset:
            extra["Range"] = f"bytes={offset}-"
        if etag:
            extra["IfMatch"] = etag
        response: dict[str, Any] = call_with_retries(partial(s3.get_object, Bucket=bucket, Key=key, **extra))
        etag = etag or response.get("ETag")
        body = response["Body"]
        try:
            for chunk in body.iter_chunks(chunk_bytes):
                offset += len(chunk)
                yield chunk
            return
        except _STREAM_ERRORS as exc:
            failures += 1
            if failures > RESUME_ATTEMPTS:
                raise
            log.warning("s3://%s/%s: download broke at byte %d (%s); resuming", bucket, key, offset, exc)
        finally:
            body.close()


@dataclass
class LineReader:
    """Iterate ``(line_number, line)`` of one S3 object; line numbers count every line, from 1.

    Lines come without their newline. After a complete iteration ``stored_bytes``
    and ``lines`` are set and the checksums have been checked.
    """

    s3: Any
    bucket: str
    key: str
    checksums: Checksums = Checksums()
    #: Also take the stored bytes' SHA-256 (``sha256_seen``) when there is none to check against.
    hash_sha256: bool = False
    stored_bytes: int = 0
    lines: int = 0
    sha256_seen: str = ""

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    def __iter__(self) -> Iterator[tuple[int, bytes]]:
        sha = hashlib.sha256() if self.checksums.sha256 or self.hash_sha256 else None
        md5 = hashlib.md5(usedforsecurity=False) if self.checksums.md5 else None
        decoder = make_decompressor(self.key, self.url)
        pending = b""
        number = 0
        self.stored_bytes = 0
        for chunk in stored_chunks(self.s3, self.bucket, self.key):
            self.stored_bytes += len(chunk)
            if sha:
                sha.update(chunk)
            if md5:
                md5.update(chunk)
            for data in decoder.feed(chunk):
                parts = (pending + data).split(b"\n")
                pending = parts.pop()
                for line in parts:
                    number += 1
                    yield number, line
                if len(pending) > MAX_LINE_BYTES:
                    raise CorruptFileError(
                        f"{self.url} line {number + 1}: longer than {MAX_LINE_BYTES} bytes; not a backup line"
                    )
        decoder.finish()
        if pending:
            number += 1
            yield number, pending
        self.lines = number
        self.sha256_seen = sha.hexdigest() if sha is not None else ""
        self._check(sha, md5)

    def _check(self, sha: Any, md5: Any) -> None:
        if sha is not None and self.checksums.sha256 and sha.hexdigest() != self.checksums.sha256:
            raise CorruptFileError(
                f"{self.url}: SHA-256 {sha.hexdigest()} does not match the backup's record "
                f"{self.checksums.sha256} ({self.stored_bytes} bytes read); the file was changed or damaged"
            )
        if md5 is not None:
            actual = base64.b64encode(md5.digest()).decode("ascii")
            if actual != self.checksums.md5:
                raise CorruptFileError(
                    f"{self.url}: MD5 {actual} does not match the export manifest's {self.checksums.md5} "
                    f"({self.stored_bytes} bytes read); the file was changed or damaged"
                )


def read_lines(s3: Any, bucket: str, key: str, checksums: Checksums | None = None) -> Iterator[tuple[int, bytes]]:
    """Shorthand for iterating a :class:`LineReader`."""
    return iter(LineReader(s3, bucket, key, checksums or Checksums()))


def read_small(s3: Any, bucket: str, key: str, limit: int = 64 * 1024 * 1024) -> bytes:
    """A small metadata object (manifest, sidecar) in one piece, refusing anything absurdly large."""
    response = call_with_retries(lambda: s3.get_object(Bucket=bucket, Key=key))
    if int(response.get("ContentLength") or 0) > limit:
        raise BackupFolderError(f"s3://{bucket}/{key}: larger than {limit} bytes; not a metadata file")
    data: bytes = response["Body"].read()
    return data


#: Line decoders by ``SourceFile.decoder``.
DECODERS: dict[str, Callable[[bytes], Item]] = {"datapipeline": decode_line, "native": decode_native_line}


class FileItems:
    """The items of one backup file as ``(origin, item)``; origin is ``s3://b/k line N``.

    Blank lines are skipped and counted; a line that does not decode raises
    :class:`CodecError` naming the file and line; checksums are checked at the end.
    """

    def __init__(self, s3: Any, bucket: str, file: SourceFile, verify_checksum: bool = True) -> None:
        checksums = Checksums(file.sha256, file.md5) if verify_checksum else Checksums()
        self.reader = LineReader(s3, bucket, file.key, checksums)
        if file.decoder not in DECODERS:
            raise BackupFolderError(f"{self.reader.url}: unknown decoder {file.decoder!r}")
        self.decode = DECODERS[file.decoder]
        self.items = 0
        self.blank_lines = 0

    @property
    def url(self) -> str:
        return self.reader.url

    def __iter__(self) -> Iterator[tuple[str, Item]]:
        url, decode = self.reader.url, self.decode
        for number, line in self.reader:
            if is_blank(line):
                self.blank_lines += 1
                continue
            where = f"{url} line {number}"
            try:
                item = decode(line)
            except CodecError as exc:
                raise exc.at(where) from None
            self.items += 1
            yield where, item

    def lines(self) -> Iterator[tuple[str, bytes]]:
        """The raw lines, undecoded, as ``(origin, line)`` (for the fast write path; blank lines skipped)."""
        url = self.reader.url
        for number, line in self.reader:
            if is_blank(line):
                self.blank_lines += 1
                continue
            self.items += 1
            yield f"{url} line {number}", line
