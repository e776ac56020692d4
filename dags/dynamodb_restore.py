"""Restore a DynamoDB backup into a table, on demand, then verify it by counting.

    choose ─┬─> inspect ─> validate (mapped) ─> validate_changes ─> ensure_table
            │       ─> load (mapped) ─> apply_changes ─> verify
            └─> restore_items

inspect finds the folder (or the newest complete backup of a table), tells its
format (ours, AWS Data Pipeline with or without a manifest, native DynamoDB
export) and checks the target's key schema without changing anything; validate
reads every file (checksums, every line, the keys) before anything is written;
ensure_table creates the target if asked (or replaces it: deletes it and
creates it again like itself, so no item deleted since survives); load writes each share of files at
ratio x the target's write capacity, skipping files a failed attempt finished;
verify counts the target with a parallel scan and compares it with the backup.

Restore to a moment: set as_of (and source = latest, source_table, backup_bucket/prefix).
inspect then finds the newest full backup at or before it and the incremental links after
it (refusing a chain with a gap, naming the missing interval); validate_changes reads every
link before anything is written; apply_changes applies them in order after the load; verify
compares the target with the state the chain describes. Without as_of both do nothing.

A few items: set keys (one key per line, DynamoDB JSON) or partition_key; choose then
skips the whole-table path, and restore_items writes only those items (from the folder, or
from the as_of chain) into the existing target, logging what it wrote and what was missing.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from airflow.sdk import DAG, Param

from dynamodb_backup.backup.plan import MAX_RATIO, MIN_RATIO
from dynamodb_backup.config import load_backups
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.operators.params import BUCKET_PATTERN, PREFIX_PATTERN, TABLE_PATTERN
from dynamodb_backup.operators.restore import restore_tasks
from dynamodb_backup.operators.restore_changes import ChooseRestoreOperator, RestoreItemsOperator

BACKUPS_FILE = Path(
    os.environ.get("DYNAMODB_BACKUPS_FILE", Path(__file__).resolve().parent.parent / "include" / "backups.yaml")
)


def configured_location() -> tuple[str | None, str]:
    """Where the backup DAGs write (the backups file's first entry), for 'latest'; no bucket is guessed."""
    try:
        backups = load_backups(BACKUPS_FILE)
    except ParameterError:
        backups = []
    if backups:
        return backups[0].bucket, backups[0].prefix
    return os.environ.get("DYNAMODB_BACKUP_BUCKET") or None, os.environ.get("DYNAMODB_BACKUP_PREFIX", "backups")


def configured_datapipeline_outputs() -> dict[str, list[str]]:
    """Each table's Data Pipeline output folders, from the backups file (none when it cannot be read)."""
    try:
        backups = load_backups(BACKUPS_FILE)
    except ParameterError:
        return {}
    return {b.table: [o.uri for o in b.backups.datapipeline] for b in backups if b.backups.datapipeline}


BUCKET, PREFIX = configured_location()
SOURCE_PATTERN = r"^(latest|s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/[^\s]*)?)$"
OPTIONAL_TABLE = r"^([A-Za-z0-9_.-]{3,255})?$"
AS_OF_PATTERN = r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?)?$"

PARAMS = {
    "source": Param(
        type="string", pattern=SOURCE_PATTERN, title="Backup to restore",
        description="An S3 folder such as s3://bucket/backups/Users/2024-03-05-04-10-22 (one of ours, an AWS Data "
                    "Pipeline backup, or a native export's AWSDynamoDB/<id> folder), or the word latest: the newest "
                    "complete backup of 'Source table' under the bucket and prefix below."),
    "source_table": Param(None, type=["null", "string"], pattern=OPTIONAL_TABLE, title="Source table (for latest)",
                          description="With source = latest: the table whose newest complete backup to restore."),
    "backup_bucket": Param(BUCKET, type=["null", "string"], pattern=BUCKET_PATTERN, title="Backup bucket (for latest)",
                           description="Where the backup DAGs write; only used with source = latest."),
    "backup_prefix": Param(PREFIX, type="string", pattern=PREFIX_PATTERN, title="Backup prefix (for latest)",
                           description="Folder in the bucket holding <table>/<YYYY-MM-DD-HH-MM-SS>/ backups."),
    "target_table": Param(type="string", pattern=TABLE_PATTERN, title="Target table",
                          description="The table to restore into. If it exists its keys must match the backup's; "
                                      "existing items with the same keys are overwritten."),
    "aws_conn_id": Param("aws_default", type="string", minLength=1, title="AWS connection",
                         description="Airflow connection used to read the backup from S3 (and for the target "
                                     "table unless set below)."),
    "target_aws_conn_id": Param(None, type=["null", "string"], title="Target AWS connection",
                                description="Connection for the target table, if it is in another account. "
                                            "Empty: the AWS connection above."),
    "target_region": Param(None, type=["null", "string"], pattern=r"^([a-z]{2}(-[a-z]+)+-\d)?$",
                           title="Target region", description="Region of the target table, e.g. eu-west-1. "
                                                              "Empty: the connection's region."),
    "write_ratio": Param(0.5, type="number", minimum=MIN_RATIO, maximum=MAX_RATIO, title="Write throughput ratio",
                         description=f"Share of the target's write capacity the restore may use ({MIN_RATIO} to "
                                     f"{MAX_RATIO}); verification reads at the same share of its read capacity. "
                                     "On-demand tables count as 10,000 units."),
    "create_table": Param(False, type="boolean", title="Create the table if missing",
                          description="Create it like the backed-up table (keys, indexes, billing, TTL, tags) when "
                                      "the backup has our sidecar, else from the key schema below (on-demand)."),
    "replace_table": Param(False, type="boolean", title="Replace the target table",
                           description="Delete the target and create it again like itself (keys, indexes, "
                                       "billing, TTL, tags) before loading, so it holds exactly the backup: items "
                                       "deleted since are gone too. Happens only after every file has validated. "
                                       "Refused when the table has deletion protection."),
    "key_schema": Param(None, type=["null", "string"], pattern=r"^([^:,\s]+:[SNB](,[^:,\s]+:[SNB])?)?$",
                        title="Key schema (backups without sidecar)",
                        description="For Data Pipeline backups and native exports, which do not record keys: "
                                    "partition[,sort] key with types S, N or B, e.g. pk:S,sk:N. Not needed when "
                                    "the target table exists."),
    "load_capacity": Param(None, type=["null", "string"], pattern=r"^(on-demand|[1-9][0-9]*)?$",
                           title="Load capacity (load fast, then settle)",
                           description="on-demand, or write units: a table the restore creates is created so "
                                       "(write units on the table and each GSI), loaded and verified, then given "
                                       "the backup's capacities. An existing provisioned table is switched to "
                                       "on-demand for the load and back afterwards (AWS allows 4 switches to "
                                       "on-demand a day). Empty: load at the table's own capacities, paced by the "
                                       "slowest index."),
    "verify": Param(True, type="boolean", title="Verify afterwards",
                    description="Count the target with a parallel scan and compare with the backup; when the "
                                "target was empty, compare a digest of every item too."),
    "force": Param(False, type="boolean", title="Restore an incomplete backup",
                   description="Accept a folder without _SUCCESS (native: without a complete manifest). Its data "
                               "may be partial."),
    "workers": Param(4, type="integer", minimum=1, maximum=64, title="Worker tasks",
                     description="How many tasks share the files for validation and loading."),
    "checkpoint_uri": Param(None, type=["null", "string"], pattern=r"^(s3://\S+)?$", title="Checkpoint location",
                            description="Where finished-file markers go, so a retried load skips them. Empty: "
                                        "_restore_checkpoints/ beside the backup folder (set this when the backup "
                                        "bucket is read-only)."),
    "as_of": Param(None, type=["null", "string"], pattern=AS_OF_PATTERN, title="Restore to a moment (as of)",
                   description="e.g. 2026-11-25T06:00:00Z, with source = latest: the table as it was then, from the "
                               "newest full backup at or before it plus the incremental backups after it (the "
                               "newest point of the chain at or before the moment). A chain with a gap is refused, "
                               "naming the missing interval. Empty: restore the folder as it is."),
    "keys": Param(None, type=["null", "string"], format="multiline", title="Only these items (keys)",
                  description='One key per line in DynamoDB JSON, e.g. {"pk": {"S": "a"}, "sk": {"N": "1"}}. Only '
                              "these items are written, into the EXISTING target (deleted ones come back; nothing "
                              "else is touched). Keys the backup does not hold are listed in the log."),
    "partition_key": Param(None, type=["null", "string"], title="Only this partition key",
                           description="Restore only the items with this partition key value into the EXISTING "
                                       "target. Empty: the whole table."),
}

# Every task renders its settings from the run's params (subscripted: ``params.keys`` is the dict's method).
SETTINGS = {name: "{{ params['" + name + "'] }}" for name in PARAMS}
ITEMS = ("keys", "partition_key")
TABLE_SETTINGS: dict[str, object] = {name: value for name, value in SETTINGS.items() if name not in ITEMS}
# latest also looks in a table's Data Pipeline output folders (backups.yaml datapipeline_output).
TABLE_SETTINGS["datapipeline_outputs"] = configured_datapipeline_outputs()

with DAG(
    dag_id="dynamodb_restore",
    description="Restore a DynamoDB backup (ours, Data Pipeline or native export) into a table and verify it",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2024, 1, 1),
    catchup=False,
    params=PARAMS,
    render_template_as_native_obj=True,
    default_args={"retries": 2, "retry_delay": timedelta(seconds=30), "retry_exponential_backoff": True},
    tags=["dynamodb", "restore"],
) as dag:
    choose = ChooseRestoreOperator(task_id="choose", keys=SETTINGS["keys"], partition_key=SETTINGS["partition_key"])
    first, _ = restore_tasks(TABLE_SETTINGS, changes=True)
    choose >> [first, RestoreItemsOperator(task_id="restore_items", **SETTINGS)]
