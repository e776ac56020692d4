"""`ls` and `--latest` over complete, partial, foreign and pitr folders."""

from __future__ import annotations

import gzip
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from demo_data import put_items
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.cli import main
from dynamodb_backup.commands import client_factory
from dynamodb_backup.errors import BackupFolderError
from dynamodb_backup.formats.catalog import latest_complete
from dynamodb_backup.formats.layout import SUCCESS, S3Location
from dynamodb_backup.pitr.job import run_pitr_backup

OLD = datetime(2024, 5, 1, tzinfo=UTC)
NEW = datetime(2024, 5, 2, tzinfo=UTC)


def items(n: int) -> list[dict]:
    return [{"pk": {"S": f"k{i}"}, "v": {"N": str(i)}} for i in range(n)]


def backup(table: str, bucket: str, when: datetime) -> None:
    request = BackupRequest(table=table, destination=S3Location(bucket, "b"), logical_date=when, read_ratio=1.0,
                            settings=ExportSettings(file_max_items=4))
    assert run_backup(client_factory(), request) is not None


def test_ls_shows_mode_and_partial_and_latest_skips_a_newer_partial(local_aws, s3_bucket, table_name, capsys):
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    local_aws.create_table(table_name)
    put_items(ddb, table_name, items(10))
    backup(table_name, s3_bucket, OLD)
    backup(table_name, s3_bucket, NEW)
    newer = S3Location(s3_bucket, f"b/{table_name}/2024-05-02-00-00-00")
    s3.delete_object(Bucket=s3_bucket, Key=newer.key(SUCCESS))  # as if its seal never ran
    # A folder another tool wrote: data and _SUCCESS, no sidecar.
    foreign = f"b/{table_name}/2024-04-30-00-00-00/"
    s3.put_object(Bucket=s3_bucket, Key=foreign + "part-0", Body=gzip.compress(b'{"pk":{"s":"x"}}\n'))
    s3.put_object(Bucket=s3_bucket, Key=foreign + SUCCESS, Body=b"")
    # A pitr backup of the same table, at a moment after the items were written.
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    put_items(ddb, table_name, items(12))
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.05)
    assert run_pitr_backup(client_factory(), BackupRequest(table=table_name, destination=S3Location(s3_bucket, "p"),
                                                           logical_date=moment), poll_seconds=0.3) is not None

    assert latest_complete(s3, S3Location(s3_bucket, "b"), table_name) == S3Location(
        s3_bucket, f"b/{table_name}/2024-05-01-00-00-00"), "--latest must skip the newer folder without _SUCCESS"
    capsys.readouterr()
    assert main(["ls", f"s3://{s3_bucket}/b/{table_name}"]) == 0
    rows = {line.split()[-1].rstrip("/").rsplit("/", 1)[-1]: line.split()[:3]
            for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["2024-05-01-00-00-00"] == ["complete", "scan", "10"]
    assert rows["2024-05-02-00-00-00"] == ["PARTIAL", "scan", "10"]
    assert rows["2024-04-30-00-00-00"] == ["complete", "?", "?"]
    assert main(["ls", f"s3://{s3_bucket}/p"]) == 0
    (pitr_row,) = capsys.readouterr().out.splitlines()[1:]
    assert re.match(r"complete +pitr +12 ", pitr_row), pitr_row


def test_latest_with_no_complete_folder_names_the_table(local_aws, s3_bucket, table_name):
    s3 = local_aws.s3_client()
    s3.put_object(Bucket=s3_bucket, Key=f"b/{table_name}/2024-05-02-00-00-00/x.gz", Body=b"")
    with pytest.raises(BackupFolderError, match=rf"no complete backup \(a folder with _SUCCESS\) of '{table_name}'"):
        latest_complete(s3, S3Location(s3_bucket, "b"), table_name)
