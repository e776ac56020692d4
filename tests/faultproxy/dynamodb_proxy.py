"""A DynamoDB fault proxy: put it in front of dynalite and it behaves as AWS does under load.

* Capacity: each table's provisioned read and write units are enforced with a
  token bucket that banks up to 300 s of unused capacity (AWS's burst), charged
  with the ConsumedCapacity the server reports. A request that arrives while a
  bucket is empty is answered ``ProvisionedThroughputExceededException``.
  On-demand tables get a configurable limit. Capacities come from DescribeTable
  (cached, refreshed every few seconds and after UpdateTable).
* Faults, at configured rates: 500 ``InternalServerError``, 503
  ``ServiceUnavailable``, 400 ``ThrottlingException``, a connection dropped
  before or after forwarding, slow answers, and partial BatchWriteItem results
  (part of the batch forwarded, the rest returned as ``UnprocessedItems``).
* Reproducible: see ``FaultProxy.rng_for``.

Requests are not re-signed: with ``strict=`` a front door (``strict.py``) checks the
client's signature, clock, key and IAM policy before any fault rewrites the request.
The proxy asks dynalite for ``ReturnConsumedCapacity=TOTAL`` on every data request and strips
the figure again when the client did not ask.

    with DynamoDBFaultProxy(dynalite_url, seed=1, faults=DynamoFaults(throttling=0.3)) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url)
        ...
        proxy.counters  # {"requests": ..., "throttling": ..., "capacity_exceeded": ..., ...}
"""

from __future__ import annotations

import json
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .base import DROP, FaultProxy, Request, Response

TARGET_PREFIX = "DynamoDB_20120810."
READ_OPERATIONS = frozenset({"Scan", "Query", "GetItem", "BatchGetItem", "TransactGetItems"})
WRITE_OPERATIONS = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
DATA_OPERATIONS = READ_OPERATIONS | WRITE_OPERATIONS
#: AWS's default per-table quota, used for on-demand tables unless configured.
DEFAULT_ON_DEMAND_LIMIT = 40_000.0
AWS_BURST_SECONDS = 300.0


@dataclass
class DynamoFaults:
    """Probabilities per request (each in 0..1). ``operations`` limits which requests get faults."""

    internal_error: float = 0.0
    unavailable: float = 0.0
    throttling: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    slow: float = 0.0
    slow_seconds: float = 0.3
    partial_batch: float = 0.0
    operations: frozenset[str] = DATA_OPERATIONS

    def __post_init__(self) -> None:
        exclusive = self.internal_error + self.unavailable + self.throttling + self.drop_before
        if exclusive > 1.0:
            raise ValueError(f"fault rates before forwarding add up to {exclusive} > 1")


class CapacityBucket:
    """Units per second with up to ``burst_seconds`` banked; admits while the balance is positive."""

    def __init__(self, rate: float, burst_seconds: float, initial_seconds: float, now: float) -> None:
        self.rate, self.burst_seconds = rate, burst_seconds
        self.tokens = rate * min(initial_seconds, burst_seconds)
        self.last = now

    def refill(self, now: float) -> None:
        self.tokens = min(self.rate * self.burst_seconds, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now

    def set_rate(self, rate: float, now: float) -> None:
        self.refill(now)
        self.rate = rate
        self.tokens = min(self.tokens, rate * self.burst_seconds)

    def admit(self, now: float) -> bool:
        self.refill(now)
        return self.tokens > 0

    def charge(self, units: float, now: float) -> None:
        self.refill(now)
        self.tokens -= units


@dataclass
class TableState:
    read: CapacityBucket
    write: CapacityBucket
    on_demand: bool
    learned_at: float
    consumed_read: float = 0.0
    consumed_write: float = 0.0
    #: (clock time, units) of every read charge, for rate measurements.
    read_timeline: list[tuple[float, float]] = field(default_factory=list)


def error_response(status: int, type_name: str, message: str) -> Response:
    body = json.dumps({"__type": type_name, "message": message}).encode()
    return json_response(status, body)


def json_response(status: int, body: bytes, headers: list[tuple[str, str]] | None = None) -> Response:
    kept = [(k, v) for k, v in (headers or []) if k.lower() not in ("x-amz-crc32", "content-type")]
    kept += [("Content-Type", "application/x-amz-json-1.0"), ("x-amz-crc32", str(zlib.crc32(body)))]
    if not any(k.lower() == "x-amzn-requestid" for k, _ in kept):
        kept.append(("x-amzn-RequestId", "faultproxy"))
    return Response(status, kept, body)


def throughput_exceeded(table: str) -> Response:
    return error_response(
        400, "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        f"The level of configured provisioned throughput for the table {table} was exceeded. "
        "Consider increasing your provisioning level with the UpdateTable API.",
    )


class DynamoDBFaultProxy(FaultProxy):
    name = "dynamodb-faultproxy"
    service = "dynamodb"

    def __init__(
        self, upstream: str, *, seed: int = 0, faults: DynamoFaults | None = None,
        enforce_capacity: bool = True, burst_seconds: float = AWS_BURST_SECONDS,
        initial_burst_seconds: float | None = None,
        on_demand_read: float = DEFAULT_ON_DEMAND_LIMIT, on_demand_write: float = DEFAULT_ON_DEMAND_LIMIT,
        refresh_seconds: float = 5.0, clock: Callable[[], float] = time.monotonic, **kwargs: Any,
    ) -> None:
        super().__init__(upstream, seed=seed, clock=clock, **kwargs)
        self.faults = faults or DynamoFaults()
        self.enforce_capacity = enforce_capacity
        self.burst_seconds = burst_seconds
        #: Seconds of capacity a table's buckets hold when first seen (AWS: a full burst).
        self.initial_burst_seconds = burst_seconds if initial_burst_seconds is None else initial_burst_seconds
        self.on_demand_read, self.on_demand_write = on_demand_read, on_demand_write
        self.refresh_seconds = refresh_seconds
        self.tables: dict[str, TableState] = {}
        self._table_lock = threading.Lock()

    # ------------------------------------------------------------------ capacity

    def _describe(self, table: str, template: Request) -> dict[str, Any] | None:
        headers = {k: v for k, v in template.headers.items()
                   if k.lower() in ("authorization", "x-amz-date", "host", "user-agent")}
        headers.update({"X-Amz-Target": TARGET_PREFIX + "DescribeTable",
                        "Content-Type": "application/x-amz-json-1.0"})
        answer = self.forward(Request("POST", "/", headers, json.dumps({"TableName": table}).encode()))
        if answer.status != 200:
            return None
        described: dict[str, Any] = json.loads(answer.body)["Table"]
        return described

    def _limits(self, described: dict[str, Any]) -> tuple[float, float, bool]:
        billing = (described.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
        throughput = described.get("ProvisionedThroughput") or {}
        rcu = float(throughput.get("ReadCapacityUnits") or 0)
        wcu = float(throughput.get("WriteCapacityUnits") or 0)
        if billing == "PAY_PER_REQUEST" or (rcu <= 0 and wcu <= 0):
            return self.on_demand_read, self.on_demand_write, True
        return rcu, wcu, False

    def table_state(self, table: str, template: Request) -> TableState | None:
        """The buckets of ``table``, learned from DescribeTable (refreshed every few seconds)."""
        wall = time.monotonic()
        with self._table_lock:
            state = self.tables.get(table)
        if state is not None and wall - state.learned_at < self.refresh_seconds:
            return state
        described = self._describe(table, template)
        if described is None:
            return state
        rcu, wcu, on_demand = self._limits(described)
        now = self.clock()
        with self._table_lock:
            state = self.tables.get(table)
            if state is None:
                state = TableState(
                    read=CapacityBucket(rcu, self.burst_seconds, self.initial_burst_seconds, now),
                    write=CapacityBucket(wcu, self.burst_seconds, self.initial_burst_seconds, now),
                    on_demand=on_demand, learned_at=wall,
                )
                self.tables[table] = state
            else:
                state.read.set_rate(rcu, now)
                state.write.set_rate(wcu, now)
                state.on_demand, state.learned_at = on_demand, wall
        return state

    def forget(self, table: str) -> None:
        """Re-read ``table``'s capacity on its next request (its buckets and counts are kept)."""
        with self._table_lock:
            state = self.tables.get(table)
            if state is not None:
                state.learned_at = -1e18

    def consumed(self, table: str, kind: str = "read") -> float:
        state = self.tables.get(table)
        if state is None:
            return 0.0
        return state.consumed_read if kind == "read" else state.consumed_write

    # ------------------------------------------------------------------ policy

    @staticmethod
    def operation(request: Request) -> str:
        target = request.header("X-Amz-Target")
        return target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target

    @staticmethod
    def tables_of(operation: str, body: dict[str, Any]) -> list[str]:
        if operation in ("BatchWriteItem", "BatchGetItem"):
            return list((body.get("RequestItems") or {}).keys())
        if operation in ("TransactWriteItems", "TransactGetItems"):
            found: list[str] = []
            for entry in body.get("TransactItems") or []:
                for action in entry.values():
                    name = action.get("TableName")
                    if name and name not in found:
                        found.append(name)
            return found
        name = body.get("TableName")
        return [name] if isinstance(name, str) else []

    def decide(self, request: Request) -> Request | Response:
        operation = self.operation(request)
        self.count("requests")
        self.count(f"op:{operation}")
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            return request
        if operation in ("UpdateTable", "CreateTable", "DeleteTable"):
            self.forget(str(body.get("TableName")))
        if operation not in DATA_OPERATIONS:
            return request
        tables = self.tables_of(operation, body)
        rng = self.rng_for(operation, request.body)
        faults = self.faults if operation in self.faults.operations else DynamoFaults(operations=frozenset())
        roll = rng.random()
        edges = (
            ("drop_before", faults.drop_before),
            ("internal_error", faults.internal_error),
            ("unavailable", faults.unavailable),
            ("throttling", faults.throttling),
        )
        edge = 0.0
        for kind, rate in edges:
            edge += rate
            if roll < edge:
                self.count(kind)
                if kind == "drop_before":
                    return DROP
                if kind == "internal_error":
                    return error_response(500, "com.amazonaws.dynamodb.v20120810#InternalServerError",
                                          "Internal server error (injected)")
                if kind == "unavailable":
                    return error_response(503, "com.amazon.coral.availability#ServiceUnavailable",
                                          "Service unavailable (injected)")
                return error_response(400, "com.amazon.coral.availability#ThrottlingException",
                                      "Rate of requests exceeds the allowed throughput (injected)")
        kind = "read" if operation in READ_OPERATIONS else "write"
        now = self.clock()
        for table in tables:
            state = self.table_state(table, request)  # learned even when not enforced: it counts
            if state is not None and self.enforce_capacity:
                with self._table_lock:
                    admitted = (state.read if kind == "read" else state.write).admit(now)
                if not admitted:
                    self.count("capacity_exceeded")
                    self.count(f"capacity_exceeded:{kind}")
                    return throughput_exceeded(table)
        asked = body.get("ReturnConsumedCapacity", "NONE") not in ("NONE", None)
        withheld: dict[str, list[Any]] = {}
        if operation == "BatchWriteItem" and faults.partial_batch and rng.random() < faults.partial_batch:
            body, withheld = self._split_batch(body, rng)
            if withheld:
                self.count("partial_batch")
                self.count("withheld_items", sum(len(v) for v in withheld.values()))
        body["ReturnConsumedCapacity"] = "TOTAL" if not asked else body["ReturnConsumedCapacity"]
        return Request(request.method, request.path, dict(request.headers), json.dumps(body).encode(),
                       meta={"operation": operation, "asked": asked, "withheld": withheld, "rng": rng,
                             "faults": faults})

    @staticmethod
    def _split_batch(body: dict[str, Any], rng: Any) -> tuple[dict[str, Any], dict[str, list[Any]]]:
        flat = [(table, req) for table, reqs in (body.get("RequestItems") or {}).items() for req in reqs]
        if len(flat) < 2:
            return body, {}
        keep_count = rng.randint(1, len(flat) - 1)
        keep = set(rng.sample(range(len(flat)), keep_count))
        kept: dict[str, list[Any]] = {}
        withheld: dict[str, list[Any]] = {}
        for index, (table, req) in enumerate(flat):
            (kept if index in keep else withheld).setdefault(table, []).append(req)
        return {**body, "RequestItems": kept}, withheld

    def after(self, request: Request, original: Request, response: Response) -> Response:
        meta = request.meta
        if "operation" not in meta:  # not a data operation (the front door's notes may be there)
            return response
        operation: str = meta["operation"]
        faults: DynamoFaults = meta["faults"]
        rng = meta["rng"]
        if response.status != 200:
            return response
        answer = json.loads(response.body or b"{}")
        self._charge(operation, answer.get("ConsumedCapacity"))
        changed = False
        if meta["withheld"]:
            unprocessed = answer.setdefault("UnprocessedItems", {})
            for table, reqs in meta["withheld"].items():
                unprocessed.setdefault(table, []).extend(reqs)
            changed = True
        if not meta["asked"] and "ConsumedCapacity" in answer:
            del answer["ConsumedCapacity"]
            changed = True
        if rng.random() < faults.drop_after:
            self.count("drop_after")
            return DROP
        if changed:
            response = json_response(200, json.dumps(answer).encode(), response.headers)
        if rng.random() < faults.slow:
            self.count("slow")
            response.delay = faults.slow_seconds
        return response

    def _charge(self, operation: str, consumed: Any) -> None:
        if not consumed:
            return
        kind = "read" if operation in READ_OPERATIONS else "write"
        now = self.clock()
        for entry in consumed if isinstance(consumed, list) else [consumed]:
            table = entry.get("TableName")
            units = float(entry.get("CapacityUnits") or 0.0)
            with self._table_lock:
                state = self.tables.get(table)
                if state is None:
                    continue
                if kind == "read":
                    state.read.charge(units, now)
                    state.consumed_read += units
                    state.read_timeline.append((now, units))
                else:
                    state.write.charge(units, now)
                    state.consumed_write += units
