"""Lines validation found convertible byte for byte are loaded without parsing, and land exactly.

``linecheck`` tells, per line, whether renaming its compact ``{"s":`` openings gives its wire form;
a file all of whose lines do is loaded by renaming (``WireBatchWriter.put_compact``). These tests
count that the unparsed path really ran (or really did not), and compare the table with the items.
"""

from __future__ import annotations

from collections import Counter

import pytest

from backup_folders import assert_holds_exactly, datapipeline_folder, dp_lines, restore
from demo_data import all_types_items
from dynamodb_backup.formats.codec import encode_item
from dynamodb_backup.formats.codec.linecheck import BYTEWISE_MAX_LINE
from dynamodb_backup.loading.fastwrite import WireBatchWriter


@pytest.fixture
def compact_puts(monkeypatch):
    seen: Counter[str] = Counter()
    original = WireBatchWriter.put_compact

    def counting(self, line, origin):
        seen["compact"] += 1
        return original(self, line, origin)

    monkeypatch.setattr(WireBatchWriter, "put_compact", counting)
    return seen


def many_all_types_items(copies: int) -> list[dict]:
    """Every type, in lines up to 16 KB (longer ones are parsed: linecheck.BYTEWISE_MAX_LINE)."""
    short = [item for item in all_types_items() if len(encode_item(item)) <= BYTEWISE_MAX_LINE]
    assert len(short) >= 6
    return [dict(item, pk={"S": f"{item['pk']['S']}-{n}"}) for n in range(copies) for item in short]


def test_compact_files_load_unparsed_and_the_table_holds_exactly_the_items(local_aws, s3_bucket, table_name,
                                                                            compact_puts):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    items = many_all_types_items(12)
    folder = datapipeline_folder(s3, s3_bucket, "b/2024-02-01-00-00-00",
                                 {"a": dp_lines(items[:40]), "b": dp_lines(items[40:])})
    outcome = restore(folder, table_name, create_table=True, key_schema="pk:S,sk:N", workers=1)
    assert sorted(outcome.validation.bytewise) == sorted(folder.key(n) for n in ("a", "b"))
    assert compact_puts["compact"] == len(items)  # every line went the unparsed way
    assert outcome.verify is not None and outcome.verify.match and outcome.verify.compared_digests
    assert_holds_exactly(ddb, table_name, items)


def test_a_file_with_a_key_named_like_a_type_key_is_parsed_and_still_lands_exactly(local_aws, s3_bucket,
                                                                                   table_name, compact_puts):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    plain = many_all_types_items(2)
    tricky = [{"pk": {"S": f"t{i}"}, "sk": {"N": "1"}, "s": {"S": "an attribute named s"},
               "doc": {"M": {"m": {"N": str(i)}, "l": {"L": [{"M": {"nULL": {"BOOL": True}}}]}}}} for i in range(30)]
    folder = datapipeline_folder(s3, s3_bucket, "b/2024-02-02-00-00-00",
                                 {"plain": dp_lines(plain), "tricky": dp_lines(tricky)})
    outcome = restore(folder, table_name, create_table=True, key_schema="pk:S,sk:N", workers=1)
    assert outcome.validation.bytewise == [folder.key("plain")]
    assert compact_puts["compact"] == len(plain)  # the tricky file's lines were all parsed
    assert outcome.verify is not None and outcome.verify.match
    assert_holds_exactly(ddb, table_name, plain + tricky)


def test_a_key_twice_in_one_batch_lands_its_later_copy(local_aws, s3_bucket, table_name, compact_puts,
                                                       monkeypatch):
    """The unparsed path reads no keys: DynamoDB refuses a batch naming one twice, and the fallback
    puts its lines in order, so the later copy lands last, as on the parsed path."""
    refusals: list[str] = []
    original = WireBatchWriter._refused

    def counting(self, exc, lines):
        refusals.append(str(exc))
        return original(self, exc, lines)

    monkeypatch.setattr(WireBatchWriter, "_refused", counting)
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    first = [{"pk": {"S": f"d{i}"}, "sk": {"N": "1"}, "v": {"N": "1"}} for i in range(10)]
    again = dict(first[3], v={"N": "2"})
    lines = b"".join(encode_item(i) + b"\n" for i in [*first[:5], again, *first[5:]])
    folder = datapipeline_folder(s3, s3_bucket, "b/2024-02-03-00-00-00", {"a": lines})
    outcome = restore(folder, table_name, create_table=True, key_schema="pk:S,sk:N", workers=1, verify=False)
    assert outcome.validation.bytewise == [folder.key("a")] and compact_puts["compact"] == 11
    assert len(refusals) == 1 and "duplicates" in refusals[0]  # DynamoDB refused the batch, as AWS does
    expected = [again if i["pk"] == again["pk"] else i for i in first]
    assert_holds_exactly(ddb, table_name, expected)
