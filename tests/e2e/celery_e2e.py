"""Helpers of the Celery end-to-end test: task instances over REST, waits on events, digests, memory."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


def quoted(run_id: str) -> str:
    return urllib.parse.quote(run_id, safe="")


def mapped(af: Any, dag_id: str, run_id: str, task_id: str) -> list[dict[str, Any]]:
    """The mapped task instances of ``task_id`` (``listMapped``), with their ``hostname``."""
    body = af.api("GET", f"/dags/{dag_id}/dagRuns/{quoted(run_id)}/taskInstances/{task_id}/listMapped?limit=100")
    tis: list[dict[str, Any]] = body["task_instances"]
    return tis


def tries(af: Any, dag_id: str, run_id: str, task_id: str, map_index: int = -1) -> list[dict[str, Any]]:
    """Every try of one task instance (the current one included), oldest first."""
    body = af.api("GET", f"/dags/{dag_id}/dagRuns/{quoted(run_id)}/taskInstances/{task_id}/{map_index}/tries")
    found: list[dict[str, Any]] = sorted(body["task_instances"], key=lambda ti: ti["try_number"])
    return found


def all_tries(af: Any, dag_id: str, run_id: str) -> list[dict[str, Any]]:
    """Every try of every task instance of a run (hostname, state, try_number, task_id, map_index)."""
    found = []
    for ti in af.task_instances(dag_id, run_id):
        found.extend(tries(af, dag_id, run_id, ti["task_id"], ti["map_index"]))
    return found


@dataclass
class MemoryPeak:
    """The largest resident memory of the stack seen by any wait (sampled as it polls)."""

    sample: Callable[[], float]
    peak_mb: float = 0.0
    samples: int = 0

    def __call__(self) -> None:
        value = self.sample()
        self.samples += 1
        self.peak_mb = max(self.peak_mb, value)


def wait_for(what: str, check: Callable[[], T | None], timeout: float, tick: Callable[[], None] | None = None,
             every: float = 0.5) -> T:
    """Poll ``check`` until it returns something; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if tick is not None:
            tick()
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


