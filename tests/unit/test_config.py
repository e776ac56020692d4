"""The backups file: defaults, overrides, environment values and errors that name the entry."""

import pytest

from dynamodb_backup.config import load_backups
from dynamodb_backup.errors import ParameterError


def write(tmp_path, text):
    path = tmp_path / "backups.yaml"
    path.write_text(text)
    return path


def test_entries_inherit_defaults_and_read_the_environment(tmp_path):
    path = write(tmp_path, """
defaults:
  bucket: ${BUCKET:-fallback-bucket}
  read_ratio: 0.3
backups:
  - table: Users
  - table: Orders
    read_ratio: 1.2
    compression: none
""")
    users, orders = load_backups(path, environ={"BUCKET": "prod-backups"})
    assert (users.bucket, users.read_ratio, users.compression) == ("prod-backups", 0.3, "gzip")
    assert (orders.read_ratio, orders.compression, orders.dag_id) == (1.2, "none", "dynamodb_backup_Orders")
    assert load_backups(path, environ={})[0].bucket == "fallback-bucket"


@pytest.mark.parametrize(("entry", "message"), [
    ("- table: Users\n    read_ratio: 2", r"backups\[0\]: read_ratio must be between 0.01 and 1.5"),
    ("- table: x", r"backups\[0\]: table: 'x' is not a valid DynamoDB table name"),
    ("- table: Users\n    colour: blue", r"backups\[0\]: unknown settings \['colour'\]"),
    ("- table: Users\n    prefix: a/../b", r"backups\[0\]: prefix: 'a/../b' has an empty, '.' or '..' path segment"),
    ("- table: Users\n    compression: lz4", r"backups\[0\]: compression must be one of"),
    ("- table: Users\n  - table: Users", r"backups\[1\]: table 'Users' is listed twice"),
    ("- just-a-string", r"backups\[0\]: expected a mapping"),
    ("- table: Users\n    consistent_read: sometimes", r"backups\[0\]: consistent_read must be true or false"),
    ("- table: Users\n    restore_to_table: Users-staging\n    restore_replace: yes please",
     r"backups\[0\]: restore_replace must be true or false, got 'yes please'"),
])
def test_errors_name_the_file_and_entry(tmp_path, entry, message):
    path = write(tmp_path, f"defaults:\n  bucket: my-bucket\nbackups:\n  {entry}\n")
    with pytest.raises(ParameterError, match=message) as info:
        load_backups(path, environ={})
    assert str(path) in str(info.value)


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(ParameterError, match="cannot read backups file"):
        load_backups(tmp_path / "missing.yaml")
    path = write(tmp_path, "defaults: [unclosed")
    with pytest.raises(ParameterError, match=r"backups\.yaml"):
        load_backups(path)


@pytest.mark.parametrize(("entries", "message"), [
    # The drill of orders would delete orders-drill, a table the file backs up.
    ("- table: orders\n    drill: {}\n  - table: orders-drill",
     r"backups\.yaml: backups\[0\]: the drill of table 'orders' would use 'orders-drill' as its scratch table "
     r"\(deleted after every drill\), which is backups\[1\] \(table 'orders-drill'\)"),
    ("- table: orders-copy\n  - table: orders\n    drill: {scratch_suffix: copy}",
     r"backups\[1\]: the drill of table 'orders' would use 'orders-copy' .* which is backups\[0\] \(table"),
    ("- table: orders\n    restore_to_table: orders-drill\n    drill: {}",
     r"backups\[0\]: the drill of table 'orders' would use 'orders-drill' .* which is backups\[0\] "
     r"\(restore_to_table of 'orders'\)"),
    # Two drills sharing one scratch table would delete each other's.
    ("- table: abc-b\n    drill: {}\n  - table: abc\n    drill: {scratch_suffix: b-drill}",
     r"backups\[1\]: the drill of table 'abc' would use 'abc-b-drill' .* which is backups\[0\]'s drill scratch table"),
])
def test_a_drill_scratch_table_may_not_be_a_configured_table(tmp_path, entries, message):
    path = write(tmp_path, f"defaults: {{bucket: b-1}}\nbackups:\n  {entries}\n")
    with pytest.raises(ParameterError, match=message):
        load_backups(path)


def test_drill_scratch_tables_apart_from_every_configured_table_are_fine(tmp_path):
    path = write(tmp_path, "defaults: {bucket: b-1, drill: {}}\nbackups:\n  - table: orders\n  - table: users\n")
    assert [b.drill_settings.scratch_table(b.table) for b in load_backups(path)] == ["orders-drill", "users-drill"]
