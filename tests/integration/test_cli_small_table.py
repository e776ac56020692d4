"""50 items on an on-demand table once made 21 files (25 segments from the 10,000 assumed read units): a table
whose size DynamoDB reports gets no more than one segment per 64 MiB, so a small table is one file."""

from __future__ import annotations

import orjson
import pytest

from demo_data import put_items
from dynamodb_backup.cli import main
from dynamodb_backup.formats.layout import SIDECAR


def test_fifty_items_on_an_on_demand_table_make_one_file(local_aws, s3_bucket, table_name, capsys):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)  # on-demand
    put_items(ddb, table_name, [{"pk": {"S": f"k{i}"}, "v": {"S": "x" * 100}} for i in range(50)])
    table = ddb.describe_table(TableName=table_name)["Table"]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    if not table.get("TableSizeBytes"):
        # AWS refreshes TableSizeBytes about every six hours, so a freshly loaded table may report 0 there too;
        # DynamoDB Local reports it at once, dynalite does not. Without a size the on-demand rule applies.
        pytest.skip("this server reports no TableSizeBytes for a freshly loaded table (as AWS may, for hours)")

    assert main(["export", "--table", table_name, "--to", f"s3://{s3_bucket}/b", "--workers", "2",
                 "--date", "2024-03-05T04:10:22Z"]) == 0

    assert "50 items in 1 files" in capsys.readouterr().out
    sidecar = orjson.loads(s3.get_object(Bucket=s3_bucket,
                                         Key=f"b/{table_name}/2024-03-05-04-10-22/{SIDECAR}")["Body"].read())
    assert sidecar["total_segments"] == 1 and len(sidecar["files"]) == 1
