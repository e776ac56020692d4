"""Verification against real servers: scan counts, order-free digests, and naming the differing keys."""

from __future__ import annotations

import functools
import logging
import os

import boto3

from backup_folders import datapipeline_folder, dp_lines, restore, simple_items
from demo_data import TABLE_SPECS, all_types_items, create_table, put_items
from dynamodb_backup.repository.inspection import inspect_folder
from dynamodb_backup.restore import verify
from dynamodb_backup.restore.verify import backup_digest, sample_differences, table_digest, verify_restore


def test_table_digest_ignores_order_and_scan_form(local_aws, table_name):
    ddb = local_aws.dynamodb_client()
    items = all_types_items()
    for suffix, ordered in (("-a", items), ("-b", list(reversed(items)))):
        create_table(ddb, table_name + suffix, TABLE_SPECS["AllTypes"])
        put_items(ddb, table_name + suffix, ordered)
    a = table_digest(ddb, table_name + "-a", 3, raw=False)  # botocore's parser ...
    b = table_digest(ddb, table_name + "-b", 1)  # ... and the raw scan digest alike
    assert a.total() == b.total() and a.count == len(items)
    assert a.differing(b) == []


PIDS_FILE: list[str] = []


def _recording_share(*args, **kwargs):  # a worker's share, noting which process ran it
    with open(PIDS_FILE[0], "a") as f:
        f.write(f"{os.getpid()}\n")
    return ORIGINAL_SHARE(*args, **kwargs)


ORIGINAL_SHARE = verify._digest_share


def test_a_digest_shared_among_worker_processes_equals_one_process_and_says_how_far_it_is(
        local_aws, table_name, caplog, monkeypatch, tmp_path):
    PIDS_FILE[:] = [str(tmp_path / "pids")]
    monkeypatch.setattr(verify, "_digest_share", _recording_share)
    ddb = local_aws.dynamodb_client()
    items = [dict(item, pk={"S": f"{item['pk']['S']}-{n}"}) for n in range(40) for item in all_types_items()]
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    put_items(ddb, table_name, items)
    one = table_digest(ddb, table_name, 4)
    make_client = functools.partial(boto3.client, endpoint_url=local_aws.dynamodb_url, region_name=local_aws.region)
    with caplog.at_level(logging.INFO, logger="dynamodb_backup.restore.verify"):
        shared = table_digest(ddb, table_name, 4, make_client=make_client, processes=2, expected_items=len(items))
    assert shared == one and shared.count == len(items)
    workers = set((tmp_path / "pids").read_text().split())
    assert len(workers) == 2 and str(os.getpid()) not in workers  # two shares, each in a process of its own
    # The report adds up what both processes counted: its last line names every item.
    assert f"verify {table_name}: {len(items):,} of {len(items):,} items" in caplog.text


def test_backup_digest_matches_the_table_it_was_restored_into(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    folder = datapipeline_folder(s3, s3_bucket, "v/2024-01-01-00-00-00", {"a": dp_lines(simple_items(120))})
    restore(folder, table_name, create_table=True, key_schema="pk:S", verify=False)
    source = inspect_folder(s3, folder)
    assert backup_digest(s3, source, ["pk"]).total() == table_digest(ddb, table_name, 4).total()


def test_mismatch_names_missing_extra_and_differing_keys(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    folder = datapipeline_folder(s3, s3_bucket, "v/2024-01-02-00-00-00", {"a": dp_lines(simple_items(200))})
    restore(folder, table_name, create_table=True, key_schema="pk:S", verify=False)
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "k00007"}})
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "intruder"}})
    ddb.put_item(TableName=table_name, Item={"pk": {"S": "k00150"}, "n": {"N": "-1"}})

    report = verify_restore(ddb, s3, inspect_folder(s3, folder), table_name)
    assert not report.match and report.compared_digests
    assert (report.backup_items, report.table_items) == (200, 200)
    assert report.sample["missing"] == [{"pk": "k00007"}]
    assert report.sample["extra"] == [{"pk": "intruder"}]
    assert report.sample["differing"] == [{"pk": "k00150"}]
    assert "MISMATCH" in report.summary()


def test_sampling_holds_a_bounded_number_of_keys(local_aws, s3_bucket, table_name):
    """An empty target mismatches in every bucket; the re-read goes in passes of at most max_keys keys."""
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    folder = datapipeline_folder(s3, s3_bucket, "v/2024-01-03-00-00-00", {"a": dp_lines(simple_items(300))})
    local_aws.create_table(table_name)
    source = inspect_folder(s3, folder)
    backup, target = backup_digest(s3, source, ["pk"]), table_digest(ddb, table_name, 2)
    assert len(backup.differing(target)) > 150  # every occupied bucket
    sample = sample_differences(ddb, s3, source, table_name, ["pk"], backup, target, sample_size=5, max_keys=40)
    assert len(sample["missing"]) == 5 and not sample["extra"] and not sample["differing"]


def test_target_that_held_items_is_compared_by_count(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, simple_items(10, "old"))
    folder = datapipeline_folder(s3, s3_bucket, "v/2024-01-04-00-00-00", {"a": dp_lines(simple_items(25))})
    outcome = restore(folder, table_name)
    assert outcome.target == {"created": False, "replaced": False, "was_empty": False}
    assert outcome.verify is not None and outcome.verify.match and not outcome.verify.compared_digests
    assert outcome.verify.table_items == 35
    assert "only counts were compared" in outcome.verify.notes[0]


def test_duplicated_keys_in_a_backup_are_reported(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    items = simple_items(5)
    folder = datapipeline_folder(s3, s3_bucket, "v/2024-01-05-00-00-00",
                                 {"a": dp_lines(items), "b": dp_lines(items[:1])}, manifest_base="")
    outcome = restore(folder, table_name, create_table=True, key_schema="pk:S")
    assert outcome.verify is not None and not outcome.verify.match
    assert outcome.verify.sample["duplicated"] == [{"pk": "k00000"}]
