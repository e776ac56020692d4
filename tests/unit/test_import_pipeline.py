"""import-pipeline on AWS's own definitions (tests/fixtures/datapipeline/SOURCES.md) and hand-written variants:
the printed entries load through the backups file loader, and what does not map is named with its reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from dynamodb_backup.cli import main
from dynamodb_backup.config import load_backups
from dynamodb_backup.errors import ParameterError
from dynamodb_backup.migrate.definition import read_definition
from dynamodb_backup.migrate.schedule import airflow_schedule

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "datapipeline"


def imported(capsys, tmp_path, *argv: str) -> tuple[int, list, str, str]:
    code = main(["import-pipeline", *argv])
    out, err = capsys.readouterr()
    path = tmp_path / "backups.yaml"
    path.write_text(out)
    return code, load_backups(path, environ={}), out, err


def fixture(name: str) -> str:
    path = FIXTURES / name
    assert path.is_file(), f"the fixture is missing: {path}"
    return str(path)


def test_aws_export_template_with_its_values(capsys, tmp_path):
    code, (entry,), out, _ = imported(capsys, tmp_path, fixture("awsdocs-export-ddb-to-s3-template-ebs.json"),
                                      "--parameter-values", "myOutputS3Loc=s3://my-backups/ddb")
    assert code == 0
    assert (entry.table, entry.bucket, entry.prefix, entry.read_ratio, entry.schedule) == (
        "ddb_table", "my-backups", "ddb", 0.25, None)
    assert entry.backups.datapipeline[0].uri == "s3://my-backups/ddb", "the old folders become the table's backups"
    assert "# log location s3://s3_path (pipelineLogUri)" in out
    assert "# region us-east-1 (EmrCluster EmrClusterForBackup, the jar's bucket)" in out
    assert "NOT MAPPED: EmrCluster EmrClusterForBackup (coreEbsConfiguration," in out and "no EMR in this tool" in out


def test_aws_template_values_that_are_placeholders_are_named(capsys, tmp_path):
    code, entries, _, err = imported(capsys, tmp_path, fixture("awsdocs-export-ddb-to-s3-template-ebs.json"))
    assert code == 1 and entries == []
    assert "TableBackupActivity: output folder (#{output.directoryPath}): 's3_path' is not a valid S3 bucket" in err


def test_console_template_scheduled_and_the_import_template(capsys, tmp_path):
    code, (entry,), out, err = imported(
        capsys, tmp_path, fixture("asiaq-export-ddb-to-s3-template.json"),
        fixture("asiaq-import-s3-to-ddb-template.json"),
        "--parameter-values", "myDDBTableName=Users", "--parameter-values", "myOutputS3Loc=s3://my-backups/b/Users",
        "--parameter-values", "myInputS3Loc=s3://my-backups/b/Users/2024-03-05-04-10-22")
    assert code == 0 and err == ""
    assert (entry.table, entry.bucket, entry.prefix, entry.schedule, entry.read_ratio) == (
        "Users", "my-backups", "b", "@daily", 0.25)
    assert entry.datapipeline_output is None, "<prefix>/<table>/<date>/ is our own layout already"
    assert "startAt FIRST_ACTIVATION_DATE_TIME: the start was the activation time" in out
    assert ("the same load is `dynamodb-backup restore s3://my-backups/b/Users/2024-03-05-04-10-22/ --table Users "
            "--write-ratio 0.25`") in out


def test_aws_sample_with_a_parameter_values_file(capsys, tmp_path):
    code, (entry,), out, _ = imported(capsys, tmp_path, fixture("samples-dynamodb-export.json"),
                                      "--parameter-values-uri", "file://" + fixture(
                                          "samples-dynamodb-export-parameters.json"))
    assert code == 0
    assert (entry.table, entry.bucket, entry.prefix, entry.read_ratio, entry.schedule) == (
        "dynamo-table-name", "bucket", "directory", 0.5, None)
    assert "occurrences 1, a one-off run" in out
    assert "regions disagree: {'EmrCluster EmrClusterForBackup': 'eu-west-1', \"the jar's bucket\": 'us-east-1'}" in out


def test_api_shape_with_alarms_gzip_segments_and_a_start_time(capsys, tmp_path):
    code, (entry,), out, _ = imported(capsys, tmp_path, fixture("handwritten-api-shape-alarms.json"))
    assert code == 0
    assert (entry.table, entry.schedule, entry.read_ratio, entry.segments, entry.compression) == (
        "Orders", "30 6 * * *", 0.5, 8, "gzip")
    assert entry.failure_sns_topic_arn == "arn:aws:sns:eu-west-1:123456789012:backup-failures"
    assert "NOT MAPPED: onSuccess SnsAlarm SuccessAlarm (arn:aws:sns:eu-west-1:123456789012:backups-done)" in out
    assert "# region eu-west-1 (EmrCluster EmrClusterForBackup, DDBSourceTable.region, the jar's bucket)" in out
    assert "# log location s3://acme-logs/datapipeline/" in out


def test_many_tables_and_a_date_pattern_that_is_not_ours(capsys, tmp_path):
    code, (users, events), out, _ = imported(capsys, tmp_path, fixture("handwritten-two-tables.json"))
    assert code == 0 and (users.table, events.table) == ("Users", "Events")
    assert users.schedule == "15 2-23/6 * * *" and users.prefix == "us-west-2"
    assert "output folder date pattern 'YYYY-MM-dd hh:mm:ss': not 'YYYY-MM-dd-HH-mm-ss'" in out


def test_broken_and_hive_definitions_are_named_not_crashed_on(capsys, tmp_path):
    code, entries, _, err = imported(capsys, tmp_path, fixture("handwritten-broken-and-hive.json"))
    assert code == 1 and entries == []
    assert "ToCsv: a HiveActivity (Hive/CSV output), not Data Pipeline's export format" in err
    assert "Backup: '#{DDBTable,0.25': an expression without its closing brace" in err


def test_a_table_in_two_files_is_printed_once(capsys, tmp_path):
    two = fixture("handwritten-two-tables.json")
    code, entries, _, err = imported(capsys, tmp_path, two, two)
    assert code == 0 and [e.table for e in entries] == ["Users", "Events"]
    assert "table 'Users' is already the entry from" in err


def test_not_a_definition_names_the_file(tmp_path, capsys):
    bad = tmp_path / "p.json"
    bad.write_text('{"objects": [{"name": "no id"}]}')
    assert main(["import-pipeline", str(bad)]) == 2
    assert f"error: {bad}: objects[0]: an object needs an 'id'" in capsys.readouterr().err
    with pytest.raises(ParameterError, match="no 'objects'"):
        read_definition({"values": {}}, "x.json")


@pytest.mark.parametrize(("period", "start", "expected"), [
    ("1 day", None, "@daily"), ("1 Day", "2016-08-24T06:00:00", "0 6 * * *"), ("1 hour", None, "@hourly"),
    ("15 minutes", None, "*/15 * * * *"), ("1 week", "2024-03-05T01:00:00", "0 1 * * 2"), ("1 month", None, "@monthly"),
    ("5 days", None, None), ("7 hours", None, None)])
def test_periods(period, start, expected):
    assert airflow_schedule(period, start)[0] == expected


def test_an_export_step_whose_segments_are_not_a_number_is_one_line_naming_the_file(capsys, tmp_path):
    text = Path(fixture("handwritten-api-shape-alarms.json")).read_text()
    assert text.count(",8\"") == 1, "the fixture's step ends in its segments, 8"
    broken = tmp_path / "segments.json"
    broken.write_text(text.replace(",8\"", ",eight\""))
    code, entries, _, err = imported(capsys, tmp_path, str(broken))
    assert code != 0 and entries == []
    assert err.count("\n") == 1
    assert f"{broken}: TableBackupActivity: segments eight = 'eight' is not a whole number" in err
    assert "Traceback" not in err
