"""Helpers shared by the end-to-end tests (constants, the E2E handle)."""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local_airflow import LocalAirflow

REPO_ROOT = Path(__file__).resolve().parents[2]
E2E_ACCESS_KEY = "AKIAE2E" + secrets.token_hex(6).upper()
E2E_SECRET_KEY = "e2eSecret" + secrets.token_urlsafe(24).replace("-", "x").replace("_", "y")
ARTIFACTS = REPO_ROOT / "test-artifacts"
SUFFIX = uuid.uuid4().hex[:6]


@dataclass(frozen=True)
class E2ETables:
    logs: str = f"e2e-logs-{SUFFIX}"
    backfill: str = f"e2e-backfill-{SUFFIX}"
    ui: str = f"e2e-ui-{SUFFIX}"
    pitr: str = f"e2e-pitr-{SUFFIX}"
    console: str = f"e2e-console-{SUFFIX}"


@dataclass
class E2E:
    """The shared Airflow and where it writes."""

    airflow: LocalAirflow
    local_aws: Any  # tests/conftest.py LocalAws
    bucket: str
    prefix: str
    log_bucket: str
    log_prefix: str
    tables: E2ETables
    #: The backups file the Airflow under test reads (a test may add an entry; the DAG appears on re-parse).
    backups_file: Path | None = None
    #: A table whose history is being written in the background (see pitr_history.py).
    pitr_history: Any = None

    def s3(self) -> Any:
        return self.local_aws.s3_client(aws_access_key_id=E2E_ACCESS_KEY, aws_secret_access_key=E2E_SECRET_KEY)

    def dag_id(self, table: str) -> str:
        return f"dynamodb_backup_{table}"

    def keys(self, bucket: str, prefix: str) -> dict[str, dict[str, Any]]:
        """Every object under ``prefix``: key -> list_objects_v2 entry."""
        found: dict[str, dict[str, Any]] = {}
        for page in self.s3().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                found[obj["Key"]] = obj
        return found

    def read(self, bucket: str, key: str) -> bytes:
        body: bytes = self.s3().get_object(Bucket=bucket, Key=key)["Body"].read()
        return body


def log_in(page: Any, af: Any) -> None:
    """Sign in to the Airflow under test in a Playwright page, as its admin user."""
    page.goto(af.url + "/")
    page.get_by_label("Username").fill(af.user)
    page.get_by_label("Password").fill(af.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url)


def e2e_airflow_env(local_aws: Any, backups_file: Path, **extra: str) -> dict[str, str]:
    """What an Airflow under test runs with: the local AWS endpoints, this session's credentials (in the
    ``aws_default`` connection too) and its backups file."""
    return {
        **e2e_conn_env(local_aws),
        "AWS_ENDPOINT_URL_DYNAMODB": local_aws.dynamodb_url,
        "AWS_ENDPOINT_URL_S3": local_aws.s3_url,
        "AWS_ENDPOINT_URL_SNS": local_aws.sns_url,
        "AWS_ACCESS_KEY_ID": E2E_ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": E2E_SECRET_KEY,
        "AWS_DEFAULT_REGION": local_aws.region,
        "DYNAMODB_BACKUPS_FILE": str(backups_file),
        **extra,
    }


def e2e_conn_env(local_aws: Any) -> dict[str, str]:
    """The ``aws_default`` connection for the Airflow under test, with this session's credentials."""
    value = {"conn_type": "aws", "login": E2E_ACCESS_KEY, "password": E2E_SECRET_KEY,
             "extra": local_aws.connection_extra()}
    return {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(value)}
