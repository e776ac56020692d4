"""The benchmark's pure helpers: items, splits, ratios, tables and targets; and the per-core bench's:
a process tree's CPU, medians of the rounds, net of start-up, ratios against peers and ceilings, goals.

The CPU checks burn a known amount of CPU time (``time.process_time``, not the clock) in a child,
a grandchild and an orphaned grandchild, and require the tree's total to hold all of it: they
depend on the kernel's accounting, not on the machine's speed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench import percore_report
from bench.fidelity import first_difference
from bench.items import make_item, split_range
from bench.measure import Measurement
from bench.percore_contenders import failure_line
from bench.report import COLUMNS, markdown_table, ratio, rows, targets, text_table
from bench.shapes import make_item as shape_item
from bench.treecpu import CpuTimes, better_by, cpu_delta, mb_per_cpu_second, median, net_of_startup, per_item_us
from bench.verify import sample_indexes
from dynamodb_backup.formats.codec import encode_item, item_size, validate_item

REPO = Path(__file__).resolve().parents[2]


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


# ---- the per-core bench (bench/percore.py) ----

BURN = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"


def _run_in_fresh_process(script: str) -> dict:
    """Run ``script`` (which prints one JSON line) in its own interpreter: a subreaper must not be pytest."""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_cpu_delta_is_user_and_system_added_between_readings() -> None:
    before = SimpleNamespace(ru_utime=1.5, ru_stime=0.25)
    after = SimpleNamespace(ru_utime=4.0, ru_stime=0.75)
    assert cpu_delta(before, after) == CpuTimes(user=2.5, system=0.5)
    assert cpu_delta(before, after).total == 3.0
    assert cpu_delta(after, before) == CpuTimes(0.0, 0.0)  # never negative


def test_run_tree_counts_a_grandchild_that_was_waited_for() -> None:
    grandchild = BURN.format(s=0.4)
    child = (f"import subprocess, sys\n{BURN.format(s=0.2)}"
             f"subprocess.run([sys.executable, '-c', {grandchild!r}], check=True)\n")
    result = _run_in_fresh_process(textwrap.dedent(f"""
        import json, sys
        from bench.treecpu import become_subreaper, run_tree
        become_subreaper()
        run = run_tree([sys.executable, '-c', {child!r}])
        print(json.dumps({{"cpu": run.cpu.total, "rc": run.returncode, "orphans": run.orphans}}))
    """))
    assert result["rc"] == 0
    assert result["orphans"] == 0
    assert result["cpu"] >= 0.6  # both burns (0.2 + 0.4 CPU-seconds), whatever the clock did


def test_run_tree_adopts_and_counts_an_orphaned_grandchild() -> None:
    # The child starts a grandchild and exits without waiting: the grandchild is orphaned mid-burn.
    orphan = "import time\ntime.sleep(0.3)\n" + BURN.format(s=0.5)
    child = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {orphan!r}])\n"
    result = _run_in_fresh_process(textwrap.dedent(f"""
        import json, sys
        from bench.treecpu import become_subreaper, run_tree
        reaper = become_subreaper()
        run = run_tree([sys.executable, '-c', {child!r}])
        print(json.dumps({{"cpu": run.cpu.total, "orphans": run.orphans, "killed": run.orphans_killed,
                           "reaper": reaper}}))
    """))
    if not result["reaper"]:
        pytest.skip("PR_SET_CHILD_SUBREAPER is Linux-only")
    assert result["orphans"] == 1  # it really was orphaned, and adopted
    assert result["killed"] == 0
    assert result["cpu"] >= 0.5  # its burn is in the tree's total


def test_run_tree_without_the_subreaper_loses_the_orphan() -> None:
    """The same orphan without PR_SET_CHILD_SUBREAPER: init reaps it and its CPU is missing (why the bench sets it)."""
    orphan = "import time\ntime.sleep(0.3)\n" + BURN.format(s=0.5)
    child = f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', {orphan!r}])\n"
    result = _run_in_fresh_process(textwrap.dedent(f"""
        import json, sys
        from bench.treecpu import run_tree
        run = run_tree([sys.executable, '-c', {child!r}])
        print(json.dumps({{"cpu": run.cpu.total, "orphans": run.orphans}}))
    """))
    assert result["orphans"] == 0
    assert result["cpu"] < 0.5


def test_median_of_three_is_the_middle_value() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([5.0, 100.0, 4.0]) == 5.0  # one noisy round does not move it
    assert median([2.0]) == 2.0
    assert median([]) is None


def test_per_item_and_per_mb() -> None:
    assert per_item_us(1.5, 50_000) == pytest.approx(30.0)
    assert per_item_us(1.0, 0) is None
    assert per_item_us(None, 10) is None
    assert mb_per_cpu_second(12_000_000, 0.1) == pytest.approx(120.0)
    assert mb_per_cpu_second(12_000_000, 0.0) is None


def test_net_of_startup_takes_out_the_empty_tables_cpu() -> None:
    assert net_of_startup(3.0, 0.8) == pytest.approx(2.2)
    assert net_of_startup(3.0, None) == 3.0
    assert net_of_startup(1.0, 5.0) == pytest.approx(0.1)  # never below a tenth of the run
    assert net_of_startup(None, 1.0) is None


def test_better_by_is_theirs_over_ours() -> None:
    assert better_by(110.0, 36.0) == pytest.approx(110 / 36)
    assert better_by(None, 36.0) is None
    assert better_by(10.0, 0.0) is None


def _record(backend: str, shape: str, phase: str, key: str, rnd: int, cpu: float, seconds: float,
            items: int = 1000, nbytes: int = 4_000_000, ok: bool = True, note: str = "") -> dict:
    return {"backend": backend, "shape": shape, "phase": phase, "key": key, "label": key, "round": rnd,
            "items_expected": items, "items_done": items if ok else 0, "bytes": nbytes, "seconds": seconds,
            "cpu_seconds": cpu, "server_cpu_seconds": None, "ok": ok, "note": note, "fidelity": None}


def _records() -> list[dict]:
    out = [_record("b", "empty", "export", "ours-export", 1, 0.5, 1.0, items=0, nbytes=0),
           _record("b", "empty", "export", "ddbexport", 1, 1.0, 1.0, items=0, nbytes=0)]
    for rnd, (ours, theirs, ours_s, ceiling_s) in enumerate([(1.5, 5.0, 2.0, 1.0), (1.6, 5.2, 2.2, 2.0),
                                                             (9.0, 4.8, 2.1, 1.5)], start=1):
        out += [_record("b", "small", "export", "ours-export", rnd, ours, ours_s),
                _record("b", "small", "export", "ddbexport", rnd, theirs, 3.0),
                _record("b", "small", "export", "ceiling-scan", rnd, 0.1, ceiling_s)]
    out.append(_record("b", "wide", "export", "ddbexport", 1, 3.0, 3.0, ok=False, note="TypeError"))
    out.append(_record("b", "wide", "export", "ours-export", 1, 2.0, 3.0))
    return out


def test_summary_takes_medians_net_of_startup() -> None:
    rows = percore_report.summarise(_records())
    ours = next(r for r in rows if (r["shape"], r["key"]) == ("small", "ours-export"))
    assert ours["cpu_seconds"] == 1.6  # the median round; the 9.0 s outlier is left out
    assert ours["net_cpu_seconds"] == pytest.approx(1.1)  # less its 0.5 s on the empty table
    assert ours["us_per_item"] == pytest.approx(1100.0)
    assert ours["mb_per_cpu_second"] == round(4.0 / 1.1, 2)
    failed = next(r for r in rows if (r["shape"], r["key"]) == ("wide", "ddbexport"))
    assert failed["ok_rounds"] == 0 and failed["us_per_item"] is None and failed["note"] == "TypeError"


def test_ratio_table_against_peers_and_ceilings() -> None:
    records = _records()
    rows = percore_report.summarise(records)
    table = percore_report.ratios(rows, records)
    peer = next(r for r in table if r["shape"] == "small" and r["ratio"] == "export: ours vs DDBExport.py")
    assert peer["value"] == pytest.approx(round(4.0 / 1.1, 2))  # (5.0 - 1.0) / (1.6 - 0.5)
    ceiling = next(r for r in table if r["shape"] == "small" and r["ratio"].startswith("export / raw scan"))
    assert ceiling["by_round"] == [0.5, 0.909, 0.714]  # each round's ours over its own ceiling
    assert ceiling["value"] == 0.714
    missing = next(r for r in table if r["shape"] == "wide" and r["ratio"] == "export: ours vs DDBExport.py")
    assert missing["value"] is None and missing["why_missing"] == "TypeError"
    goals = percore_report.goals(rows, table)
    by = {(g["goal"], g["shape"]): g for g in goals}
    assert by[("export >= 2x DDBExport-style per core", "small")]["met"] is True
    assert by[("export >= 2x DDBExport-style per core", "wide")]["met"] is False
    assert by[("export >= 0.8 of the raw scan ceiling", "small")]["met"] is False
    text = percore_report.markdown(rows, table, goals)
    assert "| b | small | export: ours vs DDBExport.py | 3.64x |" in text


def test_first_difference_names_the_path_and_compares_numbers_by_value() -> None:
    item = shape_item("wide", 3)
    same = json.loads(json.dumps(item))
    same["seq"] = {"N": item["seq"]["N"] + ".0"}  # 3.0 is 3
    assert first_difference(item, same) is None
    rounded = json.loads(json.dumps(item))
    ratio = rounded["doc"]["M"]["section00"]["M"]["ratio"]
    ratio["N"] = repr(float(ratio["N"]))  # what a float-based JSON tool writes back
    assert first_difference(item, rounded).startswith("doc.section00.ratio: ")
    small = shape_item("small", 1)
    as_list = dict(small, tags={"L": [{"S": s} for s in small["tags"]["SS"]]})
    assert first_difference(small, as_list) == f"tags: SS -> L ({as_list['tags']['L']!r})"[:len("tags: SS -> L (")] \
        + first_difference(small, as_list)[len("tags: SS -> L ("):]
    assert first_difference(small, {k: v for k, v in small.items() if k != "gone"}) == "gone: missing"


def test_failure_line_names_the_exception_and_where(tmp_path: Path) -> None:
    log = tmp_path / "peer.log"
    log.write_text('Traceback (most recent call last):\n  File "DDBExport.py", line 80, in decimal_default\n'
                   "    raise TypeError\nTypeError\n2026-12-05T10:14:18 All done.\n")
    assert failure_line(log) == "TypeError (raised in decimal_default)"
    log.write_text("all fine\n")
    assert failure_line(log) == ""


def test_shapes_are_about_the_sizes_they_are_named_for() -> None:
    from bench.shapes import shape_bytes

    kinds = {next(iter(v)) for v in shape_item("small", 1).values()}
    assert {"S", "N", "B", "SS", "NS", "BS", "M", "L", "BOOL", "NULL"} <= kinds
    assert shape_item("wide", 7) == shape_item("wide", 7)
    assert shape_bytes("small", 3) == sum(item_size(shape_item("small", i)) for i in range(3))
    assert 350 <= item_size(shape_item("small", 0)) <= 450
    assert 3500 <= item_size(shape_item("wide", 0)) <= 4500
    assert item_size(shape_item("large", 0)) >= 100_000


def test_combined_runs_take_each_contender_from_the_last_run_that_did_it() -> None:
    earlier = {"when": "a", "label": "zlib", "records": _records()}
    later_ours = [_record("b", "small", "export", "ours-export", rnd, 0.9, 1.0) for rnd in (1, 2, 3)]
    later_failed_peer = [_record("b", "small", "export", "ddbexport", 1, 1.0, 1.0, ok=False, note="x")]
    later = {"when": "b", "label": "isal", "records": later_ours + later_failed_peer}
    combined = percore_report.combine([earlier, later])
    ours = [r for r in combined if (r["shape"], r["key"]) == ("small", "ours-export")]
    assert [r["cpu_seconds"] for r in ours] == [0.9, 0.9, 0.9] and {r["run_label"] for r in ours} == {"isal"}
    peer = [r for r in combined if (r["shape"], r["key"]) == ("small", "ddbexport")]
    # a later failed run does not hide an earlier successful one
    assert len(peer) == 3 and all(r["ok"] and r["run_label"] == "zlib" for r in peer)


def test_peak_rss_is_the_childs_own_not_this_process_carried_across_exec() -> None:
    """ru_maxrss of an exec'd child carries its parent's peak; the sampled VmHWM does not."""
    from bench.measure import run_measured

    ballast = bytearray(400 * 1024 * 1024)  # this process grows past 400 MB before it starts the children
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touch every page, so it is resident
    small = run_measured("small", [sys.executable, "-c", "import time; time.sleep(0.5)"], 0)
    grows = run_measured("grows", [sys.executable, "-c",
                                   "import time; b = bytearray(150 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]);"
                                   " time.sleep(0.5)"], 0)
    del ballast
    assert small.peak_rss_mb < 100  # an interpreter alone; ru_maxrss said 400+ here
    assert 150 <= grows.peak_rss_mb < 300
