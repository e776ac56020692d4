"""The journal Streams' test hooks: make shards rotate or split, trim records, expire iterators, on demand.

AWS does these on its own schedule (a shard lives about four hours, a record 24 hours, an
iterator 15 minutes); a test asks for them instead, by POSTing ``X-Amz-Target:
LocalStreams.<Hook>`` and ``{"TableName": ...}`` to the stand-in itself (served with
``--streams journal``: ``streams.JournalStreams``, whose stream model this changes under its lock):

* ``RotateShards`` (``"Children": 1`` or ``2``): close every open shard; one child each, or a split;
* ``Trim``: every record written so far is trimmed (as after 24 hours);
* ``ExpireIterators``: every iterator issued so far is expired (as after 15 minutes).

``RotateShards`` and ``Trim`` answer ``{"Shards": [...]}`` (the stream's listed shards; ``Trim``
with ``"TrimmedBefore"``), ``ExpireIterators`` ``{}``. A table with no stream served here is
``ResourceNotFoundException``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from local_pitr.streams_state import PER_STAMP, StreamState, sequence_text
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError, now_us, validation_error

if TYPE_CHECKING:
    from local_pitr.streams import JournalStreams

HOOKS = "LocalStreams."
Operation = Callable[[dict[str, Any], Upstream], dict[str, Any]]


class StreamHooks:
    """The three hooks over one ``JournalStreams``."""

    def __init__(self, streams: JournalStreams) -> None:
        self.streams = streams

    def operations(self) -> dict[str, Operation]:
        """The hooks by ``X-Amz-Target``, for the stand-in's table of operations."""
        return {HOOKS + "RotateShards": self.rotate, HOOKS + "Trim": self.trim,
                HOOKS + "ExpireIterators": self.expire}

    def _hooked(self, request: dict[str, Any]) -> StreamState:
        stream = self.streams.current(str(request.get("TableName")))
        if stream is None:
            raise ApiError("ResourceNotFoundException",
                           f"table {request.get('TableName')} has no stream served by the stand-in")
        return stream

    def rotate(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        children = int(request.get("Children") or 1)
        if children not in (1, 2):
            raise validation_error("Children must be 1 (rotate) or 2 (split)")
        with self.streams.lock:
            stream = self._hooked(request)
            if not stream.enabled:
                raise validation_error("the stream is disabled")
            fence = self.streams.journal.fence()
            for shard in [s for s in stream.shards if s.end is None]:
                shard.end = fence * PER_STAMP
                step = (shard.high - shard.low) // children
                for n in range(children):
                    high = shard.high if n == children - 1 else shard.low + step * (n + 1)
                    stream.shards.append(self.streams.new_shard(shard.shard_id, shard.end + 1,
                                                                shard.low + step * n, high))
            return {"Shards": [s.describe() for s in stream.listed()]}

    def trim(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        with self.streams.lock:
            stream = self._hooked(request)
            stream.trim = self.streams.journal.fence() * PER_STAMP
            return {"TrimmedBefore": sequence_text(stream.trim), "Shards": [s.describe() for s in stream.listed()]}

    def expire(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        with self.streams.lock:
            stream = self._hooked(request)
            stream.expire_issued_before_us = now_us() + 1
            return {}
