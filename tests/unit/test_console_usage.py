"""Capacity timelines, older sidecars, the schedule's allowed age and the chart, without servers."""

from __future__ import annotations

import re
from datetime import timedelta
from html import escape
from urllib.parse import urlencode

import orjson

from dynamodb_backup.aws.usage import RecordingBucket, UsageTimeline, merge, per_second
from dynamodb_backup.console.chart import nice_ticks
from dynamodb_backup.console.render import (
    backups_html,
    chart_svg,
    message_html,
    restore_html,
    run_html,
    tables_html,
)
from dynamodb_backup.console.runview import RunView
from dynamodb_backup.console.theme import DARK, LIGHT, TOKENS
from dynamodb_backup.console.views import BackupPage, BackupRow, TableRow, TableSource, allowed_age, worker_rows
from dynamodb_backup.formats.catalog import FolderListing
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.formats.tablebackups import DATAPIPELINE


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


def test_chart_stays_readable_at_small_volumes():
    """A run that read 0.3 units/s on a 400-unit table: the axis follows the consumption with readable ticks,
    and the allowed rate is named as off the scale rather than squashing the line into the bottom pixel."""
    svg = chart_svg([(0.0, 0.3), (5.0, 0.12), (10.0, 0.25)], 400.0)
    ticks = re.findall(r"<text class='tick'[^>]*>([^<]+)</text>", svg)
    assert ticks == ["0.0", "0.1", "0.2", "0.3"], ticks
    assert "allowed 400.0 &#8593; (off this scale)" in svg and "class='allowed'" not in svg
    # The line's highest point reaches the top tick's height (the plot is used, not its bottom pixel).
    ys = [float(p.split(",")[1]) for p in re.search(r"class='consumed' points='([^']+)'", svg).group(1).split()]
    top_tick_y = float(re.findall(r"<line class='grid' x1='\d+' y1='([\d.]+)'", svg)[-1])
    assert min(ys) == top_tick_y
    # In scale when the allowed rate is near what was used; one interval is still drawn.
    near = chart_svg([(0.0, 3.0)], 4.0)
    assert "class='allowed'" in near and "allowed 4.0" in near and "off this scale" not in near
    assert nice_ticks(0.03) == [0.0, 0.01, 0.02, 0.03] and nice_ticks(950) == [0, 250, 500, 750, 1000]


def test_items_per_second_is_never_a_question_mark():
    """Start and finish are recorded to the second: a worker that took under one has 0 s, and an older record
    has no times at all. Items/s is then a lower bound (>=), from one second or from its usage intervals."""
    same_second = {"worker": 0, "items": 600, "bytes": 10, "started": "2024-01-01T00:00:00+00:00",
                   "finished": "2024-01-01T00:00:00+00:00"}
    no_times = {"worker": 1, "items": 90, "usage": {"interval_seconds": 5.0, "start": 0.0, "units": [1.0, 2.0]}}
    nothing = {"worker": 2, "items": 7}
    idle = {"worker": 3, "items": 0}
    rows = worker_rows([same_second, no_times, nothing, idle])
    assert [(r.items_per_second, r.items_per_second_is_bound) for r in rows] == [
        (600.0, True), (9.0, True), (None, False), (0.0, False)]
    view = RunView(S3Location("b", "p/t/f"), True, None, rows, merge(r.usage for r in rows), None)
    html = run_html(view, "dag", "run")
    cells = re.findall(r"<td class='n items-per-second'>([^<]*)</td>", html)
    assert cells == ["&ge;600", "&ge;9.00", "&ndash;", "0.00"], cells
    assert "?" not in re.sub(r"<script>.*?</script>", "", html, flags=re.S)


def test_every_page_follows_airflows_theme_with_fallbacks_for_both_modes():
    html = message_html("t", "x")
    assert "localStorage.getItem('theme')" in html and "prefers-color-scheme: dark" in html
    assert "html.dark{" in html and "--chakra-' + tokens[name]" in html
    assert set(TOKENS) == set(LIGHT) == set(DARK)
    assert all(LIGHT[name] != DARK[name] for name in ("bg", "fg", "border"))


def test_a_data_pipeline_folder_is_marked_and_restores_under_its_table():
    """A folder of the table's Data Pipeline output (no table level in its path) is labelled, and its restore link
    names the table (the form cannot read it from the path)."""
    output = S3Location("old-bucket", "datapipeline/Users-export")
    folder = output.child("2019-03-01-04-10-22")
    listing = FolderListing(folder, {"_SUCCESS": 0, "c1f0a2b3-0000": 120}, None)
    row = BackupRow("2019-03-01-04-10-22", folder, "complete", listing, layout=DATAPIPELINE)
    source = TableSource("Users", S3Location("new-bucket", "backups"), "@daily", datapipeline=(output,))
    html = backups_html(BackupPage(source, [row], 1, None, None), "/dynamodb-backups", "")
    assert "class='badge layout-datapipeline'" in html and ">Data Pipeline</span>" in html
    assert escape(f"/dynamodb-backups/restore?{urlencode({'folder': folder.uri, 'table': 'Users'})}") in html
    form = restore_html(folder, "Users", "/dynamodb-backups", "", {"write_ratio": 0.5})
    assert "Restore a backup of Users" in form and f"value='{folder.uri}' readonly" in form


def test_a_streamed_tables_recovery_point_lag_and_gaps_show_on_the_tables_page():
    """The row of a table with ``stream: true`` shows what ``replica.status.stream_status`` reports; the three
    columns appear only when some table streams."""
    base = S3Location("b", "backups")
    streamed = TableRow(TableSource("Orders", base, "@daily"), recovery={
        "table": "Orders", "recovery_point": "2026-12-05T10:20:31Z", "recovery_point_age_seconds": 29.0,
        "base": "s3://b/backups/Orders/2026-12-05-00-00-00", "held_back_by_gap": True,
        "gaps": [{"kind": "trimmed", "from": "2026-12-04T01:00:00Z", "to": "2026-12-04T02:00:00Z",
                  "message": "shard trimmed before it was read", "new_base": None}],
        "replicas": [{"replica": "r1", "to_table": "Orders-dr", "to_region": "eu-west-1", "lag_seconds": 125.0,
                      "caught_up": False}]})
    plain = TableRow(TableSource("Users", base, "@daily"))
    html = tables_html([streamed, plain], "/dynamodb-backups")
    assert "<th>Recovery point</th><th>Replica lag</th><th>Stream gaps</th>" in html
    assert "2026-12-05T10:20:31Z" in html and "(29s ago)" in html and "held back by a gap" in html
    assert ">2.1m</span>" in html and "Orders-dr (eu-west-1): catching up" in html
    assert "title='shard trimmed before it was read'>1</span>" in html
    assert "Recovery point" not in tables_html([plain], "/dynamodb-backups")


def test_only_tables_that_stream_are_asked_for_their_stream_status(tmp_path, monkeypatch):
    from dynamodb_backup.console import app
    from dynamodb_backup.replica import status

    backups = tmp_path / "backups.yaml"
    backups.write_text("defaults: {bucket: bkt, prefix: backups, schedule: '@daily'}\n"
                       "backups: [{table: Orders, stream: true}, {table: Users}]\n")
    monkeypatch.setenv("DYNAMODB_BACKUPS_FILE", str(backups))
    asked: list[tuple[S3Location, str]] = []

    def stream_status(s3, base, table, now=None):
        asked.append((base, table))
        return {"table": table, "recovery_point": None, "gaps": [], "replicas": []}

    monkeypatch.setattr(status, "stream_status", stream_status)
    monkeypatch.setattr(app, "s3_client", lambda conn: object())
    lookup = app.recovery_lookup()
    assert lookup is not None
    base = S3Location("bkt", "backups")
    assert lookup(TableSource("Users", base)) is None and lookup(TableSource("Orders", S3Location("bkt", "x"))) is None
    assert lookup(TableSource("Orders", base)) == {"table": "Orders", "recovery_point": None, "gaps": [],
                                                    "replicas": []}
    assert asked == [(base, "Orders")]
    backups.write_text("defaults: {bucket: bkt, prefix: backups}\nbackups: [{table: Users}]\n")
    assert app.recovery_lookup() is None  # no table streams: no stream column, no extra S3 call
