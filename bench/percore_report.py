"""The per-core bench's figures: medians of the rounds, start-up taken out, ratios and the goals.

Everything here works on the plain records the bench keeps (one dict per run), so the JSON file
can be summarised again without running anything: ``python -m bench.percore_report FILE``.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from .treecpu import better_by, mb_per_cpu_second, median, net_of_startup, per_item_us

Key = tuple[str, str, str, str]  # backend, shape, phase, contender

#: Ratios reported per backend and shape: (label, phase, ours, theirs).
PEER_RATIOS = [
    ("export: ours vs DDBExport.py", "export", "ours-export", "ddbexport"),
    ("export: ours vs dynamodump", "export", "ours-export", "dynamodump-backup"),
    ("export: ours vs provider (default)", "export", "ours-export", "provider"),
    ("export: ours vs provider (typed)", "export", "ours-export", "provider-typed"),
    ("export: ours vs bare boto3 scan", "export", "ours-export", "boto3-scan"),
    ("restore: ours vs DDBImport.py", "restore", "ours-restore", "ddbimport"),
    ("restore: ours vs dynamodump", "restore", "ours-restore", "dynamodump-restore"),
    ("restore: ours vs bare boto3 batch_write", "restore", "ours-restore", "boto3-write"),
]
ROUGH = 0.6  # a run whose start-up was more than this share of its CPU gives a rough per-item figure
CEILINGS = [("export / raw scan ceiling (items/s, same round)", "export", "ours-export", "ceiling-scan"),
            ("restore start to end incl. verify / raw write ceiling", "restore", "ours-restore", "ceiling-write")]


def ok(record: dict[str, Any]) -> bool:
    return bool(record.get("ok"))


def group(records: Iterable[dict[str, Any]]) -> dict[Key, list[dict[str, Any]]]:
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        groups[(r["backend"], r["shape"], r["phase"], r["key"])].append(r)
    return groups


def summarise(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per backend, shape, phase and contender: medians of its successful rounds, net of start-up."""
    groups = group(records)
    startup = {(b, p, k): median([r["cpu_seconds"] for r in runs if ok(r)])
               for (b, s, p, k), runs in groups.items() if s == "empty"}
    rows = []
    for (backend, shape, phase, key), runs in groups.items():
        good = [r for r in runs if ok(r)]
        cpu = median([r["cpu_seconds"] for r in good])
        net = net_of_startup(cpu, startup.get((backend, phase, key))) if shape != "empty" else cpu
        items, nbytes = runs[0]["items_expected"], runs[0]["bytes"]
        rows.append({
            "backend": backend, "shape": shape, "phase": phase, "key": key, "label": runs[0]["label"],
            "rounds": len(runs), "ok_rounds": len(good), "items": items, "bytes": nbytes,
            "cpu_seconds": _round(cpu, 3), "startup_cpu_seconds": _round(startup.get((backend, phase, key)), 3),
            "net_cpu_seconds": _round(net, 3),
            # Above 0.6 the run was mostly starting up: its per-item figure is a rough one.
            "startup_share": _round(1 - net / cpu, 2) if cpu and net is not None and shape != "empty" else None,
            "us_per_item": _round(per_item_us(net, items), 1),
            "mb_per_cpu_second": _round(mb_per_cpu_second(nbytes, net), 2),
            "gross_us_per_item": _round(per_item_us(cpu, items), 1),
            "seconds": _round(median([r["seconds"] for r in good]), 2),
            "items_per_second": _round(median([r["items_expected"] / r["seconds"] for r in good
                                               if r["seconds"] > 0]), 1),
            "server_cpu_seconds": _round(median([r["server_cpu_seconds"] for r in good
                                                 if r.get("server_cpu_seconds") is not None]), 2),
            "note": next((r["note"] for r in runs if r.get("note")), ""),
            "fidelity": next((r["fidelity"] for r in runs if r.get("fidelity")), None),
        })
    return rows


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _row(rows: Sequence[dict[str, Any]], backend: str, shape: str, key: str) -> dict[str, Any] | None:
    return next((r for r in rows if (r["backend"], r["shape"], r["key"]) == (backend, shape, key)), None)


def ratios(rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ours against each peer (their CPU per item over ours), and ours against the server's ceilings."""
    out = []
    for backend, shape in sorted({(r["backend"], r["shape"]) for r in rows if r["shape"] != "empty"}):
        for label, _phase, ours, theirs in PEER_RATIOS:
            a, b = _row(rows, backend, shape, ours), _row(rows, backend, shape, theirs)
            if a is None or b is None:
                continue
            value = better_by(b["us_per_item"], a["us_per_item"]) if b["ok_rounds"] else None
            rough = any((x.get("startup_share") or 0) > ROUGH for x in (a, b))
            out.append({"backend": backend, "shape": shape, "ratio": label, "value": _round(value, 2),
                        "rough": rough, "fidelity": b["fidelity"],
                        "why_missing": "" if value is not None else (b["note"] or "no successful round")})
        for variant in sorted({r["key"] for r in rows if "@" in r["key"] and r["backend"] == backend}):
            base, name = variant.split("@", 1)
            a, b = _row(rows, backend, shape, base), _row(rows, backend, shape, variant)
            if a is not None and b is not None:
                value = better_by(b["us_per_item"], a["us_per_item"])
                out.append({"backend": backend, "shape": shape, "ratio": f"{base}: now vs {name} (CPU per item)",
                            "value": _round(value, 2), "rough": any((x.get("startup_share") or 0) > ROUGH
                                                                    for x in (a, b)),
                            "why_missing": "" if value is not None else "no successful round"})
        for label, phase, ours, ceiling in CEILINGS:
            for net in (False, True):
                by_round = of_ceiling_by_round(records, backend, shape, phase, ours, ceiling, net=net)
                if by_round:
                    out.append({"backend": backend, "shape": shape,
                                "ratio": label + (", net of start-up" if net else ""),
                                "value": _round(median(by_round), 3), "by_round": by_round, "why_missing": ""})
    return out


def of_ceiling_by_round(records: Sequence[dict[str, Any]], backend: str, shape: str, phase: str,
                        ours: str, ceiling: str, net: bool = False) -> list[float]:
    """Each round's items/s of ours over the ceiling's in the same round (wall time: the server is the limit).

    ``net``: each side's seconds less its own median seconds on the empty table (its start-up).
    """
    def startup(key: str) -> float:
        runs = [r["seconds"] for r in records if (r["backend"], r["shape"], r["phase"], r["key"])
                == (backend, "empty", phase, key) and ok(r)]
        return (median(runs) or 0.0) if net else 0.0

    def rate(key: str, rnd: int) -> float | None:
        r = next((r for r in records if (r["backend"], r["shape"], r["phase"], r["key"], r["round"])
                  == (backend, shape, phase, key, rnd) and ok(r)), None)
        seconds = r["seconds"] - startup(key) if r else 0.0
        return r["items_expected"] / seconds if r and seconds > 0 else None

    rounds = sorted({r["round"] for r in records if r["backend"] == backend})
    pairs = [(rate(ours, n), rate(ceiling, n)) for n in rounds]
    return [round(a / b, 3) for a, b in pairs if a and b]


def goals(rows: Sequence[dict[str, Any]], table: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Issue 24's goals, each with its figure per backend and shape, met or missed."""
    out = []

    def ratio_goal(name: str, label: str, goal: float, shapes: Iterable[str]) -> None:
        for r in table:
            if r["ratio"] == label and r["shape"] in shapes:
                out.append({"goal": name, "backend": r["backend"], "shape": r["shape"], "value": r["value"],
                            "target": goal, "met": r["value"] is not None and r["value"] >= goal,
                            "note": r.get("why_missing", "")})

    every = ("small", "wide", "large")
    ratio_goal("export >= 2x DDBExport-style per core", "export: ours vs DDBExport.py", 2.0, every)
    ratio_goal("restore >= 2x DDBImport.py per core", "restore: ours vs DDBImport.py", 2.0, every)
    ratio_goal("restore >= 2x dynamodump per core", "restore: ours vs dynamodump", 2.0, every)
    ratio_goal("export >= 0.8 of the raw scan ceiling", CEILINGS[0][0], 0.8, ("small",))
    ratio_goal("restore (start to end, verify) >= 0.8 of the raw write ceiling", CEILINGS[1][0], 0.8, ("small",))
    for name, key, goal in (("export on large items >= 128 MB per CPU-second", "ours-export", 128.0),
                            ("PITR conversion on large items >= 150 MB per CPU-second", "ours-pitr", 150.0)):
        for r in rows:
            if r["key"] == key and r["shape"] == "large":
                value = r["mb_per_cpu_second"]
                out.append({"goal": name, "backend": r["backend"], "shape": "large", "value": value,
                            "target": goal, "met": value is not None and value >= goal, "note": r["note"]})
    return out


def _inexact(fidelity: str | None) -> bool:
    return bool(fidelity) and not str(fidelity).endswith("exact")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return str(value)


def markdown(rows: Sequence[dict[str, Any]], table: Sequence[dict[str, Any]], goal_list: Sequence[dict[str, Any]]
             ) -> str:
    """The figures as Markdown tables: per contender, the ratios, the goals."""
    out = ["| backend | shape | phase | contender | µs CPU/item | MB per CPU-s | CPU s (gross) | start-up CPU s "
           "| wall s | rounds ok | fidelity / why not |", "|---|---|---|---|---:|---:|---:|---:|---:|---:|---|"]
    order = {"empty": 0, "small": 1, "wide": 2, "large": 3}
    for r in sorted(rows, key=lambda r: (r["backend"], order.get(r["shape"], 9), r["phase"])):
        if r["shape"] == "empty":
            continue
        why = r["fidelity"] or ""
        if r["ok_rounds"] < r["rounds"] or not r["ok_rounds"]:
            why = (why + "; " if why else "") + (r["note"] or "failed")
        mark = "~" if (r.get("startup_share") or 0) > ROUGH else ""
        out.append(f"| {r['backend']} | {r['shape']} | {r['phase']} | {r['label']} | {mark}{_cell(r['us_per_item'])} | "
                   f"{_cell(r['mb_per_cpu_second'])} | {_cell(r['cpu_seconds'])} | {_cell(r['startup_cpu_seconds'])} "
                   f"| {_cell(r['seconds'])} | {r['ok_rounds']}/{r['rounds']} | {why.replace('|', '/')} |")
    out += ["", "| backend | shape | ratio | value |", "|---|---|---|---:|"]
    out += [f"| {r['backend']} | {r['shape']} | {r['ratio']} | {'~' if r.get('rough') and r['value'] else ''}"
            f"{_cell(r['value']) + ('x' if r['value'] is not None and 'ceiling' not in r['ratio'] else '')}"
            f"{' (' + r['why_missing'].replace('|', '/') + ')' if r['why_missing'] else ''}"
            f"{' (theirs: ' + r['fidelity'].replace('|', '/') + ')' if _inexact(r.get('fidelity')) else ''} |"
            for r in table]
    out += ["", "| goal | backend | shape | figure | met |", "|---|---|---|---:|---|"]
    out += [f"| {g['goal']} | {g['backend']} | {g['shape']} | {_cell(g['value'])} | "
            f"{'yes' if g['met'] else 'no'} |" for g in goal_list]
    return "\n".join(out)


def compact(rows: Sequence[dict[str, Any]], backend: str) -> str:
    """One backend's contenders as one line each: CPU per item (and MB per CPU-second) on each shape."""
    shapes = [sh for sh in ("small", "wide", "large") if any(r["shape"] == sh for r in rows)]
    out = ["| phase | contender | " + " | ".join(f"{sh}: µs/item (MB/CPU-s)" for sh in shapes) + " |",
           "|---|---|" + "---:|" * len(shapes)]
    seen: list[tuple[str, str]] = []
    for r in rows:
        if r["backend"] == backend and r["shape"] != "empty" and (r["phase"], r["key"]) not in seen:
            seen.append((r["phase"], r["key"]))
    order = {"export": 0, "restore": 1, "pitr": 2}
    for phase, key in sorted(seen, key=lambda pk: order.get(pk[0], 9)):
        cells = []
        for sh in shapes:
            found = _row(rows, backend, sh, key)
            if found is None:
                cells.append("")
            elif found["us_per_item"] is None:
                cells.append("cannot" if found["ok_rounds"] == 0 else "-")
            else:
                mark = "~" if (found.get("startup_share") or 0) > ROUGH else ""
                flag = " ≠" if _inexact(found.get("fidelity")) else ""
                cells.append(f"{mark}{_cell(found['us_per_item'])} ({_cell(found['mb_per_cpu_second'])}){flag}")
        label = next(r["label"] for r in rows if r["key"] == key)
        out.append(f"| {phase} | {label} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def combine(datasets: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records of several runs, each contender's (per backend, shape and phase) from the last run that has
    a successful round of it: e.g. a later run of ours only, beside an earlier run's peers. Each record
    keeps its run's ``when`` and ``label``."""
    chosen: dict[Key, list[dict[str, Any]]] = {}
    for data in datasets:
        for key, runs in group(data["records"]).items():
            if any(ok(r) for r in runs) or key not in chosen:
                chosen[key] = [dict(r, run_when=data.get("when"), run_label=data.get("label", "")) for r in runs]
    return [r for runs in chosen.values() for r in runs]


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.percore_report FILE [LATER_FILE ...]``: the tables of one run, or of runs combined."""
    datasets = []
    for path in argv if argv is not None else sys.argv[1:]:
        with open(path) as f:
            datasets.append(json.load(f))
    records = combine(datasets)
    rows = summarise(records)
    table = ratios(rows, records)
    print(markdown(rows, table, goals(rows, table)))
    return 0
