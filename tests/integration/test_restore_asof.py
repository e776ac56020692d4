"""Restore to a moment: a full backup plus its nightly links, against the states the test wrote.

One recorded history (the ``history`` fixture, once per test process): a seeded random workload
of puts, updates and deletes over five one-second "days" on a stand-in of our own, a full and five
links made by the incremental backup path. Every restore must equal the state the test computed from its own writes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.cli import main as cli
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.catalog import latest_complete
from dynamodb_backup.formats.layout import SUCCESS, S3Location
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.restore.asof import run_as_of
from dynamodb_backup.restore.job import RestoreRequest, run_restore
from incremental_history import History, digests, scan_all


def request(table: str, **kwargs: Any) -> RestoreRequest:
    placeholder = S3Location("unused", "")
    kwargs.setdefault("create_table", True)
    return RestoreRequest(folder=placeholder, table=table, write_ratio=1.0, workers=2, **kwargs)


def copy_folder(s3: Any, source: S3Location, dest: S3Location, skip: tuple[str, ...] = ()) -> None:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=source.bucket, Prefix=source.key("")):
        for obj in page.get("Contents", []):
            name = obj["Key"][len(source.key("")):]
            if name not in skip:
                s3.copy_object(Bucket=dest.bucket, Key=dest.key(name),
                               CopySource={"Bucket": source.bucket, "Key": obj["Key"]})


def test_each_days_end_restores_to_the_state_the_test_wrote(history: History):
    ddb = history.make("dynamodb")
    for day, moment in enumerate(history.times):
        target = f"{history.table}-day{day}"
        processes = 2 if day == len(history.times) - 1 else 1  # worker processes once; in-process otherwise
        outcome = run_as_of(history.make, request(target), history.base, history.table, moment, processes=processes)
        assert outcome.chain.point == moment and len(outcome.links) == day
        assert outcome.verify is not None and outcome.verify.match, outcome.verify.summary()
        assert digests(scan_all(ddb, target)) == digests(history.states[day]), f"day {day}"
        assert outcome.applied.puts + outcome.applied.deletes == sum(r.changes for r in outcome.reports)


def test_a_moment_inside_a_night_restores_to_that_nights_start(history: History):
    ddb = history.make("dynamodb")
    moment = history.times[3] + timedelta(milliseconds=500)
    target = f"{history.table}-mid"
    code = cli(["restore", "--as-of", iso(moment), "--from", history.base.uri, "--source-table", history.table,
                "--table", target, "--write-ratio", "1.0", "--endpoint", history.make.keywords["dynamodb_endpoint"]])
    assert code == 0
    assert digests(scan_all(ddb, target)) == digests(history.states[3])


def test_latest_never_picks_a_link_and_a_link_alone_is_refused(history: History):
    s3 = history.make("s3")
    assert latest_complete(s3, history.base, history.table) == history.folder(0)
    with pytest.raises(BackupFolderError, match=r"is an incremental backup.*--as-of"):
        run_restore(history.make, RestoreRequest(folder=history.folder(2), table="never-written", create_table=True))
    assert table_exists(history.make("dynamodb"), "never-written") is None


def _refused(history: History, base: S3Location, moment, match: str) -> None:
    target = f"{history.table}-refused"
    with pytest.raises(BackupFolderError, match=match):
        run_as_of(history.make, request(target), base, history.table, moment)
    assert table_exists(history.make("dynamodb"), target) is None, "a refused chain wrote a table"
    listed = history.make("s3").list_objects_v2(Bucket=base.bucket, Prefix=base.key("_restore_checkpoints"))
    assert listed.get("KeyCount", 0) == 0


def test_bad_chains_are_refused_naming_the_missing_interval(history: History):
    s3, times = history.make("s3"), history.times
    gap = f"no complete incremental covers {iso(times[2])}..{iso(times[3])}"

    missing = S3Location(history.base.bucket, "missing-night")
    for day in (0, 1, 2, 4, 5):
        copy_folder(s3, history.folder(day), history.folder(day, missing))
    _refused(history, missing, times[5], gap)
    _refused(history, missing, times[2] + timedelta(milliseconds=300), gap)  # needs the night that is missing

    unfinished = S3Location(history.base.bucket, "unfinished-night")
    for day in range(6):
        copy_folder(s3, history.folder(day), history.folder(day, unfinished), skip=(SUCCESS,) if day == 3 else ())
    _refused(history, unfinished, times[4], gap + r" \(s3://.*has no _SUCCESS \(not a link\)\)")

    stranger = S3Location(history.base.bucket, "stranger-night")
    for day in range(6):
        source = (history.folder(day, history.other_base, history.other_table) if day == 3 else history.folder(day))
        copy_folder(s3, source, history.folder(day, stranger))
    _refused(history, stranger, times[5], gap + r" \(.*holds changes of another table")

    late = times[5] + timedelta(seconds=30)
    _refused(history, history.base, late, f"no complete incremental covers {iso(times[5])}..{iso(late)}")
    _refused(history, history.base, times[0] - timedelta(seconds=1), "no complete full")
