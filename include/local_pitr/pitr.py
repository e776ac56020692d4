"""UpdateContinuousBackups and DescribeContinuousBackups (reference section 4).

PITR is a per-incarnation setting in the journal. Enabling it on a table the journal does not
follow yet (it existed before the stand-in knew it) takes the table over: the journal follows
it from then on, and a consistent Scan of dynalite becomes its baseline, stamped one
microsecond before the enable time. Writes answered after the takeover are journaled; writes
answered before it are in dynalite before the scan starts, so the scan sees them. Limit: a
write landing while the scan runs may show in the baseline although it came after the enable
time (AWS exports are not transactionally consistent either).

Times: the enable time is a whole second; Earliest = max(enable time, now - period) and
Latest = max(now - lag, Earliest), both whole seconds, so right after enabling both equal
the enable time.
"""

from __future__ import annotations

from typing import Any

from local_pitr.items import encode_image
from local_pitr.journal import DEFAULT_RECOVERY_DAYS, Entry, FollowedTable, Journal
from local_pitr.settings import Settings
from local_pitr.tables import LiveTable, live_table, name_from_name_or_arn
from local_pitr.upstream import Upstream
from local_pitr.wire import ApiError, constraint_error, epoch_seconds, now_us, validation_error, whole_seconds_us

DAY_US = 86_400 * 1_000_000


class PitrWindow:
    """Where exports may look: [earliest, latest] in epoch microseconds, for one followed table."""

    def __init__(self, table: FollowedTable, lag_seconds: float, now: int | None = None) -> None:
        assert table.pitr_enabled_us is not None
        self.now = now_us() if now is None else now
        self.enabled_us = table.pitr_enabled_us
        self.earliest = max(self.enabled_us, whole_seconds_us(self.now - table.recovery_days * DAY_US))
        self.latest = max(whole_seconds_us(self.now - round(lag_seconds * 1_000_000)), self.earliest)


class PitrApi:
    def __init__(self, journal: Journal, settings: Settings) -> None:
        self.journal = journal
        self.settings = settings

    def table(self, upstream: Upstream, name_or_arn: object) -> LiveTable:
        if not isinstance(name_or_arn, str) or not name_or_arn:
            raise constraint_error(None, "tableName", "Member must not be null")
        name = name_from_name_or_arn(name_or_arn)
        table = live_table(upstream, self.journal, name)
        if table is None:
            raise ApiError("TableNotFoundException", f"Table not found: {name}")
        return table

    def describe(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        table = self.table(upstream, request.get("TableName"))
        return {"ContinuousBackupsDescription": self.description(table.followed)}

    def update(self, request: dict[str, Any], upstream: Upstream) -> dict[str, Any]:
        spec = request.get("PointInTimeRecoverySpecification")
        if not isinstance(spec, dict):
            raise constraint_error(None, "pointInTimeRecoverySpecification", "Member must not be null")
        enabled = spec.get("PointInTimeRecoveryEnabled")
        if not isinstance(enabled, bool):
            raise constraint_error(None, "pointInTimeRecoverySpecification.pointInTimeRecoveryEnabled",
                                   "Member must not be null")
        days = spec.get("RecoveryPeriodInDays")
        if days is not None:
            if not enabled:
                raise validation_error("Cannot specify RecoveryPeriodInDays when disabling point-in-time recovery.")
            if not isinstance(days, int) or isinstance(days, bool) or days < 1:
                raise constraint_error(days, "pointInTimeRecoverySpecification.recoveryPeriodInDays",
                                       "Member must have value greater than or equal to 1")
            if days > 35:
                raise constraint_error(days, "pointInTimeRecoverySpecification.recoveryPeriodInDays",
                                       "Member must have value less than or equal to 35")
        table = self.table(upstream, request.get("TableName"))
        if table.status == "CREATING":  # AWS: for a few seconds after a table is created; retry
            raise ApiError("ContinuousBackupsUnavailableException", "Backups have not yet been enabled for this table")
        followed = table.followed
        if not enabled:
            if followed is not None and followed.pitr_enabled_us is not None:
                # Off erases the history exports may use: the next enable starts a new window.
                followed = self.journal.set_pitr(followed, None, DEFAULT_RECOVERY_DAYS)
        elif followed is None:
            followed = self._take_over(upstream, table, days or DEFAULT_RECOVERY_DAYS)
        elif followed.pitr_enabled_us is None:
            followed = self.journal.set_pitr(followed, whole_seconds_us(now_us()), days or DEFAULT_RECOVERY_DAYS)
        elif days is not None:
            followed = self.journal.set_pitr(followed, followed.pitr_enabled_us, days)  # changed in place
        return {"ContinuousBackupsDescription": self.description(followed)}

    def description(self, table: FollowedTable | None) -> dict[str, Any]:
        if table is None or table.pitr_enabled_us is None:
            return {"ContinuousBackupsStatus": "ENABLED",
                    "PointInTimeRecoveryDescription": {"PointInTimeRecoveryStatus": "DISABLED"}}
        window = PitrWindow(table, self.settings.lag_seconds)
        return {
            "ContinuousBackupsStatus": "ENABLED",
            "PointInTimeRecoveryDescription": {
                "PointInTimeRecoveryStatus": "ENABLED",
                "RecoveryPeriodInDays": table.recovery_days,
                "EarliestRestorableDateTime": epoch_seconds(window.earliest),
                "LatestRestorableDateTime": epoch_seconds(window.latest),
            },
        }

    def _take_over(self, upstream: Upstream, table: LiveTable, days: int) -> FollowedTable:
        enabled_us = whole_seconds_us(now_us())
        followed = self.journal.follow(table.name, table.table_id, table.table_arn, table.keys,
                                       pitr_enabled_us=enabled_us, recovery_days=days)
        request: dict[str, Any] = {"TableName": table.name, "ConsistentRead": True}
        while True:
            page = upstream.call("Scan", request)
            entries: list[Entry] = [(table.keys.key_bytes(item, normalised=True), encode_image(item))
                                    for item in page.get("Items", [])]
            self.journal.append_baseline(followed, entries, enabled_us - 1)
            if "LastEvaluatedKey" not in page:
                return followed
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
