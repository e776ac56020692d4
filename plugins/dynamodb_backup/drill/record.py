"""A restore drill's result, kept beside the backup it tested.

``s3://<bucket>/<prefix>/<table>/_drills/<folder-name>.json`` (folder-name: the dated folder,
YYYY-MM-DD-HH-MM-SS), one JSON object with exactly these keys: ``folder`` (s3 uri), ``result``
("passed" or "failed"), ``started``, ``finished`` (ISO-8601 UTC), ``duration_seconds``, ``items``,
``items_per_second``, ``scratch_table``, ``error`` (string or null), ``dag_id``, ``run_id``.
The newest drill of a folder replaces the record before it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from botocore.exceptions import ClientError

from dynamodb_backup.formats.layout import S3Location

DRILLS = "_drills"
PASSED, FAILED = "passed", "failed"
KEYS = ("folder", "result", "started", "finished", "duration_seconds", "items", "items_per_second",
        "scratch_table", "error", "dag_id", "run_id")


def drill_location(folder: S3Location | str) -> tuple[str, str]:
    """(bucket, key) of the drill record of ``folder``."""
    location = S3Location.parse(folder) if isinstance(folder, str) else folder
    parent, _, name = location.prefix.rpartition("/")
    return location.bucket, S3Location(location.bucket, parent).child(DRILLS).key(f"{name}.json")


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def make_record(*, folder: str, passed: bool, started: datetime, finished: datetime, items: int | None,
                scratch_table: str, error: str | None, dag_id: str, run_id: str) -> dict[str, Any]:
    seconds = max((finished - started).total_seconds(), 0.0)
    return {
        "folder": folder, "result": PASSED if passed else FAILED, "started": iso(started), "finished": iso(finished),
        "duration_seconds": round(seconds, 3), "items": items,
        "items_per_second": round(items / seconds, 1) if items is not None and seconds > 0 else None,
        "scratch_table": scratch_table, "error": None if passed else (error or "failed"),
        "dag_id": dag_id, "run_id": run_id,
    }


def write_drill(s3: Any, record: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """Store ``record`` beside its folder; returns the record's s3 uri."""
    assert tuple(record) == KEYS, sorted(record)
    bucket, key = drill_location(record["folder"])
    s3.put_object(Bucket=bucket, Key=key, Body=orjson.dumps(record, option=orjson.OPT_INDENT_2),
                  ContentType="application/json", **(extra or {}))
    return f"s3://{bucket}/{key}"


def read_drill(s3: Any, folder: S3Location | str) -> dict[str, Any] | None:
    """The last drill of ``folder``, or None when it was never drilled."""
    bucket, key = drill_location(folder)
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise
    record: dict[str, Any] = orjson.loads(body)
    return record
