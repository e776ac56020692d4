"""Finding a chain, digesting what it describes, and reading keys: the decisions, without servers.

S3 is a small in-memory fake (listing with and without a delimiter, GetObject); the folders hold
only what the decisions read: sidecars and ``_SUCCESS``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dynamodb_backup.errors import BackupFolderError, CodecError, ParameterError
from dynamodb_backup.formats.catalog import latest_complete
from dynamodb_backup.formats.layout import S3Location, backup_folder
from dynamodb_backup.formats.sidecar import Sidecar
from dynamodb_backup.incremental.apply import LinkReport, decode_change
from dynamodb_backup.incremental.chain import find_chain
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.restore.selection import Selection, parse_keys, partition_value


class Body:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data


class Pages:
    def __init__(self, s3: MemoryS3) -> None:
        self.s3 = s3

    def paginate(self, Bucket: str, Prefix: str = "", Delimiter: str | None = None, **_: Any):
        contents, prefixes = [], set()
        for key in sorted(self.s3.objects):
            if not key.startswith(Prefix):
                continue
            rest = key[len(Prefix):]
            if Delimiter and Delimiter in rest:
                prefixes.add(Prefix + rest.split(Delimiter, 1)[0] + Delimiter)
            else:
                contents.append({"Key": key, "Size": len(self.s3.objects[key]), "LastModified": NOW})
        yield {"Contents": contents, "CommonPrefixes": [{"Prefix": p} for p in sorted(prefixes)]}


class MemoryS3:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def get_paginator(self, _name: str) -> Pages:
        return Pages(self)

    def get_object(self, Bucket: str, Key: str, **_: Any) -> dict[str, Any]:
        data = self.objects[Key]
        return {"Body": Body(data), "ContentLength": len(data)}


NOW = datetime(2026, 11, 30, tzinfo=UTC)
DAY = timedelta(days=1)
T0 = datetime(2026, 11, 25, tzinfo=UTC)
BASE = S3Location("b", "backups")
TABLE = {"TableName": "T", "TableArn": "arn:aws:dynamodb:us-east-1:1:table/T",
         "CreationDateTime": "2026-01-01 00:00:00+00:00",
         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}


def folder(s3: MemoryS3, moment: datetime, source: dict[str, Any], *, complete: bool = True,
           table: dict[str, Any] | None = None) -> S3Location:
    where = backup_folder(BASE, "T", moment)
    sidecar = Sidecar(table=table or TABLE, logical_date=iso(moment), snapshot_start="", snapshot_end="",
                      compression="gzip", total_segments=1, files=[], source=source)
    s3.objects[where.key("_dynamodb_backup.json")] = sidecar.to_json()
    if complete:
        s3.objects[where.key("_SUCCESS")] = b""
    return where


def full(s3: MemoryS3, moment: datetime, **kwargs: Any) -> S3Location:
    return folder(s3, moment, {"mode": "pitr", "export_time": iso(moment)}, **kwargs)


def link(s3: MemoryS3, start: datetime, end: datetime, table_id: str | None = "id-1", **kwargs: Any) -> S3Location:
    source = {"mode": "incremental", "export_from": iso(start), "export_to": iso(end), "view": "NEW_AND_OLD_IMAGES"}
    if table_id:
        source["chain"] = {"role": "incremental", "table_id": table_id}
    return folder(s3, end, source, **kwargs)


@pytest.fixture
def s3() -> MemoryS3:
    store = MemoryS3()
    full(store, T0)
    for day in range(3):
        link(store, T0 + day * DAY, T0 + (day + 1) * DAY)
    return store


def test_the_chain_reaches_the_newest_point_at_or_before_the_moment(s3):
    exact = find_chain(s3, BASE, "T", T0 + 2 * DAY)
    assert exact.point == T0 + 2 * DAY and [lk.end for lk in exact.links] == [T0 + DAY, T0 + 2 * DAY]
    inside = find_chain(s3, BASE, "T", T0 + 2 * DAY + timedelta(hours=6))
    assert inside.point == T0 + 2 * DAY and inside.covering is not None and inside.covering.end == T0 + 3 * DAY
    at_full = find_chain(s3, BASE, "T", T0)
    assert at_full.links == [] and at_full.point == T0


def test_a_newer_full_starts_the_chain_and_the_longest_link_that_fits_is_taken(s3):
    full(s3, T0 + 2 * DAY)
    link(s3, T0 + 2 * DAY, T0 + 2 * DAY + timedelta(hours=6))  # a second schedule's shorter link
    chain = find_chain(s3, BASE, "T", T0 + 3 * DAY)
    assert chain.full.end == T0 + 2 * DAY and [lk.end for lk in chain.links] == [T0 + 3 * DAY]


def test_a_gap_names_the_missing_interval_and_an_unfinished_night(s3):
    del s3.objects[backup_folder(BASE, "T", T0 + 2 * DAY).key("_SUCCESS")]
    with pytest.raises(BackupFolderError, match=rf"covers {iso(T0 + DAY)}..{iso(T0 + 2 * DAY)} \(s3://.*"
                                                rf"2026-11-27-00-00-00/ has no _SUCCESS"):
        find_chain(s3, BASE, "T", T0 + 3 * DAY)
    with pytest.raises(BackupFolderError, match=rf"covers {iso(T0 + 3 * DAY)}..{iso(T0 + 4 * DAY)}"):
        link(s3, T0 + DAY, T0 + 2 * DAY)  # finished after all
        find_chain(s3, BASE, "T", T0 + 4 * DAY)
    with pytest.raises(BackupFolderError, match="no complete full"):
        find_chain(s3, BASE, "T", T0 - timedelta(seconds=1))


def test_a_link_of_another_table_is_refused(s3):
    recreated = {**TABLE, "CreationDateTime": "2026-11-26 12:00:00+00:00"}
    link(s3, T0 + 3 * DAY, T0 + 4 * DAY, table=recreated)
    with pytest.raises(BackupFolderError, match="holds changes of another table"):
        find_chain(s3, BASE, "T", T0 + 4 * DAY)
    link(s3, T0 + 3 * DAY, T0 + 4 * DAY, table_id="id-2")  # same table description, another chain table id
    with pytest.raises(BackupFolderError, match="another table"):
        find_chain(s3, BASE, "T", T0 + 4 * DAY)


def test_latest_never_picks_a_link(s3):
    assert latest_complete(s3, BASE, "T") == backup_folder(BASE, "T", T0)


RULES = KeyRules.from_description(TABLE)


def item(pk: str, v: int) -> dict[str, Any]:
    return {"pk": {"S": pk}, "v": {"N": str(v)}}


def line(keys: str, new: dict[str, Any] | None, old: dict[str, Any] | None) -> bytes:
    doc: dict[str, Any] = {"Metadata": {"WriteTimestampMicros": {"N": "1"}}, "Keys": {"pk": {"S": keys}}}
    if new:
        doc["NewImage"] = new
    if old:
        doc["OldImage"] = old
    return orjson.dumps(doc)


def test_a_link_moves_the_digest_from_the_state_before_to_the_state_after():
    before, after = BucketedDigest(), BucketedDigest()
    for it in (item("a", 1), item("b", 1), item("keep", 1)):
        before.add(it, ["pk"])
    for it in (item("a", 2), item("c", 1), item("keep", 1)):
        after.add(it, ["pk"])
    report = LinkReport()
    for raw in (line("a", item("a", 2), item("a", 1)), line("b", None, item("b", 1)), line("c", item("c", 1), None)):
        change = decode_change(raw, RULES)
        if change.new:
            report.added.add(change.new, ["pk"])
        if change.old:
            report.removed.add(change.old, ["pk"])
    assert report.after(before) == after
    assert LinkReport.from_dict(orjson.loads(orjson.dumps(report.to_dict()))).after(before) == after


def test_a_change_whose_image_has_another_key_is_refused():
    with pytest.raises(CodecError, match="NewImage's key"):
        decode_change(line("a", item("b", 1), None), RULES)
    with pytest.raises(CodecError, match="no Keys"):
        decode_change(b'{"Item": {"pk": {"S": "a"}}}', RULES)


def test_keys_files_and_partition_values():
    keys = parse_keys(['{"pk": {"S": "a"}}', "", '{"pk": {"S": "a"}}', '{"pk": {"S": "b"}}'], "k.jsonl", RULES)
    assert [k["pk"] for k in keys] == [{"S": "a"}, {"S": "b"}]  # blank lines skipped, duplicates once
    for bad, reason in (('{"pk": {"N": "1"}}', "line 1: .*pk"), ('{"sk": {"S": "a"}}', "line 1: "),
                        ("[1]", "line 1: "), ('{"pk": {"S": "a"}, "x": {"S": "y"}}', "line 1: .*not key attributes")):
        with pytest.raises(ParameterError, match=f"k.jsonl {reason}"):
            parse_keys([bad], "k.jsonl", RULES)
    with pytest.raises(ParameterError, match="no keys"):
        parse_keys(["", " "], "k.jsonl", RULES)
    numeric = KeyRules((("id", "N"),))
    assert partition_value("001.50", numeric) == "1.5"
    with pytest.raises(ParameterError, match="not a valid N"):
        partition_value("one", numeric)
    chosen = Selection.of(numeric, partition="7")
    assert chosen.wants(("7",)) and not chosen.wants(("8",))
    with pytest.raises(ParameterError, match="not both"):
        Selection.of(numeric, [{"id": {"N": "1"}}], "7")
