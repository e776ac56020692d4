"""Backup files stay standard gzip with the fast implementation, and read back with it."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import zlib

import pytest

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.compression import (
    GZIP_LEVEL,
    CorruptFileError,
    extension_for,
    make_compressor,
    make_decompressor,
)

LINES = b"".join(b'{"pk":{"s":"item-%06d"},"body":{"s":"%s"}}\n' % (i, b"text " * (i % 50)) for i in range(20_000))


def compress(compression: str, data: bytes, write: int = 64 * 1024) -> bytes:
    obj = make_compressor(compression)
    out = bytearray()
    for start in range(0, len(data), write):
        out += obj.compress(data[start:start + write])
    return bytes(out + obj.flush())


def read_back(key: str, stored: bytes, chunk: int = 100_000) -> bytes:
    decoder = make_decompressor(key, f"s3://b/{key}")
    out = bytearray()
    for start in range(0, len(stored), chunk):
        for data in decoder.feed(stored[start:start + chunk]):
            out += data
    decoder.finish()
    return bytes(out)


def test_gzip_output_is_read_by_pythons_gzip_and_by_gunzip(tmp_path):
    stored = compress("gzip", LINES)
    assert stored[:3] == b"\x1f\x8b\x08"  # a gzip member, deflate
    assert gzip.decompress(stored) == LINES
    assert zlib.decompress(stored, 31) == LINES
    if shutil.which("gunzip") is None:
        pytest.skip("no gunzip here")
    (tmp_path / "part.gz").write_bytes(stored)
    assert subprocess.run(["gunzip", "-c", str(tmp_path / "part.gz")], capture_output=True, check=True).stdout == LINES


def test_gzip_level_is_isal_fastest_and_smaller_than_no_compression():
    assert GZIP_LEVEL == 1
    assert len(compress("gzip", LINES)) < len(LINES) / 4


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_round_trip_through_the_reader_decompressor(compression):
    key = "data-0" + extension_for(compression)
    assert read_back(key, compress(compression, LINES)) == LINES


def test_reader_takes_zlib_written_and_concatenated_gzip_members():
    """Data Pipeline's files (Hadoop's GzipCodec, zlib) and `cat a.gz b.gz` read the same."""
    half = len(LINES) // 2
    stored = gzip.compress(LINES[:half], compresslevel=6) + compress("gzip", LINES[half:]) + b"\x00" * 16
    assert read_back("x.gz", stored) == LINES


def test_truncated_gzip_is_an_error_naming_the_file():
    stored = compress("gzip", LINES)
    with pytest.raises(CorruptFileError, match=r"s3://b/x.gz: gzip data is truncated"):
        read_back("x.gz", stored[: len(stored) // 2])


def test_garbage_is_an_error_naming_the_file():
    with pytest.raises(CorruptFileError, match=r"s3://b/x.gz: not valid gzip data"):
        read_back("x.gz", b"\x1f\x8b\x08\x00" + b"not deflate at all" * 20)


def test_unknown_compression_is_one_clear_line():
    with pytest.raises(ParameterError, match=r"compression must be one of \['gzip', 'none', 'zstd'\], got 'lz4'"):
        make_compressor("lz4")
