"""Least privilege and secrets.

* Every AWS call an end-to-end export, restore and copy makes (recorded with a
  botocore ``before-parameter-build`` hook, which sees the API parameters, on
  every client created) is allowed by
  ``include/iam-policy.json`` (a small evaluator: Allow statements, wildcard
  actions and resources; conditions are not evaluated).
* No credential value appears in logs, operator return values / XCom, or the sidecar.
* SSE-KMS settings and ExpectedBucketOwner reach every S3 write call.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from demo_data import TABLE_SPECS, all_types_items, create_table, put_items, referrer_items
from dynamodb_backup.aws.s3writer import S3ObjectWriter
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.formats.layout import SIDECAR, S3Location
from dynamodb_backup.restore.checkpoint import Checkpoints, default_checkpoint_base
from dynamodb_backup.restore.inspection import inspect_folder

REPO = Path(__file__).resolve().parents[2]
POLICY = json.loads((REPO / "include" / "iam-policy.json").read_text())
#: Added only where a restore may replace its target (replace_table): DeleteTable on those tables.
REPLACE_POLICY = json.loads((REPO / "include" / "iam-policy-replace.json").read_text())
DATE = datetime(2024, 7, 1, 3, 0, 0, tzinfo=UTC)

TABLE_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table"
#: API operations whose IAM action has another name.
ACTION_OF = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListMultipartUploads"): "s3:ListBucketMultipartUploads",
    ("s3", "ListParts"): "s3:ListMultipartUploadParts",
    ("s3", "DeleteObjects"): "s3:DeleteObject",
}
#: Calls that need no permission.
FREE = {("sts", "GetCallerIdentity")}


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any] = field(repr=False)

    @property
    def action(self) -> str:
        return ACTION_OF.get((self.service, self.operation), f"{self.service}:{self.operation}")

    @property
    def resource(self) -> str:
        p = self.params
        if self.service == "dynamodb":
            if "ExportArn" in p:  # arn:aws:dynamodb:<region>:<account>:table/<name>/export/<id>
                return f"{TABLE_ARN}/{p['ExportArn'].split(':table/', 1)[1]}"
            if "TableArn" in p:
                return f"{TABLE_ARN}/{p['TableArn'].split(':table/', 1)[1]}"
            return f"{TABLE_ARN}/{p.get('TableName') or p.get('ResourceArn', '')}"
        if self.service == "s3":
            if "Key" in p:
                return f"arn:aws:s3:::{p['Bucket']}/{p['Key']}"
            return f"arn:aws:s3:::{p.get('Bucket', '')}"
        if self.service == "sns":
            return str(p.get("TopicArn", "arn:aws:sns:us-east-1:123456789012:x"))
        return "*"


def allowed(policy: dict[str, Any], action: str, resource: str) -> bool:
    """Whether an Allow statement matches (no Deny statements in our policy; conditions ignored)."""
    for statement in policy["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions) and any(
                fnmatch.fnmatchcase(resource, r) for r in resources):
            return True
    return False


def denied_calls(calls: list[Call], policy: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted({(c.action, c.resource) for c in calls
                   if (c.service, c.operation) not in FREE and not allowed(policy, c.action, c.resource)})


@pytest.fixture
def recorded(monkeypatch) -> Iterator[list[Call]]:
    """Every API call made by a botocore client created during the test."""
    calls: list[Call] = []
    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        service = client.meta.service_model.endpoint_prefix

        def before_parameter_build(model, params, **_):
            calls.append(Call(service, model.name, dict(params)))

        client.meta.events.register("before-parameter-build", before_parameter_build)
        return client

    monkeypatch.setattr(botocore.session.Session, "create_client", create_client)
    yield calls


def test_evaluator_refuses_what_the_policy_does_not_grant():
    assert allowed(POLICY, "dynamodb:Scan", "arn:aws:dynamodb:eu-west-1:1:table/T")
    assert not allowed(POLICY, "dynamodb:DeleteTable", "arn:aws:dynamodb:eu-west-1:1:table/T")
    assert not allowed(POLICY, "dynamodb:UpdateTable", "arn:aws:dynamodb:eu-west-1:1:table/T")
    assert not allowed(POLICY, "s3:DeleteBucket", "arn:aws:s3:::b")
    assert not allowed(POLICY, "s3:PutObject", "arn:aws:s3:::b")  # objects only, not the bucket
    assert not allowed(POLICY, "iam:PassRole", "*")
    for statement in POLICY["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in a for a in actions), f"wildcard action in {statement['Sid']}"
    kms = next(s for s in POLICY["Statement"] if any(a.startswith("kms:") for a in s["Action"]))
    assert kms["Condition"]["StringLike"]["kms:ViaService"] == "s3.*.amazonaws.com"


def run_cli(*argv: str) -> int:
    from dynamodb_backup.cli import main

    return main(list(argv))


def test_export_restore_copy_need_only_the_policy(local_aws, s3_bucket, table_name, recorded):
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    put_items(ddb, table_name, all_types_items())
    recorded.clear()
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "bk"), logical_date=DATE,
                            read_ratio=1.0, segments=2, settings=ExportSettings(file_max_items=3))
    assert run_backup(client_factory(), request) is not None
    folder = f"s3://{s3_bucket}/bk/{table_name}/2024-07-01-03-00-00"
    restored, copied = f"{table_name}-r", f"{table_name}-c"
    assert run_cli("restore", folder, "--table", restored, "--create-table", "--workers", "1") == 0
    assert run_cli("copy", "--source-table", table_name, "--dest-table", copied, "--create-dest", "--verify") == 0
    seen = {(c.service, c.operation) for c in recorded}
    assert ("dynamodb", "Scan") in seen and ("s3", "PutObject") in seen
    assert ("dynamodb", "BatchWriteItem") in seen or ("dynamodb", "PutItem") in seen
    denied = denied_calls(recorded, POLICY)
    assert not denied, f"calls the policy does not allow: {denied}"
    print(sorted({c.action for c in recorded}))


def test_a_pitr_backup_needs_only_the_policy_and_no_read_on_the_table(local_aws, s3_bucket, table_name, recorded):
    from dynamodb_backup.pitr.job import run_pitr_backup

    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    ddb.update_continuous_backups(TableName=table_name,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    put_items(ddb, table_name, all_types_items())
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.05)
    recorded.clear()
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "pitr"), logical_date=moment)
    assert run_pitr_backup(client_factory(), request, poll_seconds=0.3) is not None
    seen = {(c.service, c.operation) for c in recorded}
    assert {("dynamodb", "ExportTableToPointInTime"), ("dynamodb", "DescribeExport"),
            ("dynamodb", "DescribeContinuousBackups")} <= seen
    assert not {("dynamodb", op) for op in ("Scan", "Query", "GetItem", "BatchGetItem")} & seen
    assert not denied_calls(recorded, POLICY), denied_calls(recorded, POLICY)
    pitr = next(s for s in POLICY["Statement"] if "dynamodb:ExportTableToPointInTime" in s["Action"])
    assert pitr["Sid"].startswith("Pitr") and "dynamodb:Scan" not in pitr["Action"]
    without = {**POLICY, "Statement": [s for s in POLICY["Statement"] if s is not pitr]}
    assert ("dynamodb:ExportTableToPointInTime", f"{TABLE_ARN}/{table_name}") in denied_calls(recorded, without)


def test_a_replacing_restore_needs_the_replace_statement_for_its_target_only(local_aws, s3_bucket, table_name,
                                                                            recorded):
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    put_items(ddb, table_name, all_types_items())
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "bk"), logical_date=DATE,
                            read_ratio=1.0, segments=2)
    assert run_backup(client_factory(), request) is not None
    staging = f"{table_name}-staging"
    create_table(ddb, staging, TABLE_SPECS["AllTypes"])
    recorded.clear()
    folder = f"s3://{s3_bucket}/bk/{table_name}/2024-07-01-03-00-00"
    assert run_cli("restore", folder, "--table", staging, "--replace-table", "--workers", "1") == 0

    assert denied_calls(recorded, POLICY) == [("dynamodb:DeleteTable", f"{TABLE_ARN}/{staging}")]
    both = {**POLICY, "Statement": POLICY["Statement"] + REPLACE_POLICY["Statement"]}
    assert denied_calls(recorded, both) == []
    assert not allowed(both, "dynamodb:DeleteTable", f"{TABLE_ARN}/{table_name}")  # the source stays safe


SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETVALUE"
ACCESS_KEY = "AKIAIOSFODNN7SECRETID"
TOKEN = "FQoGZXIvYXdzEXAMPLESESSIONTOKENVALUE"


class FakeTI:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_no_credential_in_logs_xcom_or_sidecar(local_aws, s3_bucket, table_name, monkeypatch, caplog):
    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, referrer_items(300))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_SESSION_TOKEN", TOKEN)
    conn = {"conn_type": "aws", "login": ACCESS_KEY, "password": SECRET,
            "extra": {**local_aws.connection_extra(), "aws_session_token": TOKEN}}
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", json.dumps(conn))
    caplog.set_level(logging.DEBUG, logger="dynamodb_backup")
    caplog.set_level(logging.INFO)

    from dynamodb_backup.operators.backup import ExportSegmentsOperator, PlanBackupOperator, SealBackupOperator

    common = {"table": table_name, "bucket": s3_bucket, "prefix": "sec", "read_ratio": 1.0, "segments": 2,
              "max_workers": 2, "file_max_items": 100}
    ti = FakeTI()
    context: Any = {"logical_date": DATE, "ti": ti}
    shares = PlanBackupOperator(task_id="plan", **common).execute(context)
    results = [ExportSegmentsOperator(task_id="export", share=s, plan=ti.pushed["plan"], **common).execute(context)
               for s in shares]
    sealed = SealBackupOperator(task_id="seal", plan=ti.pushed["plan"], results=results, **common).execute(context)
    run_backup(client_factory(), BackupRequest(table=table_name, destination=S3Location(s3_bucket, "cli"),
                                               logical_date=DATE, read_ratio=1.0))
    s3 = local_aws.s3_client()
    folder = S3Location.parse(ti.pushed["plan"]["folder"])
    sidecar = s3.get_object(Bucket=s3_bucket, Key=folder.key(SIDECAR))["Body"].read().decode()
    surfaces = {
        "logs": caplog.text + "\n".join(r.getMessage() for r in caplog.records),
        "xcom": json.dumps([shares, results, sealed, ti.pushed], default=str),
        "sidecar": sidecar,
    }
    assert len(caplog.records) > 0 and results
    for where, text in surfaces.items():
        for secret in (SECRET, ACCESS_KEY, TOKEN):
            assert secret not in text, f"a credential appears in the {where}"


def test_sse_kms_and_expected_owner_reach_every_write(local_aws, s3_bucket, table_name, recorded):
    kms = local_aws.client("kms")
    key_id = kms.create_key(Description="backups")["KeyMetadata"]["KeyId"]
    owner = "123456789012"  # moto's account
    put_extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key_id, "ExpectedBucketOwner": owner}
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    create_table(ddb, table_name, TABLE_SPECS["ReferrerCounts"])
    put_items(ddb, table_name, referrer_items(500))
    recorded.clear()
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "kms"), logical_date=DATE,
                            read_ratio=1.0, segments=2,
                            settings=ExportSettings(file_max_items=100, put_extra=put_extra))
    run_backup(client_factory(), request)
    # A multipart object too (the export above is too small to need parts).
    writer = S3ObjectWriter(s3, s3_bucket, "kms/big", "none", put_extra, part_size=5 * 1024 * 1024)
    writer.write(b"z" * (5 * 1024 * 1024 + 1), 1)
    writer.write(b"z", 1)
    writer.close()
    # A restore's completion markers sit beside the backup, in its bucket: same settings.
    folder = S3Location(s3_bucket, f"kms/{table_name}/2024-07-01-03-00-00")
    file = inspect_folder(s3, folder).files[0]
    markers = Checkpoints.for_run(s3, default_checkpoint_base(folder), "T-staging", "run", "table-id", put_extra)
    markers.mark(file, f"s3://{s3_bucket}/{file.key}", 100)
    assert markers.finished(file, f"s3://{s3_bucket}/{file.key}") == 100
    marker = s3.head_object(Bucket=s3_bucket, Key=markers.location.key(f"{file.name}.done"))
    assert marker.get("ServerSideEncryption") == "aws:kms"
    assert markers.clear() == 1
    writes = [c for c in recorded if c.service == "s3" and c.operation in
              ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")]
    assert {c.operation for c in writes} == {"PutObject", "CreateMultipartUpload", "UploadPart",
                                              "CompleteMultipartUpload"}
    for call in writes:
        assert call.params.get("ExpectedBucketOwner") == owner, call
        if call.operation in ("PutObject", "CreateMultipartUpload"):
            assert call.params.get("ServerSideEncryption") == "aws:kms", call
            assert call.params.get("SSEKMSKeyId") == key_id, call
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix=folder.key(""))["Contents"]
    assert len(listed) > 3
    for obj in [*listed, {"Key": "kms/big"}]:
        head = s3.head_object(Bucket=s3_bucket, Key=obj["Key"])
        assert head.get("ServerSideEncryption") == "aws:kms", obj["Key"]
        assert key_id in head.get("SSEKMSKeyId", ""), obj["Key"]
