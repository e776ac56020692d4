"""Segment planning and worker shares."""

import pytest

from dynamodb_backup.backup.plan import GIB, TableFacts, choose_segments, plan_scan, split_segments
from dynamodb_backup.errors import ParameterError


def facts(rcu=100.0, size=0, on_demand=False):
    return TableFacts(name="T", size_bytes=size, item_count=0, on_demand=on_demand,
                      read_capacity=rcu, write_capacity=5.0)


def test_segments_follow_data_pipeline_rule():
    assert choose_segments(0, 25) == 1
    assert choose_segments(10 * GIB, 25) == 10
    assert choose_segments(0, 1000) == 10
    assert choose_segments(10**18, 1) == 1_000_000


def test_split_is_contiguous_and_complete():
    runs = split_segments(7, 3)
    assert runs == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_segments(2, 8) == [[0], [1]]
    big = split_segments(1000, 16)
    assert len(big) == 16
    assert [s for run in big for s in run] == list(range(1000))


def test_shares_split_the_rate_in_proportion():
    plan = plan_scan(facts(rcu=400), ratio=0.5, segments=7, max_workers=3)
    assert plan.read_rate == 200
    assert [len(s.segments) for s in plan.shares] == [3, 2, 2]
    assert sum(s.read_rate for s in plan.shares) == pytest.approx(200)


def test_on_demand_uses_the_assumed_capacity():
    plan = plan_scan(facts(rcu=0, on_demand=True), ratio=0.25, on_demand_capacity=4000)
    assert plan.read_rate == 1000
    assert plan.total_segments == 10


@pytest.mark.parametrize("ratio", [0.0, 0.009, 1.51, 5])
def test_ratio_out_of_range_is_refused(ratio):
    with pytest.raises(ParameterError, match="read_ratio"):
        plan_scan(facts(), ratio=ratio)


def test_segment_count_out_of_range_is_refused():
    with pytest.raises(ParameterError, match="segments"):
        split_segments(0, 1)
