"""The local AWS servers: DynamoDB Local and dynalite for DynamoDB, moto server for S3/SNS, and the CLI."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from local_aws import (
    BACKENDS,
    LocalAwsError,
    LocalServer,
    free_port,
    pid_alive,
    start_backend,
    start_ddblocal,
    start_dynalite,
    wait_until_ready,
)

if TYPE_CHECKING:
    from conftest import LocalAws

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "include" / "local_aws.py"


# --------------------------------------------------------------------------- DynamoDB


def test_dynalite_table_put_get(local_aws: LocalAws, table_name: str) -> None:
    ddb = local_aws.dynamodb_client()
    local_aws.create_table(table_name, hash_key="pk", range_key="sk", range_type="N")
    item = {
        "pk": {"S": "user#1"},
        "sk": {"N": "001.500"},
        "tags": {"SS": ["a", "b"]},
        "blob": {"B": b"\x00\x01"},
        "nested": {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}},
    }
    ddb.put_item(TableName=table_name, Item=item)
    got = ddb.get_item(TableName=table_name, Key={"pk": {"S": "user#1"}, "sk": {"N": "1.5"}}, ConsistentRead=True)
    assert got["Item"]["sk"] == {"N": "1.5"}  # normalised like AWS
    assert got["Item"]["blob"] == {"B": b"\x00\x01"}
    assert sorted(got["Item"]["tags"]["SS"]) == ["a", "b"]
    assert table_name in ddb.list_tables()["TableNames"]


def test_environment_points_default_clients_at_local_servers(local_aws: LocalAws, s3_bucket: str) -> None:
    assert os.environ["AWS_ENDPOINT_URL_DYNAMODB"] == local_aws.dynamodb_url
    assert os.environ["AWS_ENDPOINT_URL_S3"] == os.environ["AWS_ENDPOINT_URL_SNS"] == local_aws.s3_url
    assert os.environ["AWS_ACCESS_KEY_ID"] == "testing"
    # No endpoint_url, no region: everything comes from the environment.
    assert boto3.client("dynamodb").meta.endpoint_url == local_aws.dynamodb_url
    assert s3_bucket in [b["Name"] for b in boto3.client("s3").list_buckets()["Buckets"]]
    topic = boto3.client("sns").create_topic(Name="backup-events")["TopicArn"]
    assert topic.startswith("arn:aws:sns:us-east-1:")
    assert topic in [t["TopicArn"] for t in local_aws.sns_client().list_topics()["Topics"]]


def test_second_dynamodb_is_separate(local_aws: LocalAws, second_dynamodb: LocalServer, table_name: str) -> None:
    assert second_dynamodb.url != local_aws.dynamodb_url
    local_aws.create_table(table_name)
    other = second_dynamodb.client(region_name="eu-west-1")
    assert table_name not in other.list_tables()["TableNames"]
    local_aws.create_table(table_name, client=other)
    other.put_item(TableName=table_name, Item={"pk": {"S": "only-here"}})
    assert local_aws.dynamodb_client().scan(TableName=table_name)["Count"] == 0
    assert other.scan(TableName=table_name)["Count"] == 1


def test_dynalite_data_survives_restart(tmp_path: Path, local_aws: LocalAws, table_name: str) -> None:
    port = free_port()
    with start_dynalite(port, tmp_path) as server:
        client = server.client()
        local_aws.create_table(table_name, client=client)
        client.put_item(TableName=table_name, Item={"pk": {"S": "kept"}})
    assert not server.is_running()
    assert (tmp_path / "dynalite").is_dir() and (tmp_path / "dynalite.log").is_file()
    with start_dynalite(free_port(), tmp_path) as server:
        item = server.client().get_item(TableName=table_name, Key={"pk": {"S": "kept"}})["Item"]
    assert item == {"pk": {"S": "kept"}}


def test_a_client_killed_mid_request_does_not_crash_dynalite(tmp_path: Path, local_aws: LocalAws) -> None:
    """What a SIGKILLed worker does to the server: headers and part of a body, then a reset."""
    with start_dynalite(free_port(), tmp_path) as server:
        host, port = server.url.removeprefix("http://").split(":")
        for _ in range(3):
            with socket.create_connection((host, int(port))) as conn:
                conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                             b"X-Amz-Target: DynamoDB_20120810.BatchWriteItem\r\nContent-Length: 100000\r\n\r\n"
                             b'{"RequestItems": {"T": [')
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
            time.sleep(0.2)
        assert server.is_running(), (tmp_path / "dynalite.log").read_text()
        assert "TableNames" in server.client().list_tables()
    assert "hung up mid-request" in (tmp_path / "dynalite.log").read_text()


def test_ddblocal_data_survives_restart_with_a_db_path(tmp_path: Path, local_aws: LocalAws, table_name: str) -> None:
    """``make local-aws`` keeps DynamoDB Local's tables in <state>/ddblocal (-dbPath), not in memory."""
    with start_ddblocal(free_port(), tmp_path, in_memory=False) as server:
        client = server.client()
        local_aws.create_table(table_name, client=client)
        client.put_item(TableName=table_name, Item={"pk": {"S": "kept"}})
    assert not server.is_running()
    assert (tmp_path / "ddblocal" / "shared-local-instance.db").is_file()  # -sharedDb: one database file
    with start_ddblocal(free_port(), tmp_path, in_memory=False) as server:
        item = server.client().get_item(TableName=table_name, Key={"pk": {"S": "kept"}})["Item"]
    assert item == {"pk": {"S": "kept"}}
    with start_ddblocal(free_port(), tmp_path) as server:  # in memory: starts empty
        assert table_name not in server.client().list_tables()["TableNames"]


def test_ddblocal_shares_one_database_across_keys_and_regions(tmp_path: Path, local_aws: LocalAws,
                                                             table_name: str) -> None:
    """-sharedDb: the stand-in's own calls (key local-pitr) must see the tables a client made with its key."""
    with start_ddblocal(free_port(), tmp_path) as server:
        local_aws.create_table(table_name, client=server.client(aws_access_key_id="a", aws_secret_access_key="a"))
        other = server.client(aws_access_key_id="b", aws_secret_access_key="b", region_name="eu-west-1")
        assert table_name in other.list_tables()["TableNames"]


def test_ddblocal_refuses_an_unsigned_request(tmp_path: Path) -> None:
    """AWS's emulator wants an Authorization header (any signature passes): probes and proxies must sign."""
    import http.client

    with start_ddblocal(free_port(), tmp_path) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("POST", "/", body=b"{}", headers={"Content-Type": "application/x-amz-json-1.0",
                                                       "X-Amz-Target": "DynamoDB_20120810.ListTables"})
        answer = conn.getresponse()
        assert (answer.status, b"MissingAuthenticationToken" in answer.read()) == (400, True)
        assert server.answers()  # our probe signs


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_client_killed_mid_request_leaves_the_backend_answering(tmp_path: Path, backend: str) -> None:
    with start_backend(backend, free_port(), tmp_path) as server:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port)) as conn:
                conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-amz-json-1.0\r\n"
                             b"X-Amz-Target: DynamoDB_20120810.BatchWriteItem\r\nContent-Length: 100000\r\n\r\n"
                             b'{"RequestItems": {"T": [')
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST, not FIN
        assert server.is_running(), (tmp_path / f"{backend}.log").read_text()
        assert "TableNames" in server.client().list_tables()


# --------------------------------------------------------------------------- S3


def test_moto_s3_put_get(local_aws: LocalAws, s3_bucket: str) -> None:
    s3 = local_aws.s3_client()
    s3.put_object(Bucket=s3_bucket, Key="dir/a.json", Body=b'{"a": 1}', ContentType="application/json")
    obj = s3.get_object(Bucket=s3_bucket, Key="dir/a.json")
    assert obj["Body"].read() == b'{"a": 1}'
    assert obj["ContentType"] == "application/json"
    with pytest.raises(s3.exceptions.ClientError) as info:
        s3.put_object(Bucket=s3_bucket, Key="dir/a.json", Body=b"again", IfNoneMatch="*")
    assert info.value.response["Error"]["Code"] == "PreconditionFailed"


def test_moto_s3_multipart_upload(local_aws: LocalAws, s3_bucket: str) -> None:
    s3 = local_aws.s3_client()
    part1 = os.urandom(5 * 1024 * 1024)  # every part but the last must be >= 5 MiB
    part2 = b"tail" * 1000
    upload = s3.create_multipart_upload(Bucket=s3_bucket, Key="big.bin")
    parts = []
    for number, body in enumerate((part1, part2), start=1):
        etag = s3.upload_part(
            Bucket=s3_bucket, Key="big.bin", UploadId=upload["UploadId"], PartNumber=number, Body=body
        )["ETag"]
        parts.append({"PartNumber": number, "ETag": etag})
    s3.complete_multipart_upload(
        Bucket=s3_bucket, Key="big.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": parts}
    )
    head = s3.head_object(Bucket=s3_bucket, Key="big.bin")
    assert head["ContentLength"] == len(part1) + len(part2)
    assert head["ETag"].strip('"').endswith("-2")
    assert s3.get_object(Bucket=s3_bucket, Key="big.bin")["Body"].read() == part1 + part2


@pytest.mark.parametrize("style", [None, "auto", "path", "virtual"])
def test_s3_addressing_styles_against_ip_endpoint(local_aws: LocalAws, s3_bucket: str, style: str | None) -> None:
    """boto3 falls back to path style for an IP endpoint, whatever addressing_style says."""
    s3_options: Any = {"addressing_style": style}
    config = Config(s3=s3_options) if style else None
    s3 = local_aws.s3_client(config=config)
    s3.put_object(Bucket=s3_bucket, Key=f"style-{style}", Body=b"x")
    assert s3.get_object(Bucket=s3_bucket, Key=f"style-{style}")["Body"].read() == b"x"
    url = s3.generate_presigned_url("get_object", Params={"Bucket": s3_bucket, "Key": "k"})
    assert url.startswith(f"{local_aws.s3_url}/{s3_bucket}/k?")


# --------------------------------------------------------------------------- readiness errors


def _fake_server(tmp_path: Path, script: str) -> LocalServer:
    log_path = tmp_path / "fake.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(["sh", "-c", script], stdout=log, stderr=subprocess.STDOUT)
    return LocalServer(name="moto", port=free_port(), process=process, log_path=log_path)


def test_wait_until_ready_reports_early_exit_with_log_tail(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "echo first line; echo 'boom: address in use' >&2; exit 3")
    with pytest.raises(LocalAwsError) as info:
        wait_until_ready(server, timeout=10)
    message = str(info.value)
    assert "exited with code 3 before answering" in message
    assert "boom: address in use" in message and str(server.log_path) in message


def test_wait_until_ready_times_out_with_log_tail(tmp_path: Path) -> None:
    server = _fake_server(tmp_path, "echo still booting; exec sleep 30")
    try:
        pattern = r"did not answer on http://127\.0\.0\.1:\d+ within 1 s(.|\n)*still booting"
        with pytest.raises(LocalAwsError, match=pattern):
            wait_until_ready(server, timeout=1)
        # It gave up on its own timeout, not on the server's exit: the server still sleeps.
        assert server.is_running()
    finally:
        server.stop()
    assert not server.is_running()


@pytest.mark.parametrize("backend", BACKENDS)
def test_start_refuses_a_busy_port(local_aws: LocalAws, tmp_path: Path, backend: str) -> None:
    with pytest.raises(LocalAwsError, match=f"port {local_aws.dynamodb.port} .* already in use"):
        start_backend(backend, local_aws.dynamodb.port, tmp_path)


def test_start_backend_refuses_an_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(LocalAwsError, match="unknown DynamoDB backend 'dynamodb': choose one of ddblocal, dynalite"):
        start_backend("dynamodb", free_port(), tmp_path)


def test_ddblocal_without_java_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no java here
    with pytest.raises(LocalAwsError, match=r"java not found on PATH: .*openjdk-17-jre-headless.*--backend dynalite"):
        start_ddblocal(free_port(), tmp_path)


# --------------------------------------------------------------------------- CLI, PID-file mode


def _cli(*args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=check,
    )


def _pids(state: Path) -> dict[str, int]:
    return {
        name: int((state / f"{name}.pid").read_text())
        for name in (*BACKENDS, "moto", "local_pitr")
        if (state / f"{name}.pid").exists()
    }


def test_cli_env_prints_exports_without_starting(tmp_path: Path) -> None:
    out = _cli("env", "--dynamodb-port", "1111", "--moto-port", "2222", "--state-dir", str(tmp_path)).stdout
    assert out.splitlines() == [
        "export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:1111",
        "export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:1111",
        "export AWS_ENDPOINT_URL_S3=http://127.0.0.1:2222",
        "export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:2222",
        "export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1",
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("backend", BACKENDS)
def test_cli_start_status_stop(tmp_path: Path, backend: str) -> None:
    state = tmp_path / "state"
    ddb_port, dynalite_port, moto_port = free_port(), free_port(), free_port()
    other = next(name for name in BACKENDS if name != backend)
    # Ports and backend from the environment for start, from flags for status: both paths are used.
    env = {**os.environ, "LOCAL_DYNAMODB_PORT": str(ddb_port), "LOCAL_DYNALITE_PORT": str(dynalite_port),
           "LOCAL_MOTO_PORT": str(moto_port), "LOCAL_DYNAMODB_BACKEND": backend}
    env.pop("LOCAL_UPSTREAM_PORT", None)
    flags = ["--state-dir", str(state), "--dynamodb-port", str(ddb_port), "--upstream-port", str(dynalite_port),
             "--moto-port", str(moto_port), "--backend", backend]

    # A stale PID file (dead process) must not stop `start`, whichever backend it names.
    state.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (state / f"{backend}.pid").write_text(f"{dead.pid}\n")
    (state / f"{other}.pid").write_text(f"{dead.pid}\n")

    started: dict[str, int] = {}
    try:
        result = _cli("start", "--state-dir", str(state), env=env)
        started = _pids(state)
        assert result.stdout.splitlines() == [
            f"export AWS_ENDPOINT_URL_DYNAMODB=http://127.0.0.1:{ddb_port}",
            f"export AWS_ENDPOINT_URL_DYNAMODB_STREAMS=http://127.0.0.1:{ddb_port}",
            f"export AWS_ENDPOINT_URL_S3=http://127.0.0.1:{moto_port}",
            f"export AWS_ENDPOINT_URL_SNS=http://127.0.0.1:{moto_port}",
            "export AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local AWS_DEFAULT_REGION=us-east-1",
        ]
        assert f"{backend} started" in result.stderr and "moto started" in result.stderr
        assert "local_pitr started" in result.stderr
        started.pop(other)  # the stale file, left alone
        assert set(started) == {backend, "moto", "local_pitr"} and started[backend] != dead.pid
        assert all(pid_alive(pid) for pid in started.values())
        # Both backends keep their data in the state directory: `make local-aws` survives a restart.
        assert (state / backend).is_dir() and (state / f"{backend}.log").exists() and (state / "moto.log").exists()
        assert (state / "local_pitr").is_dir() and (state / "local_pitr.log").exists()

        # The exports work as printed.
        exported: dict[str, str] = {}
        for line in result.stdout.splitlines():
            for pair in line.removeprefix("export ").split():
                key, value = pair.split("=", 1)
                exported[key] = value
        session = boto3.session.Session(
            aws_access_key_id=exported["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=exported["AWS_SECRET_ACCESS_KEY"],
            region_name=exported["AWS_DEFAULT_REGION"],
        )
        make_client: Any = session.client
        assert (
            make_client("dynamodb", endpoint_url=exported["AWS_ENDPOINT_URL_DYNAMODB"]).list_tables()["TableNames"]
            == []
        )
        # The README's default bucket is there, so its CLI examples work in the order it gives them.
        buckets = make_client("s3", endpoint_url=exported["AWS_ENDPOINT_URL_S3"]).list_buckets()["Buckets"]
        assert [b["Name"] for b in buckets] == [os.environ.get("DYNAMODB_BACKUP_BUCKET") or "dynamodb-backups"]
        assert "backup bucket s3://" in result.stderr
        make_client("s3", endpoint_url=exported["AWS_ENDPOINT_URL_S3"]).create_bucket(Bucket="cli-bucket")

        # Idempotent: a second start reuses the same processes.
        again = _cli("start", *flags)
        assert "already running" in again.stderr
        assert again.stdout == result.stdout
        assert {name: pid for name, pid in _pids(state).items() if name != other} == started

        # The other backend is refused while this one runs: one DynamoDB behind the stand-in at a time.
        switch = _cli("start", *flags[:-1], other, check=False)
        assert switch.returncode == 1
        refusal = f"{backend} is running (pid {started[backend]}) as the local DynamoDB backend, not {other}"
        assert refusal in switch.stderr
        assert not (state / f"{other}.log").exists()

        # Asking for another port while running is an error, not a second server.
        other_port = ["--dynamodb-port", str(free_port()), "--dynalite-port", str(dynalite_port),
                      "--moto-port", str(moto_port), "--backend", backend]
        clash = _cli("start", "--state-dir", str(state), *other_port, check=False)
        assert clash.returncode == 1
        assert f"already running (pid {started['local_pitr']}) on port {ddb_port}" in clash.stderr

        status = _cli("status", *flags)
        assert f"{backend}: pid {started[backend]}, http://127.0.0.1:{dynalite_port} answers" in status.stdout
        assert f"moto: pid {started['moto']}, http://127.0.0.1:{moto_port} answers" in status.stdout
        assert f"local_pitr: pid {started['local_pitr']}, http://127.0.0.1:{ddb_port} answers" in status.stdout

        stop = _cli("stop", "--state-dir", str(state))
        assert f"{backend}: stopped pid {started[backend]}" in stop.stdout and f"{other}: not running" in stop.stdout
        assert f"moto: stopped pid {started['moto']}" in stop.stdout
        assert f"local_pitr: stopped pid {started['local_pitr']}" in stop.stdout
        assert not any(pid_alive(pid) for pid in started.values())
        assert _pids(state) == {}

        stopped = _cli("status", *flags, check=False)
        assert stopped.returncode == 1
        assert stopped.stdout.splitlines() == [f"{backend}: not running", "moto: not running",
                                               "local_pitr: not running"]
        assert "not running" in _cli("stop", "--state-dir", str(state)).stdout  # stop is idempotent too
    finally:
        # Never leave servers behind, even when an assertion failed half-way.
        for pid in {**started, **_pids(state)}.values():
            if pid != dead.pid and pid_alive(pid):
                os.kill(pid, 9)
