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

from dynamodb_backup.aws.s3writer import COMPRESSIONS
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, check_ratio
from dynamodb_backup.drill.settings import DrillSettings
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import check_bucket, check_prefix, check_table_name
from dynamodb_backup.incremental.schedule import check_incremental_schedule
from dynamodb_backup.pitr import INCREMENTAL, MODES, NATIVE, OUTPUT_FORMATS, SCAN
from dynamodb_backup.retention.plan import RetentionPolicy

_QUEUE_RE = re.compile(r"[A-Za-z0-9_.-]{1,200}")
_ENV_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


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

    @property
    def retention_policy(self) -> RetentionPolicy | None:
        return RetentionPolicy.parse(self.retention)

    @property
    def drill_settings(self) -> DrillSettings | None:
        return DrillSettings.parse(self.drill)

    @property
    def dag_id(self) -> str:
        return f"dynamodb_backup_{self.table}"

    def check(self) -> None:
        check_table_name(self.table)
        check_bucket(self.bucket)
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
        RetentionPolicy.parse(self.retention)
        DrillSettings.parse(self.drill)


def _substitute(value: Any, environ: dict[str, str]) -> Any:
    if isinstance(value, str):
        return _ENV_RE.sub(lambda m: environ.get(m.group(1), m.group(2) or ""), value)
    return value


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
        try:
            backup = TableBackup(**{k: _substitute(v, environ) for k, v in merged.items()})
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
