"""``export --mode pitr --overwrite`` run twice for one table and moment: each run is a fresh export.

AWS keeps an ExportTableToPointInTime ClientToken for 8 hours and answers a replay with the
same export; the first run's seal deleted that export's staging files, so the overwrite must
not replay it (it failed with "manifest-files.json lists None items").
"""

from __future__ import annotations

from dataclasses import replace

from test_pitr_backup import FAST, enable_pitr, factory, items_named, next_second, request

from demo_data import put_items
from dynamodb_backup.formats.catalog import read_sidecar
from dynamodb_backup.formats.layout import SUCCESS, S3Location
from dynamodb_backup.pitr.job import run_pitr_backup
from dynamodb_backup.pitr.native import STAGING
from dynamodb_backup.pitr.steps import begin_export


def table_exports(ddb, table: str) -> list[str]:
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    return [e["ExportArn"] for e in ddb.list_exports(TableArn=arn).get("ExportSummaries", [])]


def test_overwrite_twice_makes_a_new_export_each_time(local_aws, s3_bucket, table_name):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, items_named(20, "x"))
    at = next_second()
    folder = S3Location(s3_bucket, f"pitr/{table_name}/{at:%Y-%m-%d-%H-%M-%S}")
    overwrite = replace(request(table_name, s3_bucket, at), overwrite=True)

    arns = []
    for _ in range(2):
        sidecar = run_pitr_backup(factory(), overwrite, run_key="cli", **FAST)
        assert sidecar is not None and sidecar.item_count == 20
        keys = {o["Key"] for o in s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder.key(""))["Contents"]}
        assert folder.key(SUCCESS) in keys
        assert not any(k.startswith(folder.key(STAGING)) for k in keys), "staging copy left behind"
        arns.append(read_sidecar(s3, folder).source["export_arn"])

    assert arns[0] != arns[1], "the overwrite replayed the first run's export instead of making a new one"
    assert sorted(table_exports(ddb, table_name)) == sorted(arns), "one native export per run, no more"

    # A retried start of a third overwrite (the DAG's task retry) replays its own export, not a fourth.
    again = [begin_export(ddb, table_name, at, folder, "datapipeline", "cli", s3=s3) for _ in range(2)]
    assert again[0] == again[1] and again[0] not in arns
    assert len(table_exports(ddb, table_name)) == 3
