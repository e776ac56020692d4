"""Capacity timelines, older sidecars, the schedule's allowed age and the chart, without servers."""

from __future__ import annotations

from datetime import timedelta

import orjson

from dynamodb_backup.aws.usage import RecordingBucket, UsageTimeline, merge, per_second
from dynamodb_backup.console.render import chart_svg
from dynamodb_backup.console.views import allowed_age, worker_rows
from dynamodb_backup.formats.sidecar import Sidecar


def test_timeline_buckets_align_to_the_interval_and_workers_add_up():
    a, b = UsageTimeline(), UsageTimeline()
    a.add(10, when=1000.0)
    a.add(5, when=1004.9)
    a.add(7, when=1012.0)
    b.add(3, when=1003.0)
    b.add(1, when=990.0)  # earlier than its first bucket: prepended
    assert (a.start, a.units) == (1000.0, [15, 0, 7])
    assert (b.start, b.units) == (990.0, [1, 0, 3])
    total = merge([a, b])
    assert (total.start, total.units) == (990.0, [1, 0, 18, 0, 7]) and total.total == 26
    assert per_second(total)[2] == (10.0, 3.6)
    assert UsageTimeline.from_dict(a.to_dict()).units == a.units


def test_unreadable_timelines_and_workers_are_empty_not_errors():
    assert UsageTimeline.from_dict(None).units == [] and UsageTimeline.from_dict({"units": ["x"]}).units == []
    rows = worker_rows([{"worker": 0, "items": 10, "bytes": 2_000_000, "started": "2024-01-01T00:00:00+00:00",
                         "finished": "2024-01-01T00:00:05+00:00"}, {"worker": 1, "items": "many"}])
    assert len(rows) == 1 and rows[0].items_per_second == 2.0 and rows[0].megabytes == 2.0


def test_a_restore_workers_record_reads_as_write_units():
    rows = worker_rows([{"worker": "load_0", "files": 3, "files_skipped": 1, "items": 30, "bytes": 10,
                         "consumed_write_units": 31.5, "write_rate": 12.0, "consumed_read_units": 99.0,
                         "usage": {"interval_seconds": 5.0, "start": 10.0, "units": [31.5]}}], "write")
    assert [(r.worker, r.work, r.units, r.rate) for r in rows] == [("load_0", "3 files (1 skipped: done before)",
                                                                      31.5, 12.0)]
    assert worker_rows([{"worker": 0, "segments": [0, 2], "read_rate": 4.0}])[0].work == "0,2"


def test_recording_bucket_records_each_charge():
    bucket = RecordingBucket(rate=100.0)
    bucket.charge(4)
    bucket.charge(6)
    assert bucket.charged == 10 and bucket.timeline.total == 10


def test_a_sidecar_without_workers_still_reads():
    old = {"format": 1, "table": {}, "logical_date": "2024-01-01T00:00:00+00:00", "snapshot_start": "a",
           "snapshot_end": "b", "compression": "gzip", "total_segments": 1, "files": []}
    sidecar = Sidecar.from_json(orjson.dumps(old), "s3://b/x")
    assert sidecar.workers == [] and sidecar.read_rate is None
    again = Sidecar.from_json(sidecar.to_json(), "s3://b/x")
    assert again.workers == [] and again.read_rate is None


def test_allowed_age_follows_the_schedule():
    assert allowed_age("@daily") == timedelta(hours=36)
    assert allowed_age("0 * * * *") == timedelta(hours=2)
    assert allowed_age(None) is None and allowed_age("not a cron") is None


def test_chart_draws_the_allowed_line_above_the_bars_it_allows():
    svg = chart_svg([(0.0, 40.0), (5.0, 50.0)], 50.0)
    assert svg.startswith("<svg") and "allowed 50.0" in svg
    assert "No capacity was recorded" in chart_svg([], 10.0)
