"""A table with a known history, written in the background while the other end-to-end tests run.

The pitr backfill test needs writes on both sides of three minute boundaries, which takes about
four minutes of wall time; started with the session, that wait overlaps the other tests. The
writer keeps its own record of the table at each boundary: the folders are held against it, not
against the stand-in's journal.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from demo_data import TABLE_SPECS, create_table

TIMESTAMP = "2024-01-01T00:00:00Z"


def next_minute() -> datetime:
    """Wait until the next minute boundary has passed; return it (writes from now on fall after it)."""
    boundary = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    while datetime.now(UTC) <= boundary:
        time.sleep(0.1)
    return boundary


def item(resource: str, version: int) -> dict[str, Any]:
    return {"resource": {"S": resource}, "timestamp": {"S": TIMESTAMP}, "host": {"S": f"h{version % 3}"},
            "version": {"N": str(10 ** 25 + version)}}


class PitrHistory:
    """Writes, updates and deletes between boundaries; ``expected[boundary]`` is the table at it."""

    def __init__(self, ddb: Any, table: str) -> None:
        self.ddb, self.table = ddb, table
        self.state: dict[str, dict[str, Any]] = {}
        self.expected: dict[datetime, dict[str, dict[str, Any]]] = {}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pitr-history", daemon=True)

    def start(self) -> PitrHistory:
        create_table(self.ddb, self.table, TABLE_SPECS["ReferrerCounts"])
        self.ddb.update_continuous_backups(TableName=self.table, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
        self._thread.start()
        return self

    def wait(self, timeout: float = 600.0) -> dict[datetime, dict[str, dict[str, Any]]]:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the history writer did not finish"
        if self.error is not None:
            raise self.error
        return self.expected

    def put(self, resource: str, version: int) -> None:
        self.ddb.put_item(TableName=self.table, Item=item(resource, version))
        self.state[resource] = item(resource, version)

    def delete(self, resource: str) -> None:
        self.ddb.delete_item(TableName=self.table, Key={"resource": {"S": resource}, "timestamp": {"S": TIMESTAMP}})
        self.state.pop(resource, None)

    def boundary(self) -> None:
        moment = next_minute()
        self.expected[moment] = {k: dict(v) for k, v in self.state.items()}

    def _run(self) -> None:
        try:
            next_minute()
            for i in range(40):
                self.put(f"r{i:02d}", 1)
            self.boundary()
            for i in range(0, 10):
                self.put(f"r{i:02d}", 2)       # updated
            for i in range(10, 15):
                self.delete(f"r{i:02d}")       # deleted
            for i in range(40, 50):
                self.put(f"r{i:02d}", 1)       # inserted
            self.boundary()
            for i in range(15, 40):
                self.delete(f"r{i:02d}")
            self.put("r00", 3)
            self.put("r12", 1)                 # deleted, then back
            self.boundary()
            self.put("r99", 1)                 # after the last boundary: in no folder
            for i in range(0, 5):
                self.delete(f"r{i:02d}")
            # One boundary more before the DAG is registered, so the scheduler's own runs (every
            # minute) start after the dates the backfill covers and never take them.
            next_minute()
        except BaseException as exc:  # handed to the test by wait()
            self.error = exc
