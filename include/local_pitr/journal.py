"""The write journal: which table incarnations are followed, and every item image they had.

A table is followed from its CreateTable through the stand-in (its history starts empty), or
from the moment PITR is enabled on a table the journal did not know (a baseline, see
``pitr.py``). Writes to tables nobody follows are not recorded at all.

Stamps are wall-clock microseconds taken under the journal lock when dynalite's answer has
arrived, forced strictly increasing so that "the latest image at or before T" is never a tie.
Known limit: two clients writing the same key at the same moment are stamped in the order
their answers reach the stand-in, which need not be the order dynalite applied them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import orjson

from local_pitr.database import Database
from local_pitr.items import KeySchema
from local_pitr.wire import now_us

DEFAULT_RECOVERY_DAYS = 35

# (item key, image JSON or None for "absent")
Entry = tuple[bytes, bytes | None]


@dataclass(frozen=True)
class FollowedTable:
    """One incarnation of a table the journal follows, with its PITR setting."""

    incarnation: int
    name: str
    table_id: str
    table_arn: str
    keys: KeySchema
    pitr_enabled_us: int | None = None
    recovery_days: int = DEFAULT_RECOVERY_DAYS


def _row_to_table(row: tuple[int, str, str, str, str, int | None, int]) -> FollowedTable:
    incarnation, name, table_id, table_arn, key_names, enabled_us, days = row
    return FollowedTable(incarnation, name, table_id, table_arn, KeySchema(orjson.loads(key_names)), enabled_us, days)


_COLUMNS = "incarnation, name, table_id, table_arn, key_names, pitr_enabled_us, recovery_days"


class Journal:
    """Followed tables (in memory, mirrored in SQLite) and their item history."""

    def __init__(self, db: Database) -> None:
        self.db = db
        rows = db.writer.execute(f"SELECT {_COLUMNS} FROM tables WHERE deleted = 0").fetchall()
        self._followed: dict[str, FollowedTable] = {row[1]: _row_to_table(row) for row in rows}
        last = db.writer.execute("SELECT max(ts_us) FROM history").fetchone()[0]
        self._last_stamp = int(last or 0)

    # ----------------------------------------------------------------- followed tables

    def followed(self, name: str) -> FollowedTable | None:
        return self._followed.get(name)

    def follow(self, name: str, table_id: str, table_arn: str, keys: KeySchema, *,
               pitr_enabled_us: int | None = None, recovery_days: int = DEFAULT_RECOVERY_DAYS) -> FollowedTable:
        """Start a new incarnation of ``name`` (any earlier one is forgotten)."""
        with self.db.lock:
            self._forget_locked(name)
            with self.db.transaction() as conn:
                cursor = conn.execute(
                    "INSERT INTO tables (name, table_id, table_arn, key_names, tracked_since_us, pitr_enabled_us,"
                    " recovery_days) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, table_id, table_arn, orjson.dumps(keys.names).decode(), now_us(), pitr_enabled_us,
                     recovery_days),
                )
            assert cursor.lastrowid is not None
            table = FollowedTable(cursor.lastrowid, name, table_id, table_arn, keys, pitr_enabled_us, recovery_days)
            self._followed[name] = table
            return table

    def forget(self, name: str) -> None:
        """The table was deleted: its PITR state and history go (see :meth:`purge_deleted`)."""
        with self.db.lock:
            self._forget_locked(name)

    def _forget_locked(self, name: str) -> None:
        table = self._followed.pop(name, None)
        if table is not None:
            with self.db.transaction() as conn:
                conn.execute("UPDATE tables SET deleted = 1 WHERE incarnation = ?", (table.incarnation,))

    def purge_deleted(self, still_needed: Iterable[int]) -> None:
        """Drop the history of deleted incarnations, except those a running export still reads."""
        keep = set(still_needed)
        with self.db.lock:
            gone = [row[0] for row in self.db.writer.execute("SELECT incarnation FROM tables WHERE deleted = 1")]
            for incarnation in gone:
                if incarnation in keep:
                    continue
                with self.db.transaction() as conn:
                    conn.execute("DELETE FROM history WHERE incarnation = ?", (incarnation,))
                    conn.execute("DELETE FROM tables WHERE incarnation = ?", (incarnation,))

    def set_pitr(self, table: FollowedTable, enabled_us: int | None, recovery_days: int) -> FollowedTable:
        with self.db.lock:
            updated = replace(table, pitr_enabled_us=enabled_us, recovery_days=recovery_days)
            with self.db.transaction() as conn:
                conn.execute("UPDATE tables SET pitr_enabled_us = ?, recovery_days = ? WHERE incarnation = ?",
                             (enabled_us, recovery_days, table.incarnation))
            current = self._followed.get(table.name)
            if current is not None and current.incarnation == table.incarnation:
                self._followed[table.name] = updated
            return updated

    # ----------------------------------------------------------------- history

    def append(self, table: FollowedTable, entries: list[Entry]) -> int | None:
        """Record one request's resulting images; returns the stamp, None if the table is no longer followed."""
        if not entries:
            return None
        with self.db.lock:
            current = self._followed.get(table.name)
            if current is None or current.incarnation != table.incarnation:
                return None  # deleted (or replaced) while the request was in flight
            stamp = max(now_us(), self._last_stamp + 1)
            self._last_stamp = stamp
            with self.db.transaction() as conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO history (incarnation, item_key, ts_us, image) VALUES (?, ?, ?, ?)",
                    [(table.incarnation, key, stamp, image) for key, image in entries],
                )
            return stamp

    def fence(self) -> int:
        """A stamp no recorded write has and every later write exceeds (the stand-in's stream shard boundaries)."""
        with self.db.lock:
            self._last_stamp = max(now_us(), self._last_stamp + 1)
            return self._last_stamp

    def append_baseline(self, table: FollowedTable, entries: list[Entry], stamp: int) -> None:
        """Images read by the baseline scan, all stamped ``stamp`` (just before PITR's enable time)."""
        with self.db.transaction() as conn:
            conn.executemany(
                "INSERT OR IGNORE INTO history (incarnation, item_key, ts_us, image) VALUES (?, ?, ?, ?)",
                [(table.incarnation, key, stamp, image) for key, image in entries],
            )

    @staticmethod
    def state_at(conn: sqlite3.Connection, incarnation: int, at_us: int) -> Iterator[tuple[bytes, bytes]]:
        """(key, image) of every item that existed at ``at_us`` (writes stamped at or before it)."""
        rows = conn.execute(
            # SQLite takes the bare ``image`` column from the row that holds max(ts_us).
            "SELECT item_key, image, max(ts_us) FROM history WHERE incarnation = ? AND ts_us <= ? GROUP BY item_key",
            (incarnation, at_us),
        )
        for key, image, _ in rows:
            if image is not None:
                yield key, image

    @staticmethod
    def history_before(conn: sqlite3.Connection, incarnation: int,
                       to_us: int) -> Iterator[tuple[bytes, int, bytes | None]]:
        """Every (key, stamp, image) stamped before ``to_us``, by key then time (incremental exports)."""
        yield from conn.execute(
            "SELECT item_key, ts_us, image FROM history WHERE incarnation = ? AND ts_us < ? ORDER BY item_key, ts_us",
            (incarnation, to_us),
        )
