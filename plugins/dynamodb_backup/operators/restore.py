"""Restore operators: inspect, validate (mapped), ensure_table, load (mapped), verify.

Thin wrappers over ``dynamodb_backup.restore.steps``. A :class:`BackupError` (corrupt
file, wrong keys, bad parameter) fails the task without retries, since a retry
would fail the same way; anything else (a lost worker, a network error) retries,
and a retried load worker skips the files it finished (checkpoints).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from airflow.sdk import DAG, BaseOperator, Context, TaskGroup
from airflow.sdk.exceptions import AirflowFailException

from dynamodb_backup.aws.tableinfo import describe_table, table_identity
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, check_ratio, index_write_scales
from dynamodb_backup.errors import BackupError, ParameterError
from dynamodb_backup.formats.catalog import latest_complete
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.formats.tablebackups import parse_datapipeline_outputs
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.incremental.apply import LinkReport
from dynamodb_backup.incremental.chain import find_chain, parse_moment, refuse_incremental
from dynamodb_backup.loading.checkpoint import Checkpoints, default_checkpoint_base
from dynamodb_backup.operators.mistakes import aws_mistakes
from dynamodb_backup.operators.params import rendered
from dynamodb_backup.progress import ProgressReport
from dynamodb_backup.repository.digest import BucketedDigest
from dynamodb_backup.repository.inspection import BackupSource, SourceFile, inspect_folder
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.restore.asof import LinkFiles, described_digest, plan_links, verifiable, verify_described
from dynamodb_backup.restore.loadcapacity import LoadCapacity, settle_or_say
from dynamodb_backup.restore.pace import load_pace
from dynamodb_backup.restore.steps import (
    ValidationReport,
    check_totals,
    load_files,
    plan_shares,
    target_rate_reader,
    validate_files,
    write_rate,
)
from dynamodb_backup.restore.streamchain import has_stream, plan_again, plan_facts, plan_stream
from dynamodb_backup.restore.streamrestore import validate_stream, verify_stream_state
from dynamodb_backup.restore.target import ensure_target, resolve_target
from dynamodb_backup.restore.verify import verify_restore


@contextmanager
def _no_retry_on_backup_errors() -> Iterator[None]:
    try:
        yield
    except BackupError as exc:
        raise AirflowFailException(str(exc)) from exc


class _RestoreFields(BaseOperator):
    """Settings every restore task renders from the run's params (or the backup config)."""

    template_fields: Sequence[str] = (
        "source", "source_table", "backup_bucket", "backup_prefix", "target_table", "aws_conn_id",
        "target_aws_conn_id", "target_region", "write_ratio", "create_table", "replace_table", "verify", "force",
        "key_schema", "workers", "checkpoint_uri", "as_of", "load_capacity",
    )

    def __init__(
        self, *, source: Any, target_table: str, source_table: Any = None, backup_bucket: Any = None,
        backup_prefix: Any = None, aws_conn_id: str = "aws_default", target_aws_conn_id: Any = None,
        target_region: Any = None, write_ratio: Any = 0.5, create_table: Any = False, replace_table: Any = False,
        verify: Any = True, force: Any = False, key_schema: Any = None, workers: Any = 4, checkpoint_uri: Any = None,
        on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY, put_extra: dict[str, Any] | None = None,
        as_of: Any = None, load_capacity: Any = None, datapipeline_outputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        #: Table -> its Data Pipeline output folders (backups.yaml ``datapipeline_output``), for latest.
        self.datapipeline_outputs = datapipeline_outputs or {}
        self.as_of = as_of
        self.load_capacity = load_capacity
        self.source, self.source_table, self.target_table = source, source_table, target_table
        self.backup_bucket, self.backup_prefix = backup_bucket, backup_prefix
        self.aws_conn_id, self.target_aws_conn_id, self.target_region = aws_conn_id, target_aws_conn_id, target_region
        self.write_ratio, self.create_table, self.verify, self.force = write_ratio, create_table, verify, force
        self.replace_table = replace_table
        self.key_schema, self.workers, self.checkpoint_uri = key_schema, workers, checkpoint_uri
        self.on_demand_capacity = on_demand_capacity
        self.put_extra = put_extra or {}

    @staticmethod
    def _flag(value: Any) -> bool:
        return str(value).lower() == "true"

    @staticmethod
    def _text(value: Any) -> str | None:
        value = rendered(value)
        return None if value is None or not str(value).strip() else str(value).strip()

    @property
    def table(self) -> str:
        return check_table_name(str(self.target_table), "target_table")

    def s3(self) -> Any:
        return aws_client("s3", self.aws_conn_id)

    def dynamodb(self) -> Any:
        return aws_client("dynamodb", self._text(self.target_aws_conn_id) or self.aws_conn_id,
                          self._text(self.target_region))

    def base(self) -> S3Location:
        """Where the backup DAGs write (``backup_bucket``/``backup_prefix``), for latest and as_of."""
        if not self._text(self.backup_bucket):
            raise ParameterError("backup_bucket: needed with source = latest or as_of")
        return S3Location.parse(f"s3://{self._text(self.backup_bucket)}/{self._text(self.backup_prefix) or ''}")

    @property
    def capacity(self) -> LoadCapacity | None:
        return LoadCapacity.parse(self._text(self.load_capacity))

    def checkpoints(self, s3: Any, folder: S3Location, context: Context, table_id: str = "") -> Checkpoints:
        uri = self._text(self.checkpoint_uri)
        base = S3Location.parse(uri, "checkpoint_uri") if uri else default_checkpoint_base(folder)
        return Checkpoints.for_run(s3, base, self.table, str(context["run_id"]), table_id, self.put_extra)


class InspectBackupOperator(_RestoreFields):
    """Find the folder (or the newest complete backup), tell its format, and check the target read-only.

    Returns the shares of files to map validate and load over, and pushes what
    it found (source, keys) under the XCom key ``inspection``.
    """

    ui_color = "#d6eaf8"

    def folder(self, s3: Any) -> S3Location:
        source = self.source
        if isinstance(source, dict):  # a backup DAG's seal result
            source = source["folder"]
        source = str(source).strip()
        if source != "latest":
            return S3Location.parse(source, "source")
        table = self._text(self.source_table)
        if not table or not self._text(self.backup_bucket):
            raise ParameterError("source: 'latest' needs source_table and backup_bucket")
        outputs = parse_datapipeline_outputs(self.datapipeline_outputs.get(table), "datapipeline_output")
        folder = latest_complete(s3, self.base(), check_table_name(table, "source_table"), outputs)
        self.log.info("newest complete backup of %s: %s/", table, folder.uri)
        return folder

    def chain(self, s3: Any) -> tuple[S3Location, list[dict[str, Any]], dict[str, str] | None]:
        """With as_of: the full backup to load, the links to apply after it (refused if the chain has a gap), and
        with a stream backup, the replay to the second (``restore.streamchain``; refused across a stream gap)."""
        if str(self.source).strip() != "latest":
            raise ParameterError("as_of restores from the backups of source_table under backup_bucket/backup_prefix; "
                                 "set source to latest")
        table = check_table_name(str(self._text(self.source_table)), "source_table")
        moment = parse_moment(str(self._text(self.as_of)), "as_of")
        if has_stream(s3, self.base(), table):
            plan = plan_stream(s3, self.base(), table, moment)
            for line in [plan.describe(), *plan.notes]:
                self.log.info("%s", line)
            return plan.chain.full.folder, [link.to_dict() for link in plan_links(s3, plan.chain)], plan_facts(
                plan, self.base())
        chain = find_chain(s3, self.base(), table, moment)
        self.log.info("%s", chain.describe())
        return chain.full.folder, [link.to_dict() for link in plan_links(s3, chain)], None

    @aws_mistakes
    def execute(self, context: Context) -> list[list[dict[str, Any]]]:
        with _no_retry_on_backup_errors():
            check_ratio(float(self.write_ratio), "write_ratio")
            capacity = self.capacity  # a bad load_capacity fails here, before anything is read
            s3 = self.s3()
            folder, links, stream = self.chain(s3) if self._text(self.as_of) else (self.folder(s3), [], None)
            refuse_incremental(s3, folder)
            source = inspect_folder(s3, folder, force=self._flag(self.force))
            keys = resolve_target(self.dynamodb(), source, self.table,
                                  create=self._flag(self.create_table) or self._flag(self.replace_table),
                                  key_schema=self._text(self.key_schema))
        if capacity is not None:
            self.log.info("load capacity %s: the table is loaded at it, then settled after verification",
                          capacity.describe())
        shares = plan_shares(source.files, int(self.workers))
        context["ti"].xcom_push(key="inspection", value={"source": source.to_dict(), "keys": keys, "links": links,
                                                        "shares": len(shares), "format": source.format,
                                                        "stream": stream})
        return [[asdict(f) for f in share] for share in shares]


class ValidateBackupOperator(_RestoreFields):
    """Read one share of files: checksums, every line, keys; count and digest the items (mapped)."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "inspection", "files")
    ui_color = "#fdebd0"

    def __init__(self, *, inspection: Any, files: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inspection, self.files = inspection, files

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        source = BackupSource.from_dict(self.inspection["source"])
        rules = KeyRules.from_description(self.inspection["keys"])
        with _no_retry_on_backup_errors():
            report = validate_files(self.s3(), source.folder.bucket, [SourceFile.from_dict(f) for f in self.files],
                                    rules)
        return report.to_dict()


class EnsureTableOperator(_RestoreFields):
    """Check the validation totals, then create the target if asked (from the sidecar) and pick the write rate."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "inspection", "validations", "changes")
    ui_color = "#fcf3cf"

    def __init__(self, *, inspection: Any, validations: Any, changes: Any = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inspection, self.validations, self.changes = inspection, validations, changes

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        source = BackupSource.from_dict(self.inspection["source"])
        report = ValidationReport()
        for part in self.validations or []:
            report.merge(ValidationReport.from_dict(part))
        dynamodb = self.dynamodb()
        with _no_retry_on_backup_errors():
            check_totals(source, report)
            target = ensure_target(dynamodb, source, self.table, self.inspection["keys"],
                                   create=self._flag(self.create_table), replace=self._flag(self.replace_table),
                                   journal=self.checkpoints(self.s3(), source.folder, context),
                                   load_capacity=self.capacity)
            description = describe_table(dynamodb, self.table)
            rate = write_rate(description, float(self.write_ratio), self.on_demand_capacity)
        self.log.info("%s: %d items to load at %.0f write units/s", self.table, report.items, rate)
        pace = load_pace(description, source, report.items, float(self.write_ratio), self.on_demand_capacity)
        self.log.info("%s", pace.line())
        advice = pace.advice(creating=bool(target["created"]), on_demand=self.capacity is not None)
        if advice:
            self.log.info("%s", advice)
        links = [LinkFiles.from_dict(link) for link in self.inspection.get("links") or []]
        reports = [LinkReport.from_dict(r) for r in self.changes or []]  # as_of: the state the chain describes
        return {**target, "write_rate": rate, "items": report.items,
                "digest": described_digest(report.digest, reports).to_dict(), "verifiable": verifiable(links),
                "bytewise": report.bytewise}


class LoadFilesOperator(_RestoreFields):
    """Put one share of files into the target, paced, skipping files an earlier attempt finished (mapped)."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "inspection", "target", "files")
    ui_color = "#d5f5e3"

    def __init__(self, *, inspection: Any, target: Any, files: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inspection, self.target, self.files = inspection, target, files

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        source = BackupSource.from_dict(self.inspection["source"])
        share = 1 / max(int(self.inspection["shares"]), 1)
        dynamodb, s3 = self.dynamodb(), self.s3()
        target = describe_table(dynamodb, self.table)
        scales = index_write_scales(target)
        files = [SourceFile.from_dict(f) for f in self.files]
        with _no_retry_on_backup_errors(), ProgressReport(f"load {context['ti'].map_index}",
                                                          sum(f.items or 0 for f in files), self.log):
            result = load_files(
                dynamodb, s3, source.folder.bucket, files, self.table,
                KeyRules.from_description(self.inspection["keys"]).key_names, float(self.target["write_rate"]) * share,
                # Markers of an attempt that loaded into an earlier incarnation of the table do not count.
                checkpoints=self.checkpoints(s3, source.folder, context, table_identity(target)),
                index_scales=scales, bytewise=frozenset(self.target.get("bytewise") or ()),
                current_rate=target_rate_reader(dynamodb, self.table, float(self.write_ratio),
                                                self.on_demand_capacity, share, scales),
                label=f"load {context['ti'].map_index}",
            )
        return asdict(result)


class VerifyRestoreOperator(_RestoreFields):
    """Count the target by parallel scan and compare with the backup (digests when it started empty)."""

    template_fields: Sequence[str] = (*_RestoreFields.template_fields, "inspection", "target")
    ui_color = "#e8daef"

    def __init__(self, *, inspection: Any, target: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.inspection, self.target = inspection, target

    @aws_mistakes
    def execute(self, context: Context) -> dict[str, Any]:
        result = self._verify(context)
        # Settled after verification: the data is in; a failure says how to finish, and is not retried.
        failure = settle_or_say(self.dynamodb(), self.target.get("settle"), self.log.info, self.log.warning)
        if failure:
            raise AirflowFailException(failure)
        return result

    def _verify(self, context: Context) -> dict[str, Any]:
        if not self._flag(self.verify):
            self.log.info("verification is off for this run")
            return {"verified": False}
        source = BackupSource.from_dict(self.inspection["source"])
        s3, rules = self.s3(), KeyRules.from_description(self.inspection["keys"])
        links = [LinkFiles.from_dict(link) for link in self.inspection.get("links") or []]
        expected = BucketedDigest.from_dict(self.target["digest"])
        if links and not self.target.get("verifiable", True):
            self.log.warning("not verified: a link lacks old images (view NEW_IMAGE)")
            return {"verified": False}
        if self.inspection.get("stream"):  # as_of to a second: the state the base and the stream describe
            with _no_retry_on_backup_errors():
                plan = plan_again(s3, self.inspection["stream"])
                report = verify_stream_state(self.dynamodb(), s3, self.table, source, [link.files for link in links],
                                             rules, expected, validate_stream(s3, plan, rules),
                                             was_empty=bool(self.target["was_empty"]))
        elif links:
            report = verify_described(self.dynamodb(), s3, self.table, source, links, rules, expected,
                                      was_empty=bool(self.target["was_empty"]))
        else:
            report = verify_restore(self.dynamodb(), s3, source, self.table, was_empty=bool(self.target["was_empty"]),
                                    backup=expected, key_names=rules.key_names)
        if not report.match:
            raise AirflowFailException(report.summary())
        removed = self.checkpoints(s3, source.folder, context).clear()
        self.log.info("%s (%d checkpoint markers removed)", report.summary(), removed)
        return {"verified": True, **report.to_dict()}


def restore_tasks(settings: dict[str, Any], group_id: str | None = None,
                  changes: bool = False) -> tuple[BaseOperator, BaseOperator]:
    """inspect >> validate (mapped) >> ensure_table >> load (mapped) >> verify; returns (first, last).

    ``changes`` adds the as_of steps: validate_changes (the links after the full, before anything is
    written) and apply_changes (after the load, in order); both do nothing when as_of is empty.
    Call inside a DAG context. ``settings`` are the operators' keyword arguments (templates, XComArgs or values).
    """
    from dynamodb_backup.operators.restore_changes import ApplyChangesOperator, ValidateChangesOperator

    with TaskGroup(group_id) if group_id else _nothing():
        inspect = InspectBackupOperator(task_id="inspect", **settings)
        found = inspect.output["inspection"]  # type: ignore[index]
        validate = ValidateBackupOperator.partial(task_id="validate", inspection=found, **settings).expand(
            files=inspect.output)
        checked = ValidateChangesOperator(task_id="validate_changes", inspection=found, **settings) if changes else None
        ensure = EnsureTableOperator(task_id="ensure_table", inspection=found, validations=validate.output,
                                     changes=checked.output if checked else None, **settings)
        load = LoadFilesOperator.partial(task_id="load", inspection=found, target=ensure.output,
                                         **settings).expand(files=inspect.output)
        verify = VerifyRestoreOperator(task_id="verify", inspection=found, target=ensure.output, **settings)
        if checked is None:
            inspect >> validate >> ensure >> load >> verify
        else:
            apply = ApplyChangesOperator(task_id="apply_changes", inspection=found, target=ensure.output, **settings)
            inspect >> validate >> checked >> ensure >> load >> apply >> verify
    return inspect, verify


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def add_restore_tasks(dag: DAG, upstream: BaseOperator, folder: Any, *, target_table: str,
                      write_ratio: float = 0.5, aws_conn_id: str = "aws_default",
                      target_aws_conn_id: str | None = None, create_table: bool = True,
                      replace_table: bool = False, verify: bool = True,
                      workers: int = 4, on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY,
                      put_extra: dict[str, Any] | None = None) -> BaseOperator:
    """Restore each night's backup into ``target_table`` after ``upstream`` (e.g. a staging copy).

    ``folder`` is the backup folder's URI, or the seal task's result (``seal.output``). Items
    are put (overwritten), not synchronised: items deleted from the source stay
    in the target, unless ``replace_table`` has the target deleted and created
    again (after the backup validated) so that it holds exactly the backup.
    ``put_extra`` (SSE-KMS, ExpectedBucketOwner) is applied to the completion
    markers written beside the backup. Returns the last task (verify).
    """
    settings = {"source": folder, "target_table": target_table, "write_ratio": write_ratio,
                "aws_conn_id": aws_conn_id, "target_aws_conn_id": target_aws_conn_id, "create_table": create_table,
                "replace_table": replace_table, "put_extra": put_extra or {},
                "verify": verify, "workers": workers, "on_demand_capacity": on_demand_capacity}
    with dag:
        first, last = restore_tasks(settings, group_id=f"restore_to_{target_table}".replace(".", "_"))
        upstream >> first
    return last
