"""airflow_settings_loader against a real Airflow 3 database (SQLite, fresh AIRFLOW_HOME).

Every Airflow step runs in a subprocess so this test's AIRFLOW_HOME cannot leak
into (or be spoiled by) an Airflow already imported in the pytest process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from airflow_settings_loader import connection_env, load_settings

REPO_ROOT = Path(__file__).resolve().parents[2]
LOADER = REPO_ROOT / "include" / "airflow_settings_loader.py"

SETTINGS = """\
airflow:
  connections:
    - conn_id: aws_local
      conn_type: aws
      conn_login: ${AWS_ACCESS_KEY_ID:-local}
      conn_password: ${AWS_SECRET_ACCESS_KEY:-local}
      conn_extra:
        region_name: us-east-1
        service_config:
          s3: {endpoint_url: "${AWS_ENDPOINT_URL_S3}"}
          dynamodb: {endpoint_url: "${AWS_ENDPOINT_URL_DYNAMODB}"}
          sns: {endpoint_url: "${AWS_ENDPOINT_URL_SNS:-${AWS_ENDPOINT_URL_S3}}"}
    - conn_id: http_api
      conn_type: http
      conn_host: api.example.com
      conn_port: 8443
      conn_schema: https
      conn_extra: '{"timeout": 5}'
  pools:
    - pool_name: dynamodb_export
      pool_slot: ${EXPORT_SLOTS:-4}
      pool_description: Parallel export segments
  variables:
    - variable_name: backup_bucket
      variable_value: ${BUCKET:-first-bucket}
    - variable_name: retention
      variable_value: {days: 35}
"""

# Reads everything back through the ORM, and checks that connection_env() output
# is understood by Airflow and by the Amazon provider's hooks.
READBACK = """\
import json, sys
sys.path.insert(0, sys.argv[1])
from airflow.models import Connection, Pool, Variable
from airflow.providers.amazon.aws.hooks.s3 import S3Hook
from airflow.providers.amazon.aws.hooks.dynamodb import DynamoDBHook

out = {}
from airflow.utils.session import create_session
from sqlalchemy import select
for conn_id in ("aws_local", "http_api"):
    c = Connection.get_connection_from_secrets(conn_id)
    out[conn_id] = {
        "conn_type": c.conn_type, "host": c.host, "schema": c.schema, "login": c.login,
        "password": c.password, "port": c.port, "extra": c.extra_dejson,
    }
with create_session() as session:
    row = session.scalar(select(Connection).where(Connection.conn_id == "aws_local"))
    out["stored_encrypted"] = [row.is_encrypted, row.is_extra_encrypted]
pool = Pool.get_pool("dynamodb_export")
out["pool"] = {"slots": pool.slots, "description": pool.description, "include_deferred": pool.include_deferred}
out["variables"] = {k: Variable.get(k) for k in ("backup_bucket", "retention")}
env_conn = Connection.get_connection_from_secrets("env_only")
out["env_only"] = {"login": env_conn.login, "extra": env_conn.extra_dejson}
out["hooks"] = {
    "s3": S3Hook(aws_conn_id="env_only").get_conn().meta.endpoint_url,
    "dynamodb": DynamoDBHook(aws_conn_id="env_only").get_conn().meta.client.meta.endpoint_url,
}
print("READBACK " + json.dumps(out))
"""


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"{args} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return result


@pytest.fixture(scope="module")
def airflow_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for a fresh, migrated Airflow home (nothing inherited from the caller's Airflow)."""
    home = tmp_path_factory.mktemp("airflow_home")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "AWS_")) and k != "AIRFLOW_HOME"
    }
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__DAGS_FOLDER=str(home / "dags"),
        AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:14569",
        AWS_ENDPOINT_URL_S3="http://127.0.0.1:14572",
        # Connections with a password are stored only with a Fernet key (the loader refuses otherwise).
        AIRFLOW__CORE__FERNET_KEY=Fernet.generate_key().decode(),
    )
    _run([sys.executable, "-m", "airflow", "db", "migrate"], env)
    return env


def _readback(env: dict[str, str]) -> dict[str, Any]:
    result = _run([sys.executable, "-c", READBACK, str(REPO_ROOT / "include")], env)
    line = next(x for x in result.stdout.splitlines() if x.startswith("READBACK "))
    data: dict[str, Any] = json.loads(line.removeprefix("READBACK "))
    return data


@pytest.mark.slow
def test_apply_creates_then_updates(airflow_env: dict[str, str], tmp_path: Path) -> None:
    settings_path = tmp_path / "airflow_settings.yaml"
    settings_path.write_text(textwrap.dedent(SETTINGS))

    first = _run([sys.executable, str(LOADER), str(settings_path)], airflow_env)
    assert first.stdout.splitlines() == [
        "connection aws_local: created",
        "connection http_api: created",
        "pool dynamodb_export: created",
        "variable backup_bucket: created",
        "variable retention: created",
    ]

    # Re-run with other values: everything is updated in place, nothing fails.
    env2 = {**airflow_env, "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:24572", "EXPORT_SLOTS": "8", "BUCKET": "b2"}
    settings2 = load_settings(settings_path, env2)
    aws_json = connection_env(settings2)["AIRFLOW_CONN_AWS_LOCAL"]
    env2["AIRFLOW_CONN_ENV_ONLY"] = aws_json  # the same connection, given only through the environment
    second = _run([sys.executable, str(LOADER), str(settings_path)], env2)
    assert second.stdout.splitlines() == [line.replace("created", "updated") for line in first.stdout.splitlines()]

    got = _readback(env2)
    expected_extra = {
        "region_name": "us-east-1",
        "service_config": {
            "s3": {"endpoint_url": "http://127.0.0.1:24572"},
            "dynamodb": {"endpoint_url": "http://127.0.0.1:14569"},
            "sns": {"endpoint_url": "http://127.0.0.1:24572"},
        },
    }
    assert got["aws_local"] == {
        "conn_type": "aws",
        "host": None,
        "schema": None,
        "login": "local",
        "password": "local",
        "port": None,
        "extra": expected_extra,
    }
    assert got["http_api"] == {
        "conn_type": "http",
        "host": "api.example.com",
        "schema": "https",
        "login": None,
        "password": None,
        "port": 8443,
        "extra": {"timeout": 5},
    }
    assert got["pool"] == {"slots": 8, "description": "Parallel export segments", "include_deferred": False}
    assert got["variables"] == {"backup_bucket": "b2", "retention": '{"days": 35}'}
    assert got["env_only"] == {"login": "local", "extra": expected_extra}
    assert got["hooks"] == {"s3": "http://127.0.0.1:24572", "dynamodb": "http://127.0.0.1:14569"}
    assert got["stored_encrypted"] == [True, True]  # the password and the extra, with the Fernet key


@pytest.mark.slow
def test_without_a_fernet_key_secrets_are_refused_and_nothing_is_written(
    airflow_env: dict[str, str], tmp_path: Path
) -> None:
    settings_path = tmp_path / "airflow_settings.yaml"
    settings_path.write_text(textwrap.dedent("""\
        airflow:
          connections:
            - {conn_id: clear_text, conn_type: aws, conn_login: AKIAEXAMPLE, conn_password: wJalrXUtnFEMI}
          pools:
            - {pool_name: refused_pool, pool_slot: 2}
        """))
    no_key = {**airflow_env, "AIRFLOW__CORE__FERNET_KEY": ""}
    result = subprocess.run([sys.executable, str(LOADER), str(settings_path)], env=no_key, capture_output=True,
                            text=True, timeout=300, check=False)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"{settings_path}: connections (clear_text): conn_password would be stored unencrypted: "
        "set AIRFLOW__CORE__FERNET_KEY")
    check = _run([sys.executable, "-c", "import json; from airflow.models import Connection, Pool; "
                  "from airflow.exceptions import AirflowNotFoundException\n"
                  "try:\n    Connection.get_connection_from_secrets('clear_text'); found = True\n"
                  "except AirflowNotFoundException:\n    found = False\n"
                  "print('FOUND', json.dumps([found, Pool.get_pool('refused_pool') is not None]))"], no_key)
    assert json.loads(check.stdout.split("FOUND ", 1)[1]) == [False, False]  # refused before any write

    # The deployments' file holds no secret: it applies without a Fernet key.
    deploy = _run([sys.executable, str(LOADER), str(REPO_ROOT / "airflow_settings.yaml")], no_key)
    assert any(line.startswith("pool dynamodb_export: ") for line in deploy.stdout.splitlines()), deploy.stdout


def test_cli_reports_invalid_file(tmp_path: Path) -> None:
    path = tmp_path / "airflow_settings.yaml"
    path.write_text("airflow:\n  connections:\n    - {conn_id: ok, conn_type: aws}\n    - {conn_type: aws}\n")
    result = subprocess.run([sys.executable, str(LOADER), str(path)], capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == f"{path}: connections[1]: missing conn_id"
