"""A DynamoDB Streams API over the stand-in's journal, with shards that rotate, split and trim on demand.

Served when the stand-in runs with ``--streams journal`` (``start_pitr(..., streams="journal")``);
otherwise Streams calls pass through to the backend (DynamoDB Local serves its own; dynalite none).
The model is ``streams_state``; this module answers the four Streams operations as AWS does
(``DynamoDBStreams_20120810.ListStreams/DescribeStream/GetShardIterator/GetRecords``, errors with
AWS's codes), shows the stream in DescribeTable (``LatestStreamArn``, ``StreamSpecification``),
turns it off and on through UpdateTable's ``StreamSpecification`` (a new ARN each time), starts
it for a CreateTable that asks for one, and serves the test hooks of ``streams_hooks``
(``LocalStreams.RotateShards/Trim/ExpireIterators``: shards rotated or split, records trimmed,
iterators expired on demand).
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from local_pitr.database import Database
from local_pitr.journal import Journal
from local_pitr.recorder import PreparedWrite, Recorder
from local_pitr.streams_hooks import StreamHooks
from local_pitr.streams_state import (
    HASH_SPACE,
    PER_STAMP,
    ShardState,
    StreamState,
    changes,
    record,
    sequence_text,
)
from local_pitr.tables import name_from_name_or_arn
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError, now_us, validation_error

PREFIX = "DynamoDBStreams_20120810."
ITERATOR_LIFETIME_US = 15 * 60 * 1_000_000
VIEWS = ("NEW_IMAGE", "OLD_IMAGE", "NEW_AND_OLD_IMAGES", "KEYS_ONLY")
Operation = Callable[[dict[str, Any], Upstream], dict[str, Any]]


def _not_found(message: str) -> ApiError:
    return ApiError("ResourceNotFoundException", message)


class JournalStreams:
    def __init__(self, db: Database, journal: Journal) -> None:
        self.db, self.journal = db, journal
        self.lock = threading.RLock()  # guards the model; streams_hooks changes it under this lock too
        self._streams: dict[str, list[StreamState]] = {}  # table name -> its streams, oldest first
        self._shard_counter = 0

    def operations(self, update_table: Operation) -> dict[str, Operation]:
        ops: dict[str, Operation] = {PREFIX + name: getattr(self, name.lower()) for name in
                                     ("ListStreams", "DescribeStream", "GetShardIterator", "GetRecords")}
        ops.update(StreamHooks(self).operations())
        ops["DescribeTable"] = self.describe_table

        def update(request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
            return self.update_table(request, upstream, update_table)

        ops["UpdateTable"] = update
        return ops

    # ------------------------------------------------------------------ streams of a table

    def current(self, name: str) -> StreamState | None:
        """The table's newest stream, or None (it never had one, or was deleted or re-created since)."""
        streams = self._streams.get(name) or []
        current = streams[-1] if streams else None
        followed = self.journal.followed(name)
        if current is not None and (followed is None or followed.incarnation != current.table.incarnation):
            self._streams.pop(name, None)  # the table was deleted or re-created
            return None
        return current

    def new_shard(self, parent: str | None, start: int, low: int = 0, high: int = HASH_SPACE) -> ShardState:
        """A shard starting at sequence ``start``, named as AWS names shards (call it under ``lock``)."""
        self._shard_counter += 1
        return ShardState(f"shardId-{now_us() // 1000:020d}-{self._shard_counter:08x}", parent, start, None,
                          low, high)

    def enable(self, name: str, view_type: str) -> StreamState:
        with self.lock:
            table = self.journal.followed(name)
            if table is None:
                raise validation_error(f"the stand-in does not follow table {name} (create it through the stand-in)")
            current = self.current(name)
            if current is not None and current.enabled:
                raise validation_error("Table already has an enabled stream")
            fence = self.journal.fence()
            created = now_us()
            moment = datetime.fromtimestamp(created // 1_000_000, UTC)
            label = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{created // 1000 % 1000:03d}"
            stream = StreamState(table, label, view_type, fence, created)
            stream.shards.append(self.new_shard(None, stream.first_sequence()))
            self._streams.setdefault(name, []).append(stream)
            return stream

    def disable(self, name: str) -> None:
        with self.lock:
            current = self.current(name)
            if current is None or not current.enabled:
                raise validation_error("Table has no stream to disable")
            fence = self.journal.fence()
            current.disabled_fence = fence
            for shard in current.shards:
                if shard.end is None:
                    shard.end = fence * PER_STAMP

    def on_create_table(self, request: dict[str, Any]) -> None:
        """A CreateTable the stand-in recorded: start its stream if it asked for one."""
        spec = request.get("StreamSpecification") or {}
        if spec.get("StreamEnabled"):
            self.enable(str(request["TableName"]), str(spec.get("StreamViewType", "NEW_AND_OLD_IMAGES")))

    def _stream(self, arn: object) -> StreamState:
        if not isinstance(arn, str) or "/stream/" not in arn:
            raise validation_error(f"Invalid StreamArn: {arn}")
        with self.lock:
            for streams in self._streams.values():
                for stream in streams:
                    if stream.arn == arn:
                        return stream
        raise _not_found(f"Requested resource not found: Stream: {arn} not found")

    # ------------------------------------------------------------------ DynamoDB operations

    def describe_table(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        answer = upstream.call("DescribeTable", request)
        table = answer["Table"]
        for member in ("StreamSpecification", "LatestStreamArn", "LatestStreamLabel"):
            table.pop(member, None)  # the backend's own stream (DynamoDB Local) is not the one served here
        with self.lock:
            current = self.current(table["TableName"])
            if current is not None:
                table["LatestStreamArn"], table["LatestStreamLabel"] = current.arn, current.label
                if current.enabled:
                    table["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": current.view_type}
        return answer

    def update_table(self, request: dict[str, Any], upstream: Upstream, update_table: Operation) -> dict[str, Any]:
        spec = request.get("StreamSpecification")
        if spec is None:
            return update_table(request, upstream)
        name = name_from_name_or_arn(str(request.get("TableName") or ""))
        if spec.get("StreamEnabled"):
            view = spec.get("StreamViewType")
            if view not in VIEWS:
                raise validation_error("StreamViewType is required when StreamEnabled is true")
            self.enable(name, view)
        else:
            self.disable(name)
        rest = {k: v for k, v in request.items() if k != "StreamSpecification"}
        if set(rest) - {"TableName"}:
            update_table(rest, upstream)
        return {"TableDescription": self.describe_table({"TableName": name}, upstream)["Table"]}

    # ------------------------------------------------------------------ Streams operations

    def liststreams(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        with self.lock:
            names = [request["TableName"]] if request.get("TableName") else sorted(self._streams)
            found = [s for n in names for s in reversed(self._streams.get(n) or [])
                     if self.current(n) is not None]
        start = request.get("ExclusiveStartStreamArn")
        if start:
            arns = [s.arn for s in found]
            found = found[arns.index(start) + 1:] if start in arns else []
        limit = int(request.get("Limit") or 100)
        page = found[:limit]
        answer: dict[str, Any] = {"Streams": [{"StreamArn": s.arn, "TableName": s.table.name, "StreamLabel": s.label}
                                              for s in page]}
        if len(found) > limit:
            answer["LastEvaluatedStreamArn"] = page[-1].arn
        return answer

    def describestream(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        stream = self._stream(request.get("StreamArn"))
        limit = int(request.get("Limit") or 100)
        if not 1 <= limit <= 100:
            raise validation_error("Limit should be between 1 and 100")
        with self.lock:
            shards = sorted(stream.listed(), key=lambda s: (s.start, s.shard_id))
            shard_filter = request.get("ShardFilter") or {}
            if shard_filter.get("Type") == "CHILD_SHARDS":
                shards = [s for s in shards if s.parent_id == shard_filter.get("ShardId")]
            start = request.get("ExclusiveStartShardId")
            if start:
                ids = [s.shard_id for s in shards]
                shards = shards[ids.index(start) + 1:] if start in ids else []
            page = shards[:limit]
            names = stream.table.keys.names
            description: dict[str, Any] = {
                "StreamArn": stream.arn, "StreamLabel": stream.label,
                "StreamStatus": "ENABLED" if stream.enabled else "DISABLED", "StreamViewType": stream.view_type,
                "CreationRequestDateTime": stream.created_us / 1e6, "TableName": stream.table.name,
                "KeySchema": [{"AttributeName": n, "KeyType": "HASH" if i == 0 else "RANGE"}
                              for i, n in enumerate(names)],
                "Shards": [s.describe() for s in page],
            }
            if len(shards) > limit:
                description["LastEvaluatedShardId"] = page[-1].shard_id
        return {"StreamDescription": description}

    def getsharditerator(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        stream = self._stream(request.get("StreamArn"))
        with self.lock:
            shard = stream.shard(str(request.get("ShardId")))
            if shard is None:
                raise _not_found(f"Requested resource not found: Shard does not exist: {request.get('ShardId')}")
            kind = request.get("ShardIteratorType")
            if kind == "TRIM_HORIZON":
                position = max(shard.start, stream.trim)
            elif kind == "LATEST":
                position = shard.end + 1 if shard.end is not None else (self.journal.fence() + 1) * PER_STAMP
            elif kind in ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"):
                number = str(request.get("SequenceNumber") or "")
                if not number.isdigit():
                    raise validation_error(f"Invalid SequenceNumber: {number}")
                position = int(number) + (1 if kind == "AFTER_SEQUENCE_NUMBER" else 0)
                if int(number) < stream.trim:
                    raise ApiError("TrimmedDataAccessException",
                                   f"Sequence number {number} is beyond the trim horizon of shard {shard.shard_id}")
            else:
                raise validation_error(f"Invalid ShardIteratorType: {kind}")
        return {"ShardIterator": self._iterator(stream, shard, position)}

    @staticmethod
    def _iterator(stream: StreamState, shard: ShardState, position: int) -> str:
        inner = orjson.dumps([shard.shard_id, position, now_us()])
        return f"{stream.arn}|001|{base64.b64encode(inner).decode()}"

    def getrecords(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        text = request.get("ShardIterator")
        limit = int(request.get("Limit") or 1000)
        if not 1 <= limit <= 1000:
            raise ApiError("LimitExceededException", "Limit should be less than or equal to 1000")
        try:
            arn, _, inner = str(text).rpartition("|001|")
            shard_id, position, issued = orjson.loads(base64.b64decode(inner))
        except (ValueError, TypeError):
            raise validation_error("Invalid ShardIterator") from None
        stream = self._stream(arn)
        with self.lock:
            shard = stream.shard(shard_id)
            if shard is None:
                raise _not_found(f"Requested resource not found: Shard does not exist: {shard_id}")
            if issued < stream.expire_issued_before_us or now_us() - issued > ITERATOR_LIFETIME_US:
                raise ApiError("ExpiredIteratorException", "Iterator expired. The iterator was created at time "
                               f"{datetime.fromtimestamp(issued / 1e6, UTC).isoformat()}")
            if position < stream.trim:
                raise ApiError("TrimmedDataAccessException", f"Shard {shard_id}: the iterator's position "
                               f"{sequence_text(position)} is beyond the trim horizon")
            end = shard.end
        region = stream.table.table_arn.split(":")[3]
        with self.db.reader() as conn:
            found = list(changes(conn, stream, shard, position, limit))
        records = [record(stream, change, region) for change in found]
        after = found[-1].sequence + 1 if found else position
        answer: dict[str, Any] = {"Records": records}
        if end is None or len(found) == limit:  # null only when a closed shard is read to its end
            answer["NextShardIterator"] = self._iterator(stream, shard, after)
        return answer


class StreamingRecorder(Recorder):
    """The journal's recorder, also starting the stream of a CreateTable that asks for one."""

    def __init__(self, journal: Journal, on_table_deleted: Callable[[], None], streams: JournalStreams) -> None:
        super().__init__(journal, on_table_deleted)
        self.streams = streams

    def finish(self, prepared: PreparedWrite, status: int, answer: bytes, upstream: Upstream) -> bytes | None:
        changed = super().finish(prepared, status, answer, upstream)
        if prepared.operation == "CreateTable" and status == 200:
            self.streams.on_create_table(prepared.request)
        return changed
