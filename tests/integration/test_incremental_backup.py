"""Incremental backups: a full, then each interval's changes as a link, and a full again on a gap.

Runs against a PITR stand-in that accepts short incremental windows (seconds, not 15 minutes),
so three "nights" take seconds. What each link must hold is computed from the test's own writes.
"""

from __future__ import annotations

import gzip
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from dynamodb_backup.aws.tableinfo import table_identity
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest
from dynamodb_backup.commands import client_factory
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.layout import MANIFEST, SIDECAR, SUCCESS, S3Location
from dynamodb_backup.incremental.backup import run_incremental_link
from dynamodb_backup.repository.inspection import inspect_folder


def tick() -> datetime:
    """A whole second after every write so far, waited for so later writes fall after it."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.02)
    return moment


def item(key: str, version: int) -> dict[str, Any]:
    return {"pk": {"S": key}, "v": {"N": str(version)}, "blob": {"B": bytes([version % 256]) * 3}}


def link_lines(s3, folder: S3Location) -> list[dict[str, Any]]:
    lines = []
    listed = s3.list_objects_v2(Bucket=folder.bucket, Prefix=folder.key("AWSDynamoDB/data/"))["Contents"]
    for obj in listed:
        body = gzip.decompress(s3.get_object(Bucket=folder.bucket, Key=obj["Key"])["Body"].read())
        lines += [orjson.loads(line) for line in body.splitlines() if line.strip()]
    return lines


@pytest.fixture
def standin(pitr_standin):
    return pitr_standin(lag_seconds=1, min_export_seconds=0, min_incremental_window_seconds=1)


def test_a_full_then_links_then_a_full_after_a_gap(local_aws, standin, s3_bucket, table_name):
    ddb, s3 = standin.client("dynamodb", region_name=local_aws.region), local_aws.s3_client()
    local_aws.create_table(table_name, client=ddb)
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    make = client_factory(standin.url)
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "inc"), logical_date=datetime.now(UTC),
                            max_workers=2, settings=ExportSettings(file_max_items=5))
    for i in range(12):
        ddb.put_item(TableName=table_name, Item=item(f"k{i:02d}", 1))
    t0 = tick()

    plan, sidecar = run_incremental_link(make, request, t0 - timedelta(seconds=30), t0, poll_seconds=0.2)
    assert plan.role == "full" and "first backup" in plan.reason
    assert sidecar is not None and sidecar.item_count == 12 and sidecar.source["chain"]["role"] == "full"
    full = S3Location(s3_bucket, f"inc/{table_name}/{t0:%Y-%m-%d-%H-%M-%S}")

    ddb.put_item(TableName=table_name, Item=item("k00", 2))                                   # update
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "k01"}})                            # delete
    ddb.put_item(TableName=table_name, Item=item("new", 1))                                    # insert
    ddb.put_item(TableName=table_name, Item=item("gone", 1))                                   # insert...
    ddb.delete_item(TableName=table_name, Key={"pk": {"S": "gone"}})                           # ...then delete
    t1 = tick()

    plan, sidecar = run_incremental_link(make, request, t0, t1, poll_seconds=0.2)
    assert plan.role == "incremental" and plan.since == t0 and plan.until == t1
    link = S3Location(s3_bucket, f"inc/{table_name}/{t1:%Y-%m-%d-%H-%M-%S}")
    assert sidecar is not None and sidecar.item_count == 3
    source = sidecar.source
    assert source["mode"] == "incremental" and source["view"] == "NEW_AND_OLD_IMAGES"
    assert source["export_from"].startswith(f"{t0:%Y-%m-%dT%H:%M:%S}")
    assert source["export_to"].startswith(f"{t1:%Y-%m-%dT%H:%M:%S}")
    assert source["chain"] == {"role": "incremental", "table_id": source["chain"]["table_id"], "full": full.uri,
                               "previous": full.uri}
    changes = {line["Keys"]["pk"]["S"]: line for line in link_lines(s3, link)}
    assert set(changes) == {"k00", "k01", "new"}
    assert changes["k00"]["NewImage"]["v"] == {"N": "2"} and changes["k00"]["OldImage"]["v"] == {"N": "1"}
    assert "NewImage" not in changes["k01"] and changes["k01"]["OldImage"]["pk"] == {"S": "k01"}
    assert "OldImage" not in changes["new"]
    names = {o["Key"][len(link.key("")):] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=link.key(""))
             ["Contents"]}
    assert {SUCCESS, SIDECAR} <= names and MANIFEST not in names, "a link is not a Data Pipeline folder"
    with pytest.raises(BackupFolderError, match="an incremental export holds changes, not a table"):
        inspect_folder(s3, link)

    ddb.put_item(TableName=table_name, Item=item("k05", 3))
    t2 = tick()
    plan, _ = run_incremental_link(make, request, t1, t2, poll_seconds=0.2)
    assert plan.role == "incremental" and plan.chain["previous"] == link.uri and plan.chain["full"] == full.uri

    # A missing night: the next interval does not start where the chain ends, so a full is made.
    ddb.put_item(TableName=table_name, Item=item("k06", 3))
    t3 = tick()
    t4 = tick()
    plan, sidecar = run_incremental_link(make, request, t3, t4, poll_seconds=0.2)
    assert plan.role == "full" and "gap" in plan.reason and sidecar is not None and sidecar.item_count == 12

    # full_every: a link would do, but the full is too old.
    t5 = tick()
    plan, _ = run_incremental_link(make, request, t4, t5, timedelta(seconds=0), poll_seconds=0.2)
    assert plan.role == "full" and "full_every" in plan.reason


def test_a_table_re_created_between_links_gets_a_full_backup(local_aws, standin, s3_bucket, table_name):
    """Deleted and created again under the same name between two runs: the chain's items are gone,
    so the next run is a full of the new table, not a link. The signal is the table's identity in
    DescribeTable: its TableId where the server gives one (AWS, dynalite), else its ARN and
    CreationDateTime (the ARN alone names the table, not its incarnation: it is the same after
    re-creation)."""
    ddb, s3 = standin.client("dynamodb", region_name=local_aws.region), local_aws.s3_client()
    make = client_factory(standin.url)
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "inc"), logical_date=datetime.now(UTC),
                            max_workers=2, settings=ExportSettings(file_max_items=5))

    def create_with_pitr(items: list[str]) -> dict[str, Any]:
        local_aws.create_table(table_name, client=ddb)
        ddb.update_continuous_backups(TableName=table_name,
                                      PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
        for key in items:
            ddb.put_item(TableName=table_name, Item=item(key, 1))
        return ddb.describe_table(TableName=table_name)["Table"]

    first = create_with_pitr([f"old{i}" for i in range(4)])
    t0 = tick()
    plan, sidecar = run_incremental_link(make, request, t0 - timedelta(seconds=30), t0, poll_seconds=0.2)
    assert plan.role == "full" and sidecar is not None and sidecar.item_count == 4

    ddb.delete_table(TableName=table_name)
    ddb.get_waiter("table_not_exists").wait(TableName=table_name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    tick()  # a creation time of its own, a whole second after the first table's
    second = create_with_pitr(["new0", "new1"])
    assert second["TableArn"] == first["TableArn"], "the ARN does not tell the incarnations apart"
    assert table_identity(second) != table_identity(first)
    t1 = tick()

    # The interval starts exactly where the chain ends: only the re-creation stands in the way of a link.
    plan, sidecar = run_incremental_link(make, request, t0, t1, poll_seconds=0.2)

    assert plan.role == "full" and "re-created" in plan.reason, plan.reason
    assert sidecar is not None and sidecar.item_count == 2, "a full export of the new table"
    assert sidecar.source["chain"] == {"role": "full", "table_id": table_identity(second)}
    if "TableId" in second:
        assert table_identity(second) == second["TableId"] != first["TableId"]
    else:  # DynamoDB Local has no TableId: ARN and creation time
        assert table_identity(second) == f"{second['TableArn']}@{second['CreationDateTime'].isoformat()}"
    full = S3Location(s3_bucket, f"inc/{table_name}/{t1:%Y-%m-%d-%H-%M-%S}")
    assert inspect_folder(s3, full) is not None, "a full backup folder, restorable as it is"
