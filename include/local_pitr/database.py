"""The stand-in's SQLite file under ``--state-dir``: schema, one writer, short-lived readers.

WAL mode so the export threads read a stable snapshot while requests keep writing, and
``synchronous=OFF`` (it halves the cost of journaling a write): a killed stand-in loses nothing,
since every commit is in the OS's hands before the client gets its answer; a power cut or an OS
crash could lose or damage the journal, which a local stand-in can afford.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA = """
-- One row per incarnation of a table the journal follows (created through the stand-in,
-- or taken over with a baseline when PITR was enabled). A deleted table keeps its row,
-- marked deleted, only until no running export needs its history.
CREATE TABLE IF NOT EXISTS tables (
    incarnation INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    table_id TEXT NOT NULL,
    table_arn TEXT NOT NULL,
    key_names TEXT NOT NULL,          -- JSON list: HASH name, then RANGE name if any
    tracked_since_us INTEGER NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    pitr_enabled_us INTEGER,          -- NULL while PITR is off
    recovery_days INTEGER NOT NULL DEFAULT 35
);
-- Every write's resulting image (NULL: the item is gone), stamped in epoch microseconds.
CREATE TABLE IF NOT EXISTS history (
    incarnation INTEGER NOT NULL,
    item_key BLOB NOT NULL,
    ts_us INTEGER NOT NULL,
    image BLOB,
    PRIMARY KEY (incarnation, item_key, ts_us)
) WITHOUT ROWID;
-- Export records outlive their tables, as on AWS.
CREATE TABLE IF NOT EXISTS exports (
    export_arn TEXT PRIMARY KEY,
    client_token TEXT NOT NULL,
    request TEXT NOT NULL,            -- the parameters a replay must match (JSON)
    plan TEXT NOT NULL,               -- what to write, in microseconds: export time or window (JSON)
    incarnation INTEGER NOT NULL,
    table_id TEXT NOT NULL,
    status TEXT NOT NULL,
    start_us INTEGER NOT NULL,
    end_us INTEGER,
    description TEXT NOT NULL         -- the ExportDescription members (JSON)
);
CREATE INDEX IF NOT EXISTS exports_by_token ON exports (client_token);
"""


class Database:
    """One writer connection behind a lock; readers open their own connection per use."""

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "local_pitr.sqlite3"
        self.lock = threading.RLock()
        self.writer = self._open()
        self.writer.executescript(SCHEMA)

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=60)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=OFF")
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer inside BEGIN ... COMMIT, holding the lock (rolled back on error)."""
        with self.lock:
            self.writer.execute("BEGIN IMMEDIATE")
            try:
                yield self.writer
            except BaseException:
                self.writer.execute("ROLLBACK")
                raise
            self.writer.execute("COMMIT")

    @contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A connection of its own for a long read (an export), closed afterwards."""
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    def close(self) -> None:
        with self.lock:
            self.writer.close()
