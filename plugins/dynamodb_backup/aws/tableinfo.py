"""Reading what a table is: description, TTL and tags, and its capacity now."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.errors import ParameterError


@dataclass(frozen=True)
class TableFacts:
    """What planning needs from DescribeTable."""

    name: str
    size_bytes: int
    item_count: int
    on_demand: bool
    read_capacity: float
    write_capacity: float

    @classmethod
    def from_description(cls, table: dict[str, Any]) -> TableFacts:
        """Build from DescribeTable's ``Table`` member."""
        billing = (table.get("BillingModeSummary") or {}).get("BillingMode", "PROVISIONED")
        throughput = table.get("ProvisionedThroughput") or {}
        return cls(
            name=table["TableName"],
            size_bytes=int(table.get("TableSizeBytes") or 0),
            item_count=int(table.get("ItemCount") or 0),
            on_demand=billing == "PAY_PER_REQUEST",
            read_capacity=float(throughput.get("ReadCapacityUnits") or 0),
            write_capacity=float(throughput.get("WriteCapacityUnits") or 0),
        )


@dataclass
class TableInfo:
    description: dict[str, Any]
    time_to_live: dict[str, Any] | None
    tags: list[dict[str, str]]

    @property
    def facts(self) -> TableFacts:
        return TableFacts.from_description(self.description)


def table_identity(description: dict[str, Any]) -> str:
    """What tells this table from one deleted and created again under the same name.

    TableId where the server gives one, else the ARN and creation time.
    """
    created: Any = description.get("CreationDateTime")
    stamp = created.isoformat() if isinstance(created, datetime) else str(created)
    return str(description.get("TableId") or f"{description.get('TableArn')}@{stamp}")


def describe_table(dynamodb: Any, table: str) -> dict[str, Any]:
    """DescribeTable's ``Table``; a missing table is a parameter error that names it."""
    try:
        response = call_with_retries(lambda: dynamodb.describe_table(TableName=table))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            region = getattr(getattr(dynamodb, "meta", None), "region_name", None) or "the configured region"
            raise ParameterError(f"table: DynamoDB table {table!r} does not exist in region {region}: check the "
                                 "name, and the region (--region, AWS_DEFAULT_REGION)") from None
        raise
    described: dict[str, Any] = response["Table"]
    return described


def _optional(call: Any) -> Any:
    """Some servers (and some permissions) do not offer TTL or tags; record them as unknown."""
    try:
        return call_with_retries(call)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("UnknownOperationException", "AccessDeniedException", "ValidationException",
                    "UnrecognizedClientException", "NotImplementedException"):
            return None
        raise


def read_table_info(dynamodb: Any, table: str) -> TableInfo:
    description = describe_table(dynamodb, table)
    ttl = _optional(lambda: dynamodb.describe_time_to_live(TableName=table))
    tags_response = _optional(lambda: dynamodb.list_tags_of_resource(ResourceArn=description["TableArn"]))
    return TableInfo(
        description=description,
        time_to_live=(ttl or {}).get("TimeToLiveDescription"),
        tags=list((tags_response or {}).get("Tags", [])),
    )
