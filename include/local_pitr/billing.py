"""UpdateTable through the stand-in: AWS's limit on switching a table to on-demand.

AWS (developer guide, "Considerations when switching capacity modes"): a table can switch from
provisioned to on-demand up to four times in a 24-hour rolling window, and from on-demand to
provisioned at any time. dynalite and DynamoDB Local switch as often as asked, so a restore that
switches a table (``--load-capacity``) could pass here and fail on AWS. The stand-in counts each
table's switches to on-demand (by TableId, so a re-created table starts afresh, as on AWS) and
refuses the fifth within 24 hours with AWS's error. Every other UpdateTable passes through unchanged.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from local_pitr.database import Database
from local_pitr.tables import incarnation_id, name_from_name_or_arn
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError

SWITCHES_TO_ON_DEMAND_PER_WINDOW = 4
WINDOW_SECONDS = 24 * 3600

SCHEMA = """
CREATE TABLE IF NOT EXISTS billing_switches (
    table_id TEXT NOT NULL,
    switched_us INTEGER NOT NULL      -- when the table was switched to on-demand (epoch microseconds)
);
CREATE INDEX IF NOT EXISTS billing_switches_by_table ON billing_switches (table_id, switched_us);
"""


def limit_message(limit: int = SWITCHES_TO_ON_DEMAND_PER_WINDOW) -> str:
    # AWS's wording for this limit ("Subscriber limit exceeded: Update to PayPerRequest mode are limited
    # to once in 1 day(s).") from before the limit became four switches in a rolling 24 hours.
    return f"Subscriber limit exceeded: Update to PayPerRequest mode are limited to {limit} times in 1 day(s)."


class BillingSwitches:
    """Forwards UpdateTable, refusing a switch to on-demand beyond AWS's limit (``clock``: epoch seconds)."""

    def __init__(self, db: Database, clock: Callable[[], float] = time.time,
                 limit: int = SWITCHES_TO_ON_DEMAND_PER_WINDOW) -> None:
        self.db, self.clock, self.limit = db, clock, limit
        self._lock = threading.Lock()  # a check and the switch it allows are one step
        with db.lock:
            db.writer.executescript(SCHEMA)

    def recent_switches(self, table_id: str) -> int:
        since = int((self.clock() - WINDOW_SECONDS) * 1_000_000)
        with self.db.lock:
            row = self.db.writer.execute(
                "SELECT COUNT(*) FROM billing_switches WHERE table_id = ? AND switched_us > ?",
                (table_id, since)).fetchone()
        return int(row[0])

    def update_table(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        if request.get("BillingMode") != "PAY_PER_REQUEST":
            return upstream.call("UpdateTable", request)
        name = name_from_name_or_arn(str(request.get("TableName") or ""))
        with self._lock:
            table = upstream.call("DescribeTable", {"TableName": name})["Table"]
            billing = (table.get("BillingModeSummary") or {}).get("BillingMode") or "PROVISIONED"
            if billing == "PAY_PER_REQUEST":
                return upstream.call("UpdateTable", request)  # not a switch: the server answers as it would
            if self.recent_switches(incarnation_id(table)) >= self.limit:
                raise ApiError("LimitExceededException", limit_message(self.limit))
            answer = upstream.call("UpdateTable", request)
            with self.db.transaction() as conn:
                conn.execute("INSERT INTO billing_switches (table_id, switched_us) VALUES (?, ?)",
                             (incarnation_id(table), int(self.clock() * 1_000_000)))
            return answer
