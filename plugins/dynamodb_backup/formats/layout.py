"""Where a backup lives: S3 locations, the dated folder, file names, parameter syntax."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from dynamodb_backup.errors import ParameterError

MANIFEST = "manifest"
SUCCESS = "_SUCCESS"
#: Our own description of the backup. Its name starts with "_" so that Data
#: Pipeline's importer, which skips such names, never mistakes it for data.
SIDECAR = "_dynamodb_backup.json"
FOLDER_FORMAT = "%Y-%m-%d-%H-%M-%S"
FOLDER_RE = re.compile(r"^\d{4}-\d{2}-\d{2}-\d{2}-\d{2}-\d{2}$")

_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_TABLE_RE = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")
#: Names the data files of one run: a UUID as Data Pipeline wrote, but derived
#: from the folder, segment and part so that a retry writes the same keys.
_FILE_NAMESPACE = uuid.UUID("6f1c2a0e-5d1b-4b8e-9f54-0d7e3c2a9b10")


def check_bucket(bucket: str, param: str = "bucket") -> str:
    if not _BUCKET_RE.match(bucket) or ".." in bucket or re.match(r"^\d+\.\d+\.\d+\.\d+$", bucket):
        raise ParameterError(
            f"{param}: {bucket!r} is not a valid S3 bucket name "
            "(3-63 characters: lower-case letters, digits, '.' and '-')"
        )
    return bucket


def check_prefix(prefix: str, param: str = "prefix") -> str:
    """A key prefix: no leading '/', no empty, '.' or '..' segments, printable characters."""
    prefix = prefix.strip("/")
    if not prefix:
        return ""
    if len(prefix) > 512:
        raise ParameterError(f"{param}: longer than 512 characters")
    for part in prefix.split("/"):
        if part in ("", ".", ".."):
            raise ParameterError(f"{param}: {prefix!r} has an empty, '.' or '..' path segment")
    if any(ord(c) < 0x20 or c in "\\{}^%`[]\"<>~#|" for c in prefix):
        raise ParameterError(f"{param}: {prefix!r} contains characters unsafe in an S3 key")
    return prefix


def check_table_name(name: str, param: str = "table") -> str:
    if not _TABLE_RE.match(name):
        raise ParameterError(
            f"{param}: {name!r} is not a valid DynamoDB table name "
            "(3-255 characters: letters, digits, '_', '-' and '.')"
        )
    return name


@dataclass(frozen=True)
class S3Location:
    """A bucket and a key prefix (no leading or trailing '/')."""

    bucket: str
    prefix: str = ""

    @classmethod
    def parse(cls, uri: str, param: str = "uri") -> S3Location:
        if not uri.startswith("s3://"):
            raise ParameterError(f"{param}: {uri!r} is not an s3:// URI")
        bucket, _, prefix = uri[5:].partition("/")
        return cls(check_bucket(bucket, param), check_prefix(prefix, param))

    def child(self, *parts: str) -> S3Location:
        joined = "/".join(p.strip("/") for p in (self.prefix, *parts) if p.strip("/"))
        return S3Location(self.bucket, joined)

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def url_of(self, name: str) -> str:
        return f"s3://{self.bucket}/{self.key(name)}"

    def __str__(self) -> str:
        return self.uri


def folder_name(moment: datetime) -> str:
    """The dated folder name of a run: its logical date in UTC, as Data Pipeline named it."""
    if moment.tzinfo is None:
        raise ValueError("folder_name needs a timezone-aware datetime")
    return moment.astimezone(UTC).strftime(FOLDER_FORMAT)


def parse_folder_name(name: str) -> datetime | None:
    if not FOLDER_RE.match(name):
        return None
    return datetime.strptime(name, FOLDER_FORMAT).replace(tzinfo=UTC)


def backup_folder(base: S3Location, table: str, moment: datetime) -> S3Location:
    """``s3://<bucket>/<prefix>/<table>/<YYYY-MM-DD-HH-MM-SS>``"""
    return base.child(table, folder_name(moment))


def data_file_name(folder: S3Location, segment: int, part: int, extension: str) -> str:
    """A stable UUID name for part ``part`` of ``segment`` in ``folder``."""
    name = str(uuid.uuid5(_FILE_NAMESPACE, f"{folder.uri}/{segment}/{part}"))
    return name + extension
