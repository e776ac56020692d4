"""One real Airflow (``airflow standalone``, LocalExecutor on Postgres) shared by the end-to-end tests.

The Airflow runs in its own home, on free ports, against the session's dynalite and moto
(``local_aws`` in tests/conftest.py), with remote task logging to a logs bucket in moto. Its AWS
connection uses credentials made up for this session (``E2E_ACCESS_KEY`` / ``E2E_SECRET_KEY``)
so the tests can look for them in logs, XComs and sidecars: the session's front door knows them.

Each test gets its own table and DAG through one backups file written before Airflow starts.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "include"))

from airflow_e2e import ARTIFACTS, E2E, E2E_ACCESS_KEY, E2E_SECRET_KEY, SUFFIX, E2ETables, e2e_airflow_env  # noqa: E402
from pitr_history import PitrHistory  # noqa: E402

from celery_backends import start_postgres, stop_postgres  # noqa: E402
from demo_data import TABLE_SPECS, create_table, put_items, referrer_items  # noqa: E402
from faultproxy import Principal  # noqa: E402
from local_airflow import start_airflow  # noqa: E402
from local_aws import free_port  # noqa: E402


@pytest.fixture(scope="session")
def e2e(local_aws: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[E2E]:
    tables = E2ETables()
    if local_aws.door is not None:  # the strict front door in front of every server checks signatures
        local_aws.door.add_principal(Principal(E2E_ACCESS_KEY, E2E_SECRET_KEY))
    ddb = local_aws.dynamodb_client()
    for name in (tables.logs, tables.backfill, tables.ui, tables.console):
        create_table(ddb, name, TABLE_SPECS["ReferrerCounts"])
        put_items(ddb, name, referrer_items(600))
    # Its history takes minutes to write: start it now, so the wait overlaps Airflow's start and the other tests.
    pitr_history = PitrHistory(ddb, tables.pitr).start()
    bucket, prefix = f"e2e-backups-{SUFFIX}", "backups"
    log_bucket, log_prefix = f"e2e-logs-{SUFFIX}", "airflow"
    work = tmp_path_factory.mktemp("e2e_airflow")
    backups = work / "backups.yaml"
    backups.write_text(json.dumps({
        "defaults": {"bucket": bucket, "prefix": prefix, "schedule": None, "read_ratio": 1.0,
                     "max_workers": 2, "segments": 4},
        "backups": [{"table": tables.logs}, {"table": tables.backfill, "schedule": "@daily"},
                    {"table": tables.ui}, {"table": tables.console}],
    }))
    env = e2e_airflow_env(local_aws, backups)
    # The in-process test settings of tests/conftest.py must not leak into the real Airflow.
    for name in ("AIRFLOW__CORE__UNIT_TEST_MODE",):
        os.environ.pop(name, None)
    # Postgres, not SQLite, as production runs it: the scheduler and a CLI (backfill create) write at
    # once without "database is locked". Its folder must be reachable by the postgres user.
    pg_parent = Path(tempfile.mkdtemp(prefix="e2e-pg-"))
    pg_parent.chmod(0o755)
    postgres = start_postgres(pg_parent / "postgres", free_port())
    env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = postgres.url("postgresql+psycopg2")
    try:
        airflow = start_airflow(work / "home", REPO_ROOT / "dags", env,
                                log_uri=f"s3://{log_bucket}/{log_prefix}", buckets=[bucket])
    except BaseException:
        stop_postgres(postgres.pid)
        shutil.rmtree(pg_parent, ignore_errors=True)
        raise
    try:
        for table in (tables.logs, tables.backfill, tables.ui, tables.console):
            airflow.wait_for_dag(f"dynamodb_backup_{table}")
        yield E2E(airflow=airflow, local_aws=local_aws, bucket=bucket, prefix=prefix,
                  log_bucket=log_bucket, log_prefix=log_prefix, tables=tables, backups_file=backups,
                  pitr_history=pitr_history)
    finally:
        print(f"\nstandalone Airflow memory at the end: {airflow.memory_mb():.0f} MB", file=sys.stderr)
        airflow.stop()
        stop_postgres(postgres.pid)
        shutil.rmtree(pg_parent, ignore_errors=True)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the pitr backfill last: it waits for the history the session started writing (about 4 minutes)."""
    items.sort(key=lambda item: item.path.name == "test_pitr_backfill.py")


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
