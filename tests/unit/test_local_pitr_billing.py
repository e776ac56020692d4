"""The stand-in's limit on switching a table to on-demand (a clock moved by hand, a fake dynalite)."""

from __future__ import annotations

from typing import Any

import pytest

from local_pitr.billing import WINDOW_SECONDS, BillingSwitches
from local_pitr.database import Database
from local_pitr.wire import ApiError


class FakeDynalite:
    """Just enough of dynalite: one table whose billing mode UpdateTable flips."""

    def __init__(self) -> None:
        self.billing = "PROVISIONED"
        self.table_id = "id-1"
        self.updates = 0

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        if operation == "DescribeTable":
            return {"Table": {"TableName": payload["TableName"], "TableId": self.table_id,
                              "BillingModeSummary": {"BillingMode": self.billing}}}
        assert operation == "UpdateTable"
        self.updates += 1
        self.billing = payload.get("BillingMode", self.billing)
        return {"TableDescription": {"TableName": payload["TableName"]}}


class Clock:
    now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def switch_round(switches: BillingSwitches, dynalite: FakeDynalite) -> None:
    switches.update_table({"TableName": "t", "BillingMode": "PAY_PER_REQUEST"}, dynalite)  # type: ignore[arg-type]
    switches.update_table({"TableName": "t", "BillingMode": "PROVISIONED",  # type: ignore[arg-type]
                           "ProvisionedThroughput": {"ReadCapacityUnits": 1, "WriteCapacityUnits": 1}}, dynalite)


def test_a_fifth_switch_to_on_demand_within_24_hours_is_refused_and_allowed_again_later(tmp_path):
    clock, dynalite = Clock(), FakeDynalite()
    switches = BillingSwitches(Database(tmp_path), clock=clock)
    for _ in range(4):
        switch_round(switches, dynalite)
        clock.now += 3600
    assert dynalite.updates == 8
    with pytest.raises(ApiError) as refused:
        switches.update_table({"TableName": "t", "BillingMode": "PAY_PER_REQUEST"}, dynalite)  # type: ignore[arg-type]
    assert refused.value.code == "LimitExceededException"
    assert "Update to PayPerRequest mode are limited to 4 times in 1 day(s)" in refused.value.message
    assert dynalite.updates == 8 and dynalite.billing == "PROVISIONED"  # nothing reached dynalite
    clock.now += WINDOW_SECONDS - 4 * 3600 + 1  # the first switch has left the rolling window
    switch_round(switches, dynalite)
    assert dynalite.updates == 10


def test_switches_to_provisioned_and_a_recreated_table_are_not_limited(tmp_path):
    clock, dynalite = Clock(), FakeDynalite()
    switches = BillingSwitches(Database(tmp_path), clock=clock)
    for _ in range(4):
        switch_round(switches, dynalite)
    assert switches.recent_switches("id-1") == 4
    dynalite.table_id = "id-2"  # deleted and created again: a new TableId, a new count (as on AWS)
    switch_round(switches, dynalite)
    assert switches.recent_switches("id-2") == 1


def test_the_count_survives_a_restart(tmp_path):
    clock, dynalite = Clock(), FakeDynalite()
    for _ in range(4):
        switch_round(BillingSwitches(Database(tmp_path), clock=clock), dynalite)
    with pytest.raises(ApiError, match="LimitExceededException"):
        BillingSwitches(Database(tmp_path), clock=clock).update_table(
            {"TableName": "t", "BillingMode": "PAY_PER_REQUEST"}, dynalite)  # type: ignore[arg-type]
