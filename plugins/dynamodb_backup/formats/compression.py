"""The compressions a backup file may have, and the streaming codecs that write and read them.

Why these (bench/compression_levels.py, figures in docs/workers-per-terabyte.md):

* ``gzip`` is what Data Pipeline wrote and its importer (and ``gunzip``) reads, so the output stays
  a standard gzip member. It is produced and read with python-isal (Intel's ISA-L deflate): on the
  bench's three shapes it compresses at 590-730 MB per CPU-second against zlib level 6's 40-77
  (8 to 15 times faster) and decompresses twice as fast, for files 15 to 40 % larger. ISA-L's level
  1 is used: on the prose-like 100 KB text it is 10 % faster than its level 2 (its default) for
  files 2.2 % larger, on small items 5 % faster for 1.6 %, on wide ones 3 % for 0.6 %
  (docs/benchmarks-per-core.md); its level 3 is 25-50 % slower for 1-4 % less. zlib-ng at a level
  of similar size (2) is 2.3 times slower than ISA-L.
* ``zstd`` is at level 1: against level 3 it is 1.9 times faster on small items (1 % larger), 2.3
  times faster and 6 % smaller on wide ones, and 7 % slower (2 % larger) on 100 KB text. Levels 6
  and above cost 4 to 10 times the CPU for at most 10 % less.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import zstandard
from isal import isal_zlib

from dynamodb_backup.errors import BackupFolderError, ParameterError

#: isal_zlib's error class (its stub types ``error`` as an instance, not a class).
_DEFLATE_ERROR: type[Exception] = isal_zlib.error  # type: ignore[assignment]

#: The compressions and the file name extension each gives.
COMPRESSIONS = {"none": "", "gzip": ".gz", "zstd": ".zst"}
GZIP_LEVEL = 1
ZSTD_LEVEL = 1
#: wbits=31: a gzip member (header and CRC-32 trailer), as Hadoop's GzipCodec wrote and gzip tools read.
GZIP_WBITS = 31
#: Decompressed bytes produced per step (bounds memory against highly compressed input).
STEP_BYTES = 4 * 1024 * 1024
#: zstd has no output bound per call, so it is fed small slices.
ZSTD_SLICE = 16 * 1024


class CorruptFileError(BackupFolderError):
    """A backup file is truncated, undecompressable or does not match its checksum."""


class Compressor(Protocol):
    def compress(self, data: bytes) -> bytes: ...
    def flush(self) -> bytes: ...


class Identity:
    def compress(self, data: bytes) -> bytes:
        return data

    def flush(self) -> bytes:
        return b""


def extension_for(compression: str) -> str:
    if compression not in COMPRESSIONS:
        raise ParameterError(f"compression must be one of {sorted(COMPRESSIONS)}, got {compression!r}")
    return COMPRESSIONS[compression]


def make_compressor(compression: str) -> Compressor:
    """A new streaming compressor for one file."""
    extension_for(compression)
    if compression == "gzip":
        return isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, GZIP_WBITS)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=ZSTD_LEVEL).compressobj()
    return Identity()


def compression_of(key: str) -> str:
    """A file's compression, by its name's extension."""
    if key.endswith(".gz"):
        return "gzip"
    if key.endswith(".zst"):
        return "zstd"
    return "none"


class Decompressor(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]: ...
    def finish(self) -> None: ...


class Plain:
    def feed(self, data: bytes) -> Iterator[bytes]:
        yield data

    def finish(self) -> None:
        return None


class GzipStream:
    """gzip, including several concatenated members (as ``cat a.gz b.gz`` or Hadoop write)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._obj = isal_zlib.decompressobj(GZIP_WBITS)
        self._in_member = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        while data:
            self._in_member = True
            try:
                out = self._obj.decompress(data, STEP_BYTES)
            except _DEFLATE_ERROR as exc:
                raise CorruptFileError(f"{self.url}: not valid gzip data ({exc})") from None
            if out:
                yield out
            if self._obj.eof:
                data = self._obj.unused_data
                self._obj = isal_zlib.decompressobj(GZIP_WBITS)
                self._in_member = False
                if data and not data.strip(b"\x00"):
                    return  # zero padding after the last member, as some tools write
            else:
                data = self._obj.unconsumed_tail

    def finish(self) -> None:
        if self._in_member:
            raise CorruptFileError(
                f"{self.url}: gzip data is truncated (the file ends inside a compressed member); "
                "the object is incomplete or corrupt"
            )


class ZstdStream:
    """zstandard, including several concatenated frames."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False

    def feed(self, data: bytes) -> Iterator[bytes]:
        for start in range(0, len(data), ZSTD_SLICE):
            piece = data[start:start + ZSTD_SLICE]
            while piece:
                self._in_frame = True
                try:
                    out = self._obj.decompress(piece)
                except zstandard.ZstdError as exc:
                    raise CorruptFileError(f"{self.url}: not valid zstd data ({exc})") from None
                if out:
                    yield out
                piece = b""
                if self._obj.eof:
                    piece = self._obj.unused_data
                    self._obj = zstandard.ZstdDecompressor().decompressobj()
                    self._in_frame = False

    def finish(self) -> None:
        if self._in_frame:
            raise CorruptFileError(f"{self.url}: zstd data is truncated (the file ends inside a frame)")


def make_decompressor(key: str, url: str) -> Decompressor:
    """A streaming decompressor for the file ``key`` (``url`` names it in errors)."""
    compression = compression_of(key)
    if compression == "gzip":
        return GzipStream(url)
    if compression == "zstd":
        return ZstdStream(url)
    return Plain()
