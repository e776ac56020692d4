"""docker-compose.yaml and deploy/helm-values.yaml: what can be checked without Docker or Kubernetes.

The compose file is validated against the compose-spec JSON schema (tests/fixtures/compose-spec.json,
a copy of compose-spec/compose-spec's schema/compose-spec.json, its origin in tests/fixtures/compose-spec.source.json),
and both files are checked for the shape this project needs: the CeleryExecutor on Postgres and Redis,
our image, remote logging to S3, N workers, and the pool from airflow_settings.yaml.
What they must never carry (local endpoints, secrets, default buckets) is in test_deploy_defaults.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = load(REPO / "docker-compose.yaml")
    return doc


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    doc: dict[str, Any] = load(REPO / "deploy" / "helm-values.yaml")
    return doc


def test_compose_file_is_valid_against_the_compose_spec(compose):
    schema = json.loads((FIXTURES / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_the_schema_check_catches_a_broken_compose_file(compose):
    schema = json.loads((FIXTURES / "compose-spec.json").read_text())
    broken = json.loads(json.dumps(compose))
    broken["services"]["airflow-worker"]["deploy"]["replicas"] = ["two"]
    broken["services"]["redis"]["healthcheck"]["interval_typo"] = "10s"
    errors = list(jsonschema.Draft7Validator(schema).iter_errors(broken))
    assert len(errors) >= 2


def test_compose_runs_our_image_with_celery_on_postgres_and_redis(compose):
    services = compose["services"]
    assert {"postgres", "redis", "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker"} <= set(services)
    airflow = {name: s for name, s in services.items() if name.startswith("airflow-")}
    for name, service in airflow.items():
        assert service["build"] == ".", name  # our Dockerfile
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://"), name
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://"), name
        assert env["AIRFLOW__LOGGING__REMOTE_LOGGING"] == "true", name
        assert "s3://" in env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"], name
    worker = services["airflow-worker"]
    assert worker["command"].startswith("celery worker") and "dynamodb" in worker["command"]
    assert "replicas" in worker["deploy"]
    assert (REPO / "Dockerfile").exists()


def test_helm_values_run_celery_with_our_image_logs_in_s3_and_the_pool(values):
    assert values["executor"] == "CeleryExecutor"
    assert values["images"]["airflow"]["repository"] and values["images"]["airflow"]["tag"]
    assert values["workers"]["replicas"] >= 2
    config = values["config"]
    assert config["logging"]["remote_logging"] == "True"
    # The log folder is the deployment's own: from the settings ConfigMap, checked by deploy_check.py.
    assert "remote_base_log_folder" not in config["logging"]
    assert "dynamodb-backup-settings" in values["extraEnvFrom"]
    pools = load(REPO / "airflow_settings.yaml")["airflow"]["pools"]
    assert "dynamodb_export" in {p["pool_name"] for p in pools}
    migrate = " ".join(values["migrateDatabaseJob"]["args"])
    assert "airflow db migrate" in migrate
    assert "airflow_settings_loader.py /opt/airflow/airflow_settings.yaml" in migrate
    assert "celery worker" in " ".join(values["workers"]["args"])
