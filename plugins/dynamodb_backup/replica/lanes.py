"""Writer lanes: a replica's changes written by several paced writers at once, each key always by the same one.

Why this way:

* Throughput: one BatchWriteItem at a time (about 40 ms each, whatever the table's capacity)
  held the replica to a few hundred items a second and its lag to many seconds under load.
  ``lanes`` writers (threads: the time is spent waiting on the network) send that many at once.
* Order per key: a change goes to the lane chosen by a stable hash of its key values, so every
  change to one key is written by one lane, in the order given; a lane writes its batches one
  after another and a batch never names a key twice (``loading.load.BatchWriter``).
* One budget: the lanes share one ``TokenBucket`` (thread-safe), so together they stay within
  the replica's write ratio.
* Crash replay: :meth:`WriterLanes.apply` returns only when every lane has written everything
  handed to it (or raises after every lane stopped); the caller saves progress after that, so a
  crash can only make the next run write the same changes again, in the same order per key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.formats.codec.canonical import key_of
from dynamodb_backup.loading.load import BatchWriter

#: Writers working at once (each has at most one BatchWriteItem in flight).
DEFAULT_LANES = 4

_Change = tuple[str, dict[str, Any], str]
"""("put" | "delete", the new image or the key attributes, origin)."""


class WriterLanes:
    """``lanes`` BatchWriters on one table sharing ``bucket``; changes wait in their lane until :meth:`apply`."""

    def __init__(self, client: Any, table: str, key_names: Sequence[str], bucket: TokenBucket,
                 lanes: int = DEFAULT_LANES) -> None:
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self.writers = [BatchWriter(client, table, list(key_names), bucket) for _ in range(lanes)]
        self._key_names = list(key_names)
        self._waiting: list[list[_Change]] = [[] for _ in range(lanes)]
        # one thread per lane, always the same: a lane is one writer, one BatchWriteItem in flight at a time
        self._threads = [ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"replica-lane-{number}")
                         for number in range(lanes)] if lanes > 1 else []

    @property
    def key_names(self) -> list[str]:
        return self._key_names

    @key_names.setter
    def key_names(self, names: Sequence[str]) -> None:
        self._key_names = list(names)
        for writer in self.writers:
            writer.key_names = list(names)

    def lane_of(self, attributes: dict[str, Any]) -> int:
        """The lane of the item with these key attributes (the same for every change to that key)."""
        text = "\x1f".join(key_of(attributes, self._key_names))
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") % len(self.writers)

    def put(self, item: dict[str, Any], origin: str) -> None:
        self._waiting[self.lane_of(item)].append(("put", item, origin))

    def delete(self, keys: dict[str, Any], origin: str) -> None:
        self._waiting[self.lane_of(keys)].append(("delete", keys, origin))

    @property
    def waiting(self) -> int:
        """Changes handed over and not written yet."""
        return sum(len(changes) for changes in self._waiting)

    def apply(self) -> None:
        """Write every waiting change, the lanes at once; returns when every lane has written all of its own."""
        work = [(number, changes) for number, changes in enumerate(self._waiting) if changes]
        self._waiting = [[] for _ in self.writers]
        if not self._threads:
            for number, changes in work:
                _write_lane(self.writers[number], changes)
            return
        futures = [self._threads[number].submit(_write_lane, self.writers[number], changes)
                   for number, changes in work]
        wait(futures)  # every lane stops before an error is raised: nothing is still writing behind it
        for future in futures:
            future.result()

    def close(self) -> None:
        for thread in self._threads:
            thread.shutdown(wait=True)


def _write_lane(writer: BatchWriter, changes: list[_Change]) -> None:
    for kind, attributes, origin in changes:
        if kind == "put":
            writer.put(attributes, origin)
        else:
            writer.delete(attributes, origin)
    writer.flush()
