"""``replicate_to:`` in a table's entry: a table name, or a mapping; anything else is one line naming it."""

from __future__ import annotations

import pytest

from dynamodb_backup.errors import ParameterError
from dynamodb_backup.replica.settings import ReplicaSettings


def test_a_name_or_a_mapping():
    assert ReplicaSettings.parse(None) is None
    assert ReplicaSettings.parse("Orders-replica") == ReplicaSettings("Orders-replica")
    assert ReplicaSettings.parse({"table": "Orders", "region": "eu-west-1", "aws_conn_id": "replica",
                                  "write_ratio": 0.25}) == ReplicaSettings("Orders", "eu-west-1", "replica", 0.25)


@pytest.mark.parametrize(("value", "said"), [
    (["Orders"], "replicate_to: give a table name or"),
    ({"region": "eu-west-1"}, "replicate_to: table is missing"),
    ({"table": "Orders", "regoin": "x"}, "replicate_to: unknown settings ['regoin']"),
    ({"table": "a b"}, "replicate_to.table"),
    ({"table": "Orders", "write_ratio": 7}, "replicate_to.write_ratio"),
    ({"table": "Orders", "region": 5}, "replicate_to.region must be a string"),
    ({"table": "Orders", "write_ratio": "half"}, "replicate_to.write_ratio must be a number"),
])
def test_bad_settings_are_one_line_naming_them(value, said):
    with pytest.raises(ParameterError) as refused:
        ReplicaSettings.parse(value)
    assert said in str(refused.value) and "\n" not in str(refused.value)
