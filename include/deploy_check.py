#!/usr/bin/env python
"""Refuse to start a deployment that would store secrets in clear, or back up to no named bucket.

docker compose's ``airflow-init`` and the Helm chart's migration job run it before ``airflow db
migrate``; it prints one line per problem, naming the setting, and exits 1::

    deploy check: AIRFLOW__CORE__FERNET_KEY is not set: Airflow would store connection passwords ...
    deploy check: /opt/airflow/include/backups.yaml: backups[0]: bucket: ${DYNAMODB_BACKUP_BUCKET} is not set ...

What it checks:

* Airflow has a valid Fernet key (``AIRFLOW__CORE__FERNET_KEY``, one key or several separated by
  commas): without one, Airflow stores every connection's password and extra in clear.
* The backups file (``DYNAMODB_BACKUPS_FILE``) loads: each table names its bucket (there is no default
  bucket) and a configured notices topic is an SNS topic ARN.
* With remote logging on, the log folder (``AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER``) is an
  ``s3://bucket/prefix`` URI (there is no default log bucket either).

:func:`problems` takes every input as a value (no Airflow import), so it is tested directly; the
command line reads them from Airflow's configuration and the environment.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path

FERNET_HINT = "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
_S3_FOLDER_RE = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?")


def fernet_problem(key: str) -> str | None:
    """Why ``key`` cannot encrypt connections (empty, or a part that is not a Fernet key); None if it can."""
    from cryptography.fernet import Fernet

    if not key.strip():
        return (f"AIRFLOW__CORE__FERNET_KEY is not set: Airflow would store connection passwords and extras in "
                f"clear; generate one with {FERNET_HINT}")
    for index, part in enumerate(key.split(",")):
        try:
            Fernet(part.strip().encode())
        except (ValueError, TypeError):
            return (f"AIRFLOW__CORE__FERNET_KEY: key {index + 1} is not a Fernet key (32 url-safe base64-encoded "
                    f"bytes); generate one with {FERNET_HINT}")
    return None


def problems(*, fernet_key: str, backups_file: Path, remote_logging: bool, log_folder: str,
             environ: Mapping[str, str]) -> list[str]:
    """Every reason the deployment must not start, one line each (empty: it may)."""
    from dynamodb_backup.config import load_backups
    from dynamodb_backup.errors import ParameterError

    found = [p for p in [fernet_problem(fernet_key)] if p]
    try:
        load_backups(backups_file, environ=dict(environ))
    except ParameterError as exc:
        found.append(str(exc))
    if remote_logging and not _S3_FOLDER_RE.fullmatch(log_folder.strip()):
        found.append(f"AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER is {log_folder.strip() or 'not set'!s}: remote "
                     "logging needs the s3://bucket/prefix your task logs go to (DYNAMODB_BACKUP_LOG_URI in "
                     "docker compose)")
    return found


def main() -> int:
    from airflow.configuration import conf

    backups_file = Path(os.environ.get("DYNAMODB_BACKUPS_FILE")
                        or Path(__file__).resolve().parent / "backups.yaml")
    found = problems(
        fernet_key=conf.get("core", "fernet_key", fallback="") or "",
        backups_file=backups_file,
        remote_logging=conf.getboolean("logging", "remote_logging", fallback=False),
        log_folder=conf.get("logging", "remote_base_log_folder", fallback="") or "",
        environ=os.environ,
    )
    for line in found:
        print(f"deploy check: {line}", file=sys.stderr)
    if not found:
        print(f"deploy check: OK (Fernet key set, {backups_file} loads, task logs where configured)")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
