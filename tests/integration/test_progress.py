"""Export and restore from the command line say where they are, one report over every worker process."""

from __future__ import annotations

import logging

from backup_folders import simple_items
from demo_data import put_items
from dynamodb_backup import progress
from dynamodb_backup.cli import main


def test_cli_export_and_restore_report_progress_over_their_worker_processes(local_aws, s3_bucket, table_name,
                                                                           caplog, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_SECONDS", 0.01)  # a line every 10 ms, so a short job says several
    local_aws.create_table(table_name)
    put_items(local_aws.dynamodb_client(), table_name, simple_items(500))
    caplog.set_level(logging.INFO)
    assert main(["export", "--table", table_name, "--to", f"s3://{s3_bucket}/backups", "--segments", "4",
                 "--workers", "2", "--date", "2024-03-05T04:10:22+00:00"]) == 0
    exported = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"export {table_name}: ")]
    # The parent says the lines (the workers hand their counts over): the last one has every item.
    assert exported[-1].startswith(f"export {table_name}: 500") and exported[-1].endswith("(finished)")
    assert len(exported) >= 2 and all(r.processName == "MainProcess" for r in caplog.records
                                      if r.getMessage().startswith(f"export {table_name}: "))
    assert not any(r.getMessage().startswith("worker ") and "items/s" in r.getMessage() for r in caplog.records)
    caplog.clear()
    folder = f"s3://{s3_bucket}/backups/{table_name}/2024-03-05-04-10-22/"
    assert main(["restore", folder, "--table", table_name + "-copy", "--create-table", "--workers", "2"]) == 0
    said = [r.getMessage() for r in caplog.records]
    restored = [m for m in said if m.startswith(f"restore {table_name}-copy: ")]
    assert restored[-1].startswith(f"restore {table_name}-copy: 500 of 500 items") and "(finished)" in restored[-1]
    assert len(restored) >= 2
    [pace] = [m for m in said if m.startswith("pace: ")]
    assert pace.startswith(f"pace: table {table_name}-copy limits this load") and "to load" in pace
