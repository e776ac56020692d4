"""A restore bound by a small GSI: it says so before loading, shows progress, and can load on demand and settle.

Against the session's servers (DynamoDB Local or dynalite behind the PITR stand-in, which enforces AWS's limit on
switching a table to on-demand). No timed assertions: lines and calls are counted.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from backup_folders import restore, scan_all
from capacity_backups import DATE, INDEX_WCU, SPEC, TABLE_RCU, TABLE_WCU, gsi_bound_backup, items
from demo_data import create_table, put_items
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.cli import main
from dynamodb_backup.commands import client_factory
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location, backup_folder


def wait_settled(ddb: Any, table: str) -> dict[str, Any]:
    for _ in range(400):
        described: dict[str, Any] = ddb.describe_table(TableName=table)["Table"]
        if described["TableStatus"] == "ACTIVE" and all(
                i.get("IndexStatus") == "ACTIVE" for i in described.get("GlobalSecondaryIndexes") or []):
            return described
        time.sleep(0.05)
    raise AssertionError(f"{table} did not settle")


def messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_a_restore_bound_by_a_small_gsi_says_so_before_loading_and_shows_progress(local_aws, s3_bucket, table_name,
                                                                                caplog):
    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 100)
    caplog.set_level(logging.INFO)
    # One worker at ratio 1.5: the GSI allows 15 items/s, so the 100 items take several seconds, paced.
    outcome = restore(folder, table_name + "-copy", create_table=True, workers=1, write_ratio=1.5,
                      progress_seconds=0.2)
    assert outcome.verify is not None and outcome.verify.match
    said = messages(caplog)
    pace = [i for i, m in enumerate(said) if m.startswith("pace: ")]
    loading = [i for i, m in enumerate(said) if m.startswith("loading 100 items")]
    assert len(pace) == 1 and len(loading) == 1 and pace[0] < loading[0]
    line = said[pace[0]]
    assert line.startswith("pace: GSI 'byStatus' limits this load: GSI 'byStatus' (10 WCU x write ratio 1.5")
    assert "15.0 items/s" in line and "about 7 s to load" in line
    assert "table " + table_name + "-copy (with its 1 local index) (200 WCU" in line
    assert any(m.startswith("to load faster: load_capacity on-demand") for m in said[pace[0]:loading[0]])
    progress = [m for m in said if m.startswith(f"restore {table_name}-copy: ")]
    assert progress[-1].startswith(f"restore {table_name}-copy: 100 of 100 items") and progress[-1].endswith(
        "(finished)")
    if local_aws.is_ddblocal:
        # Lines while loading (every 0.2 s of a load the GSI paces), then the last. The pacing needs the
        # per-index ConsumedCapacity that AWS and DynamoDB Local report; dynalite reports the table's only,
        # so there the GSI's share is never charged and 100 items go in one burst (the pace line, computed
        # from DescribeTable, is asserted above on both).
        assert len(progress) >= 2, progress
    assert outcome.pace is not None and outcome.pace.bound.name == "GSI 'byStatus'"


def test_load_on_demand_then_settle_to_the_sidecar_capacities(local_aws, s3_bucket, table_name, caplog):
    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 60)
    target = table_name + "-fast"
    caplog.set_level(logging.INFO)
    outcome = restore(folder, target, create_table=True, load_capacity="on-demand")
    assert outcome.verify is not None and outcome.verify.match and outcome.settle_failure is None
    # Loaded on demand: the table, not the GSI, set the pace (at the assumed on-demand capacity).
    assert outcome.pace is not None and outcome.pace.bound.assumed and outcome.pace.bound.name.startswith("table")
    assert outcome.target["settle"]["BillingMode"] == "PROVISIONED" and "settle" in outcome.seconds
    described = local_aws.dynamodb_client().describe_table(TableName=target)["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert described["TableStatus"] == "ACTIVE"
    assert {k: described["ProvisionedThroughput"][k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")} == {
        "ReadCapacityUnits": TABLE_RCU, "WriteCapacityUnits": TABLE_WCU}
    [gsi] = described["GlobalSecondaryIndexes"]
    assert gsi["IndexStatus"] == "ACTIVE"
    assert (gsi["ProvisionedThroughput"]["ReadCapacityUnits"], gsi["ProvisionedThroughput"]["WriteCapacityUnits"]) \
        == (3, INDEX_WCU)
    assert len(scan_all(local_aws.dynamodb_client(), target)) == 60
    said = messages(caplog)
    assert any(m.startswith(f"load capacity: creating {target} on demand for the load") for m in said)
    assert any(m.startswith(f"settled {target}: provisioned {TABLE_RCU} RCU / {TABLE_WCU} WCU") for m in said)


def test_load_at_given_write_units_then_settle(local_aws, s3_bucket, table_name):
    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 30)
    target = table_name + "-wcu"
    outcome = restore(folder, target, create_table=True, load_capacity="400")
    assert outcome.verify is not None and outcome.verify.match and outcome.settle_failure is None
    assert outcome.pace is not None and {limit.capacity for limit in outcome.pace.limits} == {400}
    described = local_aws.dynamodb_client().describe_table(TableName=target)["Table"]
    assert described["ProvisionedThroughput"]["WriteCapacityUnits"] == TABLE_WCU
    assert described["GlobalSecondaryIndexes"][0]["ProvisionedThroughput"]["WriteCapacityUnits"] == INDEX_WCU


def provisioned_table(ddb: Any, name: str) -> None:
    ddb.create_table(TableName=name, KeySchema=SPEC["KeySchema"][:2],
                     AttributeDefinitions=SPEC["AttributeDefinitions"][:2], BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 4, "WriteCapacityUnits": 6})
    wait_settled(ddb, name)


def switch_round_trip(ddb: Any, name: str) -> None:
    ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")
    wait_settled(ddb, name)
    ddb.update_table(TableName=name, BillingMode="PROVISIONED",
                     ProvisionedThroughput={"ReadCapacityUnits": 4, "WriteCapacityUnits": 6})
    wait_settled(ddb, name)


def test_the_standin_refuses_a_fifth_switch_to_on_demand_and_the_restore_refuses_before_writing(
        local_aws, s3_bucket, table_name):
    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 20)
    ddb = local_aws.dynamodb_client()
    target = table_name + "-busy"
    provisioned_table(ddb, target)
    switched = 0
    for _ in range(4):
        switch_round_trip(ddb, target)
        switched += 1
    with pytest.raises(ClientError) as refused:
        ddb.update_table(TableName=target, BillingMode="PAY_PER_REQUEST")
    assert switched == 4
    assert refused.value.response["Error"]["Code"] == "LimitExceededException"
    assert "Update to PayPerRequest mode are limited to 4 times in 1 day(s)" in refused.value.response["Error"][
        "Message"]
    # The restore asks for the same switch and is refused before it writes anything.
    with pytest.raises(ParameterError, match=r"AWS refused to switch .* to on-demand .*LimitExceededException.*"
                                             r"Nothing was written"):
        restore(folder, target, load_capacity="on-demand")
    assert scan_all(ddb, target) == []
    assert ddb.describe_table(TableName=target)["Table"]["BillingModeSummary"]["BillingMode"] == "PROVISIONED"


def test_an_existing_provisioned_table_is_switched_for_the_load_and_back(local_aws, s3_bucket, table_name):
    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 25)
    ddb = local_aws.dynamodb_client()
    target = table_name + "-existing"
    provisioned_table(ddb, target)
    outcome = restore(folder, target, load_capacity="on-demand")
    assert outcome.verify is not None and outcome.verify.match and outcome.settle_failure is None
    assert outcome.pace is not None and outcome.pace.bound.assumed  # loaded while on demand
    described = ddb.describe_table(TableName=target)["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert "LastUpdateToPayPerRequestDateTime" in described["BillingModeSummary"]  # it really was switched
    assert (described["ProvisionedThroughput"]["ReadCapacityUnits"],
            described["ProvisionedThroughput"]["WriteCapacityUnits"]) == (4, 6)
    with pytest.raises(ParameterError, match="applies to a table the restore creates"):
        restore(folder, target, load_capacity="300")


def test_a_settle_that_fails_leaves_the_data_loaded_and_says_how_to_finish(local_aws, s3_bucket, table_name,
                                                                          capsys, monkeypatch):
    """An on-demand source loaded at 50 WCU settles by switching to on-demand; that switch is used up
    (four switches by someone else while the load ran), so AWS refuses it and the CLI says one line."""
    ddb = local_aws.dynamodb_client()
    spec = {k: v for k, v in SPEC.items() if k not in ("ProvisionedThroughput", "GlobalSecondaryIndexes")}
    spec["AttributeDefinitions"] = [a for a in SPEC["AttributeDefinitions"] if a["AttributeName"] != "status"]
    create_table(ddb, table_name, {**spec, "BillingMode": "PAY_PER_REQUEST"})
    put_items(ddb, table_name, items(20))
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "backups"), logical_date=DATE,
                            read_ratio=1.0, segments=1, max_workers=1)
    run_backup(client_factory(), request)
    folder = backup_folder(request.destination, table_name, DATE)
    target = table_name + "-settle"

    import dynamodb_backup.restore.loadcapacity as loadcapacity
    real_apply, used_up = loadcapacity.apply_settings, []

    def someone_else_switches_first(dynamodb: Any, settle: dict[str, Any]) -> bool:
        for _ in range(4):  # the table's four switches to on-demand of the day, taken just before the settle
            switch_round_trip(ddb, target)
            used_up.append(1)
        return real_apply(dynamodb, settle)

    monkeypatch.setattr(loadcapacity, "apply_settings", someone_else_switches_first)
    code = main(["restore", f"{folder.uri}/", "--table", target, "--create-table", "--load-capacity", "50",
                 "--workers", "1"])
    err = capsys.readouterr().err
    assert len(used_up) == 4 and code == 1
    [line] = [line for line in err.splitlines() if line.startswith("the data is loaded")]
    assert "LimitExceededException" in line
    assert line.endswith(f"Finish with: aws dynamodb update-table --table-name {target} --billing-mode "
                         "PAY_PER_REQUEST")
    assert len(scan_all(ddb, target)) == 20  # nothing lost
    assert ddb.describe_table(TableName=target)["Table"]["BillingModeSummary"]["BillingMode"] == "PROVISIONED"


def test_a_retried_run_settles_a_table_its_first_attempt_made_at_the_load_capacity(local_aws, s3_bucket, table_name):
    from dynamodb_backup.restore.job import RestoreRequest, ensure_restore_target, prepare_restore

    folder = gsi_bound_backup(local_aws, s3_bucket, table_name, 20)
    target = table_name + "-retried"
    request = RestoreRequest(folder=folder, table=target, create_table=True, load_capacity="on-demand", workers=1,
                             write_ratio=1.0)
    # The first attempt makes the table on demand, then dies before loading.
    made = ensure_restore_target(client_factory(), request, prepare_restore(client_factory(), request))
    ddb = local_aws.dynamodb_client()
    assert made["created"] and ddb.describe_table(TableName=target)["Table"]["BillingModeSummary"][
        "BillingMode"] == "PAY_PER_REQUEST"
    outcome = restore(folder, target, create_table=True, load_capacity="on-demand", workers=1,
                      run_id=request.run_id)
    assert not outcome.target["created"] and outcome.settle_failure is None
    assert outcome.verify is not None and outcome.verify.match
    described = ddb.describe_table(TableName=target)["Table"]
    assert described["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert described["ProvisionedThroughput"]["WriteCapacityUnits"] == TABLE_WCU
