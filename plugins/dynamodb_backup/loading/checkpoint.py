"""Completion markers that let a retried load worker skip the files it already finished.

Why here, and why this way:

* A marker is written only after every item of its file was flushed to the
  table, so a crash between the two redoes the file (puts are idempotent:
  the same items are written again), never skips unwritten items.
* Markers are per restore run (``<base>/<target table>/<run id>/<file>.done``),
  so a new restore into a table that was since emptied or recreated starts
  from scratch; only retries of the same run skip work.
* A marker records the file's URL, size, target table and the table's identity
  (its TableId); a marker that does not match the file being loaded, or was
  written into a table since deleted and created again (a replacing restore
  run again, say), is ignored.
* The default base is ``_restore_checkpoints/<folder name>/`` *beside* the
  backup folder, not inside it: the backup stays exactly as written (object
  lock, checksums, copying a folder), and nothing named ``_...`` confuses a
  reader. A read-only backup bucket can point the base elsewhere; if markers
  cannot be written the load goes on without them (a retry then redoes files)
  and says so.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.inspection import SourceFile

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "_restore_checkpoints"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_checkpoint_base(folder: S3Location) -> S3Location:
    """``<parent of folder>/_restore_checkpoints/<folder name>``."""
    parent, _, name = folder.prefix.rpartition("/")
    return S3Location(folder.bucket, parent).child(CHECKPOINT_DIR, name or "root")


def safe_part(text: str) -> str:
    """A run id such as ``manual__2024-03-05T04:10:22+00:00`` as one safe key segment."""
    return _UNSAFE.sub("_", text).strip("._") or "run"


@dataclass
class Checkpoints:
    """Markers of finished files for one restore run into one table."""

    s3: Any
    location: S3Location
    table: str
    #: The target's identity (``tableinfo.table_identity``); markers of another incarnation are ignored.
    table_id: str = ""
    #: The backup's PutObject settings (SSE-KMS, ExpectedBucketOwner): markers live in its bucket.
    put_extra: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True

    @classmethod
    def for_run(cls, s3: Any, base: S3Location, table: str, run_id: str, table_id: str = "",
                put_extra: dict[str, Any] | None = None) -> Checkpoints:
        return cls(s3, base.child(safe_part(table), safe_part(run_id)), table, table_id, dict(put_extra or {}))

    @property
    def _owner(self) -> dict[str, Any]:
        return {k: v for k, v in self.put_extra.items() if k == "ExpectedBucketOwner"}

    def _key(self, file: SourceFile) -> str:
        return self.location.key(safe_part(file.name) + ".done")

    def finished(self, file: SourceFile, url: str) -> int | None:
        """Items loaded from ``file`` by an earlier attempt of this run, or None."""
        if not self.enabled:
            return None
        try:
            body = call_with_retries(lambda: self.s3.get_object(Bucket=self.location.bucket, Key=self._key(file),
                                                                **self._owner))
            marker = orjson.loads(body["Body"].read())
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code not in ("NoSuchKey", "404", "NotFound"):
                self._disable(f"cannot read {self.location}: {code}")
            return None
        except orjson.JSONDecodeError:
            return None
        if marker.get("file") != url or marker.get("size") != file.size or marker.get("table") != self.table:
            log.info("ignoring checkpoint for %s: it was written for another file or table", url)
            return None
        if marker.get("table_id", "") != self.table_id:
            log.info("ignoring checkpoint for %s: table %s was created again since it was written", url, self.table)
            return None
        return int(marker["items"])

    def mark(self, file: SourceFile, url: str, items: int) -> None:
        if not self.enabled:
            return
        body = orjson.dumps({"file": url, "size": file.size, "table": self.table, "table_id": self.table_id,
                             "items": items,
                             "finished": datetime.now(UTC).isoformat(timespec="seconds")})
        try:
            call_with_retries(lambda: self.s3.put_object(Bucket=self.location.bucket, Key=self._key(file), Body=body,
                                                         **self.put_extra))
        except ClientError as exc:
            self._disable(f"cannot write to {self.location}: {exc.response.get('Error', {}).get('Code', exc)}")

    def clear(self) -> int:
        """Delete this run's markers (after a verified restore); return how many."""
        if not self.enabled:
            return 0
        removed = 0
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.key(""), **self._owner):
            for obj in page.get("Contents", []):
                self.s3.delete_object(Bucket=self.location.bucket, Key=obj["Key"], **self._owner)
                removed += 1
        return removed

    def _note_key(self, name: str) -> str:
        return self.location.key(f"_{safe_part(name)}.json")

    def read_note(self, name: str) -> dict[str, Any] | None:
        """A small record this run left for its own retries (what a replaced table was), or None."""
        try:
            body = call_with_retries(lambda: self.s3.get_object(Bucket=self.location.bucket,
                                                                Key=self._note_key(name), **self._owner))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code", "") in ("NoSuchKey", "NoSuchBucket", "404", "NotFound"):
                return None
            raise
        note: dict[str, Any] = orjson.loads(body["Body"].read())
        return note

    def write_note(self, name: str, data: dict[str, Any]) -> None:
        """Write a record durably; unlike markers, failing to write one fails the caller."""
        body = orjson.dumps(data, default=str)
        call_with_retries(lambda: self.s3.put_object(Bucket=self.location.bucket, Key=self._note_key(name),
                                                     Body=body, **self.put_extra))

    def _disable(self, why: str) -> None:
        log.warning("checkpoints off (%s); a retried worker will load its files again", why)
        self.enabled = False
