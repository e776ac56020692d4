"""The backups file (``include/backups.yaml``): one entry per table to back up.

Every entry inherits ``defaults`` and may override any of them. Errors name the
file and the entry.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, check_ratio
from dynamodb_backup.drill.settings import DrillSettings
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.compression import COMPRESSIONS
from dynamodb_backup.formats.layout import S3Location, check_bucket, check_prefix, check_table_name
from dynamodb_backup.formats.tablebackups import TableBackups, parse_datapipeline_outputs, table_backups
from dynamodb_backup.incremental.schedule import check_incremental_schedule
from dynamodb_backup.pitr import INCREMENTAL, MODES, NATIVE, OUTPUT_FORMATS, SCAN
from dynamodb_backup.replica.settings import ReplicaSettings
from dynamodb_backup.retention.plan import RetentionPolicy

_QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
# arn:<partition>:sns:<region>:<12-digit account>:<topic> (a FIFO topic's name ends in .fifo).
_SNS_ARN_RE = re.compile(r"arn:aws[a-z-]*:sns:[a-z]{2}(-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")
#: Settings that may be left out; an empty value (``${VAR:-}`` with VAR unset) means "not set" for them.
_OPTIONAL_TEXT = ("failure_sns_topic_arn", "failure_http_conn_id", "sse_kms_key_id", "expected_bucket_owner",
                  "restore_to_table", "restore_aws_conn_id", "pool", "queue", "pitr_fallback")


@dataclass(frozen=True)
class TableBackup:
    table: str
    bucket: str
    prefix: str = "dynamodb-backups"
    schedule: str | None = "@daily"
    read_ratio: float = 0.25
    segments: int | None = None
    max_workers: int = 4
    compression: str = "gzip"
    #: Strongly consistent scan pages: twice the read units, and no read missing a write acknowledged just before.
    consistent_read: bool = False
    #: scan: read the table (read capacity); pitr: DynamoDB's export of the table at the run's moment (none).
    mode: str = "scan"
    #: datapipeline: Data Pipeline's layout (pitr converts the export); native: keep DynamoDB's export as it is.
    format: str = "datapipeline"
    #: pitr: keep the export's own files (``_native/``) beside the converted ones.
    keep_native: bool = False
    #: pitr: what to do when PITR is off; None fails the run, "scan" backs up by scanning (and says so).
    pitr_fallback: str | None = None
    #: pitr: seconds between checks of the recovery window and of the export's status (in the triggerer).
    pitr_poll_seconds: float = 30.0
    #: incremental: days between full exports (also made on the first run and after a gap).
    full_every: float = 7
    aws_conn_id: str = "aws_default"
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY
    file_max_items: int = 100_000
    #: Airflow pool for the export workers (caps exporters across all tables); None: the default pool.
    pool: str | None = None
    #: Celery queue for all of this table's tasks (workers started with ``-q`` naming it); None: the default queue.
    queue: str | None = None
    #: Optional nightly restore of each finished backup into another table.
    restore_to_table: str | None = None
    restore_write_ratio: float = 0.5
    #: Delete and recreate that table before each load, so it holds exactly the night's backup.
    restore_replace: bool = False
    restore_aws_conn_id: str | None = None
    #: Where failure notices go: an SNS topic ARN (optional).
    failure_sns_topic_arn: str | None = None
    #: ...and/or a webhook: an Airflow HTTP connection that receives a JSON POST.
    failure_http_conn_id: str | None = None
    sse_kms_key_id: str | None = None
    expected_bucket_owner: str | None = None
    #: ``{keep_days, keep_min}``: after each seal, delete backups past retention (null: keep everything).
    retention: Any = None
    #: ``{schedule, write_ratio, scratch_suffix}``: a restore drill DAG for the table (null: none).
    drill: Any = None
    #: AWS Data Pipeline output folder(s) (s3:// URI or a list) whose dated folders (``<output>/<date>/``, no table
    #: level) are also this table's backups: ls, ``restore --latest``, retention, drills and the console see them.
    datapipeline_output: Any = None
    #: Tail the table's DynamoDB stream into S3 segments (a ``dynamodb_stream_<table>`` DAG, ``@continuous``).
    stream: bool = False
    #: Seconds each stream run tails before it ends (the next run resumes from S3).
    stream_run_seconds: float = 900.0
    #: A live replica fed by the stream backup: a table name, or ``{table, region, aws_conn_id, write_ratio}``
    #: (``replica.settings``); the stream DAG runs it beside the tail.
    replicate_to: Any = None

    @property
    def retention_policy(self) -> RetentionPolicy | None:
        return RetentionPolicy.parse(self.retention)

    @property
    def drill_settings(self) -> DrillSettings | None:
        return DrillSettings.parse(self.drill)

    @property
    def backups(self) -> TableBackups:
        """Every place this table's backups live (ours and Data Pipeline's)."""
        return table_backups(self.table, S3Location(self.bucket, self.prefix),
                             parse_datapipeline_outputs(self.datapipeline_output))

    @property
    def dag_id(self) -> str:
        return f"dynamodb_backup_{self.table}"

    @property
    def notices_on(self) -> bool:
        """Whether a failed run tells anyone: an SNS topic or a webhook connection is configured."""
        return bool(self.failure_sns_topic_arn or self.failure_http_conn_id)

    def check(self) -> None:
        check_table_name(self.table)
        if not self.bucket:
            raise ParameterError("bucket is empty: name the S3 bucket that receives the backups "
                                 "(bucket: in defaults or in the entry, e.g. ${DYNAMODB_BACKUP_BUCKET})")
        check_bucket(self.bucket)
        check_sns_topic_arn(self.failure_sns_topic_arn)
        check_prefix(self.prefix)
        check_ratio(self.read_ratio)
        if self.segments is not None and not 1 <= self.segments <= 1_000_000:
            raise ParameterError(f"segments must be between 1 and 1000000, got {self.segments}")
        if not 1 <= self.max_workers <= 64:
            raise ParameterError(f"max_workers must be between 1 and 64, got {self.max_workers}")
        if self.compression not in COMPRESSIONS:
            raise ParameterError(f"compression must be one of {sorted(COMPRESSIONS)}, got {self.compression!r}")
        if self.mode not in MODES:
            raise ParameterError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.format not in OUTPUT_FORMATS:
            raise ParameterError(f"format must be one of {list(OUTPUT_FORMATS)}, got {self.format!r}")
        if self.format == NATIVE and self.mode == SCAN:
            raise ParameterError("format: native needs mode pitr or incremental (a scan writes Data Pipeline's "
                                 "layout)")
        if self.mode == INCREMENTAL:
            check_incremental_schedule(self.schedule)
            if self.restore_to_table:
                raise ParameterError("restore_to_table: a nightly restore of an incremental link is not built yet "
                                     "(a link holds changes; use `restore --apply` from the command line)")
            if not 0 < self.full_every <= 35:
                raise ParameterError(f"full_every must be more than 0 and at most 35 days (the longest PITR "
                                     f"window), got {self.full_every!r}")
        if self.pitr_fallback not in (None, "scan"):
            raise ParameterError(f"pitr_fallback must be scan or empty, got {self.pitr_fallback!r}")
        if not 1 <= self.pitr_poll_seconds <= 3600:
            raise ParameterError(f"pitr_poll_seconds must be between 1 and 3600, got {self.pitr_poll_seconds!r}")
        if not isinstance(self.keep_native, bool):
            raise ParameterError(f"keep_native must be true or false, got {self.keep_native!r}")
        if not isinstance(self.consistent_read, bool):
            raise ParameterError(f"consistent_read must be true or false, got {self.consistent_read!r}")
        if self.restore_to_table is not None:
            check_table_name(self.restore_to_table, "restore_to_table")
            check_ratio(self.restore_write_ratio, "restore_write_ratio")
        if self.queue is not None and not (isinstance(self.queue, str) and _QUEUE_RE.fullmatch(self.queue)):
            raise ParameterError(f"queue must be a Celery queue name (letters, digits, _ . -), got {self.queue!r}")
        if not isinstance(self.restore_replace, bool):
            raise ParameterError(f"restore_replace must be true or false, got {self.restore_replace!r}")
        if not isinstance(self.stream, bool):
            raise ParameterError(f"stream must be true or false, got {self.stream!r}")
        if not 60 <= self.stream_run_seconds <= 86400:
            raise ParameterError(f"stream_run_seconds must be between 60 and 86400, got {self.stream_run_seconds!r}")
        if ReplicaSettings.parse(self.replicate_to) is not None and not self.stream:
            raise ParameterError("replicate_to needs stream: true (the replica applies the stream backup's segments)")
        RetentionPolicy.parse(self.retention)
        DrillSettings.parse(self.drill)
        parse_datapipeline_outputs(self.datapipeline_output)


#: The tag a DAG carries while its table's failure notices are off (shown on every DAG in Airflow's list).
NOTICES_OFF_TAG = "notices-off"


def notices_doc(backup: TableBackup) -> str:
    """The DAG docs' first lines: where failure notices go, or a warning that they are off."""
    if backup.notices_on:
        where = [f"SNS topic `{backup.failure_sns_topic_arn}`"] if backup.failure_sns_topic_arn else []
        where += [f"webhook connection `{backup.failure_http_conn_id}`"] if backup.failure_http_conn_id else []
        return f"Failure notices go to {' and '.join(where)} once a task's retries are spent.\n"
    return (f"> ⚠ **Failure notices are off** for table `{backup.table}`: a failed run tells no one. Set "
            "`failure_sns_topic_arn` (e.g. `DYNAMODB_BACKUP_FAILURE_TOPIC_ARN`) or `failure_http_conn_id` "
            "in the backups file to turn them on.\n")


def check_sns_topic_arn(arn: str | None, param: str = "failure_sns_topic_arn") -> None:
    """A topic ARN a notice can reach (None: notices by SNS are off)."""
    if arn is not None and not (isinstance(arn, str) and _SNS_ARN_RE.fullmatch(arn)):
        raise ParameterError(f"{param}: {arn!r} is not an SNS topic ARN (arn:aws:sns:<region>:<account>:<topic>); "
                             "leave it empty to turn notices off")


def _substitute(value: Any, environ: dict[str, str], key: str) -> Any:
    """``${VAR}`` (VAR must be set) and ``${VAR:-default}`` in a string value."""
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ and (environ[name] or default is None):
            return environ[name]
        if default is None:
            raise ParameterError(f"{key}: ${{{name}}} is not set (set the environment variable {name}, "
                                 f"or write ${{{name}:-default}})")
        return default

    text = _ENV_RE.sub(one, value)
    return None if text == "" and key in _OPTIONAL_TEXT else text


def load_backups(path: Path, environ: dict[str, str] | None = None) -> list[TableBackup]:
    """Read and check the backups file; ``${VAR:-default}`` in values is taken from the environment."""
    environ = dict(os.environ) if environ is None else environ
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ParameterError(f"{path}: cannot read backups file: {exc}") from None
    if not isinstance(doc, dict):
        raise ParameterError(f"{path}: expected a mapping with 'defaults' and 'backups'")
    known = {f.name for f in fields(TableBackup)}
    defaults = doc.get("defaults") or {}
    entries = doc.get("backups") or []
    if not isinstance(defaults, dict) or not isinstance(entries, list):
        raise ParameterError(f"{path}: 'defaults' must be a mapping and 'backups' a list")
    result: list[TableBackup] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{path}: backups[{i}]"
        if not isinstance(entry, dict):
            raise ParameterError(f"{where}: expected a mapping")
        merged = {**defaults, **entry}
        for nested in ("retention", "drill"):  # an entry's mapping refines the defaults' one (null turns it off)
            if isinstance(defaults.get(nested), dict) and isinstance(entry.get(nested), dict):
                merged[nested] = {**defaults[nested], **entry[nested]}
        unknown = sorted(set(merged) - known)
        if unknown:
            raise ParameterError(f"{where}: unknown settings {unknown}")
        if merged.get("bucket") is None:
            raise ParameterError(f"{where}: bucket is not set: name the S3 bucket that receives the backups "
                                 "(bucket: in defaults or in the entry; there is no default bucket)")
        try:
            backup = TableBackup(**{k: _substitute(v, environ, k) for k, v in merged.items()})
            backup.check()
        except (TypeError, ParameterError) as exc:
            raise ParameterError(f"{where}: {exc}") from None
        if backup.table in seen:
            raise ParameterError(f"{where}: table {backup.table!r} is listed twice")
        seen.add(backup.table)
        result.append(backup)
    check_drill_scratch_names(result, path)
    return result


def check_drill_scratch_names(backups: list[TableBackup], path: Path | str) -> None:
    """A drill deletes its scratch table after every run: its name may be no table the file names.

    Not a backed-up table, not a nightly restore's target, not another drill's scratch table.
    """
    named: dict[str, str] = {}
    for i, backup in enumerate(backups):
        named.setdefault(backup.table, f"backups[{i}] (table {backup.table!r})")
        if backup.restore_to_table:
            named.setdefault(backup.restore_to_table, f"backups[{i}] (restore_to_table of {backup.table!r})")
    for i, backup in enumerate(backups):
        settings = backup.drill_settings
        if settings is None:
            continue
        scratch = settings.scratch_table(backup.table)
        if scratch in named:
            raise ParameterError(
                f"{path}: backups[{i}]: the drill of table {backup.table!r} would use {scratch!r} as its scratch "
                f"table (deleted after every drill), which is {named[scratch]}: choose another drill.scratch_suffix")
        named[scratch] = f"backups[{i}]'s drill scratch table (table {backup.table!r})"
