"""Creating a table from another's description, and checking two tables share a key schema.

Used by restore (from the sidecar) and copy (from the source's DescribeTable).
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import ParameterError

log = logging.getLogger(__name__)


def key_names(description: dict[str, Any]) -> list[str]:
    """The table's key attribute names, partition key first."""
    schema = sorted(description["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    return [k["AttributeName"] for k in schema]


def key_signature(description: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(name, HASH/RANGE, S/N/B) for each key attribute."""
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    return [
        (k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?"))
        for k in sorted(description["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    ]


def check_same_keys(expected: dict[str, Any], actual: dict[str, Any], what: str) -> None:
    """Refuse when ``actual``'s key schema differs from ``expected``'s; the message shows both."""
    want, have = key_signature(expected), key_signature(actual)
    if want != have:
        raise ParameterError(
            f"{what}: key schema {_show(have)} does not match the source's {_show(want)}"
        )


def _show(signature: list[tuple[str, str, str]]) -> str:
    return "(" + ", ".join(f"{n} {kt} {t}" for n, kt, t in signature) + ")"


def _throughput(source: dict[str, Any] | None) -> dict[str, int]:
    source = source or {}
    return {
        "ReadCapacityUnits": max(1, int(source.get("ReadCapacityUnits") or 1)),
        "WriteCapacityUnits": max(1, int(source.get("WriteCapacityUnits") or 1)),
    }


def create_table_request(description: dict[str, Any], table_name: str) -> dict[str, Any]:
    """CreateTable arguments reproducing ``description``: keys, indexes, billing, stream, SSE, class."""
    on_demand = (description.get("BillingModeSummary") or {}).get("BillingMode") == "PAY_PER_REQUEST"
    request: dict[str, Any] = {
        "TableName": table_name,
        "KeySchema": description["KeySchema"],
        "AttributeDefinitions": description["AttributeDefinitions"],
        "BillingMode": "PAY_PER_REQUEST" if on_demand else "PROVISIONED",
    }
    if not on_demand:
        request["ProvisionedThroughput"] = _throughput(description.get("ProvisionedThroughput"))
    gsis = []
    for index in description.get("GlobalSecondaryIndexes") or []:
        gsi = {k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
        if not on_demand:
            gsi["ProvisionedThroughput"] = _throughput(index.get("ProvisionedThroughput"))
        gsis.append(gsi)
    if gsis:
        request["GlobalSecondaryIndexes"] = gsis
    lsis = [{k: index[k] for k in ("IndexName", "KeySchema", "Projection")}
            for index in description.get("LocalSecondaryIndexes") or []]
    if lsis:
        request["LocalSecondaryIndexes"] = lsis
    stream = description.get("StreamSpecification")
    if stream and stream.get("StreamEnabled"):
        request["StreamSpecification"] = stream
    sse = description.get("SSEDescription") or {}
    if sse.get("Status") in ("ENABLED", "ENABLING") and sse.get("SSEType") == "KMS":
        spec: dict[str, Any] = {"Enabled": True, "SSEType": "KMS"}
        if sse.get("KMSMasterKeyArn"):
            spec["KMSMasterKeyId"] = sse["KMSMasterKeyArn"]
        request["SSESpecification"] = spec
    table_class = (description.get("TableClassSummary") or {}).get("TableClass")
    if table_class and table_class != "STANDARD":
        request["TableClass"] = table_class
    return request


def create_table_like(
    client: Any,
    description: dict[str, Any],
    table_name: str,
    *,
    time_to_live: dict[str, Any] | None = None,
    tags: list[dict[str, str]] | None = None,
) -> None:
    """Create ``table_name`` like ``description``, wait until active, then set TTL and tags."""
    request = create_table_request(description, table_name)
    log.info("creating table %s (%s, %d GSIs, %d LSIs)", table_name, request["BillingMode"],
             len(request.get("GlobalSecondaryIndexes", [])), len(request.get("LocalSecondaryIndexes", [])))
    call_with_retries(lambda: client.create_table(**request))
    wait_until_active(client, table_name)
    set_ttl_and_tags(client, table_name, time_to_live, tags)


def set_ttl_and_tags(client: Any, table_name: str, time_to_live: dict[str, Any] | None,
                     tags: list[dict[str, str]] | None) -> None:
    """Enable TTL on the attribute ``time_to_live`` names (when it was on) and tag the table."""
    ttl = time_to_live or {}
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName"):
        _best_effort(lambda: client.update_time_to_live(
            TableName=table_name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
        ), "time to live")
    if tags:
        arn = client.describe_table(TableName=table_name)["Table"]["TableArn"]
        _best_effort(lambda: client.tag_resource(ResourceArn=arn, Tags=tags), "tags")


def _best_effort(call: Any, what: str) -> None:
    """TTL and tags matter but should not lose a restore; a server without them gets a warning."""
    try:
        call_with_retries(call)
    except ClientError as exc:
        log.warning("could not set %s on the new table: %s", what, exc)


#: Creating or deleting a table takes seconds to minutes: poll every second, for up to 10 minutes.
_WAIT = {"Delay": 1, "MaxAttempts": 600}


def wait_until_active(client: Any, table_name: str) -> None:
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig=_WAIT)


def wait_until_gone(client: Any, table_name: str) -> None:
    client.get_waiter("table_not_exists").wait(TableName=table_name, WaiterConfig=_WAIT)


def table_exists(client: Any, table_name: str) -> dict[str, Any] | None:
    """The table's description, or None when it does not exist."""
    try:
        described: dict[str, Any] = client.describe_table(TableName=table_name)["Table"]
        return described
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
