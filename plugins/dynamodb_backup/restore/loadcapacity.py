"""Load fast, then settle: a restore's target at a load capacity, then at the capacities it should keep.

A table created from a backup's sidecar gets the source's capacities, and a global index with a
few write units then sets the pace of the whole load (on AWS an index out of capacity throttles
its table). With a load capacity the restore instead creates the table on demand (or with the
given write units on the table and every global index), loads and verifies, and only then
*settles*: one UpdateTable to the sidecar's billing mode and table and index throughputs, then
waits until the table and every index are ACTIVE.

AWS's limits on switching billing mode (developer guide, "Considerations when switching capacity
modes"): provisioned -> on-demand at most four times in a rolling 24 hours; on-demand ->
provisioned at any time; raising provisioned capacity at any time, lowering it only a few times a
day. So:

- a table the restore creates: created at the load capacity, settled afterwards (on demand ->
  provisioned is always allowed; a provisioned load capacity for an on-demand backup switches once);
- an existing provisioned table with ``on-demand``: switched to on-demand before the load (refused
  clearly, before any write, if AWS refuses the switch) and back to its own capacities afterwards,
  which AWS always allows;
- an existing table with a number of write units: refused, since lowering the capacity back
  afterwards counts against AWS's daily decreases and may be refused for hours;
- an existing on-demand table: nothing to do.

A settle that fails leaves the data loaded and verified: the caller says so with
:func:`settle_command`, the one command that finishes it.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tableinfo import describe_table
from dynamodb_backup.errors import BackupError, ParameterError

log = logging.getLogger(__name__)

ON_DEMAND = "on-demand"
_ON_DEMAND_SPELLINGS = {"on-demand", "on_demand", "ondemand", "pay_per_request", "pay-per-request"}
#: Switching billing mode takes minutes on AWS; the table and its indexes are polled this long.
SETTLE_TIMEOUT_SECONDS = 3600.0


class SettleError(BackupError):
    """The table could not be given its final capacities; its data is loaded."""


@dataclass(frozen=True)
class LoadCapacity:
    """On demand (``write_units`` None), or provisioned with ``write_units`` on the table and every GSI."""

    write_units: int | None = None

    @classmethod
    def parse(cls, value: Any, name: str = "load_capacity") -> LoadCapacity | None:
        """'' or None: none; 'on-demand'; or a whole number of write units (at least 1)."""
        if value is None or not str(value).strip():
            return None
        text = str(value).strip().lower()
        if text in _ON_DEMAND_SPELLINGS:
            return cls(None)
        if text.isdigit() and int(text) >= 1:
            return cls(int(text))
        raise ParameterError(f"{name}: give 'on-demand' or a whole number of write units (at least 1), "
                             f"got {value!r}")

    @property
    def on_demand(self) -> bool:
        return self.write_units is None

    def describe(self) -> str:
        return "on demand" if self.on_demand else f"{self.write_units:,} write units on the table and each GSI"


def is_on_demand(description: dict[str, Any]) -> bool:
    return (description.get("BillingModeSummary") or {}).get("BillingMode") == "PAY_PER_REQUEST"


def _throughput(source: dict[str, Any] | None) -> dict[str, int]:
    source = source or {}
    return {"ReadCapacityUnits": max(1, int(source.get("ReadCapacityUnits") or 1)),
            "WriteCapacityUnits": max(1, int(source.get("WriteCapacityUnits") or 1))}


def loading_description(final: dict[str, Any], capacity: LoadCapacity) -> dict[str, Any]:
    """``final`` (what the table is to be) with its billing replaced by the load capacity, to create from."""
    loading = dict(final)
    if capacity.on_demand:
        loading["BillingModeSummary"] = {"BillingMode": "PAY_PER_REQUEST"}
        return loading
    units = capacity.write_units
    loading["BillingModeSummary"] = {"BillingMode": "PROVISIONED"}
    loading["ProvisionedThroughput"] = {**_throughput(final.get("ProvisionedThroughput")), "WriteCapacityUnits": units}
    loading["GlobalSecondaryIndexes"] = [
        {**index, "ProvisionedThroughput": {**_throughput(index.get("ProvisionedThroughput")),
                                            "WriteCapacityUnits": units}}
        for index in final.get("GlobalSecondaryIndexes") or []]
    return loading


def settle_request(final: dict[str, Any], table: str) -> dict[str, Any]:
    """UpdateTable arguments giving ``table`` the billing mode and throughputs of ``final``."""
    if is_on_demand(final):
        return {"TableName": table, "BillingMode": "PAY_PER_REQUEST"}
    request: dict[str, Any] = {"TableName": table, "BillingMode": "PROVISIONED",
                               "ProvisionedThroughput": _throughput(final.get("ProvisionedThroughput"))}
    updates = [{"Update": {"IndexName": index["IndexName"],
                           "ProvisionedThroughput": _throughput(index.get("ProvisionedThroughput"))}}
               for index in final.get("GlobalSecondaryIndexes") or []]
    if updates:
        request["GlobalSecondaryIndexUpdates"] = updates
    return request


def settle_command(request: dict[str, Any]) -> str:
    """The AWS CLI command that applies ``request`` (said when settling fails, or a run dies first)."""
    parts = ["aws", "dynamodb", "update-table", "--table-name", request["TableName"],
             "--billing-mode", request["BillingMode"]]
    if "ProvisionedThroughput" in request:
        pt = request["ProvisionedThroughput"]
        parts += ["--provisioned-throughput",
                  f"ReadCapacityUnits={pt['ReadCapacityUnits']},WriteCapacityUnits={pt['WriteCapacityUnits']}"]
    if request.get("GlobalSecondaryIndexUpdates"):
        parts += ["--global-secondary-index-updates",
                  json.dumps(request["GlobalSecondaryIndexUpdates"], separators=(",", ":"))]
    return shlex.join(parts)


def _pending_changes(request: dict[str, Any], current: dict[str, Any]) -> dict[str, Any] | None:
    """What of ``request`` the table does not have yet (AWS refuses an update that changes nothing)."""
    if request["BillingMode"] == "PAY_PER_REQUEST":
        return None if is_on_demand(current) else request
    if is_on_demand(current):
        return request  # a switch to provisioned must give the table's and every index's throughput
    pending: dict[str, Any] = {"TableName": request["TableName"]}
    if _throughput(current.get("ProvisionedThroughput")) != request["ProvisionedThroughput"]:
        pending["ProvisionedThroughput"] = request["ProvisionedThroughput"]
    have = {i["IndexName"]: _throughput(i.get("ProvisionedThroughput")) for i in current.get("GlobalSecondaryIndexes")
            or []}
    updates = [u for u in request.get("GlobalSecondaryIndexUpdates") or []
               if have.get(u["Update"]["IndexName"]) != u["Update"]["ProvisionedThroughput"]]
    if updates:
        pending["GlobalSecondaryIndexUpdates"] = updates
    return pending if len(pending) > 1 else None


def settled(description: dict[str, Any]) -> bool:
    """The table and every global index ACTIVE (a billing switch updates them all)."""
    return description.get("TableStatus") == "ACTIVE" and all(
        index.get("IndexStatus") == "ACTIVE" for index in description.get("GlobalSecondaryIndexes") or [])


def wait_until_settled(dynamodb: Any, table: str, timeout: float = SETTLE_TIMEOUT_SECONDS,
                       sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    waited = 0.0
    while True:
        description = describe_table(dynamodb, table)
        if settled(description):
            return description
        if waited >= timeout:
            raise SettleError(f"table {table} is still {description.get('TableStatus')} (or an index is) after "
                              f"{timeout:.0f} s")
        sleep(1.0)
        waited += 1.0


def apply_settings(dynamodb: Any, request: dict[str, Any]) -> bool:
    """Apply ``request`` (from :func:`settle_request`) and wait for ACTIVE; False if nothing needed changing.

    Raises :class:`SettleError` naming AWS's refusal (e.g. ``LimitExceededException`` for a fifth
    switch to on-demand within 24 hours).
    """
    table = request["TableName"]
    wait_until_settled(dynamodb, table)  # an update is refused while the table or an index is updating
    pending = _pending_changes(request, describe_table(dynamodb, table))
    if pending is None:
        return False
    try:
        call_with_retries(lambda: dynamodb.update_table(**pending))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise SettleError(f"UpdateTable {table}: {error.get('Code')}: {error.get('Message')}") from None
    wait_until_settled(dynamodb, table)
    return True


@dataclass
class LoadPlan:
    """What a restore does about capacity: the UpdateTable that settles the target after the load."""

    settle: dict[str, Any] | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"settle": self.settle, "note": self.note}


def plan_for_new_table(final: dict[str, Any], table: str, capacity: LoadCapacity | None) -> LoadPlan:
    if capacity is None:
        return LoadPlan()
    request = settle_request(final, table)
    same = capacity.on_demand and is_on_demand(final)
    note = (f"creating {table} {capacity.describe()} for the load"
            + ("" if same else f"; after verification it gets the backup's capacities ({describe_settings(request)})"))
    return LoadPlan(None if same else request, note)


def switch_existing(dynamodb: Any, table: str, current: dict[str, Any], capacity: LoadCapacity | None) -> LoadPlan:
    """An existing table: switch a provisioned one to on-demand for the load (see the module's rules)."""
    if capacity is None:
        return LoadPlan()
    if not capacity.on_demand:
        raise ParameterError(f"load_capacity: {capacity.write_units} write units applies to a table the restore "
                             f"creates; {table} exists, and lowering its capacity back afterwards would count "
                             "against AWS's few decreases a day. Use load_capacity on-demand (switched back "
                             "afterwards, which AWS always allows), or raise the capacity yourself")
    if is_on_demand(current):
        return LoadPlan(None, f"{table} is on demand already: nothing to switch")
    back = settle_request(current, table)
    try:
        call_with_retries(lambda: dynamodb.update_table(TableName=table, BillingMode="PAY_PER_REQUEST"))
    except ClientError as exc:
        error = exc.response.get("Error", {})
        why = {"LimitExceededException": "; a table may switch to on-demand at most 4 times in 24 hours",
               "AccessDeniedException": "; load_capacity needs dynamodb:UpdateTable on the target table"}
        raise ParameterError(
            f"load_capacity on-demand: AWS refused to switch {table} to on-demand ({error.get('Code')}: "
            f"{error.get('Message')}){why.get(str(error.get('Code')), '')}. Nothing was written: restore "
            "without load_capacity (at the table's own capacity), or later") from None
    wait_until_settled(dynamodb, table)
    return LoadPlan(back, f"switched {table} to on-demand for the load; afterwards it goes back to "
                          f"{describe_settings(back)} (AWS allows that at any time)")


def describe_settings(request: dict[str, Any]) -> str:
    if request["BillingMode"] == "PAY_PER_REQUEST":
        return "on demand"
    pt = request["ProvisionedThroughput"]
    indexes = ", ".join(f"GSI {u['Update']['IndexName']!r} {u['Update']['ProvisionedThroughput']['WriteCapacityUnits']}"
                        f" WCU" for u in request.get("GlobalSecondaryIndexUpdates") or [])
    return (f"provisioned {pt['ReadCapacityUnits']} RCU / {pt['WriteCapacityUnits']} WCU"
            + (f"; {indexes}" if indexes else ""))


def settle_or_say(dynamodb: Any, request: dict[str, Any] | None, say: Callable[[str], None],
                  warn: Callable[[str], None]) -> str | None:
    """Settle after the load; on failure say in one line that the data is loaded and how to finish.

    Returns None when settled (or nothing to do), else that line.
    """
    if request is None:
        return None
    try:
        changed = apply_settings(dynamodb, request)
    except (BackupError, ClientError) as exc:
        line = (f"the data is loaded, but {request['TableName']} could not be given its final capacities "
                f"({describe_settings(request)}): {exc}. Finish with: {settle_command(request)}")
        warn(line)
        return line
    say(f"settled {request['TableName']}: {describe_settings(request)}" + ("" if changed else " (already so)"))
    return None
