"""A drill's scratch table is tagged by the drill that made it, and only a table so tagged is deleted.

The scratch table is ``<table>-<scratch_suffix>``: a name someone else could also use. So a drill
tags the table it created (``dynamodb-backup:drill`` = ``<dag id>/<run id>``, with TagResource once
the table is ACTIVE, as AWS requires) and deletes a table of that name only when ListTagsOfResource
shows the tag. A table without it is left alone, and the drill fails saying which table and which tag.

AWS applies tags asynchronously (ListTagsOfResource "might return ... an empty tag set" for a few
seconds after TagResource), so :func:`claim_scratch` reads the tag back before the load starts: by
the time anything needs to delete the table, its tag is visible.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tablecreate import table_exists, wait_until_gone
from dynamodb_backup.errors import BackupError

DRILL_TAG = "dynamodb-backup:drill"
#: AWS: tag values are at most 256 characters of letters, digits, spaces and ``_ . : / = + - @``.
_TAG_VALUE_MAX = 256
_NOT_IN_TAG_VALUE = re.compile(r"[^\w .:/=+\-@]")
#: How long a claim waits for its tag to show (AWS: "a few seconds").
CLAIM_VISIBLE_SECONDS = 60.0


class ScratchTableError(BackupError):
    """The scratch table is not one a drill made (or its tag could not be set): it is left alone."""


def drill_tag_value(dag_id: str, run_id: str) -> str:
    """``<dag id>/<run id>`` as a valid tag value (characters AWS refuses become ``_``)."""
    return _NOT_IN_TAG_VALUE.sub("_", f"{dag_id}/{run_id}")[:_TAG_VALUE_MAX]


def table_tags(dynamodb: Any, arn: str) -> dict[str, str]:
    """Every tag of the resource ``arn`` (ListTagsOfResource, all pages)."""
    tags: dict[str, str] = {}
    kwargs: dict[str, str] = {"ResourceArn": arn}
    while True:
        page = call_with_retries(lambda: dynamodb.list_tags_of_resource(**kwargs))
        tags.update({tag["Key"]: tag.get("Value", "") for tag in page.get("Tags", [])})
        if not page.get("NextToken"):
            return tags
        kwargs["NextToken"] = page["NextToken"]


def _refusal(table: str, why: str) -> ScratchTableError:
    return ScratchTableError(
        f"refusing to delete DynamoDB table {table!r}: {why}, so no restore drill made it "
        f"(delete or rename it yourself, or set the drill's scratch_suffix to a name no table uses)")


def delete_scratch(dynamodb: Any, table: str) -> str | None:
    """Delete ``table`` if it exists and carries the drill tag; returns that tag's value (None: no table).

    Raises :class:`ScratchTableError` naming the table and the missing tag when it lacks it.
    """
    described = table_exists(dynamodb, table)
    if described is None:
        return None
    owner = table_tags(dynamodb, described["TableArn"]).get(DRILL_TAG)
    if owner is None:
        raise _refusal(table, f"it has no tag {DRILL_TAG!r}")
    call_with_retries(lambda: dynamodb.delete_table(TableName=table))
    wait_until_gone(dynamodb, table)
    return owner


def claim_scratch(dynamodb: Any, table: str, owner: str, *, created_after: datetime | None = None,
                  created: bool = False, sleep: Callable[[float], None] = time.sleep,
                  visible_seconds: float = CLAIM_VISIBLE_SECONDS) -> str:
    """Tag the scratch table this drill created with ``owner``, and wait until the tag reads back.

    The drill created it when the restore says so (``created``), or when the table is younger than
    the moment the drill saw no table of that name (``created_after``: a retried create finds its
    own table). Any other table is not tagged: that would make it deletable.
    """
    described = table_exists(dynamodb, table)
    if described is None:
        raise ScratchTableError(f"scratch table {table!r} does not exist: nothing to tag")
    born = described.get("CreationDateTime")
    if not created and not (created_after is not None and isinstance(born, datetime) and born >= created_after):
        raise ScratchTableError(
            f"scratch table {table!r} was there before this drill's restore created it (created {born}): "
            f"not tagging it {DRILL_TAG!r}, so it will not be deleted")
    arn = str(described["TableArn"])
    call_with_retries(lambda: dynamodb.tag_resource(ResourceArn=arn, Tags=[{"Key": DRILL_TAG, "Value": owner}]))
    deadline = time.monotonic() + visible_seconds
    while table_tags(dynamodb, arn).get(DRILL_TAG) != owner:
        if time.monotonic() > deadline:
            raise ScratchTableError(f"tagged {table!r} {DRILL_TAG}={owner!r}, but ListTagsOfResource does not show "
                                    f"the tag after {visible_seconds:.0f} s")
        sleep(1.0)
    return arn
