"""How far a replica got: per shard, the last record written to it; kept in S3 beside the segments.

    <prefix>/<table>/stream/_replicas/<replica id>.json

Why in S3: a replica runs from the CLI or from a DAG task on any worker; its progress must be
where the segments are, not in one process or in Airflow. It is written only after the writes
it covers have succeeded, so a crash can only make the next run write again what was already
written (the same full images and deletes, in the same order: the same state).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.streamprogress import (
    parse_record,
    put_record,
    record_json,
    records_under,
    stream_location,
)

REPLICAS_FOLDER = "_replicas"


def replica_id(to_table: str, to_region: str | None = None, to_endpoint: str | None = None) -> str:
    """A name for the replica from where it is: its table, region, and endpoint (hashed) if one is given."""
    where = to_region or "default-region"
    if to_endpoint:
        where += "-" + hashlib.sha256(to_endpoint.encode()).hexdigest()[:8]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{to_table}@{where}")


def replica_key(base: S3Location, table: str, name: str) -> str:
    return stream_location(base, table).key(f"{REPLICAS_FOLDER}/{name}.json")


@dataclass
class ReplicaProgress:
    """One replica's progress: the last sequence number written per shard, and the newest change time."""

    table: str
    replica: str
    to_table: str
    to_region: str | None = None
    to_endpoint: str | None = None
    shards: dict[str, str] = field(default_factory=dict)
    """shard id -> the last sequence number written to the replica."""
    segment_starts: dict[str, str] = field(default_factory=dict)
    """shard id -> the first sequence number of the segment holding that record: the next pass lists the
    shard's segments from there on only (ListObjectsV2 StartAfter), not every segment kept."""
    newest_seconds: int | None = None
    """ApproximateCreationDateTime of the newest change written (the lag is now minus this)."""
    applied: int = 0
    caught_up: bool = False
    """Every stored segment was written when this was saved."""
    updated_at: str = ""

    def to_json(self) -> bytes:
        return record_json(self)

    @classmethod
    def from_json(cls, data: bytes, url: str) -> ReplicaProgress:
        return parse_record(cls, data, url, "replica progress object")

    def lag_seconds(self, now: datetime | None = None) -> float | None:
        """Seconds behind the source: now minus the newest change written (None: nothing written yet)."""
        if self.newest_seconds is None:
            return None
        return max(0.0, (now or datetime.now(UTC)).timestamp() - self.newest_seconds)


def load_progress(s3: Any, base: S3Location, table: str, name: str) -> ReplicaProgress | None:
    key = replica_key(base, table, name)
    try:
        body = call_with_retries(lambda: s3.get_object(Bucket=base.bucket, Key=key))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    return ReplicaProgress.from_json(body, f"s3://{base.bucket}/{key}")


def save_progress(s3: Any, base: S3Location, progress: ReplicaProgress) -> None:
    progress.updated_at = datetime.now(UTC).isoformat()
    put_record(s3, base.bucket, replica_key(base, progress.table, progress.replica), progress)


def list_replicas(s3: Any, base: S3Location, table: str) -> list[ReplicaProgress]:
    """Every replica's progress for ``table``."""
    folder = stream_location(base, table).key(REPLICAS_FOLDER + "/")
    return records_under(s3, base.bucket, folder, ReplicaProgress, "replica progress object")
