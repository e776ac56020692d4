"""Stream segments: the line round-trips through the incremental codec, lineage order, overlaps read once."""

from __future__ import annotations

import gzip
import os
from datetime import UTC, datetime
from decimal import Decimal

import boto3
import pytest
from moto import mock_aws

from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.repository.changes import decode_change
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.repository.segments import (
    decode_stream_line,
    encode_stream_record,
    list_segments,
    segment_key,
    shard_changes,
)
from dynamodb_backup.repository.streamprogress import ShardProgress, lineage_order, write_progress

SCHEMA = {"KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
          "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}
RULES = KeyRules.from_description(SCHEMA)


def record(seq: str, pk: str, n: str | None, old: str | None = None, when: object = None) -> dict[str, object]:
    data: dict[str, object] = {"Keys": {"pk": {"S": pk}}, "SequenceNumber": seq,
                               "ApproximateCreationDateTime": when or datetime(2026, 12, 5, 10, 0, 7, tzinfo=UTC)}
    if n is not None:
        data["NewImage"] = {"pk": {"S": pk}, "n": {"N": n}, "b": {"B": b"\x00\xff"}}
    if old is not None:
        data["OldImage"] = {"pk": {"S": pk}, "n": {"N": old}}
    return {"eventID": "e" + seq, "eventName": "MODIFY" if n else "REMOVE", "dynamodb": data}


def test_a_record_round_trips_exactly_through_the_incremental_codec() -> None:
    big = "12345678901234567890123456789012345678"  # 38 digits: a float would lose them
    line = encode_stream_record(record("000000000000000064371", "a", big, old="1"))
    change = decode_stream_line(line, RULES)
    assert change.change.new == {"pk": {"S": "a"}, "n": {"N": big}, "b": {"B": b"\x00\xff"}}
    assert change.change.old == {"pk": {"S": "a"}, "n": {"N": "1"}}
    assert change.sequence == "000000000000000064371" and change.seconds == 1796464807
    assert change.event_name == "MODIFY" and change.event_id == "e000000000000000064371"
    assert decode_change(line, RULES) == change.change  # the incremental reader reads it as is
    delete = decode_stream_line(encode_stream_record(record("5", "a", None)), RULES)
    assert delete.change.new is None and delete.change.keys == {"pk": {"S": "a"}}


def test_wire_times_and_bad_sequence_numbers() -> None:
    assert decode_stream_line(encode_stream_record(record("7", "a", "1", when=Decimal("1796464807.000"))),
                              RULES).seconds == 1796464807
    with pytest.raises(CodecError, match="SequenceNumber"):
        encode_stream_record(record("12a", "a", "1"))


def progress(shard: str, parent: str | None, start: str, label: str = "2026-12-05T10:00:00.000") -> ShardProgress:
    return ShardProgress("T", "arn:s/" + label, label, shard, parent, start, SCHEMA)


def test_lineage_puts_parents_before_children_and_streams_in_order() -> None:
    shards = [progress("c2", "p", "300"), progress("c1", "p", "200"), progress("p", None, "100"),
              progress("g", "c1", "400"), progress("new", None, "5", label="2026-12-05T11:00:00.000"),
              progress("orphan", "trimmed", "150")]
    assert [s.shard_id for s in lineage_order(shards)] == ["p", "orphan", "c1", "c2", "g", "new"]


@mock_aws
def test_segments_list_by_lineage_and_overlaps_are_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto intercepts AWS's own endpoints only: an endpoint the session set for the local stack would bypass it.
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="bkt")
    base = S3Location("bkt", "backups")

    def put(shard: str, records: list[dict[str, object]]) -> None:
        body = gzip.compress(b"\n".join(encode_stream_record(r) for r in records) + b"\n")
        first = str(records[0]["dynamodb"]["SequenceNumber"])  # type: ignore[index]
        s3.put_object(Bucket="bkt", Key=segment_key(base, "T", shard, first), Body=body)

    write_progress(s3, base, progress("shardId-2", "shardId-1", "900"))
    write_progress(s3, base, progress("shardId-1", None, "1"))
    put("shardId-1", [record("1", "a", "1"), record("2", "a", "2"), record("10", "b", "3")])
    put("shardId-1", [record("10", "b", "3"), record("11", "a", None)])  # a rewrite that overlaps
    put("shardId-2", [record("900", "a", "4")])
    listed = list_segments(s3, base, "T")
    assert [s.shard_id for s in listed] == ["shardId-1", "shardId-2"]
    assert [r.first_sequence[-3:] for r in listed[0].segments] == ["001", "010"]
    seen = [c.sequence for _, c in shard_changes(s3, "bkt", listed[0].segments, RULES)]
    assert seen == ["1", "2", "10", "11"]
    assert [c.sequence for _, c in shard_changes(s3, "bkt", listed[0].segments, RULES, after="2")] == ["10", "11"]


def test_lineage_keeps_shards_whose_parent_links_loop() -> None:
    shards = [progress("a", "b", "10"), progress("b", "a", "20"), progress("root", None, "1")]
    assert [s.shard_id for s in lineage_order(shards)] == ["root", "a", "b"]
