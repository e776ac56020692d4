"""Example: a DAG scheduled on fresh backups. It only logs each backup event it was triggered by.

Every seal of a ``dynamodb_backup_<table>`` DAG emits an Asset event for ``s3://<bucket>/<prefix>/<table>``
whose extra holds the folder, items, bytes, files, logical date, snapshot start/end and mode. This DAG
runs when any table configured in ``include/backups.yaml`` has a new backup; replace the task with a
load into an analytics store, a copy to another account, a restore drill, ...
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from airflow.sdk import AssetAny, dag, task

from dynamodb_backup.config import load_backups
from dynamodb_backup.operators.backup import backup_asset

BACKUPS_FILE = Path(
    os.environ.get("DYNAMODB_BACKUPS_FILE", Path(__file__).resolve().parent.parent / "include" / "backups.yaml")
)
ASSETS = [backup_asset(b.bucket, b.prefix, b.table) for b in load_backups(BACKUPS_FILE)]

log = logging.getLogger(__name__)


@dag(dag_id="example_on_backup", schedule=AssetAny(*ASSETS), start_date=datetime(2024, 1, 1), catchup=False,
     tags=["dynamodb", "example"], doc_md=__doc__)
def example_on_backup() -> None:
    @task
    def log_backup_events(triggering_asset_events: Any = None) -> int:
        count = 0
        for asset, events in (triggering_asset_events or {}).items():
            for event in events:
                extra = event.extra or {}
                log.info("new backup of %s: %s (%s items, %s bytes, mode %s, logical date %s, read %s..%s), "
                         "from %s / %s", getattr(asset, "uri", asset), extra.get("folder"), extra.get("items"),
                         extra.get("bytes"), extra.get("mode"), extra.get("logical_date"),
                         extra.get("snapshot_start"), extra.get("snapshot_end"), event.source_dag_id,
                         event.source_run_id)
                count += 1
        return count

    log_backup_events()


if ASSETS:
    example_on_backup()
