"""A live replica: a table's stream segments applied to a table on another DynamoDB server (a second "region").

The source is a streamed table on the session's DynamoDB Local (Streams through the PITR stand-in
and the strict front door; on dynalite, the stand-in's Streams over its journal); its records are
stored as segments (``stream_workload``); the replica is a table on ``second_dynamodb``. After
the workload stops the replica must equal the source, including after a replica that was killed
mid-apply is run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from dynamodb_backup.cli import main as cli
from dynamodb_backup.commands import client_for
from dynamodb_backup.replica.apply import ReplicaTarget, replicate
from dynamodb_backup.replica.progress import load_progress, replica_id
from dynamodb_backup.replica.status import stream_status
from dynamodb_backup.repository.streamprogress import GapMarker, write_gap
from stream_workload import StreamSource as Source
from stream_workload import (
    StreamWorkload,
    create_stream_table,
    digests,
    scan_all,
    store_segments,
    stream_source,
    streams_server_for,
)


class Killed(BaseException):
    """The process died: nothing in the replica catches it (as nothing survives a SIGKILL)."""


class DyingClient:
    """A DynamoDB client whose process dies on the BatchWriteItem that would take the writes sent to the table
    past ``die_after``, before that call is sent; ``written`` counts the requests that reached it. The
    replica's writer lanes call it at once: once dead, no lane sends anything more (as after a SIGKILL)."""

    def __init__(self, client: Any, die_after: int) -> None:
        self.client, self.die_after, self.kills, self.written, self.sent = client, die_after, 0, 0, 0
        self.lock = threading.Lock()

    def batch_write_item(self, **kwargs: Any) -> Any:
        with self.lock:
            if self.kills:
                raise Killed()
            self.sent += sum(len(v) for v in kwargs["RequestItems"].values())
            if self.sent > self.die_after:
                self.kills += 1
                raise Killed()
        answer = self.client.batch_write_item(**kwargs)
        with self.lock:
            self.written += sum(len(v) for v in kwargs["RequestItems"].values()) - sum(
                len(v) for v in (answer.get("UnprocessedItems") or {}).values())
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _workload(ddb: Any, table: str, writes: int, workload: StreamWorkload | None = None) -> StreamWorkload:
    workload = workload or StreamWorkload(ddb, table, seed=77, keys=10)
    for _ in range(writes):
        workload.one_write(int(time.time()))
    return workload


@pytest.fixture(scope="module")
def streams_server(local_aws: Any, pitr_standin: Any) -> Any:
    return streams_server_for(local_aws, pitr_standin)


@pytest.fixture
def source(streams_server: Any, table_name: str, s3_bucket: str) -> Source:
    return stream_source(streams_server, table_name, s3_bucket, seed=77, keys=10)


def _stored_with_replica_table(local_aws: Any, second_dynamodb: Any, source: Source, writes: int,
                               per_segment: int) -> tuple[Any, str, str]:
    """``writes`` source changes stored in segments of ``per_segment``, and an empty replica table on the second
    server: the S3 client, the replica table and the replica's name."""
    s3 = local_aws.s3_client()
    to_table = "replica-" + source.workload.table
    create_stream_table(second_dynamodb.client("dynamodb"), to_table, pitr=False)
    _workload(source.ddb, source.workload.table, writes, source.workload)
    store_segments(source.ddb, source.streams, s3, source.base, source.workload, per_segment=per_segment)
    return s3, to_table, replica_id(to_table, None, second_dynamodb.url)


def _replicate_once(s3: Any, second_dynamodb: Any, source: Source, to_table: str, name: str) -> Any:
    target = ReplicaTarget(client_for("dynamodb", second_dynamodb.url), to_table, write_ratio=1.0)
    return replicate(s3, source.base, source.workload.table, target, name, once=True)


def test_the_replica_follows_the_source_and_the_source_wins(local_aws, second_dynamodb, source, capsys):
    ddb, streams, workload, base = source.ddb, source.streams, source.workload, source.base
    s3 = local_aws.s3_client()
    replica_ddb = second_dynamodb.client("dynamodb")
    create_stream_table(replica_ddb, "replica-" + workload.table, pitr=False)
    to_table = "replica-" + workload.table
    _workload(ddb, workload.table, 60, workload)
    store_segments(ddb, streams, s3, base, workload, upto=25)
    args = ["replicate", "--from", base.uri, "--table", workload.table, "--to-table", to_table,
            "--to-endpoint", second_dynamodb.url, "--once", "--write-ratio", "1.0"]
    assert cli(args) == 0
    out = capsys.readouterr().out
    assert "25 changes applied" in out and "caught up" in out
    _workload(ddb, workload.table, 40, workload)  # the source goes on; the tail stores the rest
    # Written on the replica directly: a key the source then writes (the source wins), and one it never writes.
    pk, sk = workload.writes[-1].key
    replica_ddb.put_item(TableName=to_table, Item={"pk": {"S": pk}, "sk": {"N": sk}, "mine": {"S": "replica"}})
    replica_ddb.put_item(TableName=to_table, Item={"pk": {"S": "only-here"}, "sk": {"N": "1"}})
    store_segments(ddb, streams, s3, base, workload)
    assert cli([*args[:-3], "--for", "3s", "--poll", "1s", "--write-ratio", "1.0"]) == 0
    out = capsys.readouterr().out
    assert f"{len(workload.writes) - 25} changes applied" in out, out
    replica = digests(scan_all(replica_ddb, to_table))
    assert replica.pop(("only-here", "1")) is not None, "a key the source never wrote is left alone"
    assert replica == digests(scan_all(ddb, workload.table)) == digests(workload.state)
    status = stream_status(s3, base, workload.table)
    (shown,) = status["replicas"]
    assert shown["to_table"] == to_table and shown["caught_up"] and shown["applied"] == len(workload.writes)
    assert shown["newest_applied"] == datetime.fromtimestamp(workload.writes[-1].second, UTC).isoformat().replace(
        "+00:00", "Z")
    assert 0 <= shown["lag_seconds"] < 3600


def test_a_replica_killed_mid_apply_and_run_again_equals_the_source(local_aws, second_dynamodb, source):
    ddb, workload, base = source.ddb, source.workload, source.base
    s3, to_table, name = _stored_with_replica_table(local_aws, second_dynamodb, source, 120, per_segment=40)
    # Segments of 40 changes: the process dies inside the second, once more than 40 changes were written.
    dying = DyingClient(client_for("dynamodb", second_dynamodb.url), die_after=60)
    with pytest.raises(Killed):
        replicate(s3, base, workload.table, ReplicaTarget(dying, to_table, write_ratio=1.0), name, once=True)
    assert dying.kills == 1, "the replica must have been killed mid-apply"
    saved = load_progress(s3, base, workload.table, name)
    assert saved is not None and saved.applied == 40, "progress covers exactly the first segment"
    assert saved.applied < dying.written <= 60, "changes were written past the saved progress: the rerun replays them"
    replica_ddb = second_dynamodb.client("dynamodb")
    assert digests(scan_all(replica_ddb, to_table)) != digests(workload.state), "the kill left the replica behind"
    report = _replicate_once(s3, second_dynamodb, source, to_table, name)
    assert report.applied == len(workload.writes) - saved.applied
    assert digests(scan_all(replica_ddb, to_table)) == digests(scan_all(ddb, workload.table)) \
        == digests(workload.state)
    # Run again from the start (progress lost): every change replays in order, and the state is the same.
    s3.delete_object(Bucket=base.bucket, Key=base.key(f"{workload.table}/stream/_replicas/{name}.json"))
    again = _replicate_once(s3, second_dynamodb, source, to_table, name)
    assert again.applied == len(workload.writes)
    assert digests(scan_all(replica_ddb, to_table)) == digests(workload.state)


def test_replicate_refuses_bad_durations_and_another_key_schema(local_aws, second_dynamodb, source, capsys):
    ddb, streams, workload, base = source.ddb, source.streams, source.workload, source.base
    to_table = f"other-keys-{uuid.uuid4().hex[:6]}"
    assert cli(["replicate", "--from", base.uri, "--table", workload.table, "--to-table", to_table,
                "--for", "soon"]) == 2
    assert "--for: 'soon' is not a duration" in capsys.readouterr().err
    _workload(ddb, workload.table, 5, workload)
    store_segments(ddb, streams, local_aws.s3_client(), base, workload)
    local_aws.create_table(to_table, client=second_dynamodb.client("dynamodb"))
    assert cli(["replicate", "--from", base.uri, "--table", workload.table, "--to-table", to_table,
                "--to-endpoint", second_dynamodb.url, "--once"]) == 2
    assert f"--to-table {to_table}: key schema" in capsys.readouterr().err


def test_the_operator_applies_and_puts_the_lag_in_its_asset_event(local_aws, second_dynamodb, source, monkeypatch):
    from dynamodb_backup.operators.replica import ReplicateOperator, replica_asset

    ddb, streams, workload, base = source.ddb, source.streams, source.workload, source.base
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    replica_conn = json.loads(local_aws.airflow_conn_env()["AIRFLOW_CONN_AWS_DEFAULT"])
    replica_conn["extra"]["service_config"]["dynamodb"]["endpoint_url"] = second_dynamodb.url
    monkeypatch.setenv("AIRFLOW_CONN_REPLICA_ACCOUNT", json.dumps(replica_conn))
    to_table = "replica-" + workload.table
    create_stream_table(second_dynamodb.client("dynamodb"), to_table, pitr=False)
    _workload(ddb, workload.table, 30, workload)
    store_segments(ddb, streams, local_aws.s3_client(), base, workload)
    asset = replica_asset(base.bucket, base.prefix, workload.table, to_table)
    assert asset.uri == f"{base.uri}/{workload.table}/stream/_replicas/{to_table}"
    events: dict[Any, Any] = {asset: SimpleNamespace(extra=None)}
    operator = ReplicateOperator(task_id="replicate", table=workload.table, bucket=base.bucket, prefix=base.prefix,
                                 to_table=to_table, to_conn_id="replica_account", write_ratio=1.0, outlets=[asset])
    result = operator.execute({"outlet_events": events})  # type: ignore[arg-type]
    assert result["applied"] == 30 and result["caught_up"] and result["lag_seconds"] is not None
    assert events[asset].extra == result
    assert digests(scan_all(second_dynamodb.client("dynamodb"), to_table)) == digests(workload.state)


def test_a_child_shard_waits_until_its_parent_is_read_to_its_end(local_aws, second_dynamodb, source):
    ddb, streams, workload, base = source.ddb, source.streams, source.workload, source.base
    s3 = local_aws.s3_client()
    to_table = "replica-" + workload.table
    create_stream_table(second_dynamodb.client("dynamodb"), to_table, pitr=False)
    _workload(ddb, workload.table, 50, workload)
    store_segments(ddb, streams, s3, base, workload, split_at=30, parent_finished=False)
    target = ReplicaTarget(client_for("dynamodb", second_dynamodb.url), to_table, write_ratio=1.0)
    first = replicate(s3, base, workload.table, target, "split", once=True)
    assert first.applied == 30 and len(first.waiting) == 1 and not first.caught_up, first.line()
    store_segments(ddb, streams, s3, base, workload, split_at=30, parent_finished=True)  # the tail finished it
    second = replicate(s3, base, workload.table, target, "split", once=True)
    assert second.applied == 20 and second.caught_up and not second.waiting, second.line()
    assert digests(scan_all(second_dynamodb.client("dynamodb"), to_table)) == digests(workload.state)
    # A break in the source's stream is said by the replica too (the tail's own start is not one).
    write_gap(s3, base, GapMarker(workload.table, "trimmed", datetime.now(UTC).isoformat(), "trimmed",
                                  last_seconds=workload.writes[-1].second, base={"folder": "s3://b/p/T/new-base"}))
    third = replicate(s3, base, workload.table, target, "split", once=True)
    (line,) = third.gaps
    assert line.startswith(f"stream of {workload.table!r} has a gap (trimmed) from ") and "\n" not in line
    assert line.endswith("seed the replica again from s3://b/p/T/new-base (restore it into the replica), "
                         "then replicate")


def test_a_replicate_process_killed_with_sigkill_and_run_again_equals_the_source(local_aws, second_dynamodb, source):
    workload, base = source.workload, source.base
    s3, to_table, name = _stored_with_replica_table(local_aws, second_dynamodb, source, 120, per_segment=10)
    command = [sys.executable, "-m", "dynamodb_backup", "replicate", "--from", base.uri, "--table", workload.table,
               "--to-table", to_table, "--to-endpoint", second_dynamodb.url, "--once", "--write-ratio", "0.2",
               "--on-demand-capacity", "100"]  # 20 write units/s: the 120 changes take seconds
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        saved = None
        while process.poll() is None:  # the event: the replica saved progress past its second segment
            saved = load_progress(s3, base, workload.table, name)
            if saved is not None and saved.applied >= 20:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.05)
        assert process.wait(timeout=60) == -signal.SIGKILL, "the replica finished before it could be killed"
    finally:
        if process.poll() is None:
            process.kill()
    saved = load_progress(s3, base, workload.table, name)
    assert saved is not None and 20 <= saved.applied < len(workload.writes)
    report = _replicate_once(s3, second_dynamodb, source, to_table, name)
    assert report.applied == len(workload.writes) - saved.applied and report.caught_up
    assert digests(scan_all(second_dynamodb.client("dynamodb"), to_table)) == digests(workload.state)
