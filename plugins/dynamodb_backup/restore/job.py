"""A whole restore in one process tree (the command line's path; the DAG runs the same steps as tasks).

inspect -> check the target (read-only) -> validate the shares -> ensure the table (at the load
capacity, if one is asked) -> say what limits the load and how long it should take -> load the
shares (one progress report over all workers) -> verify -> settle the table's capacities.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from dynamodb_backup.aws.tableinfo import describe_table, table_identity
from dynamodb_backup.backup.plan import DEFAULT_ON_DEMAND_CAPACITY, check_ratio, index_write_scales
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location, check_table_name
from dynamodb_backup.incremental.chain import refuse_incremental
from dynamodb_backup.loading.checkpoint import Checkpoints, default_checkpoint_base
from dynamodb_backup.progress import ProgressReport
from dynamodb_backup.repository.inspection import BackupSource, SourceFile, inspect_folder
from dynamodb_backup.repository.keyschema import KeyRules
from dynamodb_backup.restore.loadcapacity import LoadCapacity, settle_or_say
from dynamodb_backup.restore.pace import LoadPace, load_pace
from dynamodb_backup.restore.steps import (
    LoadResult,
    ValidationReport,
    check_totals,
    load_files,
    plan_shares,
    target_rate_reader,
    validate_files,
    write_rate,
)
from dynamodb_backup.restore.target import ensure_target, resolve_target
from dynamodb_backup.restore.verify import VerifyReport, verify_restore

log = logging.getLogger(__name__)
ClientFactory = Callable[[str], Any]
T = TypeVar("T")


class ClientCache:
    """A client factory that makes one client per service and then reuses it.

    Why: making a boto3 client loads the service's model (100 ms, over a second on a busy
    machine), and a restore's steps ask for clients dozens of times. Picklable: a worker
    process gets the factory without the clients and makes its own.
    """

    def __init__(self, make_client: ClientFactory) -> None:
        self.make_client = make_client
        self._clients: dict[str, Any] = {}

    @classmethod
    def wrap(cls, make_client: ClientFactory) -> ClientCache:
        return make_client if isinstance(make_client, ClientCache) else cls(make_client)

    def __call__(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.make_client(service)
        return self._clients[service]

    def __getstate__(self) -> dict[str, Any]:
        return {"make_client": self.make_client, "_clients": {}}


def new_run_id() -> str:
    return datetime.now(UTC).strftime("restore-%Y%m%dT%H%M%SZ")


@dataclass
class RestoreRequest:
    folder: S3Location
    table: str
    write_ratio: float = 0.5
    create_table: bool = False
    replace_table: bool = False
    """Delete the target and create it again like itself before loading (after validation)."""
    key_schema: str | None = None
    force: bool = False
    workers: int = 4
    on_demand_capacity: float = DEFAULT_ON_DEMAND_CAPACITY
    verify: bool = True
    checkpoint_base: S3Location | None = None
    """Where completion markers go; default ``_restore_checkpoints/`` beside the folder."""
    checkpoints: bool = True
    run_id: str = field(default_factory=new_run_id)
    """Give the id of a failed run to resume it: files it finished are skipped."""
    load_capacity: str | None = None
    """'on-demand' or write units: load at this capacity, then settle (:mod:`restore.loadcapacity`)."""
    progress_seconds: float | None = None
    """How often the load says where it is (a line, or the bar in a terminal); None: every 10 s."""

    @property
    def capacity(self) -> LoadCapacity | None:
        return LoadCapacity.parse(self.load_capacity)

    def check(self) -> None:
        check_table_name(self.table)
        check_ratio(self.write_ratio, "write_ratio")
        if not 1 <= self.workers <= 64:
            raise ParameterError(f"workers must be between 1 and 64, got {self.workers}")
        if self.on_demand_capacity <= 0:
            raise ParameterError("on_demand_capacity must be positive")
        LoadCapacity.parse(self.load_capacity)  # a bad one is refused before anything is read

    def checkpoints_for(self, s3: Any, folder: S3Location, table_id: str = "") -> Checkpoints | None:
        if not self.checkpoints:
            return None
        return Checkpoints.for_run(s3, self.checkpoint_base or default_checkpoint_base(folder), self.table,
                                   self.run_id, table_id)


@dataclass
class RestoreOutcome:
    source: BackupSource
    validation: ValidationReport
    target: dict[str, Any]
    load: LoadResult
    verify: VerifyReport | None
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall time of each phase: validate (inspection included), target (create or replace), load, verify."""
    pace: LoadPace | None = None
    settle_failure: str | None = None
    """The one line saying the data is loaded but the table's capacities are not settled, and how to finish."""


def _validate_share(make_client: ClientFactory, bucket: str, files: list[SourceFile],
                    rules: KeyRules) -> ValidationReport:
    return validate_files(make_client("s3"), bucket, files, rules)


def _load_share(make_client: ClientFactory, request: RestoreRequest, folder: S3Location, files: list[SourceFile],
                key_names: list[str], rate: float, share: float, label: str,
                bytewise: frozenset[str] = frozenset()) -> LoadResult:
    dynamodb, s3 = make_client("dynamodb"), make_client("s3")
    target = describe_table(dynamodb, request.table)
    scales = index_write_scales(target)
    return load_files(
        dynamodb, s3, folder.bucket, files, request.table, key_names, rate,
        checkpoints=request.checkpoints_for(s3, folder, table_identity(target)), label=label,
        index_scales=scales, bytewise=bytewise,
        current_rate=target_rate_reader(dynamodb, request.table, request.write_ratio,
                                        request.on_demand_capacity, share, scales),
    )


def _map(processes: int, function: Callable[..., T], calls: list[tuple[Any, ...]],
         report: ProgressReport | None = None) -> Iterable[T]:
    if processes <= 1 or len(calls) <= 1:
        return [function(*args) for args in calls]
    pool_settings: dict[str, Any] = {"initializer": report.initializer, "initargs": report.initargs} if report else {}
    with ProcessPoolExecutor(max_workers=min(processes, len(calls)), **pool_settings) as pool:
        futures = [pool.submit(function, *args) for args in calls]
        return [f.result() for f in futures]


@dataclass
class Prepared:
    """A backup folder inspected and validated against its target, before anything is written."""

    source: BackupSource
    keys: dict[str, Any]
    rules: KeyRules
    shares: list[list[SourceFile]]
    validation: ValidationReport


def prepare_restore(make_client: ClientFactory, request: RestoreRequest, processes: int = 1) -> Prepared:
    """Inspect the folder, check the target read-only, validate every file (in shares); write nothing."""
    request.check()
    s3, dynamodb = make_client("s3"), make_client("dynamodb")
    refuse_incremental(s3, request.folder)
    source = inspect_folder(s3, request.folder, force=request.force)
    keys = resolve_target(dynamodb, source, request.table, create=request.create_table or request.replace_table,
                          key_schema=request.key_schema)
    rules = KeyRules.from_description(keys)
    shares = plan_shares(source.files, request.workers)
    validation = ValidationReport()
    for part in _map(processes, _validate_share,
                     [(make_client, source.folder.bucket, share, rules) for share in shares]):
        validation.merge(part)
    check_totals(source, validation)
    return Prepared(source, keys, rules, shares, validation)


def ensure_restore_target(make_client: ClientFactory, request: RestoreRequest, prepared: Prepared) -> dict[str, Any]:
    """Create or replace the target as asked (the first write of a restore)."""
    return ensure_target(make_client("dynamodb"), prepared.source, request.table, prepared.keys,
                         create=request.create_table, replace=request.replace_table,
                         journal=request.checkpoints_for(make_client("s3"), prepared.source.folder),
                         load_capacity=request.capacity)


def say_pace(description: dict[str, Any], request: RestoreRequest, prepared: Prepared, creating: bool,
             say: Callable[[str], None] = log.info) -> LoadPace:
    """Before the first write: what limits the load (the table, or which index) and how long it should take."""
    pace = load_pace(description, prepared.source, prepared.validation.items, request.write_ratio,
                     request.on_demand_capacity)
    say(pace.line())
    advice = pace.advice(creating=creating, on_demand=request.capacity is not None)
    if advice:
        say(advice)
    return pace


def load_prepared(make_client: ClientFactory, request: RestoreRequest, prepared: Prepared,
                  processes: int = 1) -> LoadResult:
    """Load the validated shares at ratio x the target's write capacity, skipping files already finished.

    One progress report covers every worker (a line every ``request.progress_seconds``, or a bar in a terminal).
    """
    shares = prepared.shares
    rate = write_rate(describe_table(make_client("dynamodb"), request.table), request.write_ratio,
                      request.on_demand_capacity)
    log.info("loading %d items into %s at %.0f write units/s over %d workers (run id %s)",
             prepared.validation.items, request.table, rate, len(shares), request.run_id)
    load = LoadResult()
    bytewise = frozenset(prepared.validation.bytewise)
    calls = [(make_client, request, prepared.source.folder, share, prepared.rules.key_names, rate / len(shares),
              1 / len(shares), f"worker {i}", bytewise) for i, share in enumerate(shares)]
    with ProgressReport(f"restore {request.table}", prepared.validation.items, log,
                        expected_bytes=prepared.source.total_bytes, every=request.progress_seconds) as report:
        for result in _map(processes, _load_share, calls, report):
            load.merge(result)
    return load


def run_restore(make_client: ClientFactory, request: RestoreRequest, processes: int = 1,
                on_validated: Callable[[], None] | None = None) -> RestoreOutcome:
    """Restore ``request.folder`` into ``request.table``; nothing is written unless every file is valid.

    ``on_validated`` is called once every file is valid, before anything is written (the CLI prints the run id
    then: a run refused by validation has nothing to resume)."""
    make_client = ClientCache.wrap(make_client)
    started = time.perf_counter()
    prepared = prepare_restore(make_client, request, processes)
    if on_validated is not None:
        on_validated()
    seconds = {"validate": time.perf_counter() - started}
    started = time.perf_counter()
    target = ensure_restore_target(make_client, request, prepared)
    seconds["target"] = time.perf_counter() - started
    s3, dynamodb = make_client("s3"), make_client("dynamodb")
    pace = say_pace(describe_table(dynamodb, request.table), request, prepared, creating=bool(target["created"]))
    started = time.perf_counter()
    load = load_prepared(make_client, request, prepared, processes)
    seconds["load"] = time.perf_counter() - started
    source, validation = prepared.source, prepared.validation
    report = None
    if request.verify:
        started = time.perf_counter()
        report = verify_restore(dynamodb, s3, source, request.table, was_empty=bool(target["was_empty"]),
                                backup=validation.digest, key_names=prepared.rules.key_names,
                                make_client=make_client, processes=processes)
        checkpoints = request.checkpoints_for(s3, source.folder)
        if report.match and checkpoints:
            checkpoints.clear()
        seconds["verify"] = time.perf_counter() - started
    # Settled after verification either way: a failed verification is said on its own, and a table
    # left at its load capacity would cost what the operator did not ask for.
    started = time.perf_counter()
    # A failed settle's line is returned in the outcome and said once, by the caller (the CLI prints it);
    # logged here at DEBUG, since the CLI's log also goes to stderr and the line would show twice.
    failure = settle_or_say(dynamodb, target.get("settle"), log.info, log.debug)
    if target.get("settle") is not None:
        seconds["settle"] = time.perf_counter() - started
    return RestoreOutcome(source, validation, target, load, report, seconds, pace, failure)
