"""What one stand-in process was started with."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

# AWS: LatestRestorableDateTime is "typically 5 minutes before the current time".
DEFAULT_LAG_SECONDS = 300.0
# Exports stay IN_PROGRESS at least this long, so callers' wait loops really wait.
DEFAULT_MIN_EXPORT_SECONDS = 2.0
LAG_ENV = "LOCAL_PITR_LAG_SECONDS"


def default_lag_seconds() -> float:
    value = os.environ.get(LAG_ENV)
    return float(value) if value else DEFAULT_LAG_SECONDS


@dataclass(frozen=True)
class Settings:
    port: int
    upstream: str
    s3_endpoint: str
    state_dir: Path
    host: str = "127.0.0.1"
    lag_seconds: float = DEFAULT_LAG_SECONDS
    min_export_seconds: float = DEFAULT_MIN_EXPORT_SECONDS
    partitions: int = 4  # data files per full export, one per hashed key range
    streams: str = "relay"  # "journal": serve DynamoDB Streams over the journal (streams.py)
