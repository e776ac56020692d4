"""Tables as dynalite has them now, matched with the journal's incarnation of the same name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from local_pitr.items import KeySchema
from local_pitr.journal import FollowedTable, Journal
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError

# arn:aws:dynamodb:<region>:<account>:table/<name>; the region is ignored, as on AWS.
TABLE_ARN = re.compile(r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]*:\d{12}:table/([a-zA-Z0-9_.-]{3,255})$")


def incarnation_id(description: dict[str, Any]) -> str:
    """The table's TableId, which AWS and dynalite give; DynamoDB Local has none, so there its ARN and
    creation time (a re-created table is another incarnation, as a new TableId says on AWS)."""
    return str(description.get("TableId") or f"{description['TableArn']}@{description.get('CreationDateTime')}")


def name_from_arn(arn: str) -> str | None:
    match = TABLE_ARN.match(arn)
    return match.group(1) if match else None


def name_from_name_or_arn(value: str) -> str:
    """UpdateContinuousBackups and DescribeContinuousBackups take a table name or its ARN."""
    if value.startswith("arn:"):
        name = name_from_arn(value)
        if name is None:
            raise ApiError("ValidationException", f"Invalid TableArn: {value}")
        return name
    return value


@dataclass(frozen=True)
class LiveTable:
    name: str
    table_id: str
    table_arn: str
    status: str
    keys: KeySchema
    followed: FollowedTable | None


def live_table(upstream: Upstream, journal: Journal, name: str) -> LiveTable | None:
    """The table called ``name`` in dynalite, or None. A journal incarnation whose TableId no
    longer matches (the table was deleted and re-created behind the stand-in) is forgotten."""
    try:
        description = upstream.call("DescribeTable", {"TableName": name})["Table"]
    except ApiError as error:
        if error.code == "ResourceNotFoundException":
            return None
        raise
    followed = journal.followed(name)
    if followed is not None and followed.table_id != incarnation_id(description):
        journal.forget(name)
        followed = None
    return LiveTable(
        name=description["TableName"],
        table_id=incarnation_id(description),
        table_arn=description["TableArn"],
        status=description["TableStatus"],
        keys=KeySchema.from_description(description["KeySchema"]),
        followed=followed,
    )
