"""The replica's writer lanes and its incremental listing, against the session's backend and moto.

* Lanes: many changes to a few keys, applied by 4 lanes at once; each key's changes must all be
  sent by one lane, in the source's order, and the replica must equal the source. A proxy in
  front of the replica's server counts the BatchWriteItem calls in flight at once and the lanes
  (threads) that sent them.
* Listing: a replica pass lists each shard's segments from the one holding its last applied
  record on (ListObjectsV2 StartAfter); a counting proxy in front of S3 shows the keys listed per
  pass staying bounded while old segments accumulate.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Any

import pytest

from dynamodb_backup.commands import client_for
from dynamodb_backup.replica.apply import ReplicaTarget, replicate
from dynamodb_backup.replica.progress import replica_id
from dynamodb_backup.repository.segments import list_segments
from stream_workload import StreamSource as Source
from stream_workload import (
    create_stream_table,
    digests,
    scan_all,
    store_segments,
    stream_source,
    streams_server_for,
)

KEY_NAMES = ("pk", "sk")


@pytest.fixture(scope="module")
def streams_server(local_aws: Any, pitr_standin: Any) -> Any:
    return streams_server_for(local_aws, pitr_standin)


@pytest.fixture
def source(streams_server: Any, table_name: str, s3_bucket: str) -> Source:
    # keys=3: 3 partition values x 3 sort values, 9 keys written many times each
    return stream_source(streams_server, table_name, s3_bucket, seed=23, keys=3)


class LaneWatcher:
    """A DynamoDB client that records, per key, which thread sent each change and in what order (by the moment
    each BatchWriteItem started), and how many BatchWriteItem calls were in flight at once. The first call
    holds until a second one is in flight (up to 10 s), so lanes that really run at once are seen to."""

    def __init__(self, client: Any) -> None:
        self.client, self.lock, self.in_flight, self.most_in_flight = client, threading.Lock(), 0, 0
        self.second_arrived, self.held = threading.Event(), False
        self.threads_by_key: dict[tuple[str, str], set[int]] = defaultdict(set)
        self.sent_by_key: dict[tuple[str, str], list[str | None]] = defaultdict(list)

    def batch_write_item(self, **kwargs: Any) -> Any:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            if self.in_flight >= 2:
                self.second_arrived.set()
            hold, self.held = not self.held, True
            for requests in kwargs["RequestItems"].values():
                for request in requests:
                    if "PutRequest" in request:
                        item = request["PutRequest"]["Item"]
                        key, version = (item["pk"]["S"], item["sk"]["N"]), item["v"]["N"]
                    else:
                        attributes = request["DeleteRequest"]["Key"]
                        key, version = (attributes["pk"]["S"], attributes["sk"]["N"]), None
                    self.threads_by_key[key].add(threading.get_ident())
                    self.sent_by_key[key].append(version)
        try:
            if hold:
                self.second_arrived.wait(10)
            return self.client.batch_write_item(**kwargs)
        finally:
            with self.lock:
                self.in_flight -= 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def _replica_table(second_dynamodb: Any, source: Source) -> tuple[str, str]:
    to_table = "replica-" + source.workload.table
    create_stream_table(second_dynamodb.client("dynamodb"), to_table, pitr=False)
    return to_table, replica_id(to_table, None, second_dynamodb.url)


def _many_changes_to_few_keys(local_aws: Any, second_dynamodb: Any, source: Source) -> tuple[LaneWatcher, str]:
    workload = source.workload
    for _ in range(300):
        workload.one_write(1_700_000_000)
    s3 = local_aws.s3_client()
    store_segments(source.ddb, source.streams, s3, source.base, workload, per_segment=150)
    to_table, name = _replica_table(second_dynamodb, source)
    watcher = LaneWatcher(client_for("dynamodb", second_dynamodb.url))
    report = replicate(s3, source.base, workload.table, ReplicaTarget(watcher, to_table, write_ratio=1.0), name,
                       once=True)
    assert report.applied == 300
    assert digests(scan_all(second_dynamodb.client("dynamodb"), to_table)) == digests(workload.state) \
        == digests(scan_all(source.ddb, workload.table))
    return watcher, to_table


def test_lanes_keep_each_keys_changes_in_source_order(local_aws, second_dynamodb, source):
    watcher, _ = _many_changes_to_few_keys(local_aws, second_dynamodb, source)
    expected: dict[tuple[str, str], list[str | None]] = defaultdict(list)
    for write in source.workload.writes:
        expected[write.key].append(None if write.item is None else write.item["v"]["N"])
    assert len(expected) <= 9 and max(len(v) for v in expected.values()) >= 20, "few keys, each written many times"
    assert {key: len(threads) for key, threads in watcher.threads_by_key.items()} == {key: 1 for key in expected}, \
        "every change to a key must be sent by one lane"
    assert dict(watcher.sent_by_key) == dict(expected), "each key's changes must be sent in the source's order"


def test_lanes_really_write_at_once(local_aws, second_dynamodb, source):
    watcher, _ = _many_changes_to_few_keys(local_aws, second_dynamodb, source)
    lanes_used = len(set().union(*watcher.threads_by_key.values()))
    assert lanes_used >= 2, f"changes were sent by {lanes_used} lane(s)"
    assert watcher.most_in_flight >= 2, "no two BatchWriteItem calls were ever in flight at once"


class ListingCounter:
    """An S3 client that counts the keys every listing returns (ListObjectsV2 and its paginator)."""

    def __init__(self, client: Any) -> None:
        self.client, self.listed, self.with_start_after = client, 0, 0

    def list_objects_v2(self, **kwargs: Any) -> Any:
        page = self.client.list_objects_v2(**kwargs)
        self.listed += len(page.get("Contents", []))
        self.with_start_after += "StartAfter" in kwargs
        return page

    def get_paginator(self, name: str) -> Any:
        paginator, counter = self.client.get_paginator(name), self

        class Counted:
            def paginate(self, **kwargs: Any) -> Any:
                for page in paginator.paginate(**kwargs):
                    counter.listed += len(page.get("Contents", []))
                    yield page
        return Counted()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_pass_lists_only_segments_after_its_progress(local_aws, second_dynamodb, source):
    s3, workload = local_aws.s3_client(), source.workload
    to_table, name = _replica_table(second_dynamodb, source)
    target = ReplicaTarget(client_for("dynamodb", second_dynamodb.url), to_table, write_ratio=1.0)
    listed, stored = [], []
    for round_number in range(6):
        for _ in range(18):  # segments of 5: the last one of each round is short, and rewritten longer next round
            workload.one_write(1_700_000_000)
        store_segments(source.ddb, source.streams, s3, source.base, workload, per_segment=5)
        stored.append(sum(len(shard.segments) for shard in list_segments(s3, source.base, workload.table)))
        counter = ListingCounter(s3)
        replicate(counter, source.base, workload.table, target, name, once=True)
        assert counter.with_start_after >= 1 or round_number == 0, "a pass after the first starts after its progress"
        listed.append(counter.listed)
    assert stored[-1] >= 20 and stored[-1] > 4 * stored[0], f"old segments accumulate: {stored}"
    # a pass lists the segment holding its last record, the (at most 4) new ones, and the shard's progress object
    assert max(listed[1:]) <= 6, f"keys listed per pass: {listed} (segments stored: {stored})"
    assert digests(scan_all(second_dynamodb.client("dynamodb"), to_table)) == digests(workload.state)
