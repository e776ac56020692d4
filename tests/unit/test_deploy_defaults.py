"""Production-safe defaults of the deploy paths (Dockerfile, docker-compose.yaml, deploy/helm-values.yaml).

* No deploy path stores local endpoints or secrets in the metadata database: what compose's airflow-init
  and the Helm migration job apply holds no connection and no variable, and the image leaves the local
  stack's settings out.
* A Fernet key is required: compose stops with one line when AIRFLOW_FERNET_KEY is missing (checked with
  the compose-spec interpolation rules, Docker cannot run here), Helm reads it from a Secret, and
  include/deploy_check.py stops the init/migration job with one line.
* Notices are off until a topic is configured, with a visible warning on the DAG; no placeholder ARN.
* The bucket must be named: no default bucket anywhere, one line naming the setting when it is missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.fernet import Fernet

from deploy_check import problems
from dynamodb_backup.config import NOTICES_OFF_TAG, load_backups, notices_doc
from dynamodb_backup.errors import ParameterError

REPO = Path(__file__).resolve().parents[2]
BACKUPS = REPO / "include" / "backups.yaml"
LOCAL_SETTINGS = REPO / "include" / "local-airflow-settings.yaml"
DEPLOY_SETTINGS = REPO / "airflow_settings.yaml"
LOCAL_MARKERS = ("127.0.0.1", "localhost", ":4569", ":4572", "local-airflow-settings")
REQUIRED = ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "DYNAMODB_BACKUP_BUCKET", "DYNAMODB_BACKUP_LOG_URI")
TOPIC = "arn:aws:sns:eu-west-1:111122223333:backup-failures"


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


# --------------------------------------------------------------------------- compose's interpolation


class MissingVariable(Exception):
    pass


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """compose-spec interpolation: ${V}, ${V:-default}, ${V-default}, ${V:?error}, ${V?error}; $$ is a '$'."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        unset = name not in env
        empty = unset or env[name] == ""
        if op in (":?", "?") and (empty if op == ":?" else unset):
            raise MissingVariable(f"required variable {name} is missing a value: {arg}")
        if op in (":-", "-") and (empty if op == ":-" else unset):
            return arg
        return env.get(name, "")

    parts = value.split("$$")
    return "$".join(_VAR.sub(one, part) for part in parts)


def compose_errors(env: dict[str, str]) -> list[str]:
    """What `docker compose config` would stop on, one service key at a time (it stops on the first)."""
    compose = load(REPO / "docker-compose.yaml")
    errors: list[str] = []
    for service in compose["services"].values():
        for value in (service.get("environment") or {}).values():
            try:
                interpolate(value, env)
            except MissingVariable as exc:
                errors.append(str(exc))
    return sorted(set(errors))


def full_env() -> dict[str, str]:
    return {"AIRFLOW_FERNET_KEY": Fernet.generate_key().decode(), "AIRFLOW_JWT_SECRET": "x" * 32,
            "DYNAMODB_BACKUP_BUCKET": "acme-dynamodb-backups", "DYNAMODB_BACKUP_LOG_URI": "s3://acme-logs/airflow"}


def test_compose_needs_the_fernet_key_the_bucket_and_the_log_folder_one_line_each():
    assert compose_errors(full_env()) == []
    for name in REQUIRED:
        env = {k: v for k, v in full_env().items() if k != name}
        errors = compose_errors(env)
        assert len(errors) == 1 and errors[0].startswith(f"required variable {name} is missing a value: set {name}")
        # An empty value is as missing as an unset one (":?").
        assert compose_errors({**full_env(), name: ""}) == errors


def test_the_interpolation_rules_of_the_check_catch_a_default():
    """The check can fail: a ':-' default would make the variable optional again."""
    assert interpolate("${B:-dynamodb-backups}", {}) == "dynamodb-backups"
    with pytest.raises(MissingVariable, match="required variable B is missing a value: name it"):
        interpolate("${B:?name it}", {"B": ""})
    assert interpolate("$${NOT_A_VAR}", {}) == "${NOT_A_VAR}"


def test_compose_has_no_default_bucket_log_folder_topic_or_key():
    env = load(REPO / "docker-compose.yaml")["x-airflow-common"]["environment"]
    for key in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER", "DYNAMODB_BACKUP_BUCKET"):
        assert ":?" in env[key], key
    assert env["DYNAMODB_BACKUP_FAILURE_TOPIC_ARN"] == "${DYNAMODB_BACKUP_FAILURE_TOPIC_ARN:-}"
    interpolated = interpolate(env, full_env())
    assert interpolated["DYNAMODB_BACKUP_FAILURE_TOPIC_ARN"] == ""  # notices off until a topic is set
    assert interpolated["DYNAMODB_BACKUP_BUCKET"] == "acme-dynamodb-backups"


# --------------------------------------------------------------------------- nothing local, no secret stored


def applied_settings_files() -> dict[str, str]:
    """The settings file each deploy path applies to its metadata database (from its command)."""
    compose = load(REPO / "docker-compose.yaml")
    init = "\n".join(compose["services"]["airflow-init"]["command"])
    migrate = " ".join(load(REPO / "deploy" / "helm-values.yaml")["migrateDatabaseJob"]["args"])
    found = {}
    for where, command in (("compose airflow-init", init), ("helm migrateDatabaseJob", migrate)):
        match = re.search(r"airflow_settings_loader\.py (\S+)", command)
        assert match, f"{where} applies no settings file"
        found[where] = match.group(1)
    return found


def test_deploy_paths_apply_the_pool_only_file():
    for where, path in applied_settings_files().items():
        assert path == "/opt/airflow/airflow_settings.yaml", where
    airflow = load(DEPLOY_SETTINGS)["airflow"]
    assert set(airflow) == {"pools"}  # no connections, no variables: nothing that can hold an endpoint or secret
    assert [p["pool_name"] for p in airflow["pools"]] == ["dynamodb_export"]


def test_no_deploy_file_names_a_local_endpoint_or_login():
    """What the deploy paths run with (not their comments, nor a container's own health check on localhost)."""
    compose = load(REPO / "docker-compose.yaml")
    run_with = {
        "Dockerfile": "\n".join(line for line in (REPO / "Dockerfile").read_text().splitlines()
                                if not line.lstrip().startswith("#")),
        "docker-compose.yaml environment": yaml.safe_dump(compose["x-airflow-common"]),
        "docker-compose.yaml airflow-init": yaml.safe_dump(compose["services"]["airflow-init"]),
        "deploy/helm-values.yaml": yaml.safe_dump(load(REPO / "deploy" / "helm-values.yaml")),
        "airflow_settings.yaml": yaml.safe_dump(load(DEPLOY_SETTINGS)),
    }
    for name, text in run_with.items():
        for marker in LOCAL_MARKERS:
            assert marker not in text, f"{name} names {marker}"
        assert not re.search(r"(login|ACCESS_KEY_ID)\W+local\b", text), name
    # The check can fail: the local stack's file names both.
    assert "127.0.0.1" in LOCAL_SETTINGS.read_text()


def test_the_image_leaves_the_local_settings_out():
    dockerfile = (REPO / "Dockerfile").read_text()
    copied = [line.split()[-2] for line in dockerfile.splitlines() if line.startswith("COPY")]
    # The root airflow_settings.yaml is the deployments' file (the pool only), copied as itself.
    assert [c for c in copied if c.endswith(".yaml")] == ["airflow_settings.yaml"]
    assert "include/" in copied  # include/ is copied whole, so .dockerignore must drop the local file
    ignored = (REPO / ".dockerignore").read_text().split()
    assert "include/local-airflow-settings.yaml" in ignored
    assert set(load(REPO / "airflow_settings.yaml")["airflow"]) == {"pools"}


def test_the_local_settings_keep_their_endpoints_but_no_credentials():
    from airflow_settings_loader import load_settings

    settings = load_settings(LOCAL_SETTINGS, {})
    (conn,) = settings.connections
    assert conn.conn_id == "aws_default" and conn.login is None and conn.password is None
    assert conn.extra is not None
    assert conn.extra["service_config"]["dynamodb"]["endpoint_url"] == "http://127.0.0.1:4569"
    assert conn.secret_fields() == []


def test_helm_reads_the_fernet_key_from_a_secret_and_checks_before_migrating():
    values = load(REPO / "deploy" / "helm-values.yaml")
    assert values["fernetKeySecretName"] == "dynamodb-backup-fernet-key"
    assert "fernetKey" not in values  # never a key in a values file
    command = values["migrateDatabaseJob"]["args"][-1]
    assert command.index("deploy_check.py") < command.index("airflow db migrate")
    names = {e["name"] for e in values["env"]}
    assert "DYNAMODB_BACKUP_BUCKET" not in names and "s3://" not in yaml.safe_dump(values["config"])


def test_compose_init_checks_before_migrating():
    init = "\n".join(load(REPO / "docker-compose.yaml")["services"]["airflow-init"]["command"])
    assert "set -e" in init and init.index("deploy_check.py") < init.index("airflow db migrate")


# --------------------------------------------------------------------------- deploy_check


def check(tmp_path: Path, **overrides: Any) -> list[str]:
    args: dict[str, Any] = {"fernet_key": Fernet.generate_key().decode(), "backups_file": BACKUPS,
                            "remote_logging": True, "log_folder": "s3://acme-logs/airflow",
                            "environ": {"DYNAMODB_BACKUP_BUCKET": "acme-dynamodb-backups"}}
    args.update(overrides)
    return problems(**args)


def test_deploy_check_passes_a_complete_deployment(tmp_path):
    assert check(tmp_path) == []
    two_keys = f"{Fernet.generate_key().decode()},{Fernet.generate_key().decode()}"  # during a rotation
    assert check(tmp_path, fernet_key=two_keys) == []


@pytest.mark.parametrize(("overrides", "line"), [
    ({"fernet_key": ""}, "AIRFLOW__CORE__FERNET_KEY is not set: Airflow would store connection passwords"),
    ({"fernet_key": "not-a-key"}, "AIRFLOW__CORE__FERNET_KEY: key 1 is not a Fernet key"),
    ({"environ": {}}, f"{BACKUPS}: backups[0]: bucket: ${{DYNAMODB_BACKUP_BUCKET}} is not set"),
    ({"environ": {"DYNAMODB_BACKUP_BUCKET": "acme-dynamodb-backups",
                  "DYNAMODB_BACKUP_FAILURE_TOPIC_ARN": "backup-failures"}},
     f"{BACKUPS}: backups[0]: failure_sns_topic_arn: 'backup-failures' is not an SNS topic ARN"),
    ({"log_folder": ""}, "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER is not set: remote logging needs"),
])
def test_deploy_check_names_each_missing_setting_in_one_line(tmp_path, overrides, line):
    found = check(tmp_path, **overrides)
    assert len(found) == 1 and found[0].startswith(line), found
    assert "\n" not in found[0]


def test_deploy_check_without_remote_logging_needs_no_log_folder(tmp_path):
    assert check(tmp_path, remote_logging=False, log_folder="") == []


# --------------------------------------------------------------------------- bucket and notices in backups.yaml


def test_the_shipped_backups_file_names_no_bucket_and_says_which_variable():
    with pytest.raises(ParameterError) as info:
        load_backups(BACKUPS, environ={})
    assert str(info.value) == (
        f"{BACKUPS}: backups[0]: bucket: ${{DYNAMODB_BACKUP_BUCKET}} is not set (set the environment variable "
        "DYNAMODB_BACKUP_BUCKET, or write ${DYNAMODB_BACKUP_BUCKET:-default})")
    backups = load_backups(BACKUPS, environ={"DYNAMODB_BACKUP_BUCKET": "acme-dynamodb-backups"})
    assert {b.bucket for b in backups} == {"acme-dynamodb-backups"}


def test_a_backups_file_without_any_bucket_is_one_line(tmp_path):
    path = tmp_path / "backups.yaml"
    path.write_text("backups:\n  - table: Orders\n")
    with pytest.raises(ParameterError, match=r"backups\[0\]: bucket is not set: name the S3 bucket") as info:
        load_backups(path, environ={})
    assert "\n" not in str(info.value)
    path.write_text("defaults: {bucket: ''}\nbackups:\n  - table: Orders\n")
    with pytest.raises(ParameterError, match=r"backups\[0\]: bucket is empty: name the S3 bucket"):
        load_backups(path, environ={})


def test_notices_are_off_by_default_with_no_placeholder_topic():
    assert "123456789012" not in BACKUPS.read_text()
    env = {"DYNAMODB_BACKUP_BUCKET": "acme-dynamodb-backups"}
    for backup in load_backups(BACKUPS, environ=env):
        assert backup.failure_sns_topic_arn is None and not backup.notices_on
        assert notices_doc(backup).startswith("> ⚠ **Failure notices are off** for table ")
    on = load_backups(BACKUPS, environ={**env, "DYNAMODB_BACKUP_FAILURE_TOPIC_ARN": TOPIC})
    assert all(b.notices_on and TOPIC in notices_doc(b) and "off" not in notices_doc(b) for b in on)


def dag_bag(monkeypatch: pytest.MonkeyPatch, file: str, **env: str) -> Any:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("DYNAMODB_BACKUPS_FILE", raising=False)
    monkeypatch.delenv("DYNAMODB_BACKUP_FAILURE_TOPIC_ARN", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return DagBag(dag_folder=str(REPO / "dags" / file))


def dags_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    dags: dict[str, Any] = {}
    for file in ("dynamodb_backup.py", "dynamodb_restore_drill.py"):
        bag = dag_bag(monkeypatch, file, **env)
        assert not bag.import_errors, bag.import_errors
        dags.update(bag.dags)
    return dags


def test_the_dags_show_notices_off_as_a_tag_and_a_warning_in_their_docs(monkeypatch):
    dags = dags_from(monkeypatch, DYNAMODB_BACKUP_BUCKET="acme-dynamodb-backups")
    assert len(dags) == 4  # two tables' backup and drill DAGs
    for dag in dags.values():
        assert NOTICES_OFF_TAG in dag.tags, dag.dag_id
        assert dag.doc_md.startswith("> ⚠ **Failure notices are off**"), dag.dag_id
        assert "on_failure_callback" not in dag.default_args
    dags = dags_from(monkeypatch, DYNAMODB_BACKUP_BUCKET="acme-dynamodb-backups",
                     DYNAMODB_BACKUP_FAILURE_TOPIC_ARN=TOPIC)
    for dag in [d for d in dags.values() if d.dag_id.startswith("dynamodb_backup_")]:
        assert NOTICES_OFF_TAG not in dag.tags and TOPIC in dag.doc_md
        assert "on_failure_callback" in dag.default_args


def test_without_a_bucket_airflow_shows_one_import_error_naming_it_and_restore_guesses_none(monkeypatch):
    monkeypatch.delenv("DYNAMODB_BACKUP_BUCKET", raising=False)
    bag = dag_bag(monkeypatch, "dynamodb_backup.py")
    assert not bag.dags
    (error,) = bag.import_errors.values()
    assert error.strip().splitlines()[-1].endswith(
        f"{BACKUPS}: backups[0]: bucket: ${{DYNAMODB_BACKUP_BUCKET}} is not set (set the environment variable "
        "DYNAMODB_BACKUP_BUCKET, or write ${DYNAMODB_BACKUP_BUCKET:-default})")
    restore = dag_bag(monkeypatch, "dynamodb_restore.py")
    assert not restore.import_errors
    assert restore.dags["dynamodb_restore"].params["backup_bucket"] is None  # no bucket is guessed
