"""The stream bench's pure helpers: percentiles, the rate a round held, S3 requests by kind and per hour, CPU per
record, the goals and the medians of the rounds (``bench/streams_figures.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.streams_figures import (
    achieved_rate,
    counts_between,
    cpu_us_per_record,
    due_writes,
    goals,
    medians,
    per_hour,
    percentile,
    rate_held,
    rate_to_hold,
    s3_request_kind,
    table,
)


def test_percentiles_are_nearest_rank_values_that_were_sampled():
    samples = [float(n) for n in range(1, 101)]  # 1..100
    assert percentile(samples, 50) == 50.0
    assert percentile(samples, 99) == 99.0
    assert percentile(samples, 100) == 100.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # unsorted input
    assert percentile([7.5], 99) == 7.5
    assert percentile([], 50) is None
    # With fewer than 100 samples the p99 is the largest: one slow second out of 60 shows.
    assert percentile([1.0] * 59 + [9.0], 99) == 9.0
    with pytest.raises(ValueError):
        percentile([1.0], 0)


def test_a_round_holds_its_rate_only_with_95_percent_of_its_schedule():
    assert achieved_rate(60_000, 60.0) == 1000.0
    assert achieved_rate(10, 0.0) == 0.0
    assert rate_held(57_000, 60.0, 1000.0)
    assert not rate_held(56_999, 60.0, 1000.0)
    assert not rate_held(0, 60.0, 0.0)


def test_the_rate_asked_is_the_target_when_held_else_80_percent_of_what_was_done():
    assert rate_to_hold(1000.0, 990.0) == 1000
    assert rate_to_hold(1000.0, 358.0) == 280
    assert rate_to_hold(1000.0, 5.0) == 10  # never below 10 writes/s


def test_the_schedule_asks_for_writes_in_proportion_to_the_time():
    assert due_writes(0.0, 100.0) == 0
    assert due_writes(-1.0, 100.0) == 0
    assert due_writes(0.5, 100.0) == 50
    assert due_writes(10.0, 12.5) == 125


@pytest.mark.parametrize(("method", "path", "query", "kind"), [
    ("PUT", "/bucket/p/T/stream/shard/0001.json.gz", {}, "PUT"),
    ("PUT", "/bucket/p/T/stream/shard/0001.json.gz", {"partNumber": ["1"], "uploadId": ["u"]}, "PUT"),
    ("GET", "/bucket/p/T/stream/_progress/shard.json", {}, "GET"),
    ("GET", "/bucket", {"list-type": ["2"], "prefix": ["p/"]}, "LIST"),
    ("GET", "/bucket/", {"list-type": ["2"]}, "LIST"),
    ("GET", "/bucket?list-type=2", {"list-type": ["2"]}, "LIST"),
    ("HEAD", "/bucket/key", {}, "HEAD"),
    ("DELETE", "/bucket/key", {}, "DELETE"),
    ("POST", "/bucket", {"delete": [""]}, "DELETE"),
    ("POST", "/bucket/key", {"uploads": [""]}, "OTHER"),
])
def test_s3_requests_are_counted_by_the_kind_s3_bills(method, path, query, kind):
    assert s3_request_kind(method, path, query) == kind


def test_requests_per_hour_count_only_the_window_between_two_snapshots():
    before = {"PUT": 10, "GET": 4}
    after = {"PUT": 70, "GET": 4, "LIST": 60}
    assert counts_between(before, after) == {"GET": 0, "LIST": 60, "PUT": 60}
    assert per_hour(120, 60.0) == 7200.0
    assert per_hour(5, 0.0) is None


def test_cpu_per_record_is_in_microseconds():
    assert cpu_us_per_record(2.0, 10_000) == 200.0
    assert cpu_us_per_record(2.0, 0) is None


def test_goals_are_met_missed_or_unmeasured():
    assert goals({"recovery_point_age_p99_s": 59.9, "replica_lag_p99_s": 4.99}) == {
        "recovery_point_age_under_60s": True, "replica_lag_p99_under_5s": True}
    assert goals({"recovery_point_age_p99_s": 60.0, "replica_lag_p99_s": 5.0}) == {
        "recovery_point_age_under_60s": False, "replica_lag_p99_under_5s": False}
    assert goals({}) == {"recovery_point_age_under_60s": None, "replica_lag_p99_under_5s": None}


def test_medians_are_of_every_round_and_say_how_many_held_their_rate():
    rounds = [{"rate_held": True, "replica_lag_p99_s": 1.0, "recovery_point_age_p99_s": 2.0},
              {"rate_held": True, "replica_lag_p99_s": 3.0, "recovery_point_age_p99_s": 4.0},
              {"rate_held": False, "replica_lag_p99_s": 90.0, "recovery_point_age_p99_s": 90.0,
               "tail_cpu_us_per_record": 7.0}]
    summary = medians(rounds)
    assert summary["rounds"] == 3 and summary["rounds_held"] == 2
    assert summary["replica_lag_p99_s"] == 3.0 and summary["recovery_point_age_p99_s"] == 4.0
    assert summary["tail_cpu_us_per_record"] == 7.0  # a figure only one round has is that round's
    assert summary["replica_lag_p50_s"] is None
    assert summary["goals"] == {"recovery_point_age_under_60s": True, "replica_lag_p99_under_5s": True}
    printed = table([{"backend": "journal", "config": "fast", "rate_asked": 280, **summary}])
    assert "| journal | fast | 280 |" in printed and "2/3" in printed and "| met | met |" in printed
    missed = medians([{"rate_held": True, "replica_lag_p99_s": 9.0, "recovery_point_age_p99_s": 61.0}])
    assert table([{"backend": "ddblocal", "config": "default", "rate_asked": 150, **missed}]).endswith(
        "| MISSED | MISSED |")
