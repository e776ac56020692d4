"""Parsing, substitution and validation of airflow_settings.yaml (no Airflow needed)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from airflow_settings_loader import (
    DEFAULT_SETTINGS_PATH,
    ConnectionSetting,
    PoolSetting,
    Settings,
    SettingsError,
    VariableSetting,
    connection_env,
    load_settings,
    main,
    parse_settings,
    substitute,
    unencrypted_secrets,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

LOCAL_ENV = {
    "AWS_ENDPOINT_URL_DYNAMODB": "http://127.0.0.1:4569",
    "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:4572",
}

SAMPLE = """\
airflow:
  connections:
    - conn_id: aws_default
      conn_type: aws
      conn_login: ${AWS_ACCESS_KEY_ID:-local}
      conn_password: ${AWS_SECRET_ACCESS_KEY:-local}
      conn_extra:
        region_name: us-east-1
        service_config:
          s3: {endpoint_url: "${AWS_ENDPOINT_URL_S3}"}
          dynamodb: {endpoint_url: "${AWS_ENDPOINT_URL_DYNAMODB}"}
          sns: {endpoint_url: "${AWS_ENDPOINT_URL_SNS:-${AWS_ENDPOINT_URL_S3}}"}
    - conn_id: postgres_x
      conn_type: postgres
      conn_host: db.example.com
      conn_schema: backups
      conn_login: user
      conn_password: 12345
      conn_port: "${PGPORT:-5432}"
      conn_extra: '{"sslmode": "require", "app": "${APP:-backup}"}'
  pools:
    - pool_name: dynamodb_export
      pool_slot: 4
      pool_description: Parallel export segments
    - pool_name: unlimited
      pool_slot: -1
  variables:
    - variable_name: backup_bucket
      variable_value: ${BUCKET:-my-bucket}
    - variable_name: retention
      variable_value: {days: 35, keep_monthly: true}
    - variable_name: ratio
      variable_value: 0.5
"""


def write(tmp_path: Path, text: str, name: str = "airflow_settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_of(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path, environ if environ is not None else {})
    prefix = f"{path}: "
    for message in info.value.errors:
        assert message.startswith(prefix), message
    return [message[len(prefix) :] for message in info.value.errors]


# --------------------------------------------------------------------------- happy path


def test_sample_parses_with_substitution(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SAMPLE), LOCAL_ENV)

    assert settings.source == str(tmp_path / "airflow_settings.yaml")
    aws, pg = settings.connections
    assert aws == ConnectionSetting(
        conn_id="aws_default",
        conn_type="aws",
        login="local",
        password="local",
        extra={
            "region_name": "us-east-1",
            "service_config": {
                "s3": {"endpoint_url": "http://127.0.0.1:4572"},
                "dynamodb": {"endpoint_url": "http://127.0.0.1:4569"},
                "sns": {"endpoint_url": "http://127.0.0.1:4572"},  # nested default
            },
        },
    )
    assert pg.port == 5432
    assert pg.password == "12345"  # YAML int -> str
    assert pg.host == "db.example.com" and pg.schema == "backups"
    assert pg.extra == {"sslmode": "require", "app": "backup"}  # JSON string, substituted after parsing

    assert settings.pools == (
        PoolSetting(name="dynamodb_export", slots=4, description="Parallel export segments"),
        PoolSetting(name="unlimited", slots=-1, description=""),
    )
    assert settings.variables == (
        VariableSetting(key="backup_bucket", value="my-bucket"),
        VariableSetting(key="retention", value='{"days": 35, "keep_monthly": true}'),
        VariableSetting(key="ratio", value="0.5"),
    )


def test_environment_values_win_over_defaults(tmp_path: Path) -> None:
    env = {**LOCAL_ENV, "AWS_ACCESS_KEY_ID": "AKIA", "PGPORT": "6543", "BUCKET": "prod-bucket"}
    settings = load_settings(write(tmp_path, SAMPLE), env)
    assert settings.connections[0].login == "AKIA"
    assert settings.connections[1].port == 6543
    assert settings.variables[0].value == "prod-bucket"


def test_defaults_to_os_environ(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SETTINGS_TEST_HOST", "from-os-environ")
    text = "airflow: {connections: [{conn_id: c, conn_type: http, conn_host: '${SETTINGS_TEST_HOST}'}]}"
    path = write(tmp_path, text)
    assert load_settings(path).connections[0].host == "from-os-environ"


@pytest.mark.parametrize(
    ("template", "environ", "expected"),
    [
        ("${A}", {"A": "x"}, "x"),
        ("pre-${A}-post", {"A": "x"}, "pre-x-post"),
        ("${A:-d}", {}, "d"),
        ("${A:-d}", {"A": ""}, "d"),
        ("${A-d}", {"A": ""}, ""),
        ("${A-d}", {}, "d"),
        ("${A:-}", {}, ""),
        ("${A:-http://h:1/p}", {}, "http://h:1/p"),
        ("$${A}", {"A": "x"}, "${A}"),
        ("$A and $ alone", {"A": "x"}, "$A and $ alone"),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("${A:-${B}}", {"B": "b"}, "b"),
        ("${A:-x${B:-y}z}", {}, "xyz"),
        ("${A:-${UNSET}}", {"A": "a"}, "a"),  # unused defaults are not expanded
        ("{${A}}", {"A": "a"}, "{a}"),
    ],
)
def test_substitute(template: str, environ: dict[str, str], expected: str) -> None:
    assert substitute(template, environ) == expected


def test_substitute_errors() -> None:
    with pytest.raises(KeyError):
        substitute("${MISSING}", {})
    with pytest.raises(ValueError, match="unterminated"):
        substitute("${A", {"A": "x"})
    with pytest.raises(ValueError, match="bad substitution"):
        substitute("${1A}", {})
    with pytest.raises(ValueError, match="bad substitution"):
        substitute("${A?}", {})
    with pytest.raises(ValueError, match="unterminated"):
        substitute("${A:-${B}", {"B": "b"})
    with pytest.raises(KeyError):
        substitute("${A:-${UNSET}}", {})


def test_template_placeholders_are_skipped(tmp_path: Path) -> None:
    text = """\
    airflow:
      connections:
        - conn_id:
          conn_type:
          conn_host:
          conn_extra:
            example_extra_field:
      pools:
        - pool_name:
          pool_slot:
          pool_description:
      variables:
        - variable_name:
          variable_value:
    """
    # conn_extra holds a mapping with an empty value: not blank, so the entry is checked
    assert errors_of(tmp_path, text) == ["connections[0]: missing conn_id", "connections[0]: missing conn_type"]
    text = text.replace("          conn_extra:\n            example_extra_field:\n", "")
    settings = load_settings(write(tmp_path, text), {})
    assert settings == Settings(source=settings.source)


@pytest.mark.parametrize("text", ["", "airflow:\n", "airflow: {connections: [], pools: null}\n"])
def test_empty_files(tmp_path: Path, text: str) -> None:
    settings = load_settings(write(tmp_path, text), {})
    assert (settings.connections, settings.pools, settings.variables) == ((), (), ())


def test_optional_extensions(tmp_path: Path) -> None:
    text = """\
    airflow:
      connections:
        - {conn_id: c, conn_type: http, conn_description: the api, conn_host: "${HOST:-}"}
      pools:
        - {pool_name: p, pool_slot: "${SLOTS:-2}", pool_include_deferred: "${DEFERRED:-true}"}
      variables:
        - {variable_name: v, variable_value: "", variable_description: empty on purpose}
    """
    settings = load_settings(write(tmp_path, text), {})
    assert settings.connections[0].description == "the api"
    assert settings.connections[0].host is None  # empty after substitution -> unset
    assert settings.pools[0] == PoolSetting(name="p", slots=2, description="", include_deferred=True)
    assert settings.variables[0] == VariableSetting(key="v", value="", description="empty on purpose")


# --------------------------------------------------------------------------- errors


def test_missing_conn_id_names_file_and_entry(tmp_path: Path) -> None:
    text = """\
    airflow:
      connections:
        - {conn_id: ok, conn_type: aws}
        - {conn_type: aws, conn_host: h}
    """
    path = write(tmp_path, text)
    with pytest.raises(SettingsError) as info:
        load_settings(path, {})
    assert str(info.value) == f"{path}: connections[1]: missing conn_id"


def test_relative_path_is_reported_as_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "airflow: {connections: [{conn_id: x}]}")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError, match=r"^airflow_settings\.yaml: connections\[0\] \(x\): missing conn_type$"):
        load_settings("airflow_settings.yaml", {})


def test_unset_variable_names_entry_and_field(tmp_path: Path) -> None:
    text = """\
    airflow:
      connections:
        - conn_id: aws_default
          conn_type: aws
          conn_extra: {service_config: {s3: {endpoint_url: "${AWS_ENDPOINT_URL_S3}"}}}
    """
    assert errors_of(tmp_path, text) == [
        "connections[0] (aws_default): conn_extra.service_config.s3.endpoint_url: environment variable "
        "AWS_ENDPOINT_URL_S3 is not set (write ${AWS_ENDPOINT_URL_S3:-default} to give a default)"
    ]


def test_all_errors_are_reported_together(tmp_path: Path) -> None:
    text = """\
    airflow:
      connections:
        - {conn_id: a, conn_type: aws, conn_port: http}
        - {conn_id: "bad id!", conn_type: aws}
        - {conn_id: b, conn_type: aws, conn_extra: "{not json"}
        - {conn_id: c, conn_type: aws, conn_extra: "[1, 2]"}
        - {conn_id: d, conn_type: aws, conn_hots: typo}
        - {conn_id: e, conn_type: aws, conn_port: 70000}
        - {conn_id: f, conn_type: aws, conn_host: "${UNCLOSED"}
        - just a string
      pools:
        - {pool_name: p1}
        - {pool_name: p2, pool_slot: four}
        - {pool_name: p3, pool_slot: -2}
        - {pool_name: p4, pool_slot: 1, pool_include_deferred: maybe}
        - {pool_slot: 3}
      variables:
        - {variable_name: v1}
        - {variable_value: x}
        - {variable_name: v2, variable_value: x}
        - {variable_name: v2, variable_value: y}
    """
    errors = errors_of(tmp_path, text)
    assert errors[:6] == [
        "connections[0] (a): conn_port must be an integer, not 'http'",
        "connections[1] (bad id!): conn_id 'bad id!' must be at most 200 letters, digits, '_', '.' or '-'",
        "connections[2] (b): conn_extra is not valid JSON: Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)",
        "connections[3] (c): conn_extra must be a mapping or a JSON object, not list",
        "connections[4] (d): unknown key(s) conn_hots (allowed: conn_id, conn_type, conn_host, conn_schema, "
        "conn_login, conn_password, conn_port, conn_extra, conn_description)",
        "connections[5] (e): conn_port must be between 0 and 65535, not 70000",
    ]
    assert errors[6].startswith("connections[6] (f): conn_host: unterminated '${'")
    assert errors[7:] == [
        "connections[7]: must be a mapping, not str",
        "pools[0] (p1): missing pool_slot",
        "pools[1] (p2): pool_slot must be an integer, not 'four'",
        "pools[2] (p3): pool_slot must be >= -1, not -2",
        "pools[3] (p4): pool_include_deferred must be true or false, not 'maybe'",
        "pools[4]: missing pool_name",
        "variables[0] (v1): missing variable_value",
        "variables[1]: missing variable_name",
        "variables: 'v2' is defined more than once",
    ]


def test_structure_errors(tmp_path: Path) -> None:
    assert errors_of(tmp_path, "- a\n- b\n") == ["the top level must be a mapping with an 'airflow' key"]
    assert errors_of(tmp_path, "airflow: {connection: []}\nastro: {}\n") == [
        "unknown top-level key(s) astro (only 'airflow' is allowed)",
        "airflow: unknown key(s) connection (allowed: connections, pools, variables)",
    ]
    assert errors_of(tmp_path, "airflow: {pools: {a: 1}}\n") == ["airflow.pools: must be a list, not dict"]
    assert errors_of(tmp_path, "airflow: [1]\n") == ["airflow: must be a mapping, not list"]


def test_duplicate_connection(tmp_path: Path) -> None:
    text = "airflow: {connections: [{conn_id: a, conn_type: aws}, {conn_id: a, conn_type: http}]}\n"
    assert errors_of(tmp_path, text) == ["connections: 'a' is defined more than once"]


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = write(tmp_path, "airflow:\n  connections: [\n")
    with pytest.raises(SettingsError, match=r"airflow_settings\.yaml: invalid YAML: .*line"):
        load_settings(path, {})
    with pytest.raises(SettingsError, match=r"nope\.yaml: cannot read: No such file"):
        load_settings(tmp_path / "nope.yaml", {})


def test_parse_settings_from_data() -> None:
    data = {"airflow": {"variables": [{"variable_name": "x", "variable_value": "${V}"}]}}
    assert parse_settings(data, "inline", {"V": "1"}).variables == (VariableSetting(key="x", value="1"),)


# --------------------------------------------------------------------------- connection_env


def test_connection_env(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path, SAMPLE), LOCAL_ENV)
    env = connection_env(settings)
    assert sorted(env) == ["AIRFLOW_CONN_AWS_DEFAULT", "AIRFLOW_CONN_POSTGRES_X"]
    aws = json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
    assert aws == {
        "conn_type": "aws",
        "login": "local",
        "password": "local",
        "extra": settings.connections[0].extra,
    }
    pg = json.loads(env["AIRFLOW_CONN_POSTGRES_X"])
    assert pg["port"] == 5432 and pg["host"] == "db.example.com" and pg["schema"] == "backups"


# --------------------------------------------------------------------------- CLI (no Airflow)


def test_cli_check_and_print_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in LOCAL_ENV.items():
        monkeypatch.setenv(name, value)
    path = write(tmp_path, SAMPLE)

    assert main([str(path), "--check"]) == 0
    assert capsys.readouterr().out == f"{path}: OK (2 connections, 2 pools, 3 variables)\n"

    assert main([str(path), "--print-env"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("export AIRFLOW_CONN_AWS_DEFAULT='{")
    assert len(lines) == 2


def test_cli_reports_errors_with_exit_code_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "airflow: {pools: [{pool_name: p}]}\n")
    assert main([str(path), "--check"]) == 2
    assert capsys.readouterr().err == f"{path}: pools[0] (p): missing pool_slot\n"


def test_modules_do_not_import_airflow() -> None:
    code = (
        "import sys; sys.path.insert(0, 'include');"
        "import airflow_settings_loader, local_aws;"
        "assert 'airflow' not in sys.modules, 'airflow imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


def test_secrets_are_the_password_and_the_extra_keys_airflow_masks() -> None:
    plain = ConnectionSetting(conn_id="aws_default", conn_type="aws", login="someone",
                              extra={"region_name": "eu-west-1", "service_config": {"s3": {"endpoint_url": "x"}}})
    assert plain.secret_fields() == []
    secret = ConnectionSetting(conn_id="api", conn_type="http", password="p",
                               extra={"headers": {"Authorization": "Bearer t"}, "aws_secret_access_key": "k",
                                      "api_key": ""})
    assert secret.secret_fields() == ["conn_password", "conn_extra.headers.Authorization",
                                      "conn_extra.aws_secret_access_key"]


def test_without_a_fernet_key_each_connection_with_a_secret_is_one_line() -> None:
    settings = Settings(source="s.yaml", connections=(
        ConnectionSetting(conn_id="clear", conn_type="aws", login="AKIA", password="wJal"),
        ConnectionSetting(conn_id="fine", conn_type="aws", extra={"region_name": "eu-west-1"}),
        ConnectionSetting(conn_id="token", conn_type="http", extra={"token": "t"}),
    ))
    assert unencrypted_secrets(settings, fernet_is_encrypted=True) == []
    lines = unencrypted_secrets(settings, fernet_is_encrypted=False)
    assert [line.split(": set ")[0] for line in lines] == [
        "s.yaml: connections (clear): conn_password would be stored unencrypted",
        "s.yaml: connections (token): conn_extra.token would be stored unencrypted",
    ]
    assert all("AIRFLOW__CORE__FERNET_KEY" in line and "\n" not in line for line in lines)


def test_the_default_file_is_the_local_stacks_and_it_stores_no_secret() -> None:
    assert DEFAULT_SETTINGS_PATH == REPO_ROOT / "include" / "local-airflow-settings.yaml"
    local = load_settings(DEFAULT_SETTINGS_PATH, {})
    assert [c.conn_id for c in local.connections] == ["aws_default"]
    assert unencrypted_secrets(local, fernet_is_encrypted=False) == []  # applies without a Fernet key
    deploy = load_settings(REPO_ROOT / "airflow_settings.yaml", {})
    assert (deploy.connections, deploy.variables) == ((), ())
    assert [p.name for p in deploy.pools] == ["dynamodb_export"]
