"""Catching a copy up one night at a time, restoring a few items, and resuming a failed as-of restore.

All against the recorded history of ``incremental_history`` (the ``history`` fixture: five days, a
full and five links made by the incremental backup path); every expected table is computed from the test's own writes.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from dynamodb_backup.cli import main as cli
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.formats.codec import key_of
from dynamodb_backup.pitr.window import iso
from dynamodb_backup.restore.asof import run_as_of
from dynamodb_backup.restore.catchup import run_apply
from dynamodb_backup.restore.job import RestoreRequest, run_restore
from dynamodb_backup.restore.selection import run_items
from incremental_history import KEYS, History, create_table, digests, scan_all


def endpoint(history: History) -> str:
    return str(history.make.keywords["dynamodb_endpoint"])


def put_all(ddb: Any, table: str, items: list[dict[str, Any]]) -> None:
    for start in range(0, len(items), 25):
        ddb.batch_write_item(RequestItems={table: [{"PutRequest": {"Item": i}} for i in items[start:start + 25]]})


def test_a_staging_copy_catches_up_night_by_night(history: History):
    ddb, staging = history.make("dynamodb"), f"{history.table}-staging"
    run_restore(history.make, RestoreRequest(folder=history.folder(0), table=staging, create_table=True,
                                             write_ratio=1.0, workers=1))
    assert digests(scan_all(ddb, staging)) == digests(history.states[0])

    with pytest.raises(ParameterError, match="does not hold the state this link starts from"):
        run_apply(history.make, history.folder(2), staging, write_ratio=1.0)  # night 1 not applied yet
    assert digests(scan_all(ddb, staging)) == digests(history.states[0]), "a refused link wrote something"

    for day in range(1, 6):
        if day == 3:
            assert cli(["restore", "--apply", history.folder(day).uri, "--table", staging, "--write-ratio", "1.0",
                        "--endpoint", endpoint(history)]) == 0
        else:
            outcome = run_apply(history.make, history.folder(day), staging, write_ratio=1.0)
            assert outcome.precheck is not None and outcome.precheck.other == 0
            assert outcome.verify is not None and outcome.verify.other == 0
            assert outcome.applied.puts + outcome.applied.deletes == outcome.report.changes
        assert digests(scan_all(ddb, staging)) == digests(history.states[day]), f"after night {day}"

    again = run_apply(history.make, history.folder(5), staging, write_ratio=1.0)  # already applied: accepted
    assert again.precheck is not None and again.precheck.after == again.report.changes
    assert digests(scan_all(ddb, staging)) == digests(history.states[5])


def _key(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item[name] for name in KEYS}


def test_a_few_items_come_back_from_a_moment_and_nothing_else_is_touched(history: History, tmp_path, capsys):
    ddb, prod = history.make("dynamodb"), f"{history.table}-prod"
    create_table(ddb, prod)
    day3, day5 = history.states[3], history.states[5]
    put_all(ddb, prod, list(day5.values()))
    # The mistake: some items deleted, some overwritten.
    victims = sorted(day5)[:12]
    for key in victims[:8]:
        ddb.delete_item(TableName=prod, Key=_key(day5[key]))
    for key in victims[8:]:
        ddb.put_item(TableName=prod, Item={**_key(day5[key]), "v": {"N": "-1"}})
    before = {key_of(i, KEYS): i for i in scan_all(ddb, prod)}
    never = {"pk": {"S": "p9"}, "sk": {"N": "12345"}}
    wanted = [_key(day5[key]) for key in victims] + [never, _key(day5[victims[0]])]  # and a duplicate
    keys_file = tmp_path / "keys.jsonl"
    keys_file.write_bytes(b"".join(orjson.dumps(k) + b"\n" for k in wanted[:5]) + b"\n"
                          + b"".join(orjson.dumps(k) + b"\n" for k in wanted[5:]))

    assert cli(["restore", "--as-of", iso(history.times[3]), "--from", history.base.uri, "--source-table",
                history.table, "--keys", str(keys_file), "--table", prod, "--write-ratio", "1.0",
                "--endpoint", endpoint(history)]) == 0

    chosen = {key_of(k, KEYS) for k in wanted}
    expected = dict(before)
    expected.update({key: day3[key] for key in chosen if key in day3})
    assert digests(scan_all(ddb, prod)) == digests(expected)
    printed = capsys.readouterr().out
    absent = sorted(key for key in chosen if key not in day3)
    assert printed.count("  written: ") == len(chosen) - len(absent)
    assert printed.count("  not in the backup (left alone): ") == len(absent) and "'12345'" in printed


def test_a_partition_comes_back_from_a_full_backup(history: History):
    ddb, prod = history.make("dynamodb"), f"{history.table}-partition"
    create_table(ddb, prod)
    put_all(ddb, prod, list(history.states[5].values()))
    for item in scan_all(ddb, prod):
        if item["pk"]["S"] == "p2":
            ddb.delete_item(TableName=prod, Key=_key(item))
    before = {key_of(i, KEYS): i for i in scan_all(ddb, prod)}

    outcome = run_items(history.make, prod, folder=history.folder(0), partition_key="p2", write_ratio=1.0)

    day0_p2 = {key: item for key, item in history.states[0].items() if key[0] == "p2"}
    assert day0_p2 and sorted(tuple(k.values()) for k in outcome.written) == sorted(day0_p2)
    assert outcome.missing == [] and outcome.differing == 0
    assert digests(scan_all(ddb, prod)) == digests({**before, **day0_p2})


def test_a_bad_keys_file_is_refused_naming_its_line_and_nothing_is_written(history: History, tmp_path):
    ddb, prod = history.make("dynamodb"), f"{history.table}-badkeys"
    create_table(ddb, prod)
    keys_file = tmp_path / "keys.jsonl"
    for body, line, reason in ((b'{"pk": {"S": "p1"}, "sk": {"N": "1"}}\n\n{"pk": {"S": "p1"}}\n', 3, "sk"),
                               (b'{"pk": {"S": "p1"}, "sk": {"N": "1"}}\nnot json\n', 2, "JSON"),
                               (b'{"pk": {"S": "p1"}, "sk": {"N": "1"}, "v": {"N": "1"}}\n', 1, "not key")):
        keys_file.write_bytes(body)
        with pytest.raises(ParameterError, match=rf"{keys_file} line {line}: .*{reason}"):
            run_items(history.make, prod, folder=history.folder(0), keys_file=str(keys_file))
    assert scan_all(ddb, prod) == []
    with pytest.raises(ParameterError, match="does not exist"):
        run_items(history.make, f"{prod}-missing", folder=history.folder(0), partition_key="p1")


class FailingWrites:
    """A DynamoDB client whose ``fail_at``-th BatchWriteItem (counted over every client made) fails."""

    def __init__(self, client: Any, calls: list[int], fail_at: int) -> None:
        self._client, self._calls, self._fail_at = client, calls, fail_at

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def batch_write_item(self, **kwargs: Any) -> Any:
        self._calls.append(1)
        if len(self._calls) == self._fail_at:
            raise RuntimeError("worker lost")
        return self._client.batch_write_item(**kwargs)


def test_a_failed_as_of_restore_resumes_where_it_stopped(history: History):
    ddb, target, calls = history.make("dynamodb"), f"{history.table}-resumed", []
    fail_at = 9  # the full's files take a few calls; this one falls inside the links

    def failing(service: str) -> Any:
        made = history.make(service)
        return FailingWrites(made, calls, fail_at) if service == "dynamodb" else made

    request = RestoreRequest(folder=history.folder(0), table=target, create_table=True, write_ratio=1.0, workers=1,
                             run_id="resume-me")
    with pytest.raises(RuntimeError, match="worker lost"):
        run_as_of(failing, request, history.base, history.table, history.times[5])
    outcome = run_as_of(history.make, request, history.base, history.table, history.times[5])
    assert outcome.load.files_skipped == outcome.load.files_loaded + outcome.load.files_skipped  # all of the full
    assert outcome.applied.files_skipped > 0 and outcome.applied.files_applied > 0
    assert outcome.verify is not None and outcome.verify.match, outcome.verify.summary()
    assert digests(scan_all(ddb, target)) == digests(history.states[5])
