"""The trigger form: every backup setting as a validated, documented param."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from dynamodb_backup.backup.plan import MAX_RATIO, MIN_RATIO
from dynamodb_backup.config import TableBackup
from dynamodb_backup.pitr import MODES, OUTPUT_FORMATS

BUCKET_PATTERN = r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$"
PREFIX_PATTERN = r"^(?!/)(?!.*(^|/)\.{1,2}(/|$))[A-Za-z0-9!_.*'()/=+,@-]{0,512}$"
TABLE_PATTERN = r"^[A-Za-z0-9_.-]{3,255}$"


def backup_params(backup: TableBackup) -> dict[str, Param]:
    """Params of one table's backup DAG, defaulting to its entry in the backups file."""
    return {
        "table": Param(backup.table, type="string", pattern=TABLE_PATTERN, title="Table",
                       description="The DynamoDB table to back up."),
        "bucket": Param(backup.bucket, type="string", pattern=BUCKET_PATTERN, title="S3 bucket",
                        description="Bucket that receives the backup."),
        "prefix": Param(backup.prefix, type="string", pattern=PREFIX_PATTERN, title="S3 prefix",
                        description="Folder inside the bucket. The backup goes to "
                                    "<prefix>/<table>/<YYYY-MM-DD-HH-MM-SS>/ (the run's date, UTC)."),
        "read_ratio": Param(backup.read_ratio, type="number", minimum=MIN_RATIO, maximum=MAX_RATIO,
                            title="Read throughput ratio",
                            description="Share of the table's read capacity the backup may use, "
                                        f"from {MIN_RATIO} to {MAX_RATIO}. 0.25 leaves 75% for the live service."),
        "segments": Param(backup.segments, type=["null", "integer"], minimum=1, maximum=1_000_000,
                          title="Scan segments",
                          description="Parallel scan segments. Leave empty to choose from the "
                                      "table's size and capacity (one per GiB and per 100 read units)."),
        "max_workers": Param(backup.max_workers, type="integer", minimum=1, maximum=64,
                             title="Worker tasks",
                             description="How many Airflow tasks share the segments."),
        "compression": Param(backup.compression, type="string", enum=["gzip", "none", "zstd"],
                             title="Compression",
                             description="gzip and none can be read by AWS Data Pipeline; zstd only by this tool."),
        "consistent_read": Param(backup.consistent_read, type="boolean", title="Strongly consistent reads",
                                 description="Scan with ConsistentRead: every write acknowledged before a page "
                                             "is read is in it, at twice the read units (the ratio still "
                                             "holds). Off: eventually consistent reads, the cheaper default."),
        "mode": Param(backup.mode, type="string", enum=list(MODES), title="Backup mode",
                      description="scan reads the table now, within the read ratio. pitr exports the table as "
                                  "it was at the run's date from point-in-time recovery: no read capacity, "
                                  "billed per GB by AWS, and PITR must be on."),
        "format": Param(backup.format, type="string", enum=list(OUTPUT_FORMATS), title="Folder format",
                        description="datapipeline: Data Pipeline's layout (restorable by Data Pipeline and this "
                                    "tool). native (pitr only): DynamoDB's export as it is, for Athena and Glue."),
        "keep_native": Param(backup.keep_native, type="boolean", title="Keep the native export",
                             description="pitr: keep DynamoDB's own export files in _native/ after converting."),
        "pitr_fallback": Param(backup.pitr_fallback, type=["null", "string"], enum=[None, "scan"],
                               title="If PITR is off",
                               description="Empty: the run fails. scan: it backs up by scanning instead, and "
                                           "the log and the sidecar say so."),
        "overwrite": Param(False, type="boolean", title="Overwrite a complete backup",
                           description="Redo the folder even if it already holds a complete backup."),
        "aws_conn_id": Param(backup.aws_conn_id, type="string", minLength=1, title="AWS connection",
                             description="Airflow connection used for DynamoDB and S3."),
    }


def rendered(value: Any) -> Any:
    """Params rendered as text by a template ("None", "0.5") back to Python values."""
    if isinstance(value, str) and value in ("None", ""):
        return None
    return value
