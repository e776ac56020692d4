"""The restore's target: check its keys read-only, then create, replace or reuse it, and say so.

Why separate from loading: a wrong target must fail before any file is read
twice or any item written, and replacing a table (delete, recreate, load) is a
journaled step of its own that a resumed run must recognise.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from dynamodb_backup.aws.retry import call_with_retries
from dynamodb_backup.aws.tablecreate import (
    check_same_keys,
    create_table_like,
    set_ttl_and_tags,
    table_exists,
    wait_until_active,
    wait_until_gone,
)
from dynamodb_backup.aws.tableinfo import describe_table, read_table_info, table_identity
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.loading.checkpoint import Checkpoints
from dynamodb_backup.repository.inspection import BackupSource
from dynamodb_backup.repository.keyschema import key_description, parse_key_schema, show_key_schema
from dynamodb_backup.restore.loadcapacity import (
    LoadCapacity,
    LoadPlan,
    loading_description,
    plan_for_new_table,
    settle_command,
    switch_existing,
)

log = logging.getLogger(__name__)


def expected_keys(source: BackupSource, key_schema: str | None) -> dict[str, Any] | None:
    """The backup's key schema: from our sidecar, else from the ``key_schema`` parameter, else unknown."""
    given = parse_key_schema(key_schema) if key_schema else None
    if source.table is not None:
        if given is not None:
            check_same_keys(source.table, given, "key_schema parameter")
        return source.table
    return given


def resolve_target(dynamodb: Any, source: BackupSource, table: str, *, create: bool,
                   key_schema: str | None = None) -> dict[str, Any]:
    """Check the target against the backup without changing anything; return the keys to load with.

    An existing table must have the backup's key schema (when the backup says
    it), even one that is to be replaced; a missing one needs ``create`` and a
    known key schema.
    """
    expected = expected_keys(source, key_schema)
    existing = table_exists(dynamodb, table)
    if existing is not None:
        if expected is not None:
            check_same_keys(expected, existing, f"table {table!r}")
        return key_description(existing)
    if not create:
        raise ParameterError(f"table: {table!r} does not exist; create it or ask for it to be created (create_table)")
    if expected is None:
        raise ParameterError(f"key_schema: {source.folder}/ has no sidecar, so the key schema of the new table "
                             f"{table!r} must be given, e.g. 'pk:S' or 'pk:S,sk:N'")
    return key_description(expected)


def is_empty(dynamodb: Any, table: str) -> bool:
    response = call_with_retries(lambda: dynamodb.scan(TableName=table, Limit=1, ConsistentRead=True))
    return not response.get("Items") and not response.get("LastEvaluatedKey")


REPLACE_NOTE = "replace-table"
"""The run's record of what a replaced table was, written before it is deleted."""
SETTLE_NOTE = "settle-table"
"""The run's record of the UpdateTable that settles its target after a load at a load capacity."""


def settled_table(dynamodb: Any, table: str) -> dict[str, Any] | None:
    """The table's description once it is neither being created nor deleted; None if it does not exist.

    An earlier attempt may have died mid-creation or mid-deletion: wait, as that attempt would have.
    """
    existing = table_exists(dynamodb, table)
    status = existing.get("TableStatus") if existing else None
    if status == "DELETING":
        log.info("table %s is being deleted; waiting until it is gone", table)
        wait_until_gone(dynamodb, table)
        return None
    if existing is not None and status != "ACTIVE":
        log.info("table %s is %s; waiting until it is active", table, status)
        wait_until_active(dynamodb, table)
        return describe_table(dynamodb, table)
    return existing


def _delete_table(dynamodb: Any, table: str) -> None:
    """DeleteTable, accepting a deletion an earlier call (whose answer was lost) already started."""
    try:
        call_with_retries(lambda: dynamodb.delete_table(TableName=table))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("ResourceNotFoundException", "ResourceInUseException"):
            raise
    wait_until_gone(dynamodb, table)


def replace_table(dynamodb: Any, table: str, current: dict[str, Any] | None, *,
                  journal: Checkpoints | None = None, record: dict[str, Any] | None = None,
                  capacity: LoadCapacity | None = None) -> LoadPlan:
    """Delete ``table`` and create it again, empty, with its own keys, indexes, billing, stream, TTL and tags.

    Why: a put-only restore leaves behind the items deleted from the source
    since the target was last loaded, so a staging copy drifts from production
    night after night. A fresh table holds exactly the backup, which verify
    then proves item by item.

    Retry-safe with a ``journal`` (the run's checkpoint location): what the table
    was is recorded there before it is deleted, so an attempt that dies between
    the delete and the end of the creation is finished by the next one from that
    record, never from the half-made table, and the incarnation this run created
    is not deleted again. ``current`` is the table's settled description (None
    when an earlier attempt already deleted it); ``record`` is what the journal
    already holds, if anything. With a load ``capacity`` the table is created at it, and the plan
    returned settles it to what it was (:mod:`restore.loadcapacity`).
    """
    if record is None:
        if current is None:
            raise ParameterError(f"replace_table: table {table!r} does not exist and this run holds no record of it")
        if current.get("DeletionProtectionEnabled"):
            raise ParameterError(f"replace_table: table {table!r} has deletion protection on; turn it off to let "
                                 "the restore replace it, or restore without replacing")
        info = read_table_info(dynamodb, table)
        record = {"original_id": table_identity(info.description), "description": info.description,
                  "time_to_live": info.time_to_live, "tags": info.tags}
        if journal is not None:
            try:
                journal.write_note(REPLACE_NOTE, record)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", exc)
                raise ParameterError(f"replace_table: cannot record table {table!r} at {journal.location} before "
                                     f"deleting it ({code}); set checkpoint_uri to a writable S3 location") from None
    elif current is not None and table_identity(current) != record["original_id"]:
        log.info("table %s was already created again by an earlier attempt of this run; finishing it", table)
        set_ttl_and_tags(dynamodb, table, record["time_to_live"], record["tags"])
        return plan_for_new_table(record["description"], table, capacity)
    if current is not None:
        if (current.get("StreamSpecification") or {}).get("StreamEnabled"):
            log.warning("table %s has a stream: the new table's stream has a new ARN; point its consumers at it",
                        table)
        log.warning("replacing table %s: deleting it and creating it again like itself, then loading the backup",
                    table)
        _delete_table(dynamodb, table)
    plan = plan_for_new_table(record["description"], table, capacity)
    create_table_like(dynamodb, _at(record["description"], capacity), table, time_to_live=record["time_to_live"],
                      tags=record["tags"])
    return plan


def _at(final: dict[str, Any], capacity: LoadCapacity | None) -> dict[str, Any]:
    """The description to create from: ``final``, or ``final`` at the load capacity."""
    return final if capacity is None else loading_description(final, capacity)


def ensure_target(dynamodb: Any, source: BackupSource, table: str, keys: dict[str, Any], *,
                  create: bool, replace: bool = False, journal: Checkpoints | None = None,
                  load_capacity: LoadCapacity | None = None) -> dict[str, Any]:
    """Create the table if it is missing (from the sidecar when there is one), or replace it if asked.

    Says whether it was created, replaced, and empty (then verification
    compares every item, not only the count). ``journal`` makes a replacement
    retry-safe (see :func:`replace_table`). With a ``load_capacity`` the table is
    created at it (an existing one switched to on-demand), and ``settle`` holds the
    UpdateTable that gives it its final capacities after the load (None: nothing to do).
    """
    existing = settled_table(dynamodb, table)
    record = journal.read_note(REPLACE_NOTE) if replace and journal is not None else None
    if replace and (existing is not None or record is not None):
        if existing is not None:
            check_same_keys(keys, existing, f"table {table!r}")
        plan = replace_table(dynamodb, table, existing, journal=journal, record=record, capacity=load_capacity)
        return _said({"created": True, "replaced": True, "was_empty": True}, plan, journal)
    if existing is not None:
        check_same_keys(keys, existing, f"table {table!r}")
        empty = is_empty(dynamodb, table)
        log.info("restoring into existing table %s (%s, %s)", table, show_key_schema(existing),
                 "empty" if empty else "NOT empty: items with the backup's keys are overwritten")
        # A retry of this run (the table made or switched at the load capacity before) settles as planned then.
        earlier = journal.read_note(SETTLE_NOTE) if load_capacity is not None and journal is not None else None
        plan = (LoadPlan(earlier, "an earlier attempt of this run set the load capacity") if earlier
                else switch_existing(dynamodb, table, existing, load_capacity))
        return _said({"created": False, "replaced": False, "was_empty": empty}, plan, journal)
    if not create and not replace:
        raise ParameterError(f"table: {table!r} does not exist and create_table is off")
    if source.table is not None:
        final = source.table
        plan = plan_for_new_table(final, table, load_capacity)
        create_table_like(dynamodb, _at(final, load_capacity), table, time_to_live=source.time_to_live,
                          tags=source.tags)
    else:
        final = {**keys, "BillingModeSummary": {"BillingMode": "PAY_PER_REQUEST"}, "GlobalSecondaryIndexes": []}
        plan = plan_for_new_table(final, table, load_capacity)
        create_table_like(dynamodb, _at(final, load_capacity), table)
    return _said({"created": True, "replaced": False, "was_empty": True}, plan, journal)


def _said(target: dict[str, Any], plan: LoadPlan, journal: Checkpoints | None) -> dict[str, Any]:
    """The target's record, with the settle plan when there is one (the record's keys stay as they were).

    The plan is also written to the run's journal, so a retry that finds the table already made (or
    switched) at the load capacity still settles it.
    """
    if plan.note:
        log.info("load capacity: %s", plan.note)
    if plan.settle is not None:
        log.info("if the run stops before it settles, finish with: %s", settle_command(plan.settle))
        target["settle"] = plan.settle
        if journal is not None:
            try:
                journal.write_note(SETTLE_NOTE, plan.settle)
            except ClientError as exc:
                log.warning("could not record the settle plan at %s (%s): a retry would not settle the table",
                            journal.location, exc.response.get("Error", {}).get("Code", exc))
    return target
