# mypy: disallow-untyped-calls=False
# (Airflow's BaseTrigger and TriggerEvent carry no annotations.)
"""Triggers for point-in-time backups: the moment becoming restorable, and the export finishing.

Both poll boto3 in a thread (``asyncio.to_thread``): the provider's async waiters
need aiobotocore, and a poll every few seconds costs the triggerer nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.hooks.clients import aws_client
from dynamodb_backup.pitr.native import describe_export
from dynamodb_backup.pitr.steps import check_restorable

MODULE = __name__


class RestorableTrigger(BaseTrigger):
    """Fires when ``at`` lies inside the table's PITR window (or it never will)."""

    def __init__(self, table: str, at: str, aws_conn_id: str | None, poll_seconds: float = 15.0) -> None:
        super().__init__()
        self.table, self.at, self.aws_conn_id, self.poll_seconds = table, at, aws_conn_id, poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{MODULE}.RestorableTrigger", {"table": self.table, "at": self.at,
                                                "aws_conn_id": self.aws_conn_id, "poll_seconds": self.poll_seconds})

    def _check(self) -> str:
        dynamodb = aws_client("dynamodb", self.aws_conn_id)
        return check_restorable(dynamodb, self.table, datetime.fromisoformat(self.at), datetime.now(UTC))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        while True:
            polls += 1
            try:
                verdict = await asyncio.to_thread(self._check)
            except ParameterError as exc:
                yield TriggerEvent({"status": "error", "message": str(exc), "polls": polls})
                return
            if verdict == "ready":
                yield TriggerEvent({"status": "ready", "polls": polls})
                return
            self.log.info("%s not restorable yet for %s; checking again in %.0f s", self.at, self.table,
                          self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)


class ExportFinishedTrigger(BaseTrigger):
    """Fires when DescribeExport reports COMPLETED or FAILED; the event carries the status."""

    def __init__(self, export_arn: str, aws_conn_id: str | None, poll_seconds: float = 30.0) -> None:
        super().__init__()
        self.export_arn, self.aws_conn_id, self.poll_seconds = export_arn, aws_conn_id, poll_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{MODULE}.ExportFinishedTrigger", {"export_arn": self.export_arn, "aws_conn_id": self.aws_conn_id,
                                                    "poll_seconds": self.poll_seconds})

    def _describe(self) -> dict[str, Any]:
        return describe_export(aws_client("dynamodb", self.aws_conn_id), self.export_arn).to_dict()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        polls = 0
        while True:
            polls += 1
            status = await asyncio.to_thread(self._describe)
            if status["status"] in ("COMPLETED", "FAILED"):
                yield TriggerEvent({"export": status, "polls": polls})
                return
            self.log.info("export %s is %s; checking again in %.0f s", self.export_arn, status["status"],
                          self.poll_seconds)
            await asyncio.sleep(self.poll_seconds)
