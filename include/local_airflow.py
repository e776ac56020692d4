#!/usr/bin/env python
"""Start and stop a real local Airflow (``airflow standalone``) wired to the local AWS servers.

``make airflow`` runs ``python include/local_airflow.py start``, which:

1. starts (or reuses) the local DynamoDB (DynamoDB Local or dynalite), moto and the PITR stand-in in front of it
   through ``include/local_aws.py`` (PID files in ``.state``; DynamoDB clients talk to the stand-in);
2. migrates the metadata database in ``$AIRFLOW_HOME`` (default ``.state/airflow``) and applies
   ``include/local-airflow-settings.yaml`` (the local endpoints' connection, the pool) with
   ``include/airflow_settings_loader.py`` (only the local stack reads that file);
   the connections are also given to every Airflow process as ``AIRFLOW_CONN_*`` variables;
3. creates the backups bucket and the logs bucket in the local S3;
4. starts ``airflow standalone`` (api-server, scheduler, dag-processor, triggerer) in its own
   process group, with the LocalExecutor, ``parallelism`` 4 (a 2-core machine; the default of 32
   starts 32 worker processes, about 4.7 GB), DAGs unpaused at creation, the API on 127.0.0.1 only,
   and remote task logging to the local S3;
5. waits for ``/api/v2/monitor/health`` and prints the UI address, the login and where logs go.

``python include/local_airflow.py stop`` kills the process group recorded in ``.state/airflow.pid``
(and the local AWS servers are stopped by ``include/local_aws.py stop``).

Settings (environment):

* ``DYNAMODB_BACKUP_LOG_URI`` -- the logging location, like Data Pipeline's "Logging" parameter
  (default ``s3://dynamodb-backup-logs/airflow``). Task logs land under
  ``<uri>/dag_id=X/run_id=Y/task_id=Z/[map_index=N/]attempt=1.log``.
* ``DYNAMODB_BACKUP_BUCKET`` -- the backups bucket created in the local S3 (default ``dynamodb-backups``,
  a name in the local S3 only: include/backups.yaml has no default bucket).
* ``DYNAMODB_BACKUP_FAILURE_TOPIC_ARN`` -- failure notices; default: a topic this script creates in the
  local SNS (notices are off in include/backups.yaml until a topic is set).
* ``LOCAL_AIRFLOW_PORT`` -- UI / API port (default 8080).
* ``LOCAL_AIRFLOW_PASSWORD`` -- the ``admin`` password (default ``admin``). The simple auth
  manager reads it from ``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``, which this
  script writes before each start. This is a local, loopback-only development login.

Importable API (the end-to-end tests start their own Airflow on free ports)::

    from local_airflow import start_airflow
    af = start_airflow(home, dags_folder, env={...AWS endpoints, DYNAMODB_BACKUPS_FILE...}, port=free_port())
    run_id = af.trigger("dynamodb_backup_T", conf={"segments": 4})
    af.wait_for_run("dynamodb_backup_T", run_id)   # -> the dag run JSON, raises if it did not succeed
    af.stop()
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent))

from local_aws import (
    HOST,
    MOTO,
    PITR,
    ensure_stack,
    env_vars,
    free_port,
    pid_alive,
    port_in_use,
    stack_ports_from_env,
)

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".state"
DEFAULT_HOME = DEFAULT_STATE_DIR / "airflow"
DEFAULT_PORT = 8080
DEFAULT_LOG_URI = "s3://dynamodb-backup-logs/airflow"
DEFAULT_BACKUP_BUCKET = "dynamodb-backups"
DEFAULT_FAILURE_TOPIC = "dynamodb-backup-failures"
LOCAL_SETTINGS = REPO_ROOT / "include" / "local-airflow-settings.yaml"
DEFAULT_USER = "admin"
DEFAULT_PASSWORD = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
PID_FILE = "airflow.pid"
START_TIMEOUT = 180.0

TERMINAL_STATES = ("success", "failed")


class LocalAirflowError(RuntimeError):
    """Airflow could not be started, reached or stopped, or a run did not end as expected."""


def _airflow_bin() -> str:
    candidate = Path(sys.executable).parent / "airflow"
    return str(candidate if candidate.exists() else REPO_ROOT / ".venv" / "bin" / "airflow")


def _plugins_folder(home: Path) -> Path:
    """The folder Airflow scans for plugins.

    Airflow's plugins manager execs every ``.py`` file under the plugins folder as a top-level
    module named after the file, so ``plugins/dynamodb_backup/__main__.py`` would replace the
    process's ``__main__`` and run our CLI on Airflow's argv (its SystemExit would end the
    api-server and the scheduler), and every other module would be imported twice.
    ``plugins/.airflowignore`` keeps the scan out of the package, so only the console's plugin module
    (``plugins/dynamodb_backup_console.py``) is loaded; without that file an empty folder is used.
    """
    if (REPO_ROOT / "plugins" / ".airflowignore").exists():
        return REPO_ROOT / "plugins"
    empty = home / "plugins"
    empty.mkdir(parents=True, exist_ok=True)
    return empty


def airflow_env(
    home: Path,
    dags_folder: Path,
    port: int,
    env: Mapping[str, str] | None = None,
    *,
    log_uri: str | None = None,
    plugins_folder: Path | None = None,
) -> dict[str, str]:
    """The environment every Airflow process of a local instance runs with.

    ``env`` (AWS endpoints and credentials, ``DYNAMODB_BACKUPS_FILE``, ``AIRFLOW_CONN_*``, ...) is laid
    over ``os.environ``; the Airflow settings below are laid over both.
    """
    merged = dict(os.environ)
    merged.update(env or {})
    log_uri = log_uri or merged.get("DYNAMODB_BACKUP_LOG_URI") or DEFAULT_LOG_URI
    python_path = [str(REPO_ROOT / "plugins"), str(REPO_ROOT / "include")]
    if merged.get("PYTHONPATH"):
        python_path.append(merged["PYTHONPATH"])
    base_url = f"http://{HOST}:{port}"
    bin_dir = str(Path(_airflow_bin()).parent)  # standalone starts its components as `airflow ...` from PATH
    merged.update({
        "PATH": os.pathsep.join([bin_dir, *(p for p in merged.get("PATH", "").split(os.pathsep) if p != bin_dir)]),
        "AIRFLOW_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(dict.fromkeys(python_path)),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder or _plugins_folder(home)),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # A metadata database given in ``env`` (the tests' Postgres), else SQLite in the home. SQLite
        # serialises writers and the CLI (backfill create) competes with the scheduler, so its writers
        # wait up to 60 s for the lock instead of python's default 5 s ("database is locked").
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": (env or {}).get("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        or f"sqlite:///{home}/airflow.db?timeout=60",
        "AIRFLOW__CORE__PARALLELISM": merged.get("AIRFLOW__CORE__PARALLELISM", "4"),
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{DEFAULT_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / PASSWORDS_FILE),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{base_url}/execution/",
        "AIRFLOW__API__HOST": HOST,
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__API__BASE_URL": base_url,
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API__EXPOSE_CONFIG": "False",
        # One scheduler, dag-processor and triggerer per home: their log servers get their own ports
        # so that two local Airflows (make airflow and the tests) can run side by side.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": merged.get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT")
        or str(free_port()),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": merged.get("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT")
        or str(free_port()),
        # Task logs go to S3 (the local one here), like Data Pipeline's "Logging" location.
        "AIRFLOW__LOGGING__REMOTE_LOGGING": "True",
        "AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER": log_uri.rstrip("/"),
        "AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID": merged.get("AIRFLOW__LOGGING__REMOTE_LOG_CONN_ID", "aws_default"),
        "AIRFLOW__LOGGING__ENCRYPT_S3_LOGS": "False",
        # Fast feedback for a local instance.
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "300",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": merged.get("AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL", "30"),
    })
    merged.setdefault("AIRFLOW__API_AUTH__JWT_SECRET", secrets.token_urlsafe(32))
    return merged


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise LocalAirflowError(f"not an s3://bucket/prefix URI: {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def create_buckets(names: Iterable[str], env: Mapping[str, str]) -> None:
    """Create each bucket in the S3 that ``env`` points at (``AWS_ENDPOINT_URL_S3``); existing ones are fine."""
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=env.get("AWS_ENDPOINT_URL_S3"),
        region_name=env.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or "local",
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or "local",
    )
    for name in dict.fromkeys(names):
        with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            s3.create_bucket(Bucket=name)


def create_topic(name: str, env: Mapping[str, str]) -> str:
    """Create (or find) an SNS topic in the SNS that ``env`` points at; return its ARN."""
    import boto3

    sns = boto3.client(
        "sns",
        endpoint_url=env.get("AWS_ENDPOINT_URL_SNS"),
        region_name=env.get("AWS_DEFAULT_REGION") or "us-east-1",
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or "local",
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or "local",
    )
    return str(sns.create_topic(Name=name)["TopicArn"])


def _run(cmd: Sequence[str], env: Mapping[str, str], what: str) -> None:
    result = subprocess.run(list(cmd), env=dict(env), cwd=str(REPO_ROOT), capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-30:])
        raise LocalAirflowError(f"{what} failed (exit {result.returncode}):\n{tail}")


def prepare_home(home: Path, env: Mapping[str, str], settings_file: Path | None, password: str) -> None:
    """Migrate the database, apply ``settings_file`` and write the admin password file."""
    home.mkdir(parents=True, exist_ok=True)
    _run([_airflow_bin(), "db", "migrate"], env, "airflow db migrate")
    if settings_file is not None:
        _run([sys.executable, str(REPO_ROOT / "include" / "airflow_settings_loader.py"), str(settings_file)],
             env, f"applying {settings_file}")
    passwords = home / PASSWORDS_FILE
    passwords.write_text(json.dumps({DEFAULT_USER: password}) + "\n")
    passwords.chmod(0o600)


# --------------------------------------------------------------------------- the running instance


@dataclass
class LocalAirflow:
    """A running ``airflow standalone``: its REST API, its runs, its process group."""

    home: Path
    port: int
    pid: int
    password: str
    env: dict[str, str] = field(repr=False)
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log_path: Path | None = None
    user: str = DEFAULT_USER
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    _token: str | None = field(default=None, repr=False)
    _token_time: float = field(default=0.0, repr=False)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    # -- REST

    def token(self, refresh: bool = False) -> str:
        """A bearer token for the REST API (``POST /auth/token``), renewed every 10 minutes."""
        if refresh or self._token is None or time.monotonic() - self._token_time > 600:
            body = self._request("POST", "/auth/token", {"username": self.user, "password": self.password},
                                 auth=False)
            self._token, self._token_time = str(body["access_token"]), time.monotonic()
        return self._token

    def _request(self, method: str, path: str, body: Any = None, *, auth: bool = True,
                 timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:2000]
            raise LocalAirflowError(f"{method} {path}: HTTP {exc.code}: {detail}") from None
        return json.loads(raw) if raw else None

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """Call ``/api/v2`` + ``path`` with a bearer token; JSON in and out."""
        return self._request(method, "/api/v2" + path, body)

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url + "/api/v2/monitor/health", timeout=3) as resp:
                result: dict[str, Any] = json.loads(resp.read())
                return result
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def wait_for_dag(self, dag_id: str, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until the dag-processor has parsed ``dag_id``; return its REST record."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                dag: dict[str, Any] = self.api("GET", f"/dags/{dag_id}")
                return dag
            except LocalAirflowError:
                if time.monotonic() > deadline:
                    errors = self.api("GET", "/importErrors").get("import_errors", [])
                    raise LocalAirflowError(f"DAG {dag_id} not parsed within {timeout:.0f} s; "
                                            f"import errors: {errors}") from None
                self._check_alive()
                time.sleep(1)

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None,
                logical_date: datetime | str | None = None, run_id: str | None = None) -> str:
        """Trigger a run through ``POST /dags/{id}/dagRuns``; return its run id."""
        if isinstance(logical_date, datetime):
            logical_date = logical_date.isoformat()
        body: dict[str, Any] = {"logical_date": logical_date, "conf": dict(conf or {})}
        if run_id:
            body["dag_run_id"] = run_id
        self.wait_for_dag(dag_id)
        run = self.api("POST", f"/dags/{dag_id}/dagRuns", body)
        return str(run["dag_run_id"])

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        run: dict[str, Any] = self.api("GET", f"/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}")
        return run

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        runs: list[dict[str, Any]] = self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100")["dag_runs"]
        return runs

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        quoted = urllib.parse.quote(run_id, safe="")
        tis: list[dict[str, Any]] = self.api("GET", f"/dags/{dag_id}/dagRuns/{quoted}/taskInstances?limit=100")[
            "task_instances"]
        return tis

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 180.0,
                     expect: str | None = "success") -> dict[str, Any]:
        """Poll the run until it is success or failed; raise unless it ended in ``expect`` (None: any)."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.dag_run(dag_id, run_id)
            if run["state"] in TERMINAL_STATES:
                break
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"{dag_id} {run_id} still {run['state']} after {timeout:.0f} s: "
                                        f"{self._ti_summary(dag_id, run_id)}")
            self._check_alive()
            time.sleep(1)
        if expect is not None and run["state"] != expect:
            raise LocalAirflowError(f"{dag_id} {run_id} ended {run['state']}, expected {expect}: "
                                    f"{self._ti_summary(dag_id, run_id)}")
        return run

    def _ti_summary(self, dag_id: str, run_id: str) -> str:
        try:
            return ", ".join(f"{ti['task_id']}[{ti['map_index']}]={ti['state']}"
                             for ti in self.task_instances(dag_id, run_id))
        except LocalAirflowError as exc:
            return str(exc)

    # -- processes

    def is_running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return pid_alive(self.pid)

    def _check_alive(self) -> None:
        if not self.is_running():
            raise LocalAirflowError(f"airflow standalone (pid {self.pid}) exited{self._log_hint()}")

    def _log_hint(self, lines: int = 40) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return f"\n--- last lines of {self.log_path} ---\n{tail}"

    def wait_until_healthy(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the API answers and the scheduler, dag-processor and triggerer are healthy."""
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive()
            health = self.health()
            if health is not None and all(
                (health.get(part) or {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "dag_processor", "triggerer")
            ):
                return
            if time.monotonic() > deadline:
                raise LocalAirflowError(f"Airflow not healthy within {timeout:.0f} s: {health}{self._log_hint()}")
            time.sleep(0.5)

    def memory_mb(self) -> float:
        """Resident memory of every process of this instance (its process group), in MB."""
        total = 0
        for pid in group_pids(self.pid):
            with contextlib.suppress(OSError, ValueError, IndexError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        return total / 1024

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after ``timeout`` seconds. Idempotent."""
        try:
            stop_group(self.pid, timeout, home=self.home)
            if self.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(5)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def group_pids(pgid: int) -> list[int]:
    """PIDs whose process group is ``pgid``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text()
            if int(stat.rsplit(")", 1)[-1].split()[2]) == pgid:
                pids.append(int(entry.name))
    return pids


def home_pids(home: Path) -> list[int]:
    """PIDs of processes started with ``AIRFLOW_HOME=<home>`` (stragglers that left the group)."""
    marker = f"AIRFLOW_HOME={home}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                pids.append(int(entry.name))
    return pids


def stop_group(pgid: int, timeout: float = 20.0, home: Path | None = None) -> bool:
    """Stop the process group ``pgid`` (and, if ``home`` is given, any process of that Airflow home)."""

    def remaining() -> list[int]:
        pids = set(group_pids(pgid))
        if home is not None:
            pids.update(home_pids(home))
        return sorted(p for p in pids if pid_alive(p))

    def send(sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, sig)
        for pid in remaining():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    if not remaining():
        return True
    send(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while remaining() and time.monotonic() < deadline:
        time.sleep(0.2)
    if remaining():
        send(signal.SIGKILL)
        deadline = time.monotonic() + 5
        while remaining() and time.monotonic() < deadline:
            time.sleep(0.1)
    return not remaining()


def start_airflow(
    home: Path,
    dags_folder: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    *,
    settings_file: Path | None = None,
    log_uri: str | None = None,
    buckets: Iterable[str] = (),
    password: str | None = None,
    timeout: float = START_TIMEOUT,
) -> LocalAirflow:
    """Start ``airflow standalone`` in ``home`` and wait until it is healthy.

    ``env`` must point at the local AWS servers (``AWS_ENDPOINT_URL_S3`` ...) and carry the
    ``aws_default`` connection (``AIRFLOW_CONN_AWS_DEFAULT``) unless ``settings_file`` defines it.
    The logs bucket of ``log_uri`` and every bucket in ``buckets`` are created first.
    """
    home = Path(home).resolve()
    port = port or free_port()
    if port_in_use(port):
        raise LocalAirflowError(f"port {port} on {HOST} is already in use")
    password = password or os.environ.get("LOCAL_AIRFLOW_PASSWORD") or DEFAULT_PASSWORD
    full_env = airflow_env(home, Path(dags_folder).resolve(), port, env, log_uri=log_uri)
    log_bucket, _ = _split_s3(full_env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"])
    create_buckets([log_bucket, *buckets], full_env)
    prepare_home(home, full_env, settings_file, password)

    log_path = home / "standalone.log"
    log_file = log_path.open("ab")
    process = subprocess.Popen(
        [_airflow_bin(), "standalone"],
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
        env=full_env, cwd=str(home), start_new_session=True,  # its own process group, stopped as one
    )
    instance = LocalAirflow(home=home, port=port, pid=process.pid, password=password, env=full_env,
                            process=process, log_path=log_path, _log_file=log_file)
    try:
        instance.wait_until_healthy(timeout)
    except BaseException:
        instance.stop()
        raise
    return instance


# --------------------------------------------------------------------------- CLI (PID-file mode)


def _read_pid(state_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int((state_dir / PID_FILE).read_text().split()[0])
    return None


def _local_aws_env(state_dir: Path) -> dict[str, str]:
    """Start (or reuse) the local DynamoDB, moto and the PITR stand-in in front of it on their default
    ports; their endpoint variables (DynamoDB is the stand-in)."""
    servers = {server.name: server for server, _ in ensure_stack(stack_ports_from_env(), state_dir)}
    return env_vars(servers[PITR].url, servers[MOTO].url, access_key=os.environ.get("AWS_ACCESS_KEY_ID") or "local",
                    secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or "local")


def cli_start(args: argparse.Namespace) -> int:
    from airflow_settings_loader import connection_env, load_settings

    state_dir: Path = args.state_dir
    home = Path(os.environ.get("AIRFLOW_HOME") or DEFAULT_HOME).resolve()
    old = _read_pid(state_dir)
    if old is not None and pid_alive(old):
        print(f"Airflow is already running (pid {old}); `python {Path(__file__).name} stop` first.",
              file=sys.stderr)
        return 1
    env = _local_aws_env(state_dir)
    env.setdefault("DYNAMODB_BACKUP_BUCKET", os.environ.get("DYNAMODB_BACKUP_BUCKET") or DEFAULT_BACKUP_BUCKET)
    # Notices on, to the local SNS, before the DAGs are parsed (include/backups.yaml has no default topic).
    topic_arn = os.environ.get("DYNAMODB_BACKUP_FAILURE_TOPIC_ARN") or create_topic(DEFAULT_FAILURE_TOPIC, env)
    env["DYNAMODB_BACKUP_FAILURE_TOPIC_ARN"] = topic_arn
    settings = load_settings(args.settings, {**os.environ, **env})
    env.update(connection_env(settings))
    log_uri = os.environ.get("DYNAMODB_BACKUP_LOG_URI") or DEFAULT_LOG_URI
    print(f"starting Airflow in {home} (log {home / 'standalone.log'}) ...", file=sys.stderr)
    instance = start_airflow(home, Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or REPO_ROOT / "dags"),
                             env, args.port, settings_file=args.settings, log_uri=log_uri,
                             buckets=[env["DYNAMODB_BACKUP_BUCKET"]])
    (state_dir / PID_FILE).write_text(f"{instance.pid}\n")
    if instance._log_file is not None:  # the server outlives this process
        instance._log_file.close()
        instance._log_file = None
    print(f"""
Airflow is running (pid {instance.pid}, about {instance.memory_mb():.0f} MB).

  UI:        {instance.url}
  login:     {instance.user} / {instance.password}   (set LOCAL_AIRFLOW_PASSWORD to change it)
  task logs: {log_uri}/dag_id=<dag>/run_id=<run>/task_id=<task>/[map_index=<n>/]attempt=<n>.log
             e.g. aws --endpoint-url {env['AWS_ENDPOINT_URL_S3']} s3 ls --recursive {log_uri}/
  backups:   s3://{env['DYNAMODB_BACKUP_BUCKET']}/ in the local S3 ({env['AWS_ENDPOINT_URL_S3']})
  failures:  SNS topic {topic_arn} in the local SNS (failure_sns_topic_arn in include/backups.yaml)
  stop:      make stop
""")
    return 0


def cli_stop(args: argparse.Namespace) -> int:
    state_dir: Path = args.state_dir
    pid = _read_pid(state_dir)
    home = Path(os.environ.get("AIRFLOW_HOME") or DEFAULT_HOME).resolve()
    if pid is None or not pid_alive(pid):
        print("airflow: not running")
        (state_dir / PID_FILE).unlink(missing_ok=True)
        return 0
    ok = stop_group(pid, home=home)
    (state_dir / PID_FILE).unlink(missing_ok=True)
    print(f"airflow: stopped pid {pid}" if ok else f"airflow: pid {pid} group still has live processes")
    return 0 if ok else 1


def cli_status(args: argparse.Namespace) -> int:
    pid = _read_pid(args.state_dir)
    if pid is None or not pid_alive(pid):
        print("airflow: not running")
        return 1
    probe = LocalAirflow(home=DEFAULT_HOME, port=args.port, pid=pid, password="", env={})
    print(f"airflow: pid {pid}, {probe.url}, health {probe.health()}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_airflow.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_AIRFLOW_PORT") or DEFAULT_PORT))
    parser.add_argument("--settings", type=Path, default=LOCAL_SETTINGS)
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCAL_AWS_STATE_DIR")
                                                               or DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        return {"start": cli_start, "stop": cli_stop, "status": cli_status}[args.command](args)
    except LocalAirflowError as exc:
        print(f"local_airflow: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
