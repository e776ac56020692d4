"""A full part is uploaded on its own thread while the caller compresses the next one."""

from __future__ import annotations

import hashlib
import threading

import pytest

from dynamodb_backup.aws.s3writer import S3ObjectWriter
from dynamodb_backup.errors import ParameterError

PART = 5 * 1024 * 1024


class FakeS3:
    """Records which thread sent each part; a part can be held until the test lets it go."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.release.set()
        self.part_threads: list[str] = []
        self.parts: dict[int, bytes] = {}
        self.fail_part: int | None = None
        self.aborted = 0
        self.completed: list[int] = []

    def create_multipart_upload(self, **_: object) -> dict[str, str]:
        return {"UploadId": "u1"}

    def upload_part(self, *, PartNumber: int, Body: bytes, **_: object) -> dict[str, str]:
        self.part_threads.append(threading.current_thread().name)
        assert self.release.wait(10)
        if PartNumber == self.fail_part:
            raise ConnectionResetError("the test broke this part")  # not retried: fails at once
        self.parts[PartNumber] = Body
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, *, MultipartUpload: dict, **_: object) -> None:
        self.completed = [p["PartNumber"] for p in MultipartUpload["Parts"]]

    def abort_multipart_upload(self, **_: object) -> None:
        self.aborted += 1


def test_write_returns_while_the_part_is_still_uploading():
    s3 = FakeS3()
    s3.release.clear()  # hold every part upload
    writer = S3ObjectWriter(s3, "b", "k", "none", part_size=PART)
    writer.write(b"a" * PART, 1)  # fills a part: handed to the uploader
    writer.write(b"b" * 1000, 1)  # the caller goes on while the part is held
    assert writer.multipart
    assert 1 not in s3.parts  # the held upload really had not finished
    s3.release.set()
    result = writer.close()
    assert s3.part_threads and all(name.startswith("s3-part") for name in s3.part_threads[:1])
    assert s3.completed == [1, 2]
    stored = s3.parts[1] + s3.parts[2]
    assert stored == b"a" * PART + b"b" * 1000
    assert result.bytes == len(stored) and result.sha256 == hashlib.sha256(stored).hexdigest()


def test_a_failed_part_is_raised_to_the_caller_and_the_upload_aborted():
    s3 = FakeS3()
    s3.fail_part = 1
    writer = S3ObjectWriter(s3, "b", "k", "none", part_size=PART)
    writer.write(b"a" * PART, 1)
    with pytest.raises(ConnectionResetError, match="the test broke this part"):
        writer.write(b"b" * PART, 1)  # the next part waits for the one before, and gets its error
    writer.abort()
    assert s3.part_threads == ["s3-part_0"]  # the failure happened on the uploader
    assert s3.aborted == 1


def test_a_compression_name_is_refused_with_what_to_pass_instead():
    with pytest.raises(ParameterError, match=r"takes a compressor .*make_compressor\('gzip'\)"):
        S3ObjectWriter(FakeS3(), "b", "k", "gzip")
