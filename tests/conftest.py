"""Shared pytest fixtures: local AWS servers (a DynamoDB backend + moto + the PITR stand-in) on free ports.

The DynamoDB backend is the one env ``DYNAMODB_BACKEND`` names: ``ddblocal`` (AWS's DynamoDB Local,
in memory) or ``dynalite``; the default is ``local_aws.DEFAULT_BACKEND``. ``make test`` runs the
integration suite on both.

Session fixtures:

* ``local_aws`` -- one backend server, one moto server and the PITR stand-in in front of the backend
  (``include/local_pitr``: lag 3 s, exports IN_PROGRESS at least 1 s). DynamoDB clients and
  ``AWS_ENDPOINT_URL_DYNAMODB`` point at the stand-in, so every test talks DynamoDB through it;
  ``LocalAws.upstream`` is the backend itself (for measuring the server's own ceiling; ``.dynalite``
  is its older name, whichever backend it is) and ``LocalAws.backend`` its name. Also sets
  ``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL_SNS`` and test credentials in ``os.environ`` for
  the whole session (restored afterwards). Every endpoint is behind the strict front door
  (``faultproxy.strict``: SigV4 recomputed, the door's clock, known keys and tokens, IAM policies):
  ``LocalAws.door`` moves its clock and takes principals; ``.dynamodb.proxy`` / ``.s3_front.proxy``
  are the proxies (faults and capacity off); ``standin_url`` and ``moto`` are the servers themselves.
* ``pitr_standin`` -- a function starting another stand-in in front of the session's backend
  and moto with its own lag (and export/window minimums); stopped at the end of the session.
* ``second_dynamodb`` -- another server of the same backend (a second "region"), a ``LocalServer``.

Function fixtures: ``s3_bucket`` (a fresh bucket in moto), ``table_name`` (a unique name).

Markers: ``slow`` (long tests; ``-m "not slow"`` skips them, CI runs them) and ``e2e``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
for _path in (REPO_ROOT / "include", REPO_ROOT / "plugins"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from local_aws import (  # noqa: E402
    DDBLOCAL,
    LocalAwsError,
    LocalServer,
    backend_from_env,
    free_port,
    start_backend,
    start_moto,
    start_pitr,
)

# Each test process gets its own Airflow home, set before anything imports Airflow
# (Airflow reads its configuration once, at import).
AIRFLOW_TEST_HOME = Path(tempfile.mkdtemp(prefix="airflow-home-"))
os.environ.update({
    "AIRFLOW_HOME": str(AIRFLOW_TEST_HOME),
    "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
    "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO_ROOT / "plugins"),
    "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
})

# The restore-to-a-moment tests' recorded history, shared by their modules (one recording per process).
from faultproxy import DynamoDBFaultProxy, FaultProxy, FrontDoor, MovableClock, Principal, S3FaultProxy  # noqa: E402
from incremental_history import history_fixture  # noqa: E402, F401

REGION = "us-east-1"
# The session stand-in's PITR lag and minimum export duration: short, so tests wait seconds, not minutes.
SESSION_PITR_LAG_SECONDS = 3.0
SESSION_MIN_EXPORT_SECONDS = 1.0
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
}


#: The DynamoDB server behind the stand-in in this run (env DYNAMODB_BACKEND): "ddblocal" or "dynalite".
DYNAMODB_BACKEND = backend_from_env("DYNAMODB_BACKEND")


def start_dynamodb_backend(port: int, state_dir: Path) -> LocalServer:
    """A server of this run's backend (DynamoDB Local in memory: its data dies with it, as dynalite's
    temporary directory does)."""
    return start_backend(DYNAMODB_BACKEND, port, state_dir)


def pytest_report_header(config: pytest.Config) -> str:
    return f"DynamoDB backend: {DYNAMODB_BACKEND} (env DYNAMODB_BACKEND)"


def pytest_configure(config: pytest.Config) -> None:
    # include/backups.yaml names no default bucket (bucket: ${DYNAMODB_BACKUP_BUCKET}): the tests that parse the
    # shipped DAGs name the local stack's, as `make run` and `make airflow` do.
    os.environ.setdefault("DYNAMODB_BACKUP_BUCKET", "dynamodb-backups")
    config.addinivalue_line("markers", "slow: long-running test (deselect with -m 'not slow'; CI runs them)")
    config.addinivalue_line("markers", "e2e: end-to-end test through Airflow and the local AWS servers")


def start_on_free_port(starter: Callable[..., LocalServer], state_dir: Path, attempts: int = 3) -> LocalServer:
    """Start a server on a free port, retrying if another process grabs the port first."""
    for attempt in range(attempts):
        try:
            return starter(free_port(), state_dir)
        except LocalAwsError:
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


class Fronted:
    """A local server behind a strict fault proxy (``faultproxy.strict``): ``url``, ``port`` and ``client``
    are the proxy's, so every call passes the front door; ``server`` is the server itself and anything
    else (``is_running``, ``name``, ``pid`` ...) is read from it. ``stop`` stops both."""

    def __init__(self, server: LocalServer, proxy: FaultProxy | None) -> None:
        self.server, self.proxy = server, proxy

    @property
    def url(self) -> str:
        return str(self.proxy.url) if self.proxy else self.server.url

    @property
    def port(self) -> int:
        return int(self.proxy.port) if self.proxy else self.server.port

    def client(self, service: str | None = None, **kwargs: Any) -> Any:
        return LocalServer.client(self, service, **kwargs)  # type: ignore[arg-type]  # reads name and url only

    def stop(self) -> None:
        if self.proxy:
            self.proxy.stop()
        self.server.stop()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.server, name)


def session_door() -> FrontDoor:
    """The door every test's calls pass: the test credentials and local_aws.py's default ones are known
    (no policy: allowed everything); tests add principals, policies and move its clock."""
    return FrontDoor([Principal(TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"], TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"]),
                      Principal("local", "local")], clock=MovableClock(), region=REGION)


#: ``FRONT_DOOR=off`` leaves the servers without the door (only to measure what the door costs: the
#: tests of the door and of IAM enforcement fail without it).
FRONT_DOOR = os.environ.get("FRONT_DOOR", "strict") != "off"


def front(server: LocalServer, door: FrontDoor, proxy_class: type[FaultProxy] = DynamoDBFaultProxy) -> Fronted:
    """``server`` behind a strict proxy with no faults and no capacity limits (``proxy.enabled`` off: the
    door still checks every request; a test may turn faults or capacity on through ``.proxy``)."""
    if not FRONT_DOOR:
        return Fronted(server, None)
    proxy = proxy_class(server.url, strict=door)
    if isinstance(proxy, DynamoDBFaultProxy):
        proxy.enforce_capacity = False
    proxy.enabled = False
    return Fronted(server, proxy.start())


@dataclass
class LocalAws:
    """Handles on the session's local servers: ``dynamodb`` is the PITR stand-in (the endpoint every
    test uses), ``upstream`` the backend server behind it (``backend`` names it: ddblocal, dynalite)."""

    dynamodb: LocalServer | Fronted
    moto: LocalServer
    upstream: LocalServer | None = None
    region: str = REGION
    backend: str = DYNAMODB_BACKEND
    #: The strict front door in front of the stand-in and moto (``door.clock``, ``door.add_principal``).
    door: FrontDoor | None = None
    #: moto behind the door: S3, SNS, KMS and STS calls go through it (``moto`` is moto itself).
    s3_front: Fronted | None = None

    @property
    def dynalite(self) -> LocalServer | None:
        """The backend server behind the stand-in, under its older name (it may be DynamoDB Local)."""
        return self.upstream

    @property
    def is_ddblocal(self) -> bool:
        """True when the backend is AWS's DynamoDB Local (ARN region ``ddblocal``, ItemCount reported)."""
        return self.backend == DDBLOCAL

    @property
    def dynamodb_url(self) -> str:
        return self.dynamodb.url

    @property
    def standin_url(self) -> str:
        """The PITR stand-in itself, not behind the front door: only for tests of the stand-in's own plumbing
        (raw requests it must pass through unchanged)."""
        return self.dynamodb.server.url if isinstance(self.dynamodb, Fronted) else self.dynamodb.url

    @property
    def s3_url(self) -> str:
        return self.s3_front.url if self.s3_front else self.moto.url

    @property
    def moto_url(self) -> str:
        return self.moto.url

    @property
    def sns_url(self) -> str:
        return self.s3_front.url if self.s3_front else self.moto.url

    def client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service``: DynamoDB goes to the stand-in, everything else to moto (both
        through the front door)."""
        server = self.dynamodb if service in ("dynamodb", "dynamodbstreams") else (self.s3_front or self.moto)
        kwargs.setdefault("region_name", self.region)
        return server.client(service, **kwargs)

    def dynamodb_client(self, **kwargs: Any) -> Any:
        return self.client("dynamodb", **kwargs)

    def s3_client(self, **kwargs: Any) -> Any:
        return self.client("s3", **kwargs)

    def sns_client(self, **kwargs: Any) -> Any:
        return self.client("sns", **kwargs)

    def connection_extra(self) -> dict[str, Any]:
        """``extra`` of an Airflow ``aws`` connection that targets these servers."""
        return {
            "region_name": self.region,
            "service_config": {
                "s3": {"endpoint_url": self.s3_url},
                "dynamodb": {"endpoint_url": self.dynamodb_url},
                "sns": {"endpoint_url": self.sns_url},
            },
        }

    def airflow_conn_env(self, conn_id: str = "aws_default") -> dict[str, str]:
        """``{"AIRFLOW_CONN_<ID>": json}`` for an ``aws`` connection to these servers."""
        value = {
            "conn_type": "aws",
            "login": TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "password": TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "extra": self.connection_extra(),
        }
        return {f"AIRFLOW_CONN_{conn_id.upper()}": json.dumps(value)}

    def create_table(
        self,
        name: str,
        hash_key: str = "pk",
        hash_type: str = "S",
        range_key: str | None = None,
        range_type: str = "S",
        client: Any = None,
    ) -> None:
        """Create an on-demand table and wait until it is ACTIVE (dynalite: ~0.5 s, DynamoDB Local: at once)."""
        client = client or self.dynamodb_client()
        attrs = [{"AttributeName": hash_key, "AttributeType": hash_type}]
        schema = [{"AttributeName": hash_key, "KeyType": "HASH"}]
        if range_key:
            attrs.append({"AttributeName": range_key, "AttributeType": range_type})
            schema.append({"AttributeName": range_key, "KeyType": "RANGE"})
        client.create_table(TableName=name, AttributeDefinitions=attrs, KeySchema=schema, BillingMode="PAY_PER_REQUEST")
        wait_for_table(client, name)


def wait_for_table(client: Any, name: str, timeout: float = 10.0) -> None:
    """Poll DescribeTable until the table is ACTIVE (boto3's waiter polls every 20 s)."""
    deadline = time.monotonic() + timeout
    while True:
        status = client.describe_table(TableName=name)["Table"]["TableStatus"]
        if status == "ACTIVE":
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"table {name} still {status} after {timeout} s")
        time.sleep(0.05)


def start_standin(upstream: LocalServer, moto: LocalServer, state_dir: Path, **options: Any) -> LocalServer:
    """A PITR stand-in on a free port in front of ``upstream`` (the backend), writing exports to ``moto``."""
    def starter(port: int, state: Path) -> LocalServer:
        return start_pitr(port, state, upstream_url=upstream.url, s3_url=moto.url, **options)
    return start_on_free_port(starter, state_dir)


@pytest.fixture(scope="session")
def local_aws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalAws]:
    state_dir = tmp_path_factory.mktemp("local_aws")
    with contextlib.ExitStack() as servers:
        upstream = start_on_free_port(start_dynamodb_backend, state_dir)
        servers.callback(upstream.stop)
        moto = start_on_free_port(start_moto, state_dir)
        servers.callback(moto.stop)
        standin = start_standin(upstream, moto, state_dir, lag_seconds=SESSION_PITR_LAG_SECONDS,
                                min_export_seconds=SESSION_MIN_EXPORT_SECONDS)
        servers.callback(standin.stop)
        door = session_door()
        dynamodb = front(standin, door)
        s3 = front(moto, door, S3FaultProxy)
        for fronted in (dynamodb, s3):
            if fronted.proxy:
                servers.callback(fronted.proxy.stop)
        with pytest.MonkeyPatch.context() as mp:
            for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
                mp.delenv(name, raising=False)
            for name, value in TEST_CREDENTIALS.items():
                mp.setenv(name, value)
            mp.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb.url)
            mp.setenv("AWS_ENDPOINT_URL_S3", s3.url)
            mp.setenv("AWS_ENDPOINT_URL_SNS", s3.url)
            yield LocalAws(dynamodb=dynamodb, moto=moto, upstream=upstream, door=door, s3_front=s3)


@pytest.fixture(scope="session")
def pitr_standin(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Fronted]]:
    """``pitr_standin(lag_seconds=..., min_export_seconds=..., min_incremental_window_seconds=...,
    state_dir=...)``: another stand-in in front of the session's backend and moto, with a journal of its
    own (in ``state_dir`` if given: pass the same one again to restart it on its state), behind the session's
    front door. Create the tables a test needs through it: a stand-in journals only tables created through
    it, or taken over when PITR is enabled."""
    started: list[Fronted] = []

    def start(state_dir: Path | None = None, **options: Any) -> Fronted:
        assert local_aws.upstream is not None and local_aws.door is not None
        state = state_dir or tmp_path_factory.mktemp("pitr_standin")
        server = front(start_standin(local_aws.upstream, local_aws.moto, state, **options), local_aws.door)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture(scope="session")
def second_dynamodb(local_aws: LocalAws, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fronted]:
    """Another server of this run's backend (a second "region") with a PITR stand-in of its own in front,
    as the session's has (it answers what the backend lacks: DynamoDB Local has no tagging, neither has
    PITR), behind the session's front door: use ``.url`` and ``.client()``."""
    assert local_aws.door is not None
    state = tmp_path_factory.mktemp("second_dynamodb")
    backend = start_on_free_port(start_dynamodb_backend, state)
    try:
        server = front(start_standin(backend, local_aws.moto, state), local_aws.door)
        try:
            yield server
        finally:
            server.stop()
    finally:
        backend.stop()


@pytest.fixture
def table_name(request: pytest.FixtureRequest) -> str:
    """A unique DynamoDB table name derived from the test name."""
    slug = re.sub("[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:60].rstrip("-")
    return f"t-{slug}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_bucket(local_aws: LocalAws, request: pytest.FixtureRequest) -> str:
    """A new, empty, uniquely named bucket in moto (left in place: moto dies with the session)."""
    slug = re.sub("[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"b-{slug}-{uuid.uuid4().hex[:12]}" if slug else f"b-{uuid.uuid4().hex[:12]}"
    local_aws.s3_client().create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata database (SQLite) in this process's Airflow home."""
    if not (AIRFLOW_TEST_HOME / "airflow.db.ready").exists():
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], check=True,
                       capture_output=True, env=dict(os.environ))
        (AIRFLOW_TEST_HOME / "airflow.db.ready").touch()
    return AIRFLOW_TEST_HOME
