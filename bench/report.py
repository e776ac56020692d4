"""Tables, ratios, the JSON result file and the chart."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .measure import Measurement

COLUMNS = ("contender", "items", "seconds", "items/s", "CPU s", "server CPU s", "S3 CPU s", "peak RSS MB", "vs ours",
           "of ceiling")


def of_ceiling(m: Measurement, results: Sequence[Measurement]) -> float | None:
    """A contender's rate as a fraction of the server's own ceiling measured in the same run.

    Restores (and writes) against the BatchWriteItem ceiling, by their load phase when they report
    one; everything else against the raw-HTTP scan ceiling.
    """
    writes = "restore" in m.name or "BatchWriteItem" in m.name
    ceiling = _find(results, "ceiling: raw HTTP BatchWriteItem" if writes else "ceiling: raw HTTP scan")
    if ceiling is None or m.returncode != 0:
        return None
    rate = m.extra.get("load_items_per_second") or m.items_per_second
    return ratio(rate, ceiling.items_per_second)


def ratio(value: float, reference: float) -> float | None:
    """``value / reference``, or None when the reference is zero."""
    return value / reference if reference > 0 else None


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def rows(results: Sequence[Measurement], reference: Measurement | None) -> list[list[str]]:
    """One row per result; "vs ours" is that contender's items/s over ``reference``'s."""
    ref = reference.items_per_second if reference else 0.0
    out = []
    for m in results:
        server = "-" if m.server_cpu_seconds is None else f"{m.server_cpu_seconds:.1f}"
        s3 = "-" if m.s3_cpu_seconds is None else f"{m.s3_cpu_seconds:.1f}"
        name = m.name if m.returncode == 0 else f"{m.name} (FAILED rc={m.returncode})"
        out.append([name, f"{m.items:,}", f"{m.seconds:.1f}", f"{m.items_per_second:,.0f}",
                    f"{m.cpu_seconds:.1f}", server, s3, f"{m.peak_rss_mb:.0f}",
                    fmt_ratio(ratio(m.items_per_second, ref)), fmt_ratio(of_ceiling(m, results))])
    return out


def text_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *body]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in
                       enumerate(zip(row, widths, strict=True))) for row in [header, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"
    out = ["| " + " | ".join(header) + " |", rule]
    out += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(out)


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_chart(path: Path, results: Sequence[Measurement], title: str) -> None:
    """A horizontal bar chart of items/s per contender."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [m.name for m in results]
    values = [m.items_per_second for m in results]
    colors = ["#2b8a3e" if m.name.startswith("ours") else "#868e96" for m in results]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(results) + 1.5))
    bars = ax.barh(names[::-1], values[::-1], color=colors[::-1])
    ax.bar_label(bars, labels=[f"{v:,.0f}" for v in values[::-1]], padding=3, fontsize=8)
    ax.set_xlabel("items per second (higher is better)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.15)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _find(results: Sequence[Measurement], prefix: str, contains: str = "") -> Measurement | None:
    for m in results:
        if m.name.startswith(prefix) and contains in m.name and m.returncode == 0:
            return m
    return None


def _target(name: str, value: float | None, goal: float, unit: str = "x") -> dict[str, Any]:
    figure = "not measured" if value is None else f"{value:.2f}{unit} (goal {goal:g}{unit})"
    return {"target": name, "value": value, "goal": goal, "figure": figure,
            "met": value is not None and value >= goal}


def targets(results: Sequence[Measurement], memory: Sequence[Measurement],
            ours: Measurement | None, max_worker_mb: float = 150.0, flat: float = 1.2) -> list[dict[str, Any]]:
    """The issue's targets, each with its measured figure and whether it was met."""
    out = []
    ours_ips = ours.items_per_second if ours and ours.returncode == 0 else 0.0
    floor = _find(results, "floor", "")
    out.append(_target("export >= 1.5x the boto3 floor at equal parallelism",
                       ratio(ours_ips, floor.items_per_second) if floor and ours_ips else None, 1.5))
    provider = _find(results, "provider", "4 proc")
    out.append(_target("export >= 3x the provider operator with 4 segments",
                       ratio(ours_ips, provider.items_per_second) if provider and ours_ips else None, 3.0))
    scan_ceiling = _find(results, "ceiling: raw HTTP scan")
    out.append(_target("export >= 0.8 of the server's scan ceiling (raw HTTP, same parallelism)",
                       ratio(ours_ips, scan_ceiling.items_per_second) if scan_ceiling and ours_ips else None, 0.8))
    write_ceiling = _find(results, "ceiling: raw HTTP BatchWriteItem")
    for label, restore in (("as a user runs it", _find(results, "ours: restore", "as a user runs it")),
                           ("fast flags", _find(results, "ours: restore", "fast flags"))):
        load_ips = restore.extra.get("load_items_per_second") if restore else None
        out.append(_target(f"restore's load phase ({label}) >= 0.9 of the server's write ceiling",
                           ratio(load_ips, write_ceiling.items_per_second) if load_ips and write_ceiling else None,
                           0.9))
    peaks = [m.peak_rss_mb for m in memory if m.returncode == 0]
    peak = max(peaks) if peaks else None
    out.append({"target": f"peak memory per export worker <= {max_worker_mb:g} MB",
                "value": peak, "goal": max_worker_mb,
                "figure": "not measured" if peak is None else
                ", ".join(f"{m.items:,} items: {m.peak_rss_mb:.0f} MB" for m in memory),
                "met": peak is not None and peak <= max_worker_mb})
    if len(peaks) >= 2:
        growth = max(peaks) / min(peaks)
        out.append({"target": f"worker memory flat as the table grows (largest/smallest <= {flat:g})",
                    "value": growth, "goal": flat, "figure": f"{growth:.2f}", "met": growth <= flat})
    return out
