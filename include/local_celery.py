#!/usr/bin/env python
"""Start and stop a distributed Airflow on this machine: CeleryExecutor, Postgres, Redis, two workers.

``make airflow-celery`` runs ``python include/local_celery.py start``, which:

1. starts (or reuses) the local DynamoDB (DynamoDB Local or dynalite), moto and the PITR stand-in
   as ``make airflow`` does;
2. starts our own Postgres cluster (``.state/celery/postgres``; Debian's ``postgresql``, run as the
   ``postgres`` user when we are root, since Postgres refuses root) as the metadata database and the
   Celery result backend, and Redis (Debian's ``redis-server``) as the Celery broker, on free ports;
3. migrates the database, applies ``include/local-airflow-settings.yaml`` and creates the buckets, as
   ``make airflow``;
4. starts the api-server, the scheduler, the dag-processor, the triggerer and two Celery workers, each
   in its own process group. Each worker has its own Celery name (``-H``), its own
   ``hostname_callable`` result (what the task instances' ``hostname`` shows), its own log-server
   port, and a concurrency of 2 (two workers x 2 = ``parallelism`` 4 on a 2-core machine: the tasks
   mostly wait on DynamoDB and S3). Both listen on the ``default`` and ``dynamodb`` queues
   (``queue: dynamodb`` in include/backups.yaml routes a table there);
5. waits until all are healthy and prints the UI address and the login.

``python include/local_celery.py stop`` stops every process it recorded in ``.state/celery.json``
(``make stop`` runs it). Settings: ``LOCAL_CELERY_PORT`` (UI / API, default 8080), and the
``LOCAL_AIRFLOW_PASSWORD``, ``DYNAMODB_BACKUP_LOG_URI`` and ``DYNAMODB_BACKUP_BUCKET`` of ``make airflow``.

Importable (the Celery end-to-end test starts its own stack on free ports)::

    stack = start_celery(root, dags_folder, env={...}, workers=[Worker("celery-worker-1"), ...])
    stack.kill_worker("celery-worker-1")      # SIGKILL its process group (a lost machine)
    stack.start_worker(Worker("celery-worker-3", queues=("default",)))
    stack.stop()
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from celery_backends import (
    BackendError,
    Postgres,
    Redis,
    start_postgres,
    start_redis,
    stop_postgres,
    stop_redis,
)
from celery_hostname import ENV as HOSTNAME_ENV
from local_airflow import (
    DEFAULT_BACKUP_BUCKET,
    DEFAULT_FAILURE_TOPIC,
    DEFAULT_LOG_URI,
    DEFAULT_PASSWORD,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    LOCAL_SETTINGS,
    REPO_ROOT,
    START_TIMEOUT,
    LocalAirflow,
    LocalAirflowError,
    _airflow_bin,
    _local_aws_env,
    _split_s3,
    airflow_env,
    create_buckets,
    create_topic,
    group_pids,
    prepare_home,
    stop_group,
)
from local_aws import free_port, pid_alive, port_in_use

STATE_FILE = "celery.json"
#: What every worker listens on unless told otherwise: Airflow's default queue and the one
#: include/backups.yaml can route big tables to.
DEFAULT_QUEUES = ("default", "dynamodb")
#: The Airflow components besides the workers (``airflow <command>``).
CORE_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")


@dataclass(frozen=True)
class Worker:
    """One Celery worker: its name is also its Celery node name and its task instances' hostname."""

    name: str
    queues: tuple[str, ...] = DEFAULT_QUEUES
    concurrency: int = 2


def celery_env(base: Mapping[str, str], postgres: Postgres, redis: Redis, *, parallelism: int,
               heartbeat_timeout: int) -> dict[str, str]:
    """``base`` (``airflow_env``'s) switched to the CeleryExecutor on ``postgres`` and ``redis``."""
    env = dict(base)
    env.update({
        "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": postgres.url("postgresql+psycopg2"),
        "AIRFLOW__CELERY__BROKER_URL": redis.url,
        "AIRFLOW__CELERY__RESULT_BACKEND": postgres.url("db+postgresql+psycopg2"),
        "AIRFLOW__CELERY__DEFAULT_QUEUE": "default",
        "AIRFLOW__CORE__PARALLELISM": str(parallelism),
        "AIRFLOW__CORE__HOSTNAME_CALLABLE": "celery_hostname.hostname",
        # A worker that dies mid-task stops heartbeating; the scheduler fails the task instance after
        # this many seconds and it is retried (the DAGs' retries). The broker's own redelivery of an
        # unacknowledged message waits Airflow's visibility_timeout (24 h), so this is the path that
        # recovers a lost worker.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(heartbeat_timeout),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
    })
    return env


@dataclass
class CeleryAirflow(LocalAirflow):
    """A running Celery stack: the REST client of ``LocalAirflow`` plus every process it started."""

    root: Path = field(default=Path("."))
    postgres: Postgres | None = None
    redis: Redis | None = None
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict, repr=False)
    pids: dict[str, int] = field(default_factory=dict)
    workers: dict[str, Worker] = field(default_factory=dict)
    killed: list[str] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list, repr=False)

    def _spawn(self, name: str, args: Sequence[str], env: Mapping[str, str]) -> int:
        log_path = self.root / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log = log_path.open("ab")
        self._logs.append(log)
        process = subprocess.Popen([_airflow_bin(), *args], stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, env=dict(env), cwd=str(self.home),
                                   start_new_session=True)  # its own process group: stopped or killed as one
        self.processes[name], self.pids[name] = process, process.pid
        return process.pid

    def start_worker(self, worker: Worker, timeout: float = 120.0) -> int:
        """Start a Celery worker and wait until Celery says it is ready; return its PID."""
        env = dict(self.env)
        env.update({HOSTNAME_ENV: worker.name,
                    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                    "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(worker.concurrency)})
        pid = self._spawn(worker.name, ["celery", "worker", "--queues", ",".join(worker.queues),
                                        "--concurrency", str(worker.concurrency),
                                        "--celery-hostname", f"{worker.name}@%h"], env)
        self.workers[worker.name] = worker
        log_path = self.root / "logs" / f"{worker.name}.log"
        deadline = time.monotonic() + timeout
        while b" ready." not in log_path.read_bytes():
            if self.processes[worker.name].poll() is not None or time.monotonic() > deadline:
                raise LocalAirflowError(f"Celery worker {worker.name} not ready within {timeout:.0f} s"
                                        f"{self._tail(worker.name)}")
            time.sleep(0.5)
        return pid

    def kill_worker(self, name: str) -> int:
        """SIGKILL the worker's whole process group, its running tasks included (as if its machine died)."""
        pid = self.pids[name]
        members = group_pids(pid)
        os.killpg(pid, signal.SIGKILL)
        self.processes[name].wait(10)
        # SIGKILL is delivered asynchronously: a task process in the middle of a system call can
        # outlive the signal by a moment, so wait until every member of the group is gone.
        deadline = time.monotonic() + 30
        while (alive := [p for p in members if pid_alive(p)]) and time.monotonic() < deadline:
            time.sleep(0.05)
        if alive:
            raise LocalAirflowError(f"worker {name}: processes {alive} survived SIGKILL for 30 s")
        self.killed.append(name)
        return pid

    def worker_pids(self, name: str) -> list[int]:
        return group_pids(self.pids[name])

    def _tail(self, name: str, lines: int = 40) -> str:
        path = self.root / "logs" / f"{name}.log"
        if not path.exists():
            return ""
        tail = "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return f"\n--- last lines of {path} ---\n{tail}"

    def is_running(self) -> bool:
        return all(self.processes[name].poll() is None for name in CORE_COMPONENTS if name in self.processes)

    def _check_alive(self) -> None:
        for name in CORE_COMPONENTS:
            process = self.processes.get(name)
            if process is not None and process.poll() is not None:
                raise LocalAirflowError(f"airflow {name} (pid {process.pid}) exited{self._tail(name)}")

    def all_pids(self) -> list[int]:
        """Every process of the stack: each component's group, Postgres (postmaster and backends), Redis."""
        pids: set[int] = set()
        for pid in self.pids.values():
            pids.update(group_pids(pid))
        for backend in (self.postgres, self.redis):
            if backend is not None:
                pids.add(backend.pid)
                pids.update(children(backend.pid))
        return sorted(pids)

    def memory_mb(self) -> float:
        """Resident memory of every process of the stack, in MB."""
        return rss_mb(self.all_pids())

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the Airflow components (workers first), then Redis and Postgres. Idempotent."""
        try:
            stop_all(self.pids, self.postgres.pid if self.postgres else None,
                     self.redis.pid if self.redis else None, timeout)
            for process in self.processes.values():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(5)
            if self.redis is not None and self.redis.process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.redis.process.wait(5)
        finally:
            for log in self._logs:
                log.close()
            self._logs.clear()

    def state(self) -> dict[str, Any]:
        return {"home": str(self.home), "port": self.port, "pids": self.pids,
                "postgres": self.postgres.pid if self.postgres else None,
                "redis": self.redis.pid if self.redis else None}


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Postgres's backends are the postmaster's)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                if int((entry / "stat").read_text().rsplit(")", 1)[-1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


def rss_mb(pids: Iterable[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total / 1024


def stop_all(pids: Mapping[str, int], postgres_pid: int | None, redis_pid: int | None,
             timeout: float = 20.0) -> list[str]:
    """Stop the components' process groups (workers first), Redis, then Postgres; return what is left."""
    left = []
    order = sorted(pids, key=lambda name: name in CORE_COMPONENTS)  # workers, then the core
    for name in order:
        if not stop_group(pids[name], timeout):
            left.append(name)
    if redis_pid is not None and not stop_redis(redis_pid):
        left.append("redis")
    if postgres_pid is not None and not stop_postgres(postgres_pid):
        left.append("postgres")
    return left


def start_celery(
    root: Path,
    dags_folder: Path,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
    *,
    workers: Sequence[Worker] = (Worker("celery-worker-1"), Worker("celery-worker-2")),
    settings_file: Path | None = None,
    log_uri: str | None = None,
    buckets: Iterable[str] = (),
    password: str | None = None,
    heartbeat_timeout: int = 60,
    postgres_root: Path | None = None,
    timeout: float = START_TIMEOUT,
) -> CeleryAirflow:
    """Start Postgres, Redis and the Celery Airflow in ``root`` (its home is ``root/airflow``).

    ``env`` is what ``start_airflow`` takes (AWS endpoints, ``AIRFLOW_CONN_*``, ...). Postgres's
    cluster goes in ``postgres_root`` (default ``root/postgres``); when we are root its parents must be
    searchable by the ``postgres`` user.
    """
    root = Path(root).resolve()
    home = root / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    if port_in_use(port):
        raise LocalAirflowError(f"port {port} is already in use")
    password = password or os.environ.get("LOCAL_AIRFLOW_PASSWORD") or DEFAULT_PASSWORD
    parallelism = sum(w.concurrency for w in workers)
    postgres = redis = None
    stack: CeleryAirflow | None = None
    try:
        postgres = start_postgres(postgres_root or root / "postgres", free_port())
        redis = start_redis(root / "redis", free_port())
        base = airflow_env(home, Path(dags_folder).resolve(), port, env, log_uri=log_uri)
        full_env = celery_env(base, postgres, redis, parallelism=parallelism, heartbeat_timeout=heartbeat_timeout)
        log_bucket, _ = _split_s3(full_env["AIRFLOW__LOGGING__REMOTE_BASE_LOG_FOLDER"])
        create_buckets([log_bucket, *buckets], full_env)
        prepare_home(home, full_env, settings_file, password)
        stack = CeleryAirflow(home=home, port=port, pid=0, password=password, env=full_env, root=root,
                              postgres=postgres, redis=redis)
        for name in CORE_COMPONENTS:
            stack._spawn(name, [name], full_env)
        stack.pid = stack.pids["api-server"]
        for worker in workers:
            stack.start_worker(worker)
        stack.wait_until_healthy(timeout)
    except BaseException:
        if stack is not None:
            stack.stop()
        else:
            stop_all({}, postgres.pid if postgres else None, redis.pid if redis else None)
        raise
    return stack


# --------------------------------------------------------------------------- CLI (PID-file mode)


def _read_state(state_dir: Path) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        state: dict[str, Any] = json.loads((state_dir / STATE_FILE).read_text())
        return state
    return None


def cli_start(args: argparse.Namespace) -> int:
    from airflow_settings_loader import connection_env, load_settings

    state_dir: Path = args.state_dir
    old = _read_state(state_dir)
    if old is not None and any(pid_alive(pid) for pid in old.get("pids", {}).values()):
        print(f"the Celery Airflow is already running ({state_dir / STATE_FILE}); `make stop` first.", file=sys.stderr)
        return 1
    env = _local_aws_env(state_dir)
    env.setdefault("DYNAMODB_BACKUP_BUCKET", os.environ.get("DYNAMODB_BACKUP_BUCKET") or DEFAULT_BACKUP_BUCKET)
    # Notices on, to the local SNS, before the DAGs are parsed (include/backups.yaml has no default topic).
    topic_arn = os.environ.get("DYNAMODB_BACKUP_FAILURE_TOPIC_ARN") or create_topic(DEFAULT_FAILURE_TOPIC, env)
    env["DYNAMODB_BACKUP_FAILURE_TOPIC_ARN"] = topic_arn
    settings = load_settings(args.settings, {**os.environ, **env})
    env.update(connection_env(settings))
    log_uri = os.environ.get("DYNAMODB_BACKUP_LOG_URI") or DEFAULT_LOG_URI
    root = state_dir / "celery"
    print(f"starting Postgres, Redis and the Celery Airflow in {root} (logs in {root / 'logs'}) ...", file=sys.stderr)
    stack = start_celery(root, Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or REPO_ROOT / "dags"), env,
                         args.port, settings_file=args.settings, log_uri=log_uri,
                         buckets=[env["DYNAMODB_BACKUP_BUCKET"]])
    (state_dir / STATE_FILE).write_text(json.dumps(stack.state(), indent=1) + "\n")
    for log in stack._logs:  # the servers outlive this process
        log.close()
    stack._logs.clear()
    assert stack.postgres is not None and stack.redis is not None
    workers = ", ".join(f"{w.name} (queues {','.join(w.queues)}, concurrency {w.concurrency})"
                        for w in stack.workers.values())
    print(f"""
The Celery Airflow is running (about {stack.memory_mb():.0f} MB in {len(stack.all_pids())} processes).

  UI:        {stack.url}
  login:     {stack.user} / {stack.password}   (set LOCAL_AIRFLOW_PASSWORD to change it)
  workers:   {workers}
  database:  {stack.postgres.url('postgresql')} (also the Celery result backend)
  broker:    {stack.redis.url}
  task logs: {log_uri}/dag_id=<dag>/run_id=<run>/task_id=<task>/[map_index=<n>/]attempt=<n>.log
  backups:   s3://{env['DYNAMODB_BACKUP_BUCKET']}/ in the local S3 ({env['AWS_ENDPOINT_URL_S3']})
  failures:  SNS topic {topic_arn} in the local SNS
  stop:      make stop
""")
    return 0


def cli_stop(args: argparse.Namespace) -> int:
    state = _read_state(args.state_dir)
    if state is None:
        print("airflow-celery: not running")
        return 0
    left = stop_all(state.get("pids", {}), state.get("postgres"), state.get("redis"))
    (args.state_dir / STATE_FILE).unlink(missing_ok=True)
    print(f"airflow-celery: {', '.join(left)} still running" if left else
          f"airflow-celery: stopped {', '.join([*state.get('pids', {}), 'redis', 'postgres'])}")
    return 1 if left else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="local_celery.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "stop"])
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_CELERY_PORT") or DEFAULT_PORT))
    parser.add_argument("--settings", type=Path, default=LOCAL_SETTINGS)
    parser.add_argument("--state-dir", type=Path, default=Path(os.environ.get("LOCAL_AWS_STATE_DIR")
                                                               or DEFAULT_STATE_DIR))
    args = parser.parse_args(argv)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        return {"start": cli_start, "stop": cli_stop}[args.command](args)
    except (LocalAirflowError, BackendError) as exc:
        print(f"local_celery: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
