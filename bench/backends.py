"""``make bench`` against each local DynamoDB server: AWS's DynamoDB Local and dynalite.

For each backend named by ``--backends`` the bench starts that server as the tests run it
(dynalite with its data kept in ``.state/bench``, so a seeded table is reused; DynamoDB Local in
memory, seeded afresh: with ``-dbPath`` its writes are about ten times slower, its SQLite file
synced at every write), runs its contenders against it, and this module draws the line across
them: the server's own scan and write ceilings (raw HTTP, medians of the repeats), our export and
restore against each ceiling (the median of the per-round ratios), and how long the server takes
to answer its first ListTables after it was started, on an empty database (the tests' case) and
as the bench started it.

    python -m bench.backends startup [--repeats 5]    # start-up times only, nothing else
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "include") not in sys.path:
    sys.path.insert(0, str(REPO / "include"))

from local_aws import BACKENDS, DDBLOCAL, LocalServer, free_port, start_backend  # noqa: E402

from .measure import Measurement  # noqa: E402

#: The contenders a backend after the first runs: the server's ceilings and ours against them.
CORE_ONLY_SKIP = frozenset({"floor", "provider", "dynamodump", "memory", "identity", "rate", "pitr", "asof"})

SCAN_CEILING = "ceiling: raw HTTP scan"
WRITE_CEILING = "ceiling: raw HTTP BatchWriteItem"
OUR_EXPORT = "ours: export gzip"
OUR_RESTORE = "ours: restore gzip"  # both restore rows: as a user runs it, and with the fast flags


def parse_backends(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise SystemExit(f"--backends {text!r}: name one or more of {', '.join(BACKENDS)}")
    return names


def start_for_bench(backend: str, state: Path, timeout: float = 180.0) -> tuple[LocalServer, float]:
    """The backend as the tests run it (dynalite's data kept in ``state``: a big kept database opens
    slowly; DynamoDB Local in memory), and its start-up seconds."""
    options: dict[str, Any] = {"in_memory": True} if backend == DDBLOCAL else {}
    started = time.perf_counter()
    server = start_backend(backend, free_port(), state, timeout=timeout, **options)
    return server, time.perf_counter() - started


def startup_seconds(backend: str, repeats: int = 3) -> list[float]:
    """Seconds from spawning ``backend`` on an empty database to its first answer (ListTables), each repeat."""
    times = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix=f"bench-start-{backend}-") as state:
            started = time.perf_counter()
            server = start_backend(backend, free_port(), Path(state))
            times.append(round(time.perf_counter() - started, 3))
            server.stop()
    return times


def _first(results: list[Measurement], prefix: str) -> Measurement | None:
    return next((m for m in results if m.name.startswith(prefix) and m.returncode == 0), None)


def summary(backend: str, results: list[Measurement], kept_startup: float) -> dict[str, Any]:
    """One backend's line: ceilings, ours, ours over the ceiling (median of the rounds), start-up."""
    line: dict[str, Any] = {"backend": backend, "startup_bench_seconds": round(kept_startup, 2)}
    for key, prefix in (("scan_ceiling", SCAN_CEILING), ("write_ceiling", WRITE_CEILING), ("export", OUR_EXPORT)):
        m = _first(results, prefix)
        line[f"{key}_items_per_second"] = round(m.items_per_second) if m else None
        if m and "of_ceiling_by_round" in m.extra:
            line["export_of_scan_ceiling"] = _median(m.extra["of_ceiling_by_round"])
    restores = [m for m in results if m.name.startswith(OUR_RESTORE) and m.returncode == 0]
    for m in restores:
        key = "restore_fast" if "fast flags" in m.name else "restore_as_user"
        line[f"{key}_load_items_per_second"] = m.extra.get("load_items_per_second")
        line[f"{key}_of_write_ceiling"] = _median(m.extra.get("of_ceiling_by_round") or [])
    return line


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


COLUMNS = [
    ("backend", "backend"), ("start s (empty)", "startup_empty_seconds_median"),
    ("start s (bench's)", "startup_bench_seconds"), ("scan ceiling items/s", "scan_ceiling_items_per_second"),
    ("our export items/s", "export_items_per_second"), ("export / scan ceiling", "export_of_scan_ceiling"),
    ("write ceiling items/s", "write_ceiling_items_per_second"),
    ("our restore load items/s (fast flags)", "restore_fast_load_items_per_second"),
    ("restore / write ceiling (fast)", "restore_fast_of_write_ceiling"),
    ("restore / write ceiling (as a user runs it)", "restore_as_user_of_write_ceiling"),
]


def table(lines: list[dict[str, Any]]) -> str:
    """A markdown table of the backends' lines (``-`` where a figure is missing)."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:,}" if isinstance(value, int) else str(value)

    out = ["| " + " | ".join(title for title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(cell(line.get(key)) for _, key in COLUMNS) + " |" for line in lines]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("verb", choices=["startup"])
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    for backend in parse_backends(args.backends):
        times = startup_seconds(backend, args.repeats)
        print(f"{backend}: start-up to first answer on an empty database {statistics.median(times):.2f} s "
              f"(median of {times})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
