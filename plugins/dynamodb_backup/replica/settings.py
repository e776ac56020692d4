"""A table entry's ``replicate_to:``: where its stream backup's replica is.

    replicate_to: Orders-replica                  # a table name: same account and region
    replicate_to:                                 # or a mapping
      table: Orders
      region: eu-west-1                           # the replica's region (default: the connection's)
      aws_conn_id: replica_account                # an Airflow connection for the replica's account
      write_ratio: 0.5                            # share of the replica's write capacity
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dynamodb_backup.backup.plan import check_ratio
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.layout import check_table_name

_KNOWN = ("table", "region", "aws_conn_id", "write_ratio")


@dataclass(frozen=True)
class ReplicaSettings:
    table: str
    region: str | None = None
    aws_conn_id: str | None = None
    write_ratio: float = 0.5

    @classmethod
    def parse(cls, value: Any, param: str = "replicate_to") -> ReplicaSettings | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = {"table": value}
        if not isinstance(value, dict):
            raise ParameterError(f"{param}: give a table name or {{table, region, aws_conn_id, write_ratio}}, "
                                 f"got {value!r}")
        unknown = sorted(set(value) - set(_KNOWN))
        if unknown:
            raise ParameterError(f"{param}: unknown settings {unknown} (known: {', '.join(_KNOWN)})")
        if "table" not in value:
            raise ParameterError(f"{param}: table is missing (the replica table's name)")
        ratio = value.get("write_ratio", 0.5)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float):
            raise ParameterError(f"{param}.write_ratio must be a number, got {ratio!r}")
        settings = cls(check_table_name(str(value["table"]), f"{param}.table"), value.get("region"),
                       value.get("aws_conn_id"), float(ratio))
        for name in ("region", "aws_conn_id"):
            if getattr(settings, name) is not None and not isinstance(getattr(settings, name), str):
                raise ParameterError(f"{param}.{name} must be a string, got {getattr(settings, name)!r}")
        check_ratio(settings.write_ratio, f"{param}.write_ratio")
        return settings
