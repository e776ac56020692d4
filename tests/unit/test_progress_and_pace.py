"""Progress lines and reports (a clock, no sleeping), the pace line, and the load-capacity plans."""

from __future__ import annotations

import logging
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import S3Location
from dynamodb_backup.progress import Progress, ProgressReport
from dynamodb_backup.repository.inspection import BackupSource, SourceFile
from dynamodb_backup.restore.loadcapacity import (
    LoadCapacity,
    _pending_changes,
    loading_description,
    settle_command,
    settle_request,
)
from dynamodb_backup.restore.pace import load_pace


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, msg: Any, *args: Any) -> None:
        self.lines.append(msg % args)


def test_progress_says_a_line_when_every_seconds_have_passed_and_not_before():
    clock, log = Clock(), Lines()
    progress = Progress("load", 100, log, every=10.0, clock=clock)  # type: ignore[arg-type]
    for _ in range(9):
        clock.now += 1.0
        progress.add(5, 1000, 5.0)
    assert log.lines == []
    clock.now += 1.0
    assert progress.due()
    progress.add(5, 1_000_000, 5.0)
    assert len(log.lines) == 1
    assert log.lines[0].startswith("load: 50 of 100 items, 1.0 MB, 5.0 items/s, 5.0 units/s, 10 s left")
    progress.done()
    assert len(log.lines) == 2 and log.lines[1].endswith("(finished)")


def _worker(count: int) -> int:
    progress = Progress("worker", count, logging.getLogger("worker"))
    for _ in range(count):
        progress.add(1, 10, 1.0)
    progress.done()  # hands the rest over to the parent's report
    return count


def test_a_report_adds_up_worker_processes_and_says_lines_of_its_own():
    log = Lines()
    with ProgressReport("restore t", 60, log, every=0.01, bar=False) as report:
        with ProcessPoolExecutor(max_workers=3, initializer=report.initializer, initargs=report.initargs) as pool:
            assert sum(pool.map(_worker, [10, 20, 30])) == 60
        in_process = Progress("in process", 5, logging.getLogger("here"))
        in_process.add(5, 50, 0.5)
        in_process.done()
    assert report.counts.read() == (65, 650, 60_500)
    assert log.lines[-1].startswith("restore t: 65 of 60 items, 0.0 MB") and log.lines[-1].endswith("(finished)")
    assert report.lines >= 0  # lines while running depend on the machine's pace; the last one always comes


def test_a_report_says_a_line_every_interval_while_nothing_finishes():
    clock, log = Clock(), Lines()
    report = ProgressReport("export t", 10, log, every=10.0, clock=clock, bar=False)  # type: ignore[arg-type]
    report.start = 0.0
    clock.now = 20.0
    report.say()
    assert log.lines == ["export t: 0 of 10 items, 0.0 MB, 0.0 items/s, 0.0 units/s, "
                         "time left unknown (nothing written yet)"]


def test_a_report_in_a_terminal_draws_a_bar_and_gives_logging_its_stream_back():
    root = logging.getLogger()
    handler = logging.StreamHandler()
    root.addHandler(handler)
    stream = handler.stream
    try:
        with ProgressReport("restore t", 10, Lines(), every=0.01, bar=True) as report:
            worker = Progress("w", 10, logging.getLogger("w"))
            worker.add(10, 10, 1.0)
            worker.done()
        assert report.counts.read()[0] == 10
        assert handler.stream is stream
    finally:
        root.removeHandler(handler)


SIDECAR_TABLE = {
    "TableName": "orders",
    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
    "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
    "BillingModeSummary": {"BillingMode": "PROVISIONED"},
    "ProvisionedThroughput": {"ReadCapacityUnits": 50, "WriteCapacityUnits": 200},
    "GlobalSecondaryIndexes": [
        {"IndexName": "byStatus", "Projection": {"ProjectionType": "ALL"}, "KeySchema": [],
         "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}},
        {"IndexName": "byOwner", "Projection": {"ProjectionType": "KEYS_ONLY"}, "KeySchema": [],
         "ProvisionedThroughput": {"ReadCapacityUnits": 5, "WriteCapacityUnits": 50}}],
    "LocalSecondaryIndexes": [{"IndexName": "byTime", "Projection": {"ProjectionType": "ALL"}, "KeySchema": []}],
    "ItemCount": 3000, "TableSizeBytes": 3000 * 400,
}


def source(table: dict[str, Any] | None = SIDECAR_TABLE) -> BackupSource:
    return BackupSource(S3Location("b", "p"), "ours", True,
                        [SourceFile("p/a.gz", "datapipeline", 600_000, items=3000)], table=table)


def test_the_pace_names_the_gsi_that_limits_the_load_and_estimates_the_time():
    pace = load_pace(SIDECAR_TABLE, source(), 3000, 0.5, 10_000.0)
    assert pace.bound.name == "GSI 'byStatus'" and pace.bound.items_per_second == 2.5
    assert pace.seconds == 1200
    line = pace.line()
    assert line.startswith("pace: GSI 'byStatus' limits this load: GSI 'byStatus' (5 WCU x write ratio 0.5")
    assert "table orders (with its 1 local index) (200 WCU" in line and "about 20 min to load" in line
    assert "400 bytes an item (from the source table's DescribeTable)" in line
    assert "--load-capacity on-demand" in str(pace.advice(creating=True, on_demand=False))
    assert pace.advice(creating=True, on_demand=True) is None


def test_the_pace_of_an_on_demand_table_is_the_assumed_capacity():
    on_demand = {**SIDECAR_TABLE, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}
    pace = load_pace(on_demand, source(), 3000, 0.5, 10_000.0)
    assert [limit.name for limit in pace.limits] == ["table orders (with its 1 local index)"]
    assert pace.bound.assumed and pace.bound.items_per_second == 2500  # 5,000 units/s, 2 units an item (LSI)
    assert "assumed on-demand capacity" in pace.line()


def test_item_size_falls_back_to_the_backup_files_and_says_how_far_to_trust_it():
    pace = load_pace(SIDECAR_TABLE, source({**SIDECAR_TABLE, "ItemCount": 0}), 3000, 0.5, 10_000.0)
    assert pace.size.bytes == 200 and "compressed bytes, a low estimate" in pace.size.source


@pytest.mark.parametrize("given, expected", [
    (None, None), ("", None), ("on-demand", LoadCapacity(None)), ("PAY_PER_REQUEST", LoadCapacity(None)),
    ("400", LoadCapacity(400)), (25, LoadCapacity(25))])
def test_load_capacity_parses(given, expected):
    assert LoadCapacity.parse(given) == expected


@pytest.mark.parametrize("given", ["0", "-3", "fast", "1.5"])
def test_a_bad_load_capacity_is_refused(given):
    with pytest.raises(ParameterError, match="load_capacity"):
        LoadCapacity.parse(given)


def test_loading_at_write_units_sets_them_on_the_table_and_every_gsi():
    loading = loading_description(SIDECAR_TABLE, LoadCapacity(400))
    assert loading["ProvisionedThroughput"] == {"ReadCapacityUnits": 50, "WriteCapacityUnits": 400}
    assert [i["ProvisionedThroughput"]["WriteCapacityUnits"] for i in loading["GlobalSecondaryIndexes"]] == [400, 400]
    assert SIDECAR_TABLE["ProvisionedThroughput"]["WriteCapacityUnits"] == 200  # the sidecar is left alone


def test_the_settle_request_and_its_command_carry_the_table_and_index_throughputs():
    request = settle_request(SIDECAR_TABLE, "orders-copy")
    assert request["BillingMode"] == "PROVISIONED"
    assert request["ProvisionedThroughput"] == {"ReadCapacityUnits": 50, "WriteCapacityUnits": 200}
    assert [u["Update"]["IndexName"] for u in request["GlobalSecondaryIndexUpdates"]] == ["byStatus", "byOwner"]
    command = settle_command(request)
    assert command.startswith("aws dynamodb update-table --table-name orders-copy --billing-mode PROVISIONED "
                              "--provisioned-throughput ReadCapacityUnits=50,WriteCapacityUnits=200 "
                              "--global-secondary-index-updates ")
    assert '"IndexName":"byStatus"' in command


def test_settling_sends_only_what_differs_from_a_provisioned_table():
    request = settle_request(SIDECAR_TABLE, "orders")
    assert _pending_changes(request, SIDECAR_TABLE) is None  # AWS refuses an update that changes nothing
    raised = {**SIDECAR_TABLE, "ProvisionedThroughput": {"ReadCapacityUnits": 50, "WriteCapacityUnits": 400}}
    pending = _pending_changes(request, raised)
    assert pending == {"TableName": "orders", "ProvisionedThroughput": request["ProvisionedThroughput"]}
    on_demand = {**SIDECAR_TABLE, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}}
    assert _pending_changes(request, on_demand) == request
