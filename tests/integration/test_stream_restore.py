"""Restore to a second: a full backup, an incremental link and the stream segments, against the test's writes.

One recorded history per module: a streamed table (DynamoDB Local's Streams, through the PITR
stand-in and the strict front door) written by a seeded workload over a dozen seconds, a full
backup in the middle, an incremental link later, and the table's stream records stored as
segments with the seconds the test recorded (``stream_workload``). Every restore must equal
``state_at(second)``, the table as the test's own writes left it at the end of that second.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest
from dynamodb_backup.cli import main as cli
from dynamodb_backup.commands import client_factory
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.incremental.backup import run_incremental_link
from dynamodb_backup.replica.status import stream_status
from dynamodb_backup.repository.streamprogress import GapMarker, read_gaps, write_gap
from dynamodb_backup.restore.job import RestoreRequest
from dynamodb_backup.restore.selection import run_items
from dynamodb_backup.restore.streamrestore import run_stream_as_of
from stream_workload import StreamWorkload, create_stream_table, digests, next_second, scan_all, store_segments


@dataclass
class Recorded:
    make: Any
    endpoint: str
    base: S3Location
    workload: StreamWorkload
    full_at: int
    link_at: int
    seconds: list[int]
    streams: Any


def _at(second: int) -> datetime:
    return datetime.fromtimestamp(second, UTC)


def _iso(second: int) -> str:
    return _at(second).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def recorded(local_aws: Any, pitr_standin: Any) -> Recorded:
    # DynamoDB Local's own Streams; on dynalite (which has none) the stand-in's Streams over its journal.
    standin = pitr_standin(lag_seconds=0, min_export_seconds=0, min_incremental_window_seconds=1,
                           streams=None if local_aws.is_ddblocal else "journal")
    make = client_factory(standin.url)
    ddb, s3 = make("dynamodb"), make("s3")
    bucket = f"stream-restore-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    base = S3Location(bucket, "backups")
    table = f"streamed-{uuid.uuid4().hex[:6]}"
    create_stream_table(ddb, table)
    workload = StreamWorkload(ddb, table)
    request = BackupRequest(table=table, destination=base, logical_date=datetime.now(UTC), max_workers=2,
                            settings=ExportSettings(file_max_items=10))
    for _ in range(2):
        workload.run_second(8)
    # The full's second holds writes on both sides of its export time: those before it are in the full,
    # those after it only in the stream, and the replay of that whole second must give both.
    workload.run_second(4)
    now = datetime.now(UTC)
    exported = now.replace(microsecond=now.microsecond // 1000 * 1000)  # AWS's export times are milliseconds
    while datetime.now(UTC) <= exported:
        time.sleep(0.01)
    plan, _ = run_incremental_link(make, request, exported - timedelta(seconds=30), exported, poll_seconds=0.1)
    assert plan.role == "full", plan
    full_at = int(exported.timestamp())
    workload.run_stamped(4, full_at)  # stamped with the export's second: AWS would stamp a write of its rest so
    for _ in range(2):
        workload.run_second(8)
    link_at = next_second()
    plan, _ = run_incremental_link(make, request, exported, _at(link_at), poll_seconds=0.1)
    assert plan.role == "incremental", plan
    for _ in range(2):
        workload.run_second(8)
    store_segments(ddb, standin.client("dynamodbstreams"), s3, base, workload)
    return Recorded(make, standin.url, base, workload, full_at, link_at, sorted({w.second for w in workload.writes}),
                    standin.client("dynamodbstreams"))


def _request(table: str, **kwargs: Any) -> RestoreRequest:
    kwargs.setdefault("create_table", True)
    return RestoreRequest(folder=S3Location("unused", ""), table=table, write_ratio=1.0, workers=1, **kwargs)


def chosen_seconds(rec: Recorded) -> list[int]:
    """Five seconds holding five different states: the full's own second (written before and after the
    export), the first and the last second written between the full and the link (the full and the stream),
    the first second written after the link and the last one (the full, the link and the stream)."""
    between = [s for s in rec.seconds if rec.full_at < s < rec.link_at]
    after = [s for s in rec.seconds if s >= rec.link_at]
    return [rec.full_at, between[0], between[-1], after[0], after[-1]]


def test_as_of_five_seconds_equals_the_tests_own_state(recorded: Recorded):
    rec = recorded
    ddb = rec.make("dynamodb")
    states = set()
    for number, second in enumerate(chosen_seconds(rec)):
        target = f"{rec.workload.table}-at-{number}"
        outcome = run_stream_as_of(rec.make, _request(target), rec.base, rec.workload.table, _at(second))
        assert outcome.plan.point == second, outcome.plan.describe()
        assert len(outcome.plan.chain.links) == (1 if second >= rec.link_at else 0)
        assert outcome.verify is not None and outcome.verify.match, outcome.verify.summary()
        expected = digests(rec.workload.state_at(second))
        assert digests(scan_all(ddb, target)) == expected, f"as of {_iso(second)}"
        states.add(tuple(sorted(expected.items())))
    assert len(states) == 5, "the five seconds must hold five different states, or the test shows little"


def test_the_recovery_point_is_the_newest_stored_second(recorded: Recorded):
    rec = recorded
    status = stream_status(rec.make("s3"), rec.base, rec.workload.table)
    assert status["recovery_point"] == _iso(rec.seconds[-1]) and not status["held_back_by_gap"]
    assert status["gaps"] == [] and status["replicas"] == []
    assert status["base"] == f"{rec.base.uri}/{rec.workload.table}/" + _at(rec.full_at).strftime("%Y-%m-%d-%H-%M-%S")
    assert 0 <= status["recovery_point_age_seconds"] < 600
    listed = rec.make("s3").list_objects_v2(Bucket=rec.base.bucket, Prefix=rec.base.key("_restore_checkpoints"))
    assert listed.get("KeyCount", 0) == 0, "verified restores leave no completion markers behind"


def test_cli_restores_into_the_existing_table_to_a_second_inside_the_last_one(recorded: Recorded, capsys):
    rec = recorded
    ddb = rec.make("dynamodb")
    second = rec.seconds[-2]
    target = f"{rec.workload.table}-cli"
    create_stream_table(ddb, target, pitr=False)
    ddb.put_item(TableName=target, Item={"pk": {"S": "stranger"}, "sk": {"N": "1"}})
    code = cli(["restore", "--as-of", _iso(second)[:-1] + ".750Z", "--from", rec.base.uri, "--source-table",
                rec.workload.table, "--table", target, "--replace-table", "--write-ratio", "1.0", "--endpoint",
                rec.endpoint])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"restoring to {_iso(second)} inclusive (exactly)" in out
    assert digests(scan_all(ddb, target)) == digests(rec.workload.state_at(second))


def test_items_restore_to_a_second_on_the_same_chain(recorded: Recorded):
    rec = recorded
    ddb = rec.make("dynamodb")
    second = rec.seconds[-4]
    state = rec.workload.state_at(second)
    target = f"{rec.workload.table}-items"
    create_stream_table(ddb, target, pitr=False)
    outcome = run_items(rec.make, target, base=rec.base, source_table=rec.workload.table, moment=_at(second),
                        partition_key="p1", write_ratio=1.0)
    assert outcome.differing == 0 and "stream" in outcome.point
    assert digests(scan_all(ddb, target)) == digests({k: v for k, v in state.items() if k[0] == "p1"})


def _copy(s3: Any, source: S3Location, dest: S3Location, stream: bool = True) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.key("")):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(source.key("")):]
            if stream or "/stream/" not in name:
                s3.copy_object(Bucket=dest.bucket, Key=dest.key(name), CopySource={"Bucket": source.bucket,
                                                                                  "Key": obj["Key"]})


def test_a_stream_split_into_a_parent_and_a_child_shard_restores_parent_first(recorded: Recorded):
    rec = recorded
    s3, ddb = rec.make("s3"), rec.make("dynamodb")
    split = S3Location(rec.base.bucket, "split")
    _copy(s3, rec.base, split, stream=False)
    # Keys written on both sides of the split, after the link (where the replay starts): the child's changes
    # must come after the parent's.
    writes = rec.workload.writes
    replayed = [i for i, w in enumerate(writes) if w.second >= rec.link_at]
    cut = replayed[len(replayed) // 2]
    both = {w.key for w in writes[replayed[0]:cut]} & {w.key for w in writes[cut:]}
    assert both, "no key is written in both shards; the order between them is not shown"
    store_segments(ddb, rec.streams, s3, split, rec.workload, per_segment=7, split_at=cut)
    target = f"{rec.workload.table}-split"
    outcome = run_stream_as_of(rec.make, _request(target), split, rec.workload.table, _at(rec.seconds[-1]))
    assert len(outcome.plan.shards) == 2 and outcome.plan.shards[1].progress.parent_shard_id \
        == outcome.plan.shards[0].shard_id
    assert outcome.verify is not None and outcome.verify.match
    assert digests(scan_all(ddb, target)) == digests(rec.workload.state_at(rec.seconds[-1]))


def test_a_gap_between_the_base_and_the_moment_refuses_with_one_line(recorded: Recorded, capsys):
    rec = recorded
    s3 = rec.make("s3")
    gap_base = S3Location(rec.base.bucket, "gapped")
    _copy(s3, rec.base, gap_base)
    lost_from = rec.seconds[-2]
    write_gap(s3, gap_base, GapMarker(rec.workload.table, "trimmed", _at(rec.seconds[-1] + 1).isoformat(),
                                      "TrimmedDataAccessException", last_seconds=lost_from))
    assert len(read_gaps(s3, gap_base, rec.workload.table)) == 1
    target = f"{rec.workload.table}-gap"
    with pytest.raises(BackupFolderError) as refused:
        run_stream_as_of(rec.make, _request(target), gap_base, rec.workload.table, _at(rec.seconds[-1]))
    line = str(refused.value)
    assert "\n" not in line
    assert f"gap (trimmed) from {_iso(lost_from)}" in line
    assert f"the newest reachable second is {_iso(lost_from - 1)}" in line
    assert table_exists(rec.make("dynamodb"), target) is None, "a refused restore created its table"
    code = cli(["restore", "--as-of", _iso(rec.seconds[-1]), "--from", gap_base.uri, "--source-table",
                rec.workload.table, "--table", target, "--endpoint", rec.endpoint])
    err = capsys.readouterr().err
    assert code != 0 and f"the newest reachable second is {_iso(lost_from - 1)}" in err
    # The console's data says the same: the recovery point is held back by the gap.
    status = stream_status(s3, gap_base, rec.workload.table)
    assert status["recovery_point"] == _iso(lost_from - 1) and status["held_back_by_gap"]
    assert status["gaps"] == [{"kind": "trimmed", "from": _iso(lost_from), "to": _iso(rec.seconds[-1] + 1),
                               "message": "TrimmedDataAccessException", "new_base": None}]
    # The newest reachable second restores, exactly.
    outcome = run_stream_as_of(rec.make, _request(target), gap_base, rec.workload.table, _at(lost_from - 1))
    assert outcome.verify is not None and outcome.verify.match
    assert digests(scan_all(rec.make("dynamodb"), target)) == digests(rec.workload.state_at(lost_from - 1))


def test_the_restore_dag_restores_to_a_second(recorded: Recorded, local_aws, airflow_db, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    if not local_aws.is_ddblocal:
        pytest.skip("the DAG's tasks are the same code on either backend; one run (a minute) is enough for CI")
    rec = recorded
    for name, value in local_aws.airflow_conn_env().items():
        monkeypatch.setenv(name, value)
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "dynamodb_restore.py"))
    assert not bag.import_errors, bag.import_errors
    second, target = rec.seconds[-3], f"{rec.workload.table}-dag"
    run = bag.dags["dynamodb_restore"].test(logical_date=datetime(2024, 6, 4, tzinfo=UTC), run_conf={
        "source": "latest", "source_table": rec.workload.table, "backup_bucket": rec.base.bucket,
        "backup_prefix": rec.base.prefix, "target_table": target, "write_ratio": 1.0, "workers": 1,
        "as_of": _iso(second), "create_table": True})
    assert run.state == "success"
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["apply_changes"] == "success" and states["verify"] == "success"
    assert digests(scan_all(rec.make("dynamodb"), target)) == digests(rec.workload.state_at(second))
