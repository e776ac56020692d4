"""The workers model (backup/sizing.py) and the plan's warning when max_workers cannot keep up."""

from __future__ import annotations

import json
import logging
import math
from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from dynamodb_backup.aws.tableinfo import TableFacts
from dynamodb_backup.backup.job import BackupRequest, plan_backup
from dynamodb_backup.backup.plan import plan_scan, schedule_fit_warning
from dynamodb_backup.backup.sizing import (
    CONVERT,
    EXPORT,
    MEASURED,
    RESTORE,
    CpuCost,
    PerCore,
    TableLoad,
    estimate,
    load_per_core,
    schedule_warning,
    workers_within,
)
from dynamodb_backup.formats.layout import S3Location

GB, TB = 10**9, 10**12
DAY = 86_400.0
#: Round figures so the expectations can be worked by hand: at 1 KB an item, 15 us per item to export
#: (as if 10 us per item and 5 ms per MB), 30 us to restore, 7 us to convert.
ROUND = PerCore(export=CpuCost(((1_000, 15e-6),)), restore=CpuCost(((1_000, 30e-6),)),
                convert=CpuCost(((1_000, 7e-6),)), source="test")


def test_cpu_bound_export_halves_with_twice_the_workers():
    table = TableLoad(100 * GB, 100_000_000, read_capacity=1e9)  # capacity out of the way
    one = estimate(EXPORT, table, 1, 0.5, ROUND)
    assert one.cpu_seconds == pytest.approx(100_000_000 * 10e-6 + 100_000 * 0.005)  # 1,000 + 500 s
    assert estimate(EXPORT, table, 2, 0.5, ROUND).seconds == pytest.approx(one.seconds / 2)
    assert one.limit == "CPU"


def test_capacity_bound_export_does_not_speed_up_with_workers():
    table = TableLoad(1 * TB, 1_000_000_000, read_capacity=1_000)
    capacity = 1 * TB / 8192 / 500  # eventually consistent: 8 KB per unit, at half of 1,000 RCU
    for workers in (4, 64):
        run = estimate(EXPORT, table, workers, 0.5, ROUND)
        assert run.capacity_seconds == pytest.approx(capacity)
        assert run.seconds == pytest.approx(capacity) and run.limit == "capacity"
    assert estimate(EXPORT, table, 1, 0.5, ROUND, consistent=True).capacity_seconds == pytest.approx(2 * capacity)


def test_workers_at_capacity_is_where_cpu_time_meets_capacity_time():
    table = TableLoad(100 * GB, 100_000_000, read_capacity=1_000_000)
    run = estimate(EXPORT, table, 1, 0.5, ROUND)
    at = run.workers_at_capacity
    assert at is not None and at > 1
    assert at == math.ceil(run.cpu_seconds / run.capacity_seconds)
    assert estimate(EXPORT, table, at - 1, 0.5, ROUND).limit == "CPU"
    assert estimate(EXPORT, table, at, 0.5, ROUND).limit == "capacity"


def test_restore_spends_a_write_unit_per_started_kilobyte_and_on_demand_uses_the_limit():
    table = TableLoad(1_500 * 1_000_000, 1_000_000)  # 1,500 B items: 2 write units each; on demand
    run = estimate(RESTORE, table, 8, 0.5, ROUND)
    assert run.capacity_seconds == pytest.approx(2_000_000 / (40_000 * 0.5))


def test_conversion_spends_no_table_capacity():
    run = estimate(CONVERT, TableLoad(1 * TB, 10**9, read_capacity=1), 10, 0.5, ROUND)
    assert run.capacity_seconds is None and run.limit == "CPU" and run.workers_at_capacity is None
    assert run.seconds == pytest.approx((10**9 * 5e-6 + 10**6 * 0.002) / 10)


def test_workers_within_a_period_or_none_when_capacity_alone_is_too_slow():
    fast = TableLoad(100 * GB, 100_000_000, read_capacity=40_000)
    needed = workers_within(EXPORT, fast, 1_000.0, 0.5, ROUND)  # capacity alone: 610 s
    assert needed is not None
    assert estimate(EXPORT, fast, needed, 0.5, ROUND).seconds <= 1_000.0
    assert estimate(EXPORT, fast, needed - 1, 0.5, ROUND).seconds > 1_000.0
    slow = TableLoad(1 * TB, 10**9, read_capacity=100)
    assert workers_within(EXPORT, slow, DAY, 0.5, ROUND) is None


def test_warning_names_the_table_the_times_and_the_workers_to_set():
    table = TableLoad(1 * TB, 10**9, read_capacity=1e9)  # CPU-bound: 10,000 + 5,000 CPU-s
    assert schedule_warning(table, "orders", 16, DAY, 0.5, ROUND) is None  # 15,000 s / 16 fits a day
    line = schedule_warning(table, "orders", 1, 3_600.0, 0.5, ROUND)
    assert line is not None and "\n" not in line
    assert line.startswith("orders (1,000.0 GB, 1,000,000,000 items): the sizing model says an export takes 4.2 h "
                           "with max_workers=1, longer than the schedule's period of 60 min")
    assert line.endswith("set max_workers to at least 5 (docs/workers-per-terabyte.md)")


def test_warning_says_raise_the_ratio_when_workers_cannot_help():
    table = TableLoad(1 * TB, 10**9, read_capacity=100)
    line = schedule_warning(table, "orders", 64, DAY, 0.25, ROUND)
    assert line is not None and "read capacity at read_ratio=0.25 alone takes" in line
    assert "raise read_ratio or the table's capacity" in line


def test_plan_warning_paces_on_demand_tables_as_the_plan_does():
    facts = TableFacts("orders", 5 * TB, 5 * 10**9, on_demand=True, read_capacity=0.0, write_capacity=0.0)
    plan = plan_scan(facts, 0.5, max_workers=64, on_demand_capacity=10_000)
    # Paced at 0.5 x 10,000 RCU: 5 TB / 8 KB / 5,000 = 122,070 s, more than a day (33.9 h) whatever the workers.
    line = schedule_fit_warning(facts, plan, 0.5, DAY, on_demand_capacity=10_000)
    assert line is not None and "read capacity at read_ratio=0.5 alone takes 33.9 h" in line
    # At the 40,000 account limit, capacity alone takes 30,518 s: workers, not capacity, decide.
    line = schedule_fit_warning(facts, plan, 0.5, DAY, on_demand_capacity=40_000)
    assert line is None or "read capacity" not in line
    assert schedule_fit_warning(facts, plan, 0.5, None) is None


def test_plan_step_logs_the_warning_in_one_line(caplog):
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    described = {"Table": {"TableName": "orders", "TableSizeBytes": 5 * TB, "ItemCount": 5 * 10**9,
                           "ProvisionedThroughput": {"ReadCapacityUnits": 40_000, "WriteCapacityUnits": 40_000},
                           "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}]}}
    with Stubber(dynamodb) as ddb_stub, Stubber(s3) as s3_stub:
        ddb_stub.add_response("describe_table", described, {"TableName": "orders"})
        s3_stub.add_response("head_bucket", {}, {"Bucket": "backups"})
        s3_stub.add_response("list_objects_v2", {"KeyCount": 0})
        request = BackupRequest("orders", S3Location("backups", "p"), datetime(2026, 12, 5, tzinfo=UTC),
                                read_ratio=1.0, max_workers=2, schedule_period_seconds=DAY)
        with caplog.at_level(logging.WARNING):
            plan_backup(dynamodb, s3, request)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings
    assert warnings[0].startswith("orders (5,000.0 GB, 5,000,000,000 items): the sizing model says an export")
    assert "set max_workers to at least" in warnings[0]


def test_bench_figures_are_read_when_present_else_the_measured_constants(tmp_path):
    path = tmp_path / "bench-per-core.json"
    assert load_per_core(path) is MEASURED
    path.write_text(json.dumps({"per_core": {job: [{"item_bytes": 400, "cpu_s_per_item": 1e-6}]
                                             for job in ("export", "restore", "convert")}}))
    loaded = load_per_core(path)
    assert loaded.export == CpuCost(((400, 1e-6),)) and loaded.source.startswith(str(path))
    path.write_text('{"per_core": {"export": [], "restore": [], "convert": []}}')
    assert load_per_core(path) is MEASURED


def test_cost_per_item_follows_the_measured_shapes_by_item_size():
    cost = CpuCost(((400, 40e-6), (4_000, 400e-6), (100_000, 600e-6)))
    assert cost.per_item(100) == 40e-6  # below the smallest: its cost per item
    assert cost.per_item(4_000) == pytest.approx(400e-6)
    assert cost.per_item(1_265) == pytest.approx(40e-6 * 10 ** 0.5, rel=1e-3)  # halfway on log scales
    assert cost.per_item(400_000) == pytest.approx(2_400e-6)  # above the largest: its cost per byte
    assert cost.seconds(1_000, 4_000_000) == pytest.approx(0.4)


def test_the_docs_page_holds_what_the_model_prints():
    """docs/workers-per-terabyte.md's tables and example come from the model, never typed by hand."""
    from pathlib import Path

    from dynamodb_backup.backup.sizing_table import render

    page = (Path(__file__).resolve().parents[2] / "docs" / "workers-per-terabyte.md").read_text()
    start, end = "<!-- sizing-table:start -->\n", "<!-- sizing-table:end -->"
    assert page[page.index(start) + len(start):page.index(end)] == render(), \
        "regenerate with: PYTHONPATH=plugins python -m dynamodb_backup.backup.sizing_table"
    example = schedule_warning(TableLoad(5 * TB, 5 * 10**9, 40_000.0, 40_000.0), "orders", 2, DAY, 1.0)
    assert example is not None and example in page


def test_the_bench_summary_rows_give_one_point_per_shape(tmp_path):
    """bench/percore.py's docs/bench-per-core.json: our rows on the chosen backend, net of start-up."""
    def row(key, shape_bytes, items, us, backend="ddblocal"):
        return {"backend": backend, "key": key, "phase": "x", "items": items, "bytes": shape_bytes * items,
                "us_per_item": us}
    rows = [row("ours-export", 400, 6000, 50.0), row("ours-export", 4000, 600, 300.0),
            row("ours-export", 400, 6000, 99.0, backend="dynalite"), row("boto3-scan", 400, 6000, 70.0),
            row("ours-export", 0, 0, None), row("ours-restore", 400, 6000, 200.0), row("ours-pitr", 400, 6000, 40.0)]
    path = tmp_path / "bench-per-core.json"
    path.write_text(json.dumps({"summary": rows}))
    loaded = load_per_core(path)
    assert loaded.export == CpuCost(((400, 50e-6), (4000, 300e-6)))
    assert loaded.restore == CpuCost(((400, 200e-6),)) and loaded.convert == CpuCost(((400, 40e-6),))
    assert load_per_core(path, backend="dynalite") is MEASURED  # no restore or conversion rows there
