"""The ``drill`` key of a table in ``backups.yaml``: ``{schedule: "@weekly", write_ratio: 1.0}`` (null: no drills)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from dynamodb_backup.backup.plan import check_ratio
from dynamodb_backup.errors import ParameterError

_KNOWN = ("schedule", "write_ratio", "scratch_suffix")
_SUFFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,40}$")


@dataclass(frozen=True)
class DrillSettings:
    schedule: str | None = "@weekly"
    #: Share of the scratch table's write capacity the drill's load may use (on-demand: of an assumed capacity).
    write_ratio: float = 1.0
    #: The scratch table is ``<table>-<scratch_suffix>`` (deleted after every drill, also a failed one).
    scratch_suffix: str = "drill"

    @classmethod
    def parse(cls, value: object, where: str = "drill") -> DrillSettings | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            raise ParameterError(f"{where}: expected a mapping such as {{schedule: \"@weekly\"}}, got {value!r}")
        unknown = sorted(set(value) - set(_KNOWN))
        if unknown:
            raise ParameterError(f"{where}: unknown settings {unknown} (known: {', '.join(_KNOWN)})")
        schedule = value.get("schedule", cls.schedule)
        if schedule is not None and (not isinstance(schedule, str) or not schedule.strip()):
            raise ParameterError(f"{where}.schedule: a cron expression or preset such as @weekly, got {schedule!r}")
        ratio = value.get("write_ratio", cls.write_ratio)
        if isinstance(ratio, bool) or not isinstance(ratio, int | float):
            raise ParameterError(f"{where}.write_ratio: a number, got {ratio!r}")
        try:
            check_ratio(float(ratio), f"{where}.write_ratio")
        except ParameterError as exc:
            raise ParameterError(str(exc)) from None
        suffix = value.get("scratch_suffix", cls.scratch_suffix)
        if not isinstance(suffix, str) or not _SUFFIX_RE.match(suffix):
            raise ParameterError(f"{where}.scratch_suffix: letters, digits, '_', '-', '.' (1-40), got {suffix!r}")
        return cls(schedule, float(ratio), suffix)

    def scratch_table(self, table: str) -> str:
        return f"{table}-{self.scratch_suffix}"[:255]
