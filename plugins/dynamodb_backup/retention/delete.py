"""Deleting a backup folder for good, in DeleteObjects batches, skipping what S3 Object Lock protects.

What "deleted" means here: every version of every object under the folder is removed (its delete
markers too), so the storage is freed. On an unversioned bucket that is the one ``null`` version; on a
versioned bucket a plain DELETE would only add a delete marker and keep paying for the data, and Object
Lock (which needs versioning) never refuses a delete marker, only the removal of a locked version.

Order, so that a folder is never left looking complete with data missing, and a half-deleted folder
still shows it is ours: ``_SUCCESS`` first (if it is locked, nothing else of the folder is touched),
then everything else, and the sidecar last, only when nothing was refused. What is left is a partial
folder of ours that the next prune tries again (a lock expires).

A version S3 refuses (``AccessDenied`` in DeleteObjects' errors) is reported as locked only when its
legal hold is ON or its retention date is in the future (read back with GetObjectLegalHold and
GetObjectRetention); any other refusal is an error, so a missing permission is not mistaken for a lock.
Governance-mode locks are not bypassed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.backup.seal import abort_open_uploads
from dynamodb_backup.formats.layout import SIDECAR, SUCCESS, S3Location
from dynamodb_backup.loading.checkpoint import default_checkpoint_base

log = logging.getLogger(__name__)

BATCH = 1000  # DeleteObjects' limit
DRILLS = "_drills"


@dataclass
class DeleteOutcome:
    folder: str
    deleted: int = 0
    """Object versions (and delete markers) removed."""
    locked: list[str] = field(default_factory=list)
    """``key (version)`` refused because Object Lock holds them."""
    errors: list[str] = field(default_factory=list)
    """Other refusals: ``key (version): Code Message``."""
    beside: int = 0
    """Removed beside the folder: the restores' checkpoints and the drill record of this folder."""

    @property
    def gone(self) -> bool:
        return not self.locked and not self.errors

    def describe(self) -> str:
        text = f"{self.folder}/: {self.deleted} object versions deleted"
        if self.beside:
            text += f", {self.beside} beside it (restore checkpoints, drill record)"
        if self.locked:
            text += f"; {len(self.locked)} kept under Object Lock (e.g. {self.locked[0]})"
        if self.errors:
            text += f"; {len(self.errors)} refused (e.g. {self.errors[0]})"
        return text


def versions_under(s3: Any, bucket: str, prefix: str) -> list[dict[str, str]]:
    """Every version and delete marker under ``prefix`` as DeleteObjects entries (``null`` when unversioned)."""
    found: list[dict[str, str]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            found.append({"Key": entry["Key"], "VersionId": str(entry.get("VersionId") or "null")})
    return found


def _batches(entries: list[dict[str, str]]) -> Iterator[list[dict[str, str]]]:
    for i in range(0, len(entries), BATCH):
        yield entries[i:i + BATCH]


def delete_versions(s3: Any, bucket: str, entries: list[dict[str, str]], outcome: DeleteOutcome,
                    extra: dict[str, Any] | None = None) -> None:
    """DeleteObjects in batches of 1000; sort what is refused into ``locked`` and ``errors``."""
    for batch in _batches(entries):

        def send(batch: list[dict[str, str]] = batch) -> Any:
            return s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}, **(extra or {}))

        refused = call_with_retries(send).get("Errors", [])
        outcome.deleted += len(batch) - len(refused)
        sent = {entry["Key"]: entry["VersionId"] for entry in batch}
        for error in refused:
            version = error.get("VersionId") or sent.get(error.get("Key", ""), "null")
            what = f"{error.get('Key')} ({version})"
            if error.get("Code") == "AccessDenied" and is_locked(s3, bucket, error["Key"], version):
                outcome.locked.append(what)
            else:
                outcome.errors.append(f"{what}: {error.get('Code')} {error.get('Message', '')}".strip())


def is_locked(s3: Any, bucket: str, key: str, version: str | None, now: datetime | None = None) -> bool:
    """Whether Object Lock holds this version now: a legal hold ON, or a retention date still ahead.

    Read with HeadObject, which reports both (given s3:GetObjectRetention and s3:GetObjectLegalHold).
    """
    which = {"VersionId": version} if version and version != "null" else {}
    try:
        head = s3.head_object(Bucket=bucket, Key=key, **which)
    except ClientError as exc:
        log.warning("cannot read the lock of %s (%s): %s", key, version, exc)
        return False
    if head.get("ObjectLockLegalHoldStatus") == "ON":
        return True
    until = head.get("ObjectLockRetainUntilDate")
    return bool(head.get("ObjectLockMode")) and until is not None and until > (now or datetime.now(UTC))


def delete_folder(s3: Any, folder: S3Location, extra: dict[str, Any] | None = None) -> DeleteOutcome:
    """Remove every version under ``folder/`` (``_SUCCESS`` first, the sidecar last), then what lies beside it."""
    outcome = DeleteOutcome(folder.uri)
    abort_open_uploads(s3, folder)
    entries = versions_under(s3, folder.bucket, folder.key(""))
    success = [e for e in entries if e["Key"] == folder.key(SUCCESS)]
    sidecar = [e for e in entries if e["Key"] == folder.key(SIDECAR)]
    rest = [e for e in entries if e["Key"] not in (folder.key(SUCCESS), folder.key(SIDECAR))]
    delete_versions(s3, folder.bucket, success, outcome, extra)
    if not outcome.gone:
        log.warning("%s: its _SUCCESS cannot be deleted; the folder is left whole", folder)
        return outcome
    delete_versions(s3, folder.bucket, rest, outcome, extra)
    if not outcome.gone:
        return outcome  # keep the sidecar: what is left still shows it is ours, and the next prune tries again
    delete_versions(s3, folder.bucket, sidecar, outcome, extra)
    if outcome.gone:
        outcome.beside = _delete_beside(s3, folder, outcome, extra)
    return outcome


def _delete_beside(s3: Any, folder: S3Location, outcome: DeleteOutcome, extra: dict[str, Any] | None) -> int:
    """The folder's restore checkpoints and drill record (``<table>/_drills/<name>.json``) go with it."""
    beside = DeleteOutcome(folder.uri)
    parent, _, name = folder.prefix.rpartition("/")
    checkpoints = default_checkpoint_base(folder)
    entries = versions_under(s3, folder.bucket, checkpoints.key(""))
    drill = S3Location(folder.bucket, parent).child(DRILLS).key(f"{name}.json")
    entries += [e for e in versions_under(s3, folder.bucket, drill) if e["Key"] == drill]
    delete_versions(s3, folder.bucket, entries, beside, extra)
    outcome.locked += beside.locked
    outcome.errors += beside.errors
    return beside.deleted
