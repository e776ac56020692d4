"""Export records in SQLite: what DescribeExport and ListExports answer, and what a replay matches.

Records outlive their tables (as on AWS); nothing ever deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from local_pitr.database import Database

IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
FAILED = "FAILED"

# A ClientToken is valid for 8 hours after the first request using it completes [reference 3.1].
TOKEN_LIFETIME_US = 8 * 3600 * 1_000_000


@dataclass
class ExportRecord:
    export_arn: str
    client_token: str
    request: dict[str, Any]  # the members a replay must match
    plan: dict[str, Any]  # export_time_us, or from_us/to_us/view: exact integers, unlike the answer's floats
    incarnation: int
    table_id: str
    status: str
    start_us: int
    end_us: int | None
    description: dict[str, Any]  # ExportDescription members, as answered

    @property
    def export_id(self) -> str:
        return self.export_arn.rsplit("/", 1)[1]

    @property
    def table_arn(self) -> str:
        return str(self.description["TableArn"])

    @property
    def export_type(self) -> str:
        return "INCREMENTAL_EXPORT" if "IncrementalExportSpecification" in self.description else "FULL_EXPORT"


_COLUMNS = "export_arn, client_token, request, plan, incarnation, table_id, status, start_us, end_us, description"


def _record(row: tuple[Any, ...]) -> ExportRecord:
    arn, token, request, plan, incarnation, table_id, status, start_us, end_us, description = row
    return ExportRecord(arn, token, orjson.loads(request), orjson.loads(plan), incarnation, table_id, status,
                        start_us, end_us, orjson.loads(description))


class ExportRecords:
    def __init__(self, db: Database) -> None:
        self.db = db

    def insert(self, record: ExportRecord) -> None:
        with self.db.transaction() as conn:
            conn.execute(
                f"INSERT INTO exports ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.export_arn, record.client_token, orjson.dumps(record.request).decode(),
                 orjson.dumps(record.plan).decode(), record.incarnation,
                 record.table_id, record.status, record.start_us, record.end_us,
                 orjson.dumps(record.description).decode()),
            )

    def finish(self, record: ExportRecord, status: str, end_us: int, members: dict[str, Any]) -> ExportRecord:
        """Turn a record terminal (COMPLETED or FAILED) with the members that come with it."""
        record.status = status
        record.end_us = end_us
        record.description = {**record.description, **members, "ExportStatus": status}
        with self.db.transaction() as conn:
            conn.execute("UPDATE exports SET status = ?, end_us = ?, description = ? WHERE export_arn = ?",
                         (status, end_us, orjson.dumps(record.description).decode(), record.export_arn))
        return record

    def get(self, export_arn: str) -> ExportRecord | None:
        with self.db.lock:
            row = self.db.writer.execute(f"SELECT {_COLUMNS} FROM exports WHERE export_arn = ?",
                                         (export_arn,)).fetchone()
        return None if row is None else _record(row)

    def by_token(self, client_token: str, now: int) -> ExportRecord | None:
        """The newest export started with ``client_token`` whose token has not expired."""
        with self.db.lock:
            rows = self.db.writer.execute(
                f"SELECT {_COLUMNS} FROM exports WHERE client_token = ? ORDER BY start_us DESC", (client_token,)
            ).fetchall()
        for row in rows:
            record = _record(row)
            if record.end_us is None or now - record.end_us < TOKEN_LIFETIME_US:
                return record
        return None

    def newest_first(self, table_id: str | None = None) -> list[ExportRecord]:
        """All records (of one table incarnation), newest first: by start time, then ExportArn."""
        query = f"SELECT {_COLUMNS} FROM exports"
        params: tuple[Any, ...] = ()
        if table_id is not None:
            query += " WHERE table_id = ?"
            params = (table_id,)
        with self.db.lock:
            rows = self.db.writer.execute(query + " ORDER BY start_us DESC, export_arn DESC", params).fetchall()
        return [_record(row) for row in rows]

    def in_progress(self) -> list[ExportRecord]:
        with self.db.lock:
            rows = self.db.writer.execute(f"SELECT {_COLUMNS} FROM exports WHERE status = ?", (IN_PROGRESS,)).fetchall()
        return [_record(row) for row in rows]
