"""Restore to a second and a replica, from segments the stream tail itself wrote over split and rotated shards.

The PITR stand-in serves Streams over its journal (``--streams journal``), stamping records to
the second as AWS does, with shards split and rotated on demand. The table has no PITR, so the
tail's first run takes a scan as its base. ``dynamodb_backup.streams`` tails it in two runs
around a split and a rotation; restores at 5 chosen seconds must equal the test's own model of
the table at those seconds, and a replica must equal the source. Runs on both backends.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from dynamodb_backup.commands import client_for
from dynamodb_backup.formats.catalog import read_sidecar
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.incremental.chain import parse_moment
from dynamodb_backup.replica.apply import ReplicaTarget, replicate
from dynamodb_backup.repository.streamprogress import read_progress
from dynamodb_backup.restore.job import RestoreRequest
from dynamodb_backup.restore.streamrestore import run_stream_as_of
from stream_tail_helpers import make_client_for, stream_hook, tail
from stream_workload import StreamWorkload, create_stream_table, digests, scan_all


def test_segments_the_tail_wrote_restore_to_five_seconds_and_feed_a_replica(local_aws, pitr_standin,
                                                                              second_dynamodb, s3_bucket):
    standin = pitr_standin(lag_seconds=0, streams="journal")
    make = make_client_for(standin.url)
    ddb, s3 = make("dynamodb"), local_aws.s3_client()
    base = S3Location(s3_bucket, "backups")
    table = f"tailed-{uuid.uuid4().hex[:6]}"
    create_stream_table(ddb, table, pitr=False)
    workload = StreamWorkload(ddb, table, wall_clock=True)
    for _ in range(2):
        workload.run_second(6)
    first = tail(standin.url, table, base, 1.0)
    (started,) = first.markers
    assert started.kind == "started" and started.base["mode"] == "scan"
    sidecar = read_sidecar(s3, S3Location.parse(started.base["folder"]))
    base_end = int(parse_moment(sidecar.snapshot_end).timestamp())
    for _ in range(2):
        workload.run_second(6)
    stream_hook(standin.server.url, "RotateShards", TableName=table, Children=2)  # a split
    for _ in range(2):
        workload.run_second(6)
    stream_hook(standin.server.url, "RotateShards", TableName=table, Children=1)  # each child rotates
    for _ in range(2):
        workload.run_second(6)
    second = tail(standin.url, table, base, 1.5)
    assert second.markers == [] and second.stored == second.records
    assert len(read_progress(s3, base, table)) == 5  # a root, split in two, each rotated once

    seconds = sorted({w.second for w in workload.writes if w.second > base_end} - workload.straddled)
    assert len(seconds) >= 5, (seconds, workload.straddled)
    chosen = [seconds[0], seconds[1], seconds[len(seconds) // 2], seconds[-2], seconds[-1]]
    for number, moment in enumerate(chosen):
        target = f"{table}-at-{number}"
        request = RestoreRequest(folder=S3Location("unused", ""), table=target, write_ratio=1.0, workers=1,
                                 create_table=True)
        outcome = run_stream_as_of(make, request, base, table, datetime.fromtimestamp(moment, UTC))
        assert outcome.plan.point == moment and len(outcome.plan.shards) == 5
        assert outcome.verify is not None and outcome.verify.match, outcome.verify.summary()
        assert digests(scan_all(ddb, target)) == digests(workload.state_at(moment)), f"as of {moment}"

    replica = second_dynamodb.client("dynamodb")
    create_stream_table(replica, table, pitr=False)
    # The first pass writes the rest too: this table's replica starts empty and every record is stored.
    report = replicate(s3, base, table, ReplicaTarget(client_for("dynamodb", second_dynamodb.url), table, 1.0),
                       "tailed", once=True)
    assert report.caught_up and report.applied == first.stored + second.stored
    assert digests(scan_all(replica, table)) == digests(scan_all(ddb, table)) == digests(workload.state)
