"""Restore against real local servers (dynalite + moto over HTTP): round trips, refusals, retries, resume."""

from __future__ import annotations

import json
from typing import Any

import pytest

from backup_folders import (
    all_types_backup,
    datapipeline_folder,
    dp_lines,
    exists,
    gz,
    restore,
    scan_all,
    simple_items,
)
from demo_data import all_types_items
from dynamodb_backup.cli import main
from dynamodb_backup.errors import BackupFolderError, CodecError, ParameterError
from dynamodb_backup.formats.codec import TableDigest
from dynamodb_backup.formats.layout import SIDECAR, SUCCESS
from dynamodb_backup.loading.checkpoint import Checkpoints, default_checkpoint_base
from dynamodb_backup.repository.inspection import inspect_folder
from dynamodb_backup.restore.steps import load_files, plan_shares
from dynamodb_backup.restore.verify import table_digest


def digest_of(items: list[dict[str, Any]]) -> TableDigest:
    digest = TableDigest()
    for item in items:
        digest.add(item)
    return digest


@pytest.mark.parametrize("compression", ["gzip", "none", "zstd"])
def test_all_types_round_trip_into_a_new_table(local_aws, s3_bucket, table_name, compression):
    folder = all_types_backup(local_aws, s3_bucket, table_name, compression)
    outcome = restore(folder, table_name + "-restored", create_table=True)

    assert outcome.source.format == "ours"
    assert outcome.target == {"created": True, "replaced": False, "was_empty": True}
    assert outcome.load.items == outcome.validation.items == len(all_types_items())
    assert outcome.verify is not None and outcome.verify.match and outcome.verify.compared_digests
    ddb = local_aws.dynamodb_client()
    source, target = table_digest(ddb, table_name, 3), table_digest(ddb, table_name + "-restored", 2)
    assert source.total() == target.total() == digest_of(all_types_items())
    created = ddb.describe_table(TableName=table_name + "-restored")["Table"]
    assert created["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [k["AttributeName"] for k in created["KeySchema"]] == ["pk", "sk"]


def test_provisioned_table_with_index_is_recreated_like_the_source(local_aws, s3_bucket, table_name):
    items = [{"resource": {"S": f"/p{i}"}, "timestamp": {"S": f"t{i}"}, "host": {"S": "h"}} for i in range(60)]
    folder = all_types_backup(local_aws, s3_bucket, table_name, spec="ReferrerCounts", items=items)
    outcome = restore(folder, table_name + "-copy", create_table=True, workers=3)
    assert outcome.verify is not None and outcome.verify.match
    created = local_aws.dynamodb_client().describe_table(TableName=table_name + "-copy")["Table"]
    assert created["ProvisionedThroughput"]["WriteCapacityUnits"] == 400
    assert [i["IndexName"] for i in created["GlobalSecondaryIndexes"]] == ["by-host"]


def test_key_schema_mismatch_is_refused_before_any_write(local_aws, s3_bucket, table_name):
    folder = all_types_backup(local_aws, s3_bucket, table_name)
    local_aws.create_table(table_name + "-other", hash_key="id")
    with pytest.raises(ParameterError, match=r"key schema \(id HASH S\) does not match the source's"):
        restore(folder, table_name + "-other")
    assert scan_all(local_aws.dynamodb_client(), table_name + "-other") == []


def test_missing_table_needs_create_and_a_key_schema(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-01-00-00-00", {"f1": dp_lines(simple_items(3))})
    with pytest.raises(ParameterError, match="does not exist"):
        restore(folder, "not-there-yet")
    with pytest.raises(ParameterError, match="key_schema"):
        restore(folder, "not-there-yet", create_table=True)
    assert not exists(local_aws.dynamodb_client(), "not-there-yet")


def test_missing_success_is_refused_unless_forced(local_aws, s3_bucket, table_name):
    folder = all_types_backup(local_aws, s3_bucket, table_name)
    local_aws.s3_client().delete_object(Bucket=s3_bucket, Key=folder.key(SUCCESS))
    with pytest.raises(BackupFolderError, match="no _SUCCESS marker"):
        restore(folder, table_name + "-r", create_table=True)
    assert not exists(local_aws.dynamodb_client(), table_name + "-r")
    outcome = restore(folder, table_name + "-r", create_table=True, force=True)
    assert outcome.verify is not None and outcome.verify.match
    assert any("forced" in note for note in outcome.source.notes)


def test_wrong_checksum_in_the_sidecar_is_refused_with_the_target_untouched(local_aws, s3_bucket, table_name):
    folder = all_types_backup(local_aws, s3_bucket, table_name)
    s3 = local_aws.s3_client()
    sidecar = json.loads(s3.get_object(Bucket=s3_bucket, Key=folder.key(SIDECAR))["Body"].read())
    bad = sidecar["files"][-1]
    bad["sha256"] = "0" * 64
    s3.put_object(Bucket=s3_bucket, Key=folder.key(SIDECAR), Body=json.dumps(sidecar).encode())
    local_aws.create_table(table_name + "-t", range_key="sk", range_type="N")
    with pytest.raises(BackupFolderError, match=rf"{bad['name']}: SHA-256 .* does not match the backup's record"):
        restore(folder, table_name + "-t")
    assert scan_all(local_aws.dynamodb_client(), table_name + "-t") == []


def test_truncated_gzip_is_refused_naming_the_file(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    whole = gz(dp_lines(simple_items(500)))
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-02-00-00-00",
                                 {"good.gz": gz(dp_lines(simple_items(5, "g"))), "cut.gz": whole[: len(whole) // 2]})
    with pytest.raises(BackupFolderError, match=r"cut\.gz: gzip data is truncated"):
        restore(folder, "never-created-1", create_table=True, key_schema="pk:S")
    assert not exists(local_aws.dynamodb_client(), "never-created-1")


def test_a_bad_line_is_refused_naming_file_and_line(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    lines = dp_lines(simple_items(4)) + b'{"pk":{"s":"x"},"n":{"n":"1e999"}}\n' + dp_lines(simple_items(2, "z"))
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-03-00-00-00", {"data1": lines})
    local_aws.create_table(table_name)
    with pytest.raises(CodecError, match=r"dp/2024-01-03-00-00-00/data1 line 5: attribute 'n'"):
        restore(folder, table_name)
    assert scan_all(local_aws.dynamodb_client(), table_name) == []


def test_an_item_without_the_tables_key_is_refused_in_validation(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    lines = dp_lines(simple_items(2)) + dp_lines([{"other": {"S": "no key"}}])
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-04-00-00-00", {"data1": lines})
    local_aws.create_table(table_name)
    with pytest.raises(CodecError, match=r"data1 line 3: item has no key attribute 'pk'"):
        restore(folder, table_name)
    assert scan_all(local_aws.dynamodb_client(), table_name) == []


def test_manifest_listing_a_missing_file_is_refused(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-05-00-00-00", {"here": dp_lines(simple_items(2))})
    s3.put_object(Bucket=s3_bucket, Key=folder.key("manifest"),
                  Body=b'{"name":"DynamoDB-export","version":3,\n"entries": [\n'
                       b'{"url":"s3://elsewhere/x/here","mandatory":true},\n'
                       b'{"url":"s3://elsewhere/x/gone","mandatory":true}\n]}')
    with pytest.raises(BackupFolderError, match=r"entry s3://elsewhere/x/gone .*is missing from the folder"):
        restore(folder, "never-created-2", create_table=True, key_schema="pk:S")


class PartialBatches:
    """A narrow test double: the first ``rounds`` BatchWriteItem calls write only part of the batch
    for real and hand the rest back as UnprocessedItems, as DynamoDB does under throttling."""

    def __init__(self, client: Any, rounds: int) -> None:
        self.client, self.rounds, self.calls, self.returned, self.partial = client, rounds, 0, 0, 0

    def batch_write_item(self, RequestItems: dict[str, list[Any]], **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        ((table, requests),) = RequestItems.items()
        if self.calls > self.rounds:
            return self.client.batch_write_item(RequestItems=RequestItems, **kwargs)
        keep, back = requests[: len(requests) // 2], requests[len(requests) // 2:]
        response = self.client.batch_write_item(RequestItems={table: keep}, **kwargs) if keep else {}
        self.returned += len(back)
        self.partial += 1
        return {**response, "UnprocessedItems": {table: back}}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_unprocessed_items_are_retried_until_every_item_is_written(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    items = simple_items(230)
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-06-00-00-00", {"d.gz": gz(dp_lines(items))})
    local_aws.create_table(table_name)
    source = inspect_folder(s3, folder)
    double = PartialBatches(ddb, rounds=6)
    # The double rewrites requests at the boto3 level, so it drives the plain path; the fast
    # path's retries are tested through the HTTP fault proxy (test_fast_path_survives_partial_batches).
    result = load_files(double, s3, s3_bucket, source.files, table_name, ["pk"], rate=1000.0, sleep=lambda _: None,
                        fast_path=False)
    assert double.partial == 6 and result.unprocessed_retries == 6 and double.returned > 6
    assert result.items == 230
    assert digest_of(scan_all(ddb, table_name)) == digest_of(items)


class FailAfter:
    """Fails the load after ``calls`` BatchWriteItem calls, like a worker killed mid-share."""

    def __init__(self, client: Any, calls: int) -> None:
        self.client, self.left, self.written = client, calls, 0

    def batch_write_item(self, **kwargs: Any) -> dict[str, Any]:
        if self.left == 0:
            raise RuntimeError("worker lost")
        self.left -= 1
        self.written += sum(len(v) for v in kwargs["RequestItems"].values())
        return self.client.batch_write_item(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


def test_a_retried_worker_skips_the_files_it_finished(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    files = {f"part{i}": dp_lines(simple_items(50, f"f{i}-")) for i in range(3)}
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-07-00-00-00", files)
    local_aws.create_table(table_name)
    source = inspect_folder(s3, folder)
    ordered = sorted(source.files, key=lambda f: f.key)
    checkpoints = Checkpoints.for_run(s3, default_checkpoint_base(folder), table_name, "manual__2024-01-07T00:00:00")

    first = FailAfter(ddb, calls=3)  # two files of 50 items take 2 batches each: dies inside the second file
    with pytest.raises(RuntimeError, match="worker lost"):
        load_files(first, s3, s3_bucket, ordered, table_name, ["pk"], 1000.0, checkpoints=checkpoints,
                   fast_path=False)
    marker = checkpoints.location.key("part0.done")
    assert marker.startswith(f"dp/_restore_checkpoints/2024-01-07-00-00-00/{table_name}/")
    assert s3.head_object(Bucket=s3_bucket, Key=marker)

    second = FailAfter(ddb, calls=100)
    result = load_files(second, s3, s3_bucket, ordered, table_name, ["pk"], 1000.0, checkpoints=checkpoints,
                        fast_path=False)
    assert (result.files_skipped, result.files_loaded, result.items) == (1, 2, 150)
    assert second.written == 100  # part0 was not written again
    assert len(scan_all(ddb, table_name)) == 150
    assert checkpoints.clear() == 3


def test_checkpoints_are_switched_off_when_they_cannot_be_written(local_aws, s3_bucket, table_name, caplog):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-08-00-00-00", {"a": dp_lines(simple_items(3))})
    local_aws.create_table(table_name)
    source = inspect_folder(s3, folder)
    nowhere = Checkpoints.for_run(s3, default_checkpoint_base(folder).__class__("no-such-bucket-xyz", "c"),
                                  table_name, "r1")
    result = load_files(ddb, s3, s3_bucket, source.files, table_name, ["pk"], 1000.0, checkpoints=nowhere)
    assert result.items == 3 and not nowhere.enabled
    assert "checkpoints off" in caplog.text


def test_shares_balance_bytes():
    from dynamodb_backup.repository.inspection import SourceFile

    files = [SourceFile(f"k{i}", "datapipeline", size) for i, size in enumerate([100, 90, 50, 40, 10, 5])]
    shares = plan_shares(files, 2)
    assert sorted(sum(f.size for f in share) for share in shares) == [145, 150]
    assert plan_shares([], 4) == [[]]


def test_cli_restore_latest_and_verify(local_aws, s3_bucket, table_name, capsys):
    all_types_backup(local_aws, s3_bucket, table_name)
    code = main(["restore", "--latest", "--from", f"s3://{s3_bucket}/backups", "--source-table", table_name,
                 "--table", table_name + "-cli", "--create-table", "--write-ratio", "1.0", "--workers", "2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "verified: 8 items" in out and "newest complete backup" in out
    folder = f"s3://{s3_bucket}/backups/{table_name}/2024-03-05-04-10-22"
    assert main(["verify", folder, "--table", table_name + "-cli"]) == 0
    local_aws.dynamodb_client().delete_item(TableName=table_name + "-cli",
                                            Key={"pk": {"S": "scalars"}, "sk": {"N": "5"}})
    assert main(["verify", folder, "--table", table_name + "-cli"]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "missing: {'pk': 'scalars', 'sk': '5'}" in out


def test_fast_path_survives_partial_batches_and_faults(local_aws, s3_bucket, table_name):
    """Through the HTTP fault proxy: half the batches come back partly unprocessed, some fail or drop."""
    from dynamodb_backup.aws import clients
    from faultproxy.dynamodb_proxy import DynamoDBFaultProxy, DynamoFaults

    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    items = simple_items(400)
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-09-00-00-00", {"d.gz": gz(dp_lines(items))})
    local_aws.create_table(table_name)
    source = inspect_folder(s3, folder)
    faults = DynamoFaults(partial_batch=0.5, internal_error=0.05, throttling=0.1, drop_after=0.05)
    with DynamoDBFaultProxy(local_aws.dynamodb_url, seed=11, faults=faults, enforce_capacity=False) as proxy:
        client = clients.client("dynamodb", endpoint_url=proxy.url)
        result = load_files(client, s3, s3_bucket, source.files, table_name, ["pk"], rate=1000.0,
                            sleep=lambda _: None)
    assert proxy.counters["partial_batch"] > 0
    assert result.items == 400 and result.unprocessed_retries > 0
    assert digest_of(scan_all(ddb, table_name)) == digest_of(items)


def test_a_table_left_creating_by_a_killed_attempt_is_waited_for(local_aws, s3_bucket, table_name):
    if local_aws.is_ddblocal:
        # AWS keeps a new table CREATING for seconds; DynamoDB Local makes it ACTIVE at once, so there is
        # nothing to wait for here. make test runs this on dynalite, which keeps it CREATING for a while.
        pytest.skip("DynamoDB Local has no CREATING state to leave a table in")
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-01-09-00-00-00", {"a": dp_lines(simple_items(30))})
    # What a worker killed mid-creation leaves behind: CreateTable sent, the table not active yet.
    ddb.create_table(TableName=table_name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    assert ddb.describe_table(TableName=table_name)["Table"]["TableStatus"] == "CREATING"
    outcome = restore(folder, table_name, create_table=True)
    assert outcome.verify is not None and outcome.verify.match
    assert len(scan_all(ddb, table_name)) == 30
