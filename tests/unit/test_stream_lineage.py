"""Shard planning (parents before children, splits, vanished shards) and the source's paging, with stubbed answers."""

from __future__ import annotations

from typing import Any

import pytest

from dynamodb_backup.repository.streamprogress import ShardProgress
from dynamodb_backup.streams.lineage import plan_shards
from dynamodb_backup.streams.source import Pacer, Shard, StreamFacts, StreamSetupError, StreamSource

ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/T/stream/2026-12-05T10:00:00.000"


def shard(shard_id: str, parent: str | None, start: int, end: int | None = None) -> Shard:
    return Shard(shard_id, parent, str(start), None if end is None else str(end))


def progress(shard_id: str, parent: str | None, finished: bool, arn: str = ARN) -> ShardProgress:
    return ShardProgress("T", arn, "label", shard_id, parent, "1", {}, finished=finished, last_sequence="5")


def test_children_wait_for_their_parent_to_be_read_to_its_end() -> None:
    listed = [shard("root", None, 100, 200), shard("a", "root", 201), shard("b", "root", 201)]
    assert [s.shard_id for s in plan_shards(ARN, listed, {}).ready] == ["root"]
    done = {"root": progress("root", None, finished=True)}
    assert [s.shard_id for s in plan_shards(ARN, listed, done).ready] == ["a", "b"]


def test_a_parent_trimmed_before_the_backup_began_does_not_block_its_children() -> None:
    listed = [shard("a", "gone-long-ago", 201), shard("b", "a", 300)]
    plan = plan_shards(ARN, listed, {})
    assert [s.shard_id for s in plan.ready] == ["a"] and plan.vanished == []


def test_a_shard_being_read_that_is_no_longer_listed_is_vanished_and_its_children_start() -> None:
    listed = [shard("a", "root", 201)]
    reading = {"root": progress("root", None, finished=False)}
    plan = plan_shards(ARN, listed, reading)
    assert [p.shard_id for p in plan.vanished] == ["root"] and [s.shard_id for s in plan.ready] == ["a"]


def test_progress_of_an_older_stream_is_not_this_streams() -> None:
    listed = [shard("new-root", None, 5)]
    old = {"old-root": progress("old-root", None, finished=False, arn=ARN + "x")}
    plan = plan_shards(ARN, listed, old)
    assert plan.vanished == [] and [s.shard_id for s in plan.ready] == ["new-root"]


def test_an_open_parent_listed_beside_its_child_is_read_first() -> None:
    """DescribeStream can show a parent still open while its child is listed (the KCL adapter's notes)."""
    listed = [shard("p", None, 100), shard("c", "p", 300)]
    assert [s.shard_id for s in plan_shards(ARN, listed, {}).ready] == ["p"]


class StubStreams:
    def __init__(self, pages: list[dict[str, Any]]) -> None:
        self.pages, self.requests = pages, []

    def describe_stream(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        return {"StreamDescription": self.pages[len(self.requests) - 1]}


def test_describe_stream_is_paged_until_no_last_evaluated_shard() -> None:
    raw = [{"ShardId": f"s{i}", "SequenceNumberRange": {"StartingSequenceNumber": str(i)}} for i in range(3)]
    streams = StubStreams([{"StreamStatus": "ENABLED", "Shards": raw[:2], "LastEvaluatedShardId": "s1"},
                           {"StreamStatus": "ENABLED", "Shards": raw[2:]}])
    source = StreamSource(None, streams, "T", Pacer(sleep=lambda s: None))
    status, shards = source.shards(ARN)
    assert status == "ENABLED" and [s.shard_id for s in shards] == ["s0", "s1", "s2"]
    assert streams.requests[1]["ExclusiveStartShardId"] == "s1" and "ExclusiveStartShardId" not in streams.requests[0]


@pytest.mark.parametrize(("enabled", "view", "says"), [
    (True, "KEYS_ONLY", "StreamViewType is KEYS_ONLY, which lacks the new image"),
    (True, "OLD_IMAGE", "set StreamViewType to NEW_AND_OLD_IMAGES"),
    (False, None, "has no enabled stream: set StreamSpecification to StreamEnabled=true"),
])
def test_a_stream_that_cannot_give_a_backup_is_refused_in_one_line(enabled: bool, view: str | None,
                                                                   says: str) -> None:
    facts = StreamFacts("T", ARN if enabled else None, "label", enabled, view, {})
    with pytest.raises(StreamSetupError, match=says) as refused:
        facts.check_usable()
    assert "\n" not in str(refused.value)
    StreamFacts("T", ARN, "label", True, "NEW_IMAGE", {}).check_usable()


def test_the_pacer_spaces_calls_of_one_kind() -> None:
    now, slept = [0.0], []
    pacer = Pacer(clock=lambda: now[0], sleep=slept.append)
    for _ in range(3):
        pacer.wait("GetRecords s1", 0.25)
    pacer.wait("GetRecords s2", 0.25)
    assert slept == [0.25, 0.5]
