"""A replacing restore (real local servers): the target ends up holding exactly the backup, like itself.

Also the checkpoint rule that makes it safe to run again: markers written into
an earlier incarnation of the table are not trusted.
"""

from __future__ import annotations

from typing import Any

import pytest

from backup_folders import datapipeline_folder, dp_lines, gz, restore, scan_all, simple_items
from demo_data import TABLE_SPECS, create_table, put_items
from dynamodb_backup.aws.tablecreate import table_exists
from dynamodb_backup.cli import main
from dynamodb_backup.errors import CodecError, ParameterError
from dynamodb_backup.formats.codec import TableDigest
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.loading.checkpoint import Checkpoints, default_checkpoint_base
from dynamodb_backup.repository.inspection import inspect_folder
from dynamodb_backup.restore.target import ensure_target, replace_table


def referrer_items(n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"resource": {"S": f"/{prefix}{i}"}, "timestamp": {"S": f"t{i:04d}"}, "host": {"S": f"h{i % 3}"}}
            for i in range(n)]


def digest(items: list[dict[str, Any]]) -> str:
    total = TableDigest()
    for item in items:
        total.add(item)
    return total.hexdigest()


def test_replacing_restore_leaves_exactly_the_backup_in_a_table_like_before(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, referrer_items(7, "deleted-since-"))
    before = ddb.describe_table(TableName=table_name)["Table"]
    backup = referrer_items(40, "live-")
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-01-00-00-00", {"a": dp_lines(backup)})

    outcome = restore(folder, table_name, replace_table=True)

    assert outcome.target == {"created": True, "replaced": True, "was_empty": True}
    assert outcome.verify is not None and outcome.verify.match and outcome.verify.compared_digests
    restored = scan_all(ddb, table_name)
    assert len(restored) == 40 and digest(restored) == digest(backup)
    after = ddb.describe_table(TableName=table_name)["Table"]
    assert after["CreationDateTime"] != before["CreationDateTime"]
    assert after["ProvisionedThroughput"]["WriteCapacityUnits"] == before["ProvisionedThroughput"][
        "WriteCapacityUnits"]
    assert [i["IndexName"] for i in after["GlobalSecondaryIndexes"]] == ["by-host"]


def test_a_corrupt_backup_never_deletes_the_table_it_would_replace(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, simple_items(5, "keep-"))
    before = ddb.describe_table(TableName=table_name)["Table"]["CreationDateTime"]
    good, bad = dp_lines(simple_items(20)), dp_lines(simple_items(20, "b-")) + b'{"pk": {"s": "x"}, "n": {"zz": 1}}\n'
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-02-00-00-00", {"a": gz(good), "b": bad})

    with pytest.raises(CodecError, match="unknown type key"):
        restore(folder, table_name, replace_table=True)

    assert ddb.describe_table(TableName=table_name)["Table"]["CreationDateTime"] == before
    assert sorted(i["pk"]["S"] for i in scan_all(ddb, table_name)) == [f"keep-{i:05d}" for i in range(5)]


def test_no_table_is_deleted_when_its_record_cannot_be_kept(local_aws, s3_bucket, table_name):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    original = staging_table(local_aws, table_name)
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-08-00-00-00", {"a": dp_lines(referrer_items(5, "x"))})
    unwritable = Checkpoints.for_run(s3, S3Location("no-such-bucket-for-records", "c"), table_name, "r")
    keys = {"KeySchema": original["KeySchema"], "AttributeDefinitions": original["AttributeDefinitions"]}
    with pytest.raises(ParameterError, match=r"replace_table: cannot record table .* before deleting it"):
        ensure_target(ddb, inspect_folder(s3, folder), table_name, keys, create=False, replace=True,
                      journal=unwritable)
    assert ddb.describe_table(TableName=table_name)["Table"]["CreationDateTime"] == original["CreationDateTime"]


def test_replace_creates_a_missing_table_like_create_table(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-03-00-00-00", {"a": dp_lines(simple_items(12))})
    outcome = restore(folder, table_name, replace_table=True, key_schema="pk:S")
    assert outcome.target == {"created": True, "replaced": False, "was_empty": True}
    assert outcome.verify is not None and outcome.verify.match


def test_a_rerun_of_the_same_run_resumes_in_the_table_it_made_and_a_new_run_replaces_it(local_aws, s3_bucket,
                                                                                          table_name):
    """The run's record tells its own incarnation of the table from the original: no second delete."""
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    files = {f"part{i}": dp_lines(simple_items(30, f"f{i}-")) for i in range(3)}
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-04-00-00-00", files)

    first = restore(folder, table_name, replace_table=True, verify=False, run_id="nightly-1")
    assert (first.load.files_loaded, first.load.files_skipped) == (3, 0)  # no verify: markers and record stay
    made = ddb.describe_table(TableName=table_name)["Table"]["CreationDateTime"]
    again = restore(folder, table_name, replace_table=True, run_id="nightly-1")
    assert again.target["replaced"] and ddb.describe_table(TableName=table_name)["Table"]["CreationDateTime"] == made
    assert (again.load.files_loaded, again.load.files_skipped, again.load.items) == (0, 3, 90)
    assert again.verify is not None and again.verify.match and again.verify.compared_digests

    nightly = restore(folder, table_name, replace_table=True, run_id="nightly-2")
    assert ddb.describe_table(TableName=table_name)["Table"]["CreationDateTime"] != made
    assert (nightly.load.files_loaded, nightly.load.items) == (3, 90) and nightly.verify.match


def test_cli_replace_table(local_aws, s3_bucket, table_name, capsys):
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, simple_items(3, "stale-"))
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-06-00-00-00", {"a": dp_lines(simple_items(9))})
    code = main(["restore", folder.uri, "--table", table_name, "--replace-table", "--write-ratio", "1.0",
                 "--workers", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"replaced table {table_name}" in out and "verified: 9 items" in out
    assert len(scan_all(ddb, table_name)) == 9


def test_markers_of_another_incarnation_of_the_table_are_ignored(local_aws, s3_bucket):
    s3 = local_aws.s3_client()
    folder = datapipeline_folder(s3, s3_bucket, "rp/2024-02-05-00-00-00", {"a": dp_lines(simple_items(4))})
    (file,) = inspect_folder(s3, folder).files
    url = f"s3://{s3_bucket}/{file.key}"
    base = default_checkpoint_base(folder)
    Checkpoints.for_run(s3, base, "T1", "run", table_id="old-table-id").mark(file, url, 4)

    assert Checkpoints.for_run(s3, base, "T1", "run", table_id="old-table-id").finished(file, url) == 4
    assert Checkpoints.for_run(s3, base, "T1", "run", table_id="new-table-id").finished(file, url) is None


class ProtectedTable:
    """Narrow fake: a table with deletion protection on (dynalite does not know the flag)."""

    def __init__(self) -> None:
        self.deleted = False

    def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"TableName": TableName, "TableArn": f"arn:aws:dynamodb:::table/{TableName}",
                          "DeletionProtectionEnabled": True}}

    def describe_time_to_live(self, TableName: str) -> dict[str, Any]:
        return {"TimeToLiveDescription": {"TimeToLiveStatus": "DISABLED"}}

    def list_tags_of_resource(self, ResourceArn: str) -> dict[str, Any]:
        return {"Tags": []}

    def delete_table(self, TableName: str) -> None:
        self.deleted = True


def test_a_table_with_deletion_protection_is_not_replaced():
    table = ProtectedTable()
    with pytest.raises(ParameterError, match="replace_table: table 'Orders' has deletion protection on"):
        replace_table(table, "Orders", table.describe_table("Orders")["Table"])
    assert not table.deleted


class DiesAt:
    """A DynamoDB client whose worker dies (RuntimeError) when it first calls ``operation``."""

    def __init__(self, client: Any, operation: str) -> None:
        self.client, self.operation = client, operation

    def __getattr__(self, name: str) -> Any:
        if name == self.operation:
            def die(**_: Any) -> None:
                raise RuntimeError(f"worker lost before {name}")
            return die
        return getattr(self.client, name)


def staging_table(local_aws, table_name: str) -> dict[str, Any]:
    """A provisioned staging table with an index and a tag, holding a stale item."""
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    arn = ddb.describe_table(TableName=table_name)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "team", "Value": "data"}])
    put_items(ddb, table_name, referrer_items(3, "deleted-since-"))
    return ddb.describe_table(TableName=table_name)["Table"]


def journal_for(s3, folder, table: str) -> Checkpoints:
    return Checkpoints.for_run(s3, default_checkpoint_base(folder), table, "nightly-7")


@pytest.mark.parametrize("dies_at", ["create_table", "tag_resource"])
def test_a_retry_after_a_lost_attempt_finishes_the_replacement_like_the_original(local_aws, s3_bucket, table_name,
                                                                                dies_at):
    """Died after the delete (or before the tags): the retry rebuilds from the run's record, not from guesses.

    The backup is Data Pipeline's (no sidecar), so without the record a retry could only make a bare
    on-demand table with no index and no tags.
    """
    s3, ddb = local_aws.s3_client(), local_aws.dynamodb_client()
    original = staging_table(local_aws, table_name)
    folder = datapipeline_folder(s3, s3_bucket, f"rp/2024-02-07-00-00-0{len(dies_at) % 10}",
                                 {"a": dp_lines(referrer_items(20, "live-"))})
    source = inspect_folder(s3, folder)
    keys = {"KeySchema": original["KeySchema"], "AttributeDefinitions": original["AttributeDefinitions"]}

    with pytest.raises(RuntimeError, match="worker lost"):
        ensure_target(DiesAt(ddb, dies_at), source, table_name, keys, create=False, replace=True,
                      journal=journal_for(s3, folder, table_name))
    half_made = table_exists(ddb, table_name)
    assert (half_made is None) == (dies_at == "create_table")

    target = ensure_target(ddb, source, table_name, keys, create=False, replace=True,
                           journal=journal_for(s3, folder, table_name))
    assert target == {"created": True, "replaced": True, "was_empty": True}
    rebuilt = ddb.describe_table(TableName=table_name)["Table"]
    if half_made is not None:  # the incarnation the lost attempt created is kept, not deleted again
        assert rebuilt["CreationDateTime"] == half_made["CreationDateTime"]
    assert rebuilt["CreationDateTime"] != original["CreationDateTime"]
    assert rebuilt["ProvisionedThroughput"]["WriteCapacityUnits"] == 400
    assert [i["IndexName"] for i in rebuilt["GlobalSecondaryIndexes"]] == ["by-host"]
    assert ddb.list_tags_of_resource(ResourceArn=rebuilt["TableArn"])["Tags"] == [{"Key": "team", "Value": "data"}]
    assert scan_all(ddb, table_name) == []
