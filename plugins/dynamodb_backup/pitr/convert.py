"""Converting a native export into Data Pipeline lines, in shares of its data files.

Why this way:

* Each native data file is checked against ``manifest-files.json`` as it is read:
  its MD5 (of the stored gzip bytes) and its item count. A mismatch fails the
  share naming the file; nothing of that file counts as converted.
* The output goes through the scan path's writer (same file names, rolling and
  compression), one "segment" per native data file, so a pitr backup and a scan
  backup of the same items hold the same set of lines, and the seal checks
  every native file was converted exactly once.
* A retry resumes per file: a finished file leaves the same checkpoint a scan
  segment does, and is skipped.
* ``write=False`` (format ``native``) only verifies the files, for a folder that
  keeps the export as it is.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from dynamodb_backup.aws.s3writer import RollingWriter, S3ObjectWriter, WrittenObject
from dynamodb_backup.backup.export import (
    ExportSettings,
    SegmentCheckpoint,
    WorkerResult,
    list_folder,
    load_checkpoint,
    owner_extra,
    save_checkpoint,
    settings_fingerprint,
    usable_checkpoint,
    utcnow,
)
from dynamodb_backup.backup.heap import return_large_buffers_to_the_os
from dynamodb_backup.errors import BackupFolderError, CodecError
from dynamodb_backup.formats.codec.datapipeline import is_blank
from dynamodb_backup.formats.codec.native import decode_native_record, full_export_line_to_datapipeline
from dynamodb_backup.formats.compression import extension_for, make_compressor
from dynamodb_backup.formats.layout import S3Location, data_file_name
from dynamodb_backup.formats.sidecar import FileRecord
from dynamodb_backup.progress import Progress
from dynamodb_backup.repository.inspection import BackupSource
from dynamodb_backup.repository.reader import Checksums, LineReader

log = logging.getLogger(__name__)

#: Lines handed to the writer at a time (bounded memory, few calls): at most this many lines, and
#: no more than about BATCH_BYTES of them. 2,000 lines of 100 KB were a 200 MB batch, joined and
#: compressed in one piece: fresh memory (page faults) and no cache reuse; 1 MB pieces compress as
#: fast as any, and 2,000 small lines still go in one call.
BATCH_LINES = 2_000
BATCH_BYTES = 1024 * 1024


@dataclass(frozen=True)
class NativeFile:
    """One data file of the export, with what its manifest promises."""

    index: int
    key: str
    size: int
    md5: str | None
    items: int | None


@dataclass
class ConvertShare:
    """The native data files one convert task reads (``total_files`` is the export's whole count)."""

    worker: int
    total_files: int
    files: list[NativeFile] = field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ConvertShare:
        return cls(int(data["worker"]), int(data["total_files"]), [NativeFile(**f) for f in data["files"]])


def native_files(source: BackupSource) -> list[NativeFile]:
    """The export's data files in a stable order (by key), numbered from 0."""
    ordered = sorted(source.files, key=lambda f: f.key)
    return [NativeFile(i, f.key, f.size, f.md5, f.items) for i, f in enumerate(ordered)]


def plan_shares(files: list[NativeFile], max_workers: int) -> list[ConvertShare]:
    """Spread the files over at most ``max_workers`` shares, biggest first onto the lightest share."""
    count = max(1, min(max_workers, len(files)))
    shares = [ConvertShare(i, len(files)) for i in range(count)]
    for file in sorted(files, key=lambda f: (-f.size, f.index)):
        min(shares, key=lambda s: (s.size, s.worker)).files.append(file)
    for share in shares:
        share.files.sort(key=lambda f: f.index)
    return [s for s in shares if s.files] or shares[:1]


def convert_share(
    s3: Any, table: str, folder: S3Location, share: ConvertShare, settings: ExportSettings, *, write: bool = True,
) -> WorkerResult:
    """Convert (or, with ``write=False``, only verify) every file of ``share`` into ``folder``."""
    return_large_buffers_to_the_os()
    started = utcnow()
    extra = owner_extra(settings.put_extra)
    present = list_folder(s3, folder) if write else {}
    progress = Progress(f"convert {share.worker}", sum(f.items or 0 for f in share.files), log)
    files: list[FileRecord] = []
    for native in share.files:
        if write:
            done = usable_checkpoint(load_checkpoint(s3, folder, native.index, extra), table, share.total_files,
                                     settings, present)
            if done is not None and done.done:
                log.info("%s: already converted (%d files), skipping", native.key, len(done.files))
                files.extend(done.files)
                progress.add(sum(f.items for f in done.files), sum(f.bytes for f in done.files), 0.0)
                continue
            converted = _convert_file(s3, table, folder, native, share.total_files, settings, progress)
        else:
            converted = [_verify_file(s3, folder, native, progress)]
        files.extend(converted)
    progress.done()
    return WorkerResult(
        worker=share.worker, segments=[f.index for f in share.files], files=files,
        items=sum(f.items for f in files), bytes=sum(f.bytes for f in files), consumed_read_units=0.0,
        started=started, finished=utcnow(),
    )


def _reader(s3: Any, folder: S3Location, native: NativeFile, *, sha256: bool = False) -> LineReader:
    return LineReader(s3, folder.bucket, native.key, Checksums(md5=native.md5), hash_sha256=sha256)


def _check_count(reader: LineReader, native: NativeFile, counted: int) -> None:
    if native.items is not None and counted != native.items:
        raise BackupFolderError(f"{reader.url}: {counted} items, but manifest-files.json lists {native.items}; "
                                "the export is damaged or incomplete")


def _convert_file(s3: Any, table: str, folder: S3Location, native: NativeFile, total_files: int,
                  settings: ExportSettings, progress: Progress) -> list[FileRecord]:
    reader = _reader(s3, folder, native)
    extension = extension_for(settings.compression)

    def open_object(part: int) -> S3ObjectWriter:
        key = folder.key(data_file_name(folder, native.index, part, extension))
        return S3ObjectWriter(s3, folder.bucket, key, make_compressor(settings.compression), settings.put_extra)

    writer = RollingWriter(open_object, settings.file_max_items, settings.file_max_bytes)
    counted = 0
    try:
        for batch in batched(_converted_lines(reader)):
            writer.write_lines(batch)
            counted += len(batch)
            progress.add(len(batch), sum(map(len, batch)), 0.0)
        _check_count(reader, native, counted)  # the MD5 was checked when the reader reached the end
        written = writer.close()
    except BaseException:
        writer.abort()
        raise
    records = [_record(folder, native.index, w) for w in written]
    save_checkpoint(s3, folder, SegmentCheckpoint(
        table=table, segment=native.index, total_segments=total_files, settings=settings_fingerprint(settings),
        files=records, next_part=writer.part, last_key=None, done=True, consumed_read_units=0.0,
        started=utcnow(),
    ), settings.put_extra)
    return records


def _converted_lines(reader: LineReader) -> Iterator[bytes]:
    """The Data Pipeline line of every line of a full export's file, blank lines skipped."""
    for number, line in reader:
        if is_blank(line):
            continue
        try:
            yield full_export_line_to_datapipeline(line)
        except CodecError as exc:
            raise exc.at(f"{reader.url} line {number}") from None


def batched(lines: Iterable[bytes], max_lines: int = BATCH_LINES,
            max_bytes: int = BATCH_BYTES) -> Iterator[list[bytes]]:
    """``lines`` in order, in lists of at most ``max_lines`` that end once they hold ``max_bytes``."""
    batch: list[bytes] = []
    size = 0
    for line in lines:
        batch.append(line)
        size += len(line)
        if len(batch) >= max_lines or size >= max_bytes:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _record(folder: S3Location, index: int, written: WrittenObject) -> FileRecord:
    return FileRecord(written.key.rsplit("/", 1)[-1], index, written.items, written.bytes, written.sha256)


def _verify_file(s3: Any, folder: S3Location, native: NativeFile, progress: Progress) -> FileRecord:
    """Read one native file through (full or incremental): MD5, count and lines checked, SHA-256 taken."""
    reader = _reader(s3, folder, native, sha256=True)
    counted = 0
    for number, line in reader:
        if is_blank(line):
            continue
        try:
            decode_native_record(line)  # a full export's item or an incremental change, decoded and checked
        except CodecError as exc:
            raise exc.at(f"{reader.url} line {number}") from None
        counted += 1
    _check_count(reader, native, counted)
    progress.add(counted, reader.stored_bytes, 0.0)
    relative = native.key[len(folder.key("")):]
    return FileRecord(relative, native.index, counted, reader.stored_bytes, reader.sha256_seen)
