"""Postgres and Redis for a local CeleryExecutor: our own Postgres cluster and Redis server, by PID.

Postgres (Debian's ``postgresql``) refuses to run as root, so when this runs as root the cluster is
created and run as the ``postgres`` user (``runuser``), in a directory that user owns; otherwise as the
current user. It listens on 127.0.0.1 only and trusts local connections: a loopback development
database, not a production one. Redis (Debian's ``redis-server``) keeps nothing on disk.

    pg = start_postgres(root, port)      # root/data, root/postgres.log; creates the database
    pg.url("postgresql+psycopg2")        # postgresql+psycopg2://airflow@127.0.0.1:<port>/airflow
    stop_postgres(pg.pid)
    redis = start_redis(root, port)      # redis.url -> redis://127.0.0.1:<port>/0
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from local_aws import pid_alive

HOST = "127.0.0.1"
DB_USER = "airflow"
DB_NAME = "airflow"
PG_USER = "postgres"  # the account Postgres runs as when we are root


class BackendError(RuntimeError):
    """Postgres or Redis is missing, or could not be started or stopped."""


def postgres_bin(name: str) -> str:
    """A Postgres server program: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if versions:
        return str(versions[-1])
    raise BackendError(f"Postgres's {name} not found: install Debian's postgresql (apt-get install postgresql)")


def _run_as() -> tuple[list[str], str | None]:
    """The command prefix that runs Postgres's programs as a non-root user, and that user."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        raise BackendError(f"running as root, and there is no {PG_USER!r} user to run Postgres as "
                           "(Postgres refuses root): install Debian's postgresql, or run as another user") from None
    return ["runuser", "-u", PG_USER, "--"], PG_USER


def _run(cmd: Sequence[str], what: str, timeout: float = 120) -> str:
    result = subprocess.run(list(cmd), capture_output=True, text=True, check=False, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).strip()[-1500:]
        raise BackendError(f"{what} failed (exit {result.returncode}): {output}")
    return result.stdout


@dataclass(frozen=True)
class Postgres:
    root: Path
    port: int
    pid: int

    def url(self, scheme: str = "postgresql+psycopg2") -> str:
        return f"{scheme}://{DB_USER}@{HOST}:{self.port}/{DB_NAME}"


def postmaster_pid(data_dir: Path) -> int | None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((data_dir / "postmaster.pid").read_text().split()[0])
    return None


def start_postgres(root: Path, port: int, timeout: float = 60.0) -> Postgres:
    """Create (first time) and start a cluster in ``root/data`` on ``port``; create the ``airflow`` database."""
    prefix, user = _run_as()
    root = Path(root).resolve()
    data = root / "data"
    root.mkdir(parents=True, exist_ok=True)
    if user is not None:
        pw = pwd.getpwnam(user)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        for parent in root.parents:  # the postgres user must be able to reach its directory
            if not os.stat(parent).st_mode & 0o001:
                raise BackendError(f"{parent} is not searchable by others, so the {user!r} user cannot reach "
                                   f"{root}: chmod o+x {parent}, or put the cluster elsewhere")
    if not (data / "PG_VERSION").exists():
        _run([*prefix, postgres_bin("initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust", "-E", "UTF8",
              "--no-sync", "--no-instructions"], "initdb")
    old = postmaster_pid(data)
    if old is not None and pid_alive(old):
        raise BackendError(f"Postgres already runs on {data} (pid {old})")
    options = (f"-p {port} -k {root} -c listen_addresses={HOST} -c shared_buffers=32MB -c max_connections=200 "
               "-c synchronous_commit=off")
    _run([*prefix, postgres_bin("pg_ctl"), "-D", str(data), "-l", str(root / "postgres.log"), "-o", options,
          "-w", "-t", str(int(timeout)), "start"], "pg_ctl start", timeout=timeout + 10)
    pid = postmaster_pid(data)
    if pid is None:
        raise BackendError(f"Postgres started but wrote no {data / 'postmaster.pid'}")
    pg = Postgres(root=root, port=port, pid=pid)
    _create_database(pg)
    return pg


def _create_database(pg: Postgres) -> None:
    import psycopg2

    conn = psycopg2.connect(host=HOST, port=pg.port, user=DB_USER, dbname="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DB_NAME}"')
    finally:
        conn.close()


def signal_until_gone(pid: int, steps: tuple[tuple[signal.Signals, float], ...]) -> bool:
    """Send each signal in turn, waiting up to its seconds for ``pid`` to go. True when it is gone."""
    for sig, wait in steps:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not pid_alive(pid):
            return True
    return False


def stop_postgres(pid: int, timeout: float = 30.0) -> bool:
    """Fast shutdown (SIGINT) of the postmaster ``pid``; SIGQUIT if it lingers. True when it is gone."""
    return signal_until_gone(pid, ((signal.SIGINT, timeout), (signal.SIGQUIT, 5.0)))


@dataclass
class Redis:
    root: Path
    port: int
    process: subprocess.Popen[bytes] | None
    pid: int

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"


def redis_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(root: Path, port: int, timeout: float = 20.0) -> Redis:
    """Start ``redis-server`` on 127.0.0.1:``port`` in its own process group, with no persistence."""
    binary = shutil.which("redis-server") or ("/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists()
                                              else None)
    if binary is None:
        raise BackendError("redis-server not found: install Debian's redis-server (apt-get install redis-server)")
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(root),
         "--logfile", str(root / "redis.log"), "--daemonize", "no"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while not redis_ping(port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log = root / "redis.log"
            tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
            raise BackendError(f"redis-server did not answer on {HOST}:{port}: {tail}")
        time.sleep(0.1)
    return Redis(root=root, port=port, process=process, pid=process.pid)


def stop_redis(pid: int, timeout: float = 10.0) -> bool:
    return signal_until_gone(pid, ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)))
