"""The stream bench's pure helpers: percentiles, the write rate a round held, S3 requests by kind and per
hour, CPU per record, the goals, the medians of the rounds and the printed table. No I/O.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

#: Issue 23's goals.
RECOVERY_POINT_P99_GOAL_S = 60.0  # "recovery point age ... under 60 s" (checked at p99, the stricter reading)
REPLICA_LAG_P99_GOAL_S = 5.0
#: A round held its rate when it did at least this share of the writes its schedule asked for.
HELD_SHARE = 0.95


def percentile(values: Sequence[float], q: float) -> float | None:
    """The nearest-rank ``q``-th percentile (0 < q <= 100): a value that was really sampled; None when empty."""
    if not values:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"q must be in (0, 100], got {q}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def achieved_rate(writes: int, seconds: float) -> float:
    """Writes per second done over ``seconds``."""
    return writes / seconds if seconds > 0 else 0.0


def rate_held(writes: int, seconds: float, target: float, share: float = HELD_SHARE) -> bool:
    """Whether ``writes`` in ``seconds`` kept up with ``target`` writes/s (at least ``share`` of the schedule)."""
    return target > 0 and writes >= share * target * seconds


def rate_to_hold(target: float, achieved: float, share: float = HELD_SHARE) -> int:
    """The rate a round should ask for: the target when the calibration held it, else 80% of what was
    achieved, rounded down to tens (a margin for the tailer and the replica, which run beside it)."""
    if achieved >= share * target:
        return int(target)
    return max(10, int(achieved * 0.8) // 10 * 10)


def due_writes(elapsed: float, rate: float) -> int:
    """How many writes a schedule of ``rate`` writes/s has asked for after ``elapsed`` seconds."""
    return int(elapsed * rate) if elapsed > 0 else 0


def s3_request_kind(method: str, path: str, query: Mapping[str, Sequence[str]]) -> str:
    """PUT, GET, LIST, HEAD, DELETE or OTHER, as S3 bills them (a GET on the bucket listing objects is a LIST)."""
    key = path.split("?", 1)[0].strip("/").partition("/")[2]
    if method == "PUT":
        return "PUT"
    if method == "GET":
        return "LIST" if not key or "list-type" in query else "GET"
    if method in ("HEAD", "DELETE"):
        return method
    if method == "POST" and "delete" in query:
        return "DELETE"
    return "OTHER"


def per_hour(count: int, seconds: float) -> float | None:
    """A count over ``seconds`` scaled to an hour."""
    return None if seconds <= 0 else count * 3600.0 / seconds


def counts_between(before: Mapping[str, int], after: Mapping[str, int]) -> dict[str, int]:
    """What each counter added between two snapshots (kinds seen in either)."""
    return {kind: after.get(kind, 0) - before.get(kind, 0) for kind in sorted(set(before) | set(after))}


def cpu_us_per_record(cpu_seconds: float, records: int) -> float | None:
    return None if records <= 0 else cpu_seconds * 1e6 / records


def round_figures(*, rp_ages: Sequence[float], lags: Sequence[float]) -> dict[str, float | None]:
    """p50 and p99 of a round's once-a-second samples."""
    return {"recovery_point_age_p50_s": percentile(rp_ages, 50), "recovery_point_age_p99_s": percentile(rp_ages, 99),
            "replica_lag_p50_s": percentile(lags, 50), "replica_lag_p99_s": percentile(lags, 99)}


def goals(figures: Mapping[str, Any]) -> dict[str, bool | None]:
    """Met (True), missed (False), or not measured (None)."""
    def below(key: str, goal: float) -> bool | None:
        value = figures.get(key)
        return None if value is None else value < goal
    return {"recovery_point_age_under_60s": below("recovery_point_age_p99_s", RECOVERY_POINT_P99_GOAL_S),
            "replica_lag_p99_under_5s": below("replica_lag_p99_s", REPLICA_LAG_P99_GOAL_S)}


MEDIAN_KEYS = ("rate_achieved", "recovery_point_age_p50_s", "recovery_point_age_p99_s", "replica_lag_p50_s",
               "replica_lag_p99_s", "status_recovery_point_age_p99_s", "status_replica_lag_p99_s",
               "tail_cpu_us_per_record", "replica_cpu_us_per_record", "tail_s3_per_hour", "replica_s3_per_hour",
               "s3_per_hour")


def medians(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each figure's median over all the rounds (not only those that held their rate: on a shared machine
    that would pick the quiet rounds), with how many held it."""
    out: dict[str, Any] = {"rounds": len(rounds), "rounds_held": sum(bool(r.get("rate_held")) for r in rounds)}
    for key in MEDIAN_KEYS:
        values = [r[key] for r in rounds if r.get(key) is not None]
        out[key] = round(statistics.median(values), 2) if values else None
    out["goals"] = goals(out)
    return out


COLUMNS = [("backend", "backend"), ("settings", "config"), ("writes/s asked", "rate_asked"),
           ("writes/s done", "rate_achieved"), ("held", "rounds_held"), ("RP age p50 s", "recovery_point_age_p50_s"),
           ("RP age p99 s", "recovery_point_age_p99_s"), ("lag p50 s", "replica_lag_p50_s"),
           ("lag p99 s", "replica_lag_p99_s"), ("tail CPU us/rec", "tail_cpu_us_per_record"),
           ("replica CPU us/rec", "replica_cpu_us_per_record"), ("S3 req/h (tail+replica)", "s3_per_hour"),
           ("RP < 60 s", "goal_rp"), ("lag p99 < 5 s", "goal_lag")]


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "met" if value else "MISSED"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def table(lines: Sequence[Mapping[str, Any]]) -> str:
    """A markdown table of the (backend, settings) medians."""
    out = ["| " + " | ".join(title for title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for line in lines:
        row = {**line, "goal_rp": line["goals"]["recovery_point_age_under_60s"],
               "goal_lag": line["goals"]["replica_lag_p99_under_5s"],
               "rounds_held": f"{line['rounds_held']}/{line['rounds']}"}
        out.append("| " + " | ".join(_cell(row.get(key)) for _, key in COLUMNS) + " |")
    return "\n".join(out)
