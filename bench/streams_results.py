"""The stream bench's results file, ``docs/bench-streams.json``: merging a run into it, and its table again."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

from bench.streams_figures import medians, table


def save(path: Path, result: dict[str, Any]) -> None:
    """Write the run, keeping the lines (and runs) of (backend, settings) pairs this run did not measure."""
    old = json.loads(path.read_text()) if path.exists() else {}
    measured = {(line["backend"], line["config"]) for line in result["summary"]}
    result["summary"] += [line for line in old.get("summary", []) if (line["backend"], line["config"]) not in measured]
    result["rounds"] += [r for r in old.get("rounds", []) if (r["backend"], r["config"]) not in measured]
    this_run = {key: result[key] for key in ("date", "backends", "configs", "calibration", "target_rate", "seconds",
                                             "warmup")}
    result["runs"] = [run for run in old.get("runs", [])
                      if any((b, c) not in measured for b in run["backends"] for c in run["configs"])] + [this_run]
    path.write_text(json.dumps(result, indent=2) + "\n")


def print_saved(path: Path) -> int:
    """The table of a saved run, its summary taken again from its rounds (so a change to the medians shows)."""
    saved = json.loads(path.read_text())
    lines = []
    for line in saved["summary"]:
        rounds = [r for r in saved["rounds"] if (r["backend"], r["config"]) == (line["backend"], line["config"])]
        lines.append({"backend": line["backend"], "config": line["config"], "rate_asked": line["rate_asked"],
                      **medians(rounds)})
    saved["summary"] = lines
    path.write_text(json.dumps(saved, indent=2) + "\n")
    print(table(lines), flush=True)
    return 0


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "system": platform.platform()}
