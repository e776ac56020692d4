"""The benchmark's pure helpers: items, splits, ratios, tables and targets."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.items import make_item, split_range
from bench.measure import Measurement
from bench.report import COLUMNS, markdown_table, ratio, rows, targets, text_table
from bench.verify import sample_indexes
from dynamodb_backup.formats.codec import encode_item, item_size, validate_item


def test_items_are_deterministic_valid_and_about_500_bytes():
    sizes = []
    for i in range(300):
        item = make_item(i)
        assert item == make_item(i)
        validate_item(item)
        encode_item(item)
        sizes.append(item_size(item))
    assert 450 <= sum(sizes) / len(sizes) <= 550
    kinds = {next(iter(v)) for v in make_item(1).values()}
    assert {"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"} <= kinds
    assert len(make_item(3)["big"]["N"]) == 38


@pytest.mark.parametrize(("count", "parts"), [(10, 3), (3, 8), (0, 4), (200_000, 64)])
def test_split_range_covers_everything_once(count, parts):
    runs = split_range(count, parts)
    covered = [i for a, b in runs for i in range(a, b)]
    assert covered == list(range(count))
    assert len(runs) <= max(parts, 1)


def m(name, items=1000, seconds=1.0, rss=100.0, rc=0):
    return Measurement(name=name, items=items, seconds=seconds, cpu_seconds=1.0, peak_rss_mb=rss, returncode=rc)


def test_ratio_and_rows():
    assert ratio(3, 2) == 1.5
    assert ratio(1, 0) is None
    ours = m("ours: export", seconds=0.5)
    ceiling = m("ceiling: raw HTTP scan", seconds=0.25)
    write_ceiling = m("ceiling: raw HTTP BatchWriteItem", seconds=0.5)
    restore = m("ours: restore", seconds=2.0)
    restore.extra["load_items_per_second"] = 1800.0
    body = rows([m("floor"), ours, ceiling, write_ceiling, restore], ours)
    vs_ours, of_ceiling = COLUMNS.index("vs ours"), COLUMNS.index("of ceiling")
    assert body[0][0] == "floor" and body[0][vs_ours] == "0.50x" and body[0][of_ceiling] == "0.25x"
    assert body[1][vs_ours] == "1.00x" and body[1][of_ceiling] == "0.50x"
    assert body[4][of_ceiling] == "0.90x", "a restore against the write ceiling, by its load phase"
    assert "FAILED" in rows([m("x", rc=2)], ours)[0][0]


def test_tables_render_every_row():
    body = [["a", "1"], ["bb", "22"]]
    assert len(text_table(["n", "v"], body).splitlines()) == 4
    assert markdown_table(["n", "v"], body).splitlines()[1] == "|---|---:|"


def test_targets_report_met_and_missed():
    ours = m("ours: export gzip", seconds=0.25)  # 4000/s
    user_run = m("ours: restore gzip, 2 proc, as a user runs it", seconds=1.0)
    user_run.extra["load_items_per_second"] = 800.0
    fast = m("ours: restore gzip, 2 proc, fast flags", seconds=1.0)
    fast.extra["load_items_per_second"] = 950.0
    results = [m("floor: scan", seconds=0.5), ours, m("provider, 4 proc", seconds=2.0),
               m("ceiling: raw HTTP scan", seconds=0.2), m("ceiling: raw HTTP BatchWriteItem", seconds=1.0),
               user_run, fast]
    memory = [m("w", items=100_000, rss=120.0), m("w", items=1_000_000, rss=130.0)]
    got = {t["target"]: t for t in targets(results, memory, ours)}
    assert [t["met"] for t in got.values()] == [True, True, True, False, True, True, True]
    export = next(t for name, t in got.items() if name.startswith("export >= 0.8"))
    assert export["value"] == pytest.approx(0.8)
    none = targets([], [], None)
    assert all(not t["met"] for t in none)


def test_sample_indexes():
    picks = sample_indexes(1000, 50)
    assert len(picks) == 50 and picks[0] == 0 and len(set(picks)) == 50
    assert sample_indexes(0) == []


def test_contenders_run_in_rounds_and_are_compared_round_by_round(tmp_path, monkeypatch):
    import argparse

    from bench.run import Bench, Contender, by_round

    bench = Bench(argparse.Namespace(repeats=3, out=tmp_path), "http://ddb", "http://s3", [])
    order: list[str] = []
    seconds = {"ceiling": [10.0, 20.0, 10.0], "ours": [12.0, 25.0, 11.0]}

    def once(contender, items, attempt):
        order.append(contender.name)
        return Measurement(contender.name, items, seconds[contender.name][attempt], 1.0, 1.0)

    monkeypatch.setattr(bench, "_run_once", once)
    ceiling, ours = bench.run_rounds([Contender("ceiling", []), Contender("ours", [])], 1000)
    assert order == ["ceiling", "ours"] * 3
    assert (ceiling.seconds, ours.seconds) == (10.0, 12.0)  # the median run of each
    assert ours.extra["runs_seconds"] == [12.0, 25.0, 11.0]
    assert by_round(bench.rounds["ours"], bench.rounds["ceiling"], lambda m: m.items_per_second) == [
        0.833, 0.8, 0.909]
