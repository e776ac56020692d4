"""Copy planning: the segment rule, sections, rate shares, on-demand, checkpoints' shape, CLI flags."""

import argparse
import math

import pytest

from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, GIB, TableFacts, capacity_rate
from dynamodb_backup.commands.tablecopy import LocalCheckpoints, check_args
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.codec.canonical import TableDigest
from dynamodb_backup.tablecopy.copier import MemoryCheckpoints, SegmentState, client_item
from dynamodb_backup.tablecopy.plan import CopyPlan, CopyRequest, auto_segments, section_segments


def facts(rcu=0.0, wcu=0.0, size=0, on_demand=False):
    return TableFacts(name="T", size_bytes=size, item_count=0, on_demand=on_demand,
                      read_capacity=rcu, write_capacity=wcu)


def original_rule(rcu: int, wcu: int, size_bytes: int) -> int:
    """The archived tool's Java, transcribed: (int) (10 * max(ceil((r + 3w) / 3000.0), ceil(GB) / 10))."""
    size_gb = math.ceil(size_bytes / GIB)
    return max(1, int(10 * max(math.ceil((rcu + 3 * wcu) / 3000.0), size_gb / 10)))


@pytest.mark.parametrize(("rcu", "wcu", "size"), [
    (5, 5, 0), (1000, 1000, 0), (3000, 0, 0), (3001, 0, 0), (400, 400, 25 * GIB), (10, 10, 3 * GIB + 1),
    (40000, 40000, 0), (1, 1, 250 * GIB),
])
def test_segment_rule_matches_the_archived_tool(rcu, wcu, size):
    assert auto_segments(facts(rcu, wcu, size)) == original_rule(rcu, wcu, size)


def test_segment_rule_examples_and_bounds():
    assert auto_segments(facts(1000, 1000)) == 20  # (1000 + 3000) / 3000 -> 2 "partitions" x 10
    assert auto_segments(facts(5, 5, 25 * GIB)) == 25  # one per GB once size dominates
    assert auto_segments(facts(0, 0, 0)) == 1  # never zero segments
    assert auto_segments(facts(1, 1, 10**18)) == 1_000_000


def test_on_demand_never_divides_by_zero():
    # The archived tool read capacity 0 from an on-demand table and its limiter threw.
    on_demand = facts(0, 0, on_demand=True)
    assert auto_segments(on_demand, 3000) == 40  # (3000 + 9000) / 3000 = 4 -> 40
    assert auto_segments(on_demand) == 10 * math.ceil(4 * DEFAULT_ON_DEMAND_CAPACITY / 3000)
    assert capacity_rate(0, True, 0.5, 3000) == 1500
    assert capacity_rate(0, False, 0.5, 3000) == 1500  # a provisioned 0 also falls back, never 0 units/s


@pytest.mark.parametrize(("total", "sections"), [(1, 1), (7, 3), (12, 3), (10, 10), (1000, 7), (5, 1)])
def test_sections_partition_the_segments(total, sections):
    runs = [section_segments(total, sections, i) for i in range(sections)]
    assert [s for run in runs for s in run] == list(range(total))  # every segment once, in order
    for run in runs:
        assert run and run == list(range(run[0], run[-1] + 1))  # contiguous, never empty
    assert max(map(len, runs)) - min(map(len, runs)) <= 1


def test_sections_refuse_bad_numbers_naming_the_flag():
    with pytest.raises(ParameterError, match="--section must be between 0 and 2"):
        section_segments(12, 3, 3)
    with pytest.raises(ParameterError, match="--section"):
        section_segments(12, 3, -1)
    with pytest.raises(ParameterError, match=r"--total-sections \(5\) cannot exceed --segments \(4\)"):
        section_segments(4, 5, 0)
    with pytest.raises(ParameterError, match="--total-sections must be at least 1"):
        section_segments(4, 0, 0)


def plan(total=12, read=300.0, write=600.0) -> CopyPlan:
    return CopyPlan(source_table="A", dest_table="B", total_segments=total, read_rate=read, write_rate=write,
                    key_names=["pk"], dest_was_empty=True, created_dest=False, dest_identity="table-id-1")


def test_rate_shares_add_up_to_the_whole():
    p = plan(total=7)
    shares = [p.rates(section_segments(7, 3, i)) for i in range(3)]
    assert shares[0] == pytest.approx((300 * 3 / 7, 600 * 3 / 7))
    assert sum(r for r, _ in shares) == pytest.approx(300)
    assert sum(w for _, w in shares) == pytest.approx(600)
    assert CopyPlan.from_dict(p.to_dict()) == p


@pytest.mark.parametrize(("change", "message"), [
    ({"read_ratio": 0}, "read_ratio must be between 0.01 and 1.5"),
    ({"write_ratio": 1.6}, "write_ratio must be between"),
    ({"segments": 0}, "segments must be between 1"),
    ({"source_table": "x"}, "source_table: 'x' is not a valid DynamoDB table name"),
    ({"dest_table": "a/b"}, "dest_table"),
    ({"on_demand_capacity": 0}, "on_demand_capacity must be positive"),
])
def test_request_errors_name_the_parameter(change, message):
    request = CopyRequest(**{"source_table": "Source", "dest_table": "Dest", **change})
    with pytest.raises(ParameterError, match=message):
        request.check()


def cli_args(**kwargs):
    base = {"read_ratio": 0.25, "write_ratio": 0.5, "segments": None, "total_sections": None, "section": None,
            "verify": False, "on_demand_capacity": 100.0, "source_table": "orders", "dest_table": "orders-copy",
            "checkpoint_dir": None}
    return argparse.Namespace(**{**base, **kwargs})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"total_sections": 3, "section": 0}, "--segments is required with --total-sections"),
    ({"total_sections": 3}, "--total-sections and --section go together"),
    ({"section": 1}, "--total-sections and --section go together"),
    ({"total_sections": 3, "section": 0, "segments": 6, "verify": True}, "--verify checks the whole destination"),
    ({"total_sections": 3, "section": 3, "segments": 6}, "--section must be between 0 and 2"),
    ({"read_ratio": 2.0}, "--read-ratio must be between"),
    ({"write_ratio": 0.001}, "--write-ratio must be between"),
    ({"segments": 0}, "--segments must be at least 1"),
    ({"on_demand_capacity": -1}, "--on-demand-capacity must be positive"),
    ({"source_table": "a"}, "--source-table"),
    ({"dest_table": "bad name!"}, "--dest-table"),
    ({"checkpoint_dir": __file__}, "--checkpoint-dir .*exists and is not a directory"),
])
def test_cli_flag_combinations(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        check_args(cli_args(**kwargs))
    check_args(cli_args(total_sections=3, section=2, segments=6))  # the happy path passes


def test_segment_state_round_trips_binary_keys_and_digests():
    digest = TableDigest()
    digest.add({"pk": {"B": b"\x00\xff"}})
    state = SegmentState(segment=3, total_segments=8, last_key={"pk": {"B": b"\x00\xff"}, "sk": {"N": "1.50"}},
                         pages=2, items=100, read_units=1.5, write_units=100.0, digest=digest)
    again = SegmentState.from_dict(state.to_dict())
    assert again == state and again.last_key == {"pk": {"B": b"\x00\xff"}, "sk": {"N": "1.50"}}


def test_a_checkpoint_from_another_segment_count_is_refused(tmp_path):
    store = LocalCheckpoints(tmp_path)
    store.save(SegmentState(segment=1, total_segments=8, pages=1))
    assert store.load(1, 8) == SegmentState(segment=1, total_segments=8, pages=1)
    assert store.load(2, 8) is None
    with pytest.raises(ParameterError, match="written for 8 segments, not 16"):
        store.load(1, 16)
    memory = MemoryCheckpoints()
    memory.save(SegmentState(segment=0, total_segments=4))
    with pytest.raises(ParameterError, match="written for 4 segments"):
        memory.load(0, 5)


def test_the_first_plan_recorded_in_a_checkpoint_dir_wins(tmp_path):
    first = LocalCheckpoints(tmp_path).claim(plan())
    assert first.dest_was_empty
    # A later section (or rerun) sees a destination that is already being filled, but keeps the first view.
    later = LocalCheckpoints(tmp_path).claim(CopyPlan(**{**plan().to_dict(), "dest_was_empty": False}))
    assert later.dest_was_empty
    with pytest.raises(ParameterError, match="total_segments=12, not 24"):
        LocalCheckpoints(tmp_path).claim(plan(total=24))
    # Every section reads the source the same way.
    with pytest.raises(ParameterError, match="consistent_read=False, not True"):
        LocalCheckpoints(tmp_path).claim(CopyPlan(**{**plan().to_dict(), "consistent_read": True}))
    # A destination deleted and created again is another table: the old progress does not apply to it.
    with pytest.raises(ParameterError, match="was deleted and created again since this copy began"):
        LocalCheckpoints(tmp_path).claim(CopyPlan(**{**plan().to_dict(), "dest_identity": "table-id-2"}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.json"]


def test_wire_items_become_client_items_without_touching_numbers():
    wire = {"pk": {"S": "a"}, "n": {"N": "12345678901234567890123456789012345678"}, "b": {"B": "AAE="},
            "bs": {"BS": ["AA==", "/w=="]}, "m": {"M": {"B": {"B": "/w=="}, "L": {"L": [{"B": "AA=="}, {"N": "1"}]}}},
            "ss": {"SS": ["x"]}, "null": {"NULL": True}}
    assert client_item(wire) == {
        "pk": {"S": "a"}, "n": {"N": "12345678901234567890123456789012345678"}, "b": {"B": b"\x00\x01"},
        "bs": {"BS": [b"\x00", b"\xff"]}, "m": {"M": {"B": {"B": b"\xff"}, "L": {"L": [{"B": b"\x00"}, {"N": "1"}]}}},
        "ss": {"SS": ["x"]}, "null": {"NULL": True}}
