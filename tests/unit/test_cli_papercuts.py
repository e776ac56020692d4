"""The command line's papercuts (issue 22 part 7), each checked without a server."""

from __future__ import annotations

import pytest

from dynamodb_backup import __version__
from dynamodb_backup.aws import clients
from dynamodb_backup.backup.plan import TableFacts, plan_scan
from dynamodb_backup.cli import build_parser, main
from dynamodb_backup.commands import restore as restore_command
from dynamodb_backup.errors import BackupFolderError


def refused(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_verbose_before_or_after_the_command_and_version(capsys):
    assert build_parser().parse_args(["ls", "s3://my-bucket/p", "-v"]).verbose is True
    assert build_parser().parse_args(["-v", "ls", "s3://my-bucket/p"]).verbose is True
    assert build_parser().parse_args(["ls", "s3://my-bucket/p"]).verbose is False
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"dynamodb-backup {__version__}"


def test_top_level_help_is_for_users(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "Back up DynamoDB tables to S3" in text and "exit code" in text
    for developer_text in ("``", "each module of", "python -m", "picklable"):
        assert developer_text not in text, developer_text


@pytest.mark.parametrize("argv", [["ls", "s3://my-bucket/p"], ["show", "s3://my-bucket/p/T/2024-01-01-00-00-00"],
                                  ["prune", "--from", "s3://my-bucket/p", "--dry-run"]])
def test_ls_show_and_prune_take_endpoint_and_region(argv, monkeypatch, capsys):
    made = []

    class NoBucket(Exception):
        pass

    def client(service, endpoint_url=None, region=None):
        made.append((service, endpoint_url, region))
        raise NoBucket  # the call is what is checked

    monkeypatch.setattr(clients, "client", client)
    with pytest.raises(NoBucket):
        main([*argv, "--endpoint", "http://127.0.0.1:9", "--region", "eu-west-1"])
    assert made == [("s3", "http://127.0.0.1:9", "eu-west-1")]


@pytest.mark.parametrize("value", ["0", "-2"])
@pytest.mark.parametrize("command", [["export", "--table", "abc", "--to", "s3://my-bucket/p"],
                                     ["restore", "--table", "abc", "s3://my-bucket/p/abc/2024-01-01-00-00-00"]])
def test_workers_below_one_are_refused_naming_the_parameter(command, value, capsys):
    err = refused(capsys, [*command, "--workers", value])
    assert f"argument --workers: must be at least 1, got {value}" in err


def test_a_date_that_is_not_one_is_named_without_a_function_name(capsys):
    err = refused(capsys, ["export", "--table", "abc", "--to", "s3://my-bucket/p", "--date", "yesterday"])
    assert "argument --date: 'yesterday' is not a date: give an ISO 8601 date" in err
    assert "parse_date" not in err


def test_restore_prints_its_run_id_only_after_validation(monkeypatch, capsys):
    calls = []

    def refuses(make_client, request, processes=1, on_validated=None):
        calls.append(request.run_id)
        raise BackupFolderError("s3://my-bucket/p/abc/2024-01-01-00-00-00: no _SUCCESS (an incomplete backup)")

    monkeypatch.setattr(restore_command, "run_restore", refuses)
    assert main(["restore", "--table", "abc", "s3://my-bucket/p/abc/2024-01-01-00-00-00"]) == 2
    out, err = capsys.readouterr()
    assert calls and "run id" not in out and "no _SUCCESS" in err

    def validates(make_client, request, processes=1, on_validated=None):
        on_validated()
        raise BackupFolderError("stop here")

    monkeypatch.setattr(restore_command, "run_restore", validates)
    main(["restore", "--table", "abc", "s3://my-bucket/p/abc/2024-01-01-00-00-00", "--run-id", "r-1"])
    assert "run id r-1 (give --run-id r-1 to resume it)" in capsys.readouterr().out


def test_a_small_on_demand_table_is_scanned_in_few_segments():
    small = TableFacts("T", size_bytes=50 * 200, item_count=50, on_demand=True, read_capacity=0, write_capacity=0)
    assert plan_scan(small, 0.25).total_segments == 1  # was 25 (10,000 assumed units x 0.25 / 100): 21 files
    big = TableFacts("T", size_bytes=200 * 1024**3, item_count=10**9, on_demand=True, read_capacity=0,
                     write_capacity=0)
    assert plan_scan(big, 0.25).total_segments == 200
    mid = TableFacts("T", size_bytes=640 * 1024**2, item_count=10**6, on_demand=True, read_capacity=0,
                     write_capacity=0)
    assert plan_scan(mid, 0.25).total_segments == 10
    unknown = TableFacts("T", size_bytes=0, item_count=0, on_demand=True, read_capacity=0, write_capacity=0)
    assert plan_scan(unknown, 0.25).total_segments == 25, "a size of 0 may be stale: the rate rule stands"
