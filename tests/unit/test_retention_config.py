"""retention and drill in backups.yaml: defaults, per-table refinements, and errors naming the file, entry and key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dynamodb_backup.config import load_backups
from dynamodb_backup.drill.settings import DrillSettings
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.retention.plan import RetentionPolicy

REPO = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, doc: dict) -> Path:
    path = tmp_path / "backups.yaml"
    path.write_text(json.dumps(doc))
    return path


def test_the_shipped_file_keeps_35_days_and_7_backups_and_drills_weekly():
    for backup in load_backups(REPO / "include" / "backups.yaml", environ={"DYNAMODB_BACKUP_BUCKET": "my-bucket"}):
        assert backup.retention_policy == RetentionPolicy(35, 7)
        assert backup.drill_settings == DrillSettings("@weekly", 1.0, "drill")


def test_an_entry_refines_the_defaults_mapping_or_turns_it_off(tmp_path):
    path = write(tmp_path, {"defaults": {"bucket": "my-bucket", "retention": {"keep_days": 35, "keep_min": 7},
                                         "drill": {"schedule": "@weekly"}},
                            "backups": [{"table": "Orders", "retention": {"keep_days": 90}},
                                        {"table": "Users", "retention": None, "drill": None}]})
    orders, users = load_backups(path, environ={})
    assert orders.retention_policy == RetentionPolicy(90, 7)
    assert users.retention_policy is None and users.drill_settings is None


@pytest.mark.parametrize(("entry", "named"), [
    ({"retention": {"keep_days": -1}}, "backups[0]: retention.keep_days"),
    ({"retention": {"keep_min": "seven"}}, "backups[0]: retention.keep_min"),
    ({"retention": {"days": 3}}, "backups[0]: retention: unknown settings ['days']"),
    ({"drill": {"schedule": ""}}, "backups[0]: drill.schedule"),
    ({"drill": {"write_ratio": 9}}, "backups[0]: drill.write_ratio"),
    ({"drill": {"scratch_suffix": "a b"}}, "backups[0]: drill.scratch_suffix"),
    ({"drill": "weekly"}, "backups[0]: drill: expected a mapping"),
])
def test_bad_values_are_named_with_file_entry_and_key(tmp_path, entry, named):
    path = write(tmp_path, {"defaults": {"bucket": "my-bucket"}, "backups": [{"table": "Orders", **entry}]})
    with pytest.raises(ParameterError, match=r"backups\.yaml: " + named.replace("[", r"\[").replace("]", r"\]")):
        load_backups(path, environ={})
