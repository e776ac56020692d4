"""Least privilege and secrets.

* ``include/iam-policy.json`` holds one statement per role, and each statement's ``Sid`` says what
  to narrow its ``Resource`` to. ``narrow`` does exactly that with the real ARNs of a run (the
  DynamoDB region and account read from the ``TableArn`` DescribeTable returns, the bucket, the
  prefix, the topic, the key), and the run -- a scan export, a pitr export, a plain and a
  replacing restore, a copy, a notice, a restore drill and two prunes (one refused by Object Lock,
  one after the lock is lifted) -- must make no call the narrowed policy denies.
* Every call is recorded with a botocore ``before-parameter-build`` hook on every client created
  (it sees the API parameters; an ``after-call`` hook adds the SSE and Object Lock fields of S3's answer).
* The evaluator: Allow and Deny statements, wildcard actions, ARN matching segment by segment
  (``*`` and ``?`` inside a segment, as IAM does), list Resources, and the ``Condition`` operators
  ``StringEquals`` and ``StringLike`` (any other operator fails the test rather than being ignored;
  a key missing from a request's context fails its condition, as in IAM).
* A call's IAM requests: one per resource it touches (BatchWriteItem one per table; DeleteObjects
  ``s3:DeleteObject`` per key and also ``s3:DeleteObjectVersion`` per key given with a ``VersionId``;
  a Get/HeadObject with a ``VersionId`` is ``s3:GetObjectVersion`` alone; the Object Lock fields of
  an answer, which S3 returns only to a caller allowed ``s3:GetObjectRetention`` (mode, retain-until
  date) or ``s3:GetObjectLegalHold`` (legal hold), are requests for those), plus the requests AWS
  makes as the caller on its behalf: S3 asks KMS for SSE-KMS objects (``kms:GenerateDataKey`` for
  a new object or upload, ``kms:Decrypt`` for a part or a read), with ``kms:ViaService =
  s3.<region>.amazonaws.com``, and DynamoDB's point-in-time export writes into the caller's bucket
  (``s3:PutObject``, ``s3:PutObjectAcl``, ``s3:AbortMultipartUpload`` under ``S3Prefix``), which
  the local stand-in does with its own client where the hook cannot see it. A KMS call made
  directly has no ``kms:ViaService``.
* The check can fail: narrowed to another table, account, bucket, prefix, key or topic, the run's
  own calls are denied, and each statement left out denies some call of the run.
* No credential value appears in logs, operator return values / XCom, or the sidecar.
* SSE-KMS settings and ExpectedBucketOwner reach every S3 write call.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import botocore.session
import orjson
import pytest

from capacity_backups import INDEX_WCU, SPEC, TABLE_RCU, TABLE_WCU, gsi_bound_backup
from demo_data import TABLE_SPECS, all_types_items, create_table, put_items, referrer_items
from dynamodb_backup.aws.s3writer import S3ObjectWriter
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.backup.export import ExportSettings
from dynamodb_backup.backup.job import BackupRequest, run_backup
from dynamodb_backup.commands import client_factory
from dynamodb_backup.formats.layout import SIDECAR, S3Location
from dynamodb_backup.loading.checkpoint import CHECKPOINT_DIR, Checkpoints, default_checkpoint_base
from dynamodb_backup.repository.inspection import inspect_folder
from dynamodb_backup.restore.loadcapacity import apply_settings, is_on_demand, settle_command
from faultproxy import Principal

REPO = Path(__file__).resolve().parents[2]
POLICY = json.loads((REPO / "include" / "iam-policy.json").read_text())
#: Added only where a restore may replace its target (replace_table): DeleteTable on those tables.
REPLACE_POLICY = json.loads((REPO / "include" / "iam-policy-replace.json").read_text())
#: Added only where a restore loads at a load capacity (load_capacity / --load-capacity): UpdateTable on those
#: targets, to settle them to the backup's capacities (and to switch an existing provisioned one for the load).
LOAD_CAPACITY_POLICY = json.loads((REPO / "include" / "iam-policy-load-capacity.json").read_text())
DATE = datetime(2024, 7, 1, 3, 0, 0, tzinfo=UTC)
#: moto's account (S3, SNS, KMS); DynamoDB's is read from a TableArn.
MOTO_ACCOUNT = "123456789012"

SID_SOURCES = "ReadSourceTablesNarrowToYourSourceTableArns"
SID_PITR = "PitrExportSourceTablesNarrowToYourSourceTableArnsAndEachArnSlashExportSlashStar"
SID_TARGETS = "WriteAndVerifyTargetTablesNarrowToYourRestoreAndCopyTargetTableArns"
SID_DRILL = "DeleteDrillScratchTablesNarrowToYourScratchTableArns"
SID_BUCKET = "BackupBucketNarrowToYourBackupBucketArn"
SID_PREFIX = "BackupObjectsAndRestoreCheckpointsNarrowToYourBucketArnSlashPrefixSlashStar"
SID_PRUNE_LIST = "PruneListVersionsNarrowToYourBackupBucketArn"
SID_PRUNE = "PruneOldBackupVersionsNarrowToYourBucketArnSlashPrefixSlashStar"
SID_NOTICES = "NoticesPublishNarrowToYourFailureTopicArn"
SID_KMS = "SseKmsOnlyThroughS3NarrowToYourBucketKeyArn"
SID_REPLACE = "ReplaceTablesNarrowToTheTableArnsYouRestoreWithReplaceTable"
SID_LOAD_CAPACITY = "LoadCapacityNarrowToTheTableArnsYouRestoreWithLoadCapacity"

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
    ("s3", "ListObjectVersions"): "s3:ListBucketVersions",
}
#: Reading a given version needs only the version action (AWS: "s3:GetObject is not required").
READ_VERSION = {("s3", "GetObject"), ("s3", "HeadObject")}
#: Object Lock fields of an answer and the action without which S3 leaves them out.
LOCK_FIELDS = {"ObjectLockMode": "s3:GetObjectRetention", "ObjectLockRetainUntilDate": "s3:GetObjectRetention",
               "ObjectLockLegalHoldStatus": "s3:GetObjectLegalHold"}
#: Calls that need no permission.
FREE = {("sts", "GetCallerIdentity")}
#: Where DynamoDB's export writes under ``S3Prefix`` (the export's id and files are not in the request).
EXPORT_OBJECTS = "AWSDynamoDB/{export-id}/data/{file}.json.gz"


# --- calls and the IAM requests they make ---------------------------------------------------------


@dataclass
class Call:
    service: str
    operation: str
    params: dict[str, Any] = field(repr=False)
    region: str = "us-east-1"
    #: The SSE fields of the answer (S3), for the KMS requests S3 makes.
    response: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def action(self) -> str:
        if (self.service, self.operation) in READ_VERSION and self.params.get("VersionId"):
            return "s3:GetObjectVersion"
        return ACTION_OF.get((self.service, self.operation), f"{self.service}:{self.operation}")


@dataclass(frozen=True)
class Request:
    """One IAM authorization: an action on a resource, with the request context's condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()
    #: The call it was made for (``s3:PutObject`` for the KMS request of an SSE-KMS upload).
    by: str = ""


@dataclass(frozen=True)
class Accounts:
    """The accounts ARNs are built with: DynamoDB's (from a TableArn) and KMS's (moto's)."""

    dynamodb: str
    kms: str = MOTO_ACCOUNT


def table_arn(region: str, account: str, name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:dynamodb:{region}:{account}:table/{name}"


def in_region(arn: str, region: str) -> str:
    """A DynamoDB ARN the server returned, in the region of the call (on AWS they are the same; DynamoDB
    Local's ARNs say ``ddblocal``)."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "dynamodb":
        parts[3] = region
    return ":".join(parts)


def key_arn(region: str, account: str, key: str) -> str:
    if key.startswith("arn:"):
        return key
    return f"arn:aws:kms:{region}:{account}:{key if key.startswith('alias/') else f'key/{key}'}"


def via_s3(region: str, action: str, key: str, accounts: Accounts, by: str) -> Request:
    """A KMS request S3 makes for the caller: ``kms:ViaService`` names S3 in the call's region."""
    return Request(action, key_arn(region, accounts.kms, key), (("kms:ViaService", f"s3.{region}.amazonaws.com"),),
                   by)


def requests_of(call: Call, accounts: Accounts) -> list[Request]:
    """The IAM requests one call makes, including those AWS makes as the caller on its behalf."""
    p, region, action = call.params, call.region, call.action
    if (call.service, call.operation) in FREE:
        return []
    if call.service == "dynamodb":
        if "RequestItems" in p:  # BatchWriteItem, BatchGetItem: each table is authorized
            return [Request(action, table_arn(region, accounts.dynamodb, t)) for t in p["RequestItems"]]
        if "ExportArn" in p:
            resource = in_region(p["ExportArn"], region)
        elif "TableArn" in p:
            resource = in_region(p["TableArn"], region)
        elif "ResourceArn" in p:
            resource = in_region(p["ResourceArn"], region)
        elif "TableName" in p:
            resource = table_arn(region, accounts.dynamodb, p["TableName"])
            if p.get("IndexName"):
                resource += f"/index/{p['IndexName']}"
        else:
            resource = "*"
        requests = [Request(action, resource)]
        if call.operation == "ExportTableToPointInTime":
            prefix = p.get("S3Prefix", "").strip("/")
            obj = f"arn:aws:s3:::{p['S3Bucket']}/{prefix + '/' if prefix else ''}{EXPORT_OBJECTS}"
            requests += [Request(a, obj, by=action) for a in ("s3:PutObject", "s3:PutObjectAcl",
                                                              "s3:AbortMultipartUpload")]
            if p.get("S3SseAlgorithm") == "KMS" and p.get("S3SseKmsKeyId"):
                requests.append(via_s3(region, "kms:GenerateDataKey", p["S3SseKmsKeyId"], accounts, action))
        return requests
    if call.service == "s3":
        bucket = p.get("Bucket", "")
        if call.operation in ("DeleteObjects", "DeleteObject"):
            # s3:DeleteObject always; a given version (``null`` too) also needs s3:DeleteObjectVersion.
            entries = p["Delete"]["Objects"] if call.operation == "DeleteObjects" else [p]
            return [Request(a, f"arn:aws:s3:::{bucket}/{o['Key']}") for o in entries
                    for a in ("s3:DeleteObject", *(["s3:DeleteObjectVersion"] if "VersionId" in o else []))]
        requests = [Request(action, f"arn:aws:s3:::{bucket}/{p['Key']}" if "Key" in p else f"arn:aws:s3:::{bucket}")]
        if "Key" in p:  # the lock fields S3 answered with: only a caller allowed to read them gets them
            locks = sorted({LOCK_FIELDS[f] for f in call.response if f in LOCK_FIELDS})
            requests += [Request(a, f"arn:aws:s3:::{bucket}/{p['Key']}", by=action) for a in locks]
        if call.operation == "CopyObject":
            source = p["CopySource"]
            source = f"{source['Bucket']}/{source['Key']}" if isinstance(source, dict) else source.lstrip("/")
            requests.append(Request("s3:GetObject", f"arn:aws:s3:::{source.split('?', 1)[0]}"))
        kms = "aws:kms" in (call.response.get("ServerSideEncryption"), p.get("ServerSideEncryption"))
        key = call.response.get("SSEKMSKeyId") or p.get("SSEKMSKeyId")
        # Without a key id S3 uses the AWS managed key aws/s3, whose key policy needs no IAM grant.
        if kms and key:
            if call.operation in ("PutObject", "CreateMultipartUpload", "CopyObject"):
                requests.append(via_s3(region, "kms:GenerateDataKey", key, accounts, action))
            if call.operation in ("UploadPart", "CompleteMultipartUpload", "GetObject"):
                requests.append(via_s3(region, "kms:Decrypt", key, accounts, action))
        return requests
    if call.service == "sns":
        return [Request(action, str(p.get("TopicArn") or p.get("TargetArn") or "*"))]
    if call.service == "kms":  # made directly, not through S3: no kms:ViaService
        return [Request(action, key_arn(region, accounts.kms, p["KeyId"]) if "KeyId" in p else "*")]
    return [Request(action, "*")]


# --- the evaluator ---------------------------------------------------------------------------------


def glob(pattern: str, text: str, case: bool = True) -> bool:
    """IAM's wildcards: ``*`` any run of characters, ``?`` one character, nothing else special."""
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, 0 if case else re.IGNORECASE) is not None


def arn_matches(pattern: str, arn: str) -> bool:
    """Match segment by segment (partition, service, region, account, resource): a wildcard stays in
    its segment, as in IAM; within the resource segment ``*`` also spans ``/`` and ``:``."""
    if pattern == "*":
        return True
    wanted, have = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(have) != 6 or wanted[0] != "arn":
        raise AssertionError(f"not an ARN: {pattern if len(wanted) != 6 or wanted[0] != 'arn' else arn}")
    return all(glob(w, h) for w, h in zip(wanted, have, strict=True))


#: Condition operators the evaluator knows; any other one in a policy fails the test.
OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda actual, wanted: actual == wanted,
    "StringLike": lambda actual, wanted: glob(wanted, actual),
}


def condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    """Every operator and key must hold (one of its values); a key the request lacks does not hold."""
    for operator, tests in condition.items():
        if operator not in OPERATORS:
            raise AssertionError(f"the evaluator does not know the condition operator {operator}")
        for key, wanted in tests.items():
            actual = context.get(key.lower())
            values = wanted if isinstance(wanted, list) else [wanted]
            if actual is None or not any(OPERATORS[operator](actual, v) for v in values):
                return False
    return True


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def matches(statement: dict[str, Any], action: str, resource: str, context: dict[str, str]) -> bool:
    for element in ("NotAction", "NotResource", "NotPrincipal"):
        assert element not in statement, f"the evaluator does not know {element}"
    return (any(glob(a, action, case=False) for a in as_list(statement["Action"]))
            and any(arn_matches(r, resource) for r in as_list(statement["Resource"]))
            and condition_holds(statement.get("Condition", {}), context))


def allowing(policy: dict[str, Any], action: str, resource: str,
             context: dict[str, str] | None = None) -> list[str]:
    """The Sids of the Allow statements that grant the request; none if a Deny statement matches."""
    ctx = {k.lower(): v for k, v in (context or {}).items()}
    statements = [s for s in policy["Statement"] if matches(s, action, resource, ctx)]
    if any(s["Effect"] == "Deny" for s in statements):
        return []
    return [s.get("Sid", "") for s in statements if s["Effect"] == "Allow"]


def allowed(policy: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    return bool(allowing(policy, action, resource, context))


def requests(calls: list[Call], accounts: Accounts) -> list[Request]:
    return [r for c in calls for r in requests_of(c, accounts)]


def denied_calls(calls: list[Call], policy: dict[str, Any], accounts: Accounts) -> list[tuple[str, str]]:
    return sorted({(r.action, r.resource) for r in requests(calls, accounts)
                   if not allowed(policy, r.action, r.resource, dict(r.context))})


def with_(*policies: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [s for p in policies for s in p["Statement"]]}


# --- narrowing the policy to a run ------------------------------------------------------------------


@dataclass(frozen=True)
class Scope:
    """The real resources of a run: what each Sid says to narrow its statement to."""

    region: str
    accounts: Accounts
    sources: tuple[str, ...]
    targets: tuple[str, ...]
    bucket: str
    prefix: str
    topic_arn: str = ""
    key_arn: str = ""
    replaced: tuple[str, ...] = ()
    #: A restore drill's scratch tables (``<table>-drill``): restore targets it also deletes.
    drills: tuple[str, ...] = ()
    #: Restore targets loaded at a load capacity: restore targets whose capacities it also updates.
    loaded: tuple[str, ...] = ()

    @classmethod
    def of(cls, ddb: Any, sources: tuple[str, ...], targets: tuple[str, ...], bucket: str, prefix: str,
           **kwargs: Any) -> Scope:
        """The account from the ``TableArn`` DynamoDB gives the first source table; the region the client's
        (on AWS the ARN's region is the endpoint's; DynamoDB Local's ARNs say ``ddblocal``)."""
        arn = ddb.describe_table(TableName=sources[0])["Table"]["TableArn"]
        account = arn.split(":", 5)[4]
        return cls(ddb.meta.region_name, Accounts(account), sources, targets, bucket, prefix.strip("/"), **kwargs)

    def table(self, name: str) -> str:
        return table_arn(self.region, self.accounts.dynamodb, name)


#: Each Sid's narrowing: the Resource the Sid tells the user to put in place of the wildcard.
NARROWING: dict[str, Callable[[Scope], list[str]]] = {
    SID_SOURCES: lambda s: [s.table(t) for t in s.sources],
    SID_PITR: lambda s: [a for t in s.sources for a in (s.table(t), f"{s.table(t)}/export/*")],
    SID_TARGETS: lambda s: [s.table(t) for t in s.targets],
    SID_DRILL: lambda s: [s.table(t) for t in s.drills],
    SID_BUCKET: lambda s: [f"arn:aws:s3:::{s.bucket}"],
    SID_PREFIX: lambda s: [f"arn:aws:s3:::{s.bucket}/{s.prefix}/*"],
    SID_PRUNE_LIST: lambda s: [f"arn:aws:s3:::{s.bucket}"],
    SID_PRUNE: lambda s: [f"arn:aws:s3:::{s.bucket}/{s.prefix}/*"],
    SID_NOTICES: lambda s: [s.topic_arn] if s.topic_arn else [],
    SID_KMS: lambda s: [s.key_arn] if s.key_arn else [],
    SID_REPLACE: lambda s: [s.table(t) for t in s.replaced],
    SID_LOAD_CAPACITY: lambda s: [s.table(t) for t in s.loaded],
}


def narrow(policy: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """The policy as a user following its Sids writes it for ``scope``: every Resource replaced by
    the run's ARNs (a statement with nothing to narrow to is left out; its Condition is kept).
    Narrowing never widens: each new ARN matches the wildcard it replaces."""
    statements = []
    for statement in policy["Statement"]:
        sid = statement.get("Sid", "")
        assert sid in NARROWING, f"statement {sid!r}: no narrowing known; its Sid must say what to narrow it to"
        resources = NARROWING[sid](scope)
        for arn in resources:
            assert any(arn_matches(r, arn.replace("*", "x")) for r in as_list(statement["Resource"])), \
                f"{sid}: {arn} is outside the statement's Resource"
        if not resources:
            continue
        statements.append({**statement, "Resource": resources})  # conditions stay as written
    return {**policy, "Statement": statements}


# --- recording ---------------------------------------------------------------------------------------


@contextmanager
def recording() -> Iterator[list[Call]]:
    """Every API call made by a botocore client created inside the block (SSE fields of the answer too)."""
    calls: list[Call] = []
    original = botocore.session.Session.create_client

    def create_client(self, *args, **kwargs):
        client = original(self, *args, **kwargs)
        service, region = client.meta.service_model.endpoint_prefix, client.meta.region_name

        def before_parameter_build(model, params, context, **_):
            call = Call(service, model.name, dict(params), region)
            context["iam_test_call"] = call
            calls.append(call)

        def after_call(parsed, context, **_):
            call = context.get("iam_test_call")
            if call is not None and isinstance(parsed, dict):
                call.response = {k: parsed[k] for k in ("ServerSideEncryption", "SSEKMSKeyId", *LOCK_FIELDS)
                                 if k in parsed}

        client.meta.events.register("before-parameter-build", before_parameter_build)
        client.meta.events.register("after-call", after_call)
        return client

    original_send = DynamoDBConnection.send

    def send(self, call):  # the restore's writes go out on aws.wire, signed with the same credentials
        calls.append(Call("dynamodb", call.operation, orjson.loads(call.body), self.region))
        return original_send(self, call)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(botocore.session.Session, "create_client", create_client)
        mp.setattr(DynamoDBConnection, "send", send)
        yield calls


@pytest.fixture
def recorded() -> Iterator[list[Call]]:
    with recording() as calls:
        yield calls


def run_cli(*argv: str) -> int:
    from dynamodb_backup.cli import main

    return main(list(argv))


def next_second() -> datetime:
    """A whole second after every write so far, waited for (a pitr export's moment)."""
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    while datetime.now(UTC) <= moment:
        time.sleep(0.05)
    return moment


def enable_pitr(ddb: Any, table: str) -> None:
    ddb.update_continuous_backups(TableName=table,
                                  PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})


# --- the evaluator and the policy as written ----------------------------------------------------------


def test_evaluator_refuses_what_the_policy_does_not_grant():
    table = "arn:aws:dynamodb:eu-west-1:111122223333:table/T"
    assert allowed(POLICY, "dynamodb:Scan", table)
    assert not allowed(POLICY, "dynamodb:DeleteTable", table)
    # Tables are deleted only by a drill (its scratch table) or a replacing restore (the replace policy).
    assert [s["Sid"] for s in POLICY["Statement"] if "dynamodb:DeleteTable" in as_list(s["Action"])] == [SID_DRILL]
    assert allowed(POLICY, "dynamodb:DeleteTable", f"{table}-drill")
    assert not allowed(POLICY, "dynamodb:DeleteTable", f"{table}-drill2")
    # Removing a version for good (and reading versions and their locks) is the prune's statement alone.
    for action in ("s3:DeleteObjectVersion", "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold"):
        assert [s["Sid"] for s in POLICY["Statement"] if action in as_list(s["Action"])] == [SID_PRUNE], action
    assert not allowed(POLICY, "s3:BypassGovernanceRetention", "arn:aws:s3:::b/k")  # a lock is never bypassed
    assert not allowed(POLICY, "s3:PutObjectLegalHold", "arn:aws:s3:::b/k")
    assert not allowed(POLICY, "dynamodb:UpdateTable", table)
    assert not allowed(POLICY, "dynamodb:UpdateItem", table)
    # Deleting items is for targets only (applying an incremental link), never in the source statement.
    assert [s["Sid"] for s in POLICY["Statement"] if "dynamodb:DeleteItem" in as_list(s["Action"])] == [SID_TARGETS]
    assert not allowed(POLICY, "s3:DeleteBucket", "arn:aws:s3:::b")
    assert not allowed(POLICY, "s3:PutObject", "arn:aws:s3:::b")  # objects only, not the bucket
    assert not allowed(POLICY, "iam:PassRole", "arn:aws:iam::111122223333:role/r")
    for statement in POLICY["Statement"] + REPLACE_POLICY["Statement"] + LOAD_CAPACITY_POLICY["Statement"]:
        assert statement["Effect"] == "Allow"
        assert re.fullmatch("[A-Za-z0-9]+", statement["Sid"]) and "NarrowTo" in statement["Sid"], statement["Sid"]
        assert statement["Sid"] in NARROWING, statement["Sid"]
        assert all("*" not in a for a in as_list(statement["Action"])), f"wildcard action in {statement['Sid']}"
    sids = [s["Sid"] for p in (POLICY, REPLACE_POLICY, LOAD_CAPACITY_POLICY) for s in p["Statement"]]
    assert len(set(sids)) == len(sids)
    # Capacities change only with the load-capacity add-on, and it grants nothing else.
    assert [(s["Sid"], as_list(s["Action"])) for s in LOAD_CAPACITY_POLICY["Statement"]] == [
        (SID_LOAD_CAPACITY, ["dynamodb:UpdateTable"])]
    assert allowed(with_(POLICY, LOAD_CAPACITY_POLICY), "dynamodb:UpdateTable", table)
    kms = next(s for s in POLICY["Statement"] if any(a.startswith("kms:") for a in as_list(s["Action"])))
    assert kms["Condition"] == {"StringLike": {"kms:ViaService": "s3.*.amazonaws.com"}}


def test_the_roles_statements_grant_the_reads_that_verify_and_replace_need_on_targets():
    """Restore and copy verify by scanning the target, and a replacing restore reads the target's TTL
    and tags: the target statement grants those itself, not the source statement."""
    by_sid = {s["Sid"]: set(as_list(s["Action"])) for s in POLICY["Statement"]}
    reads = {"dynamodb:DescribeTable", "dynamodb:Scan", "dynamodb:DescribeTimeToLive", "dynamodb:ListTagsOfResource"}
    assert by_sid[SID_SOURCES] == reads
    assert reads | {"dynamodb:BatchWriteItem", "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:BatchGetItem",
                    "dynamodb:CreateTable", "dynamodb:UpdateTimeToLive", "dynamodb:TagResource"} == by_sid[SID_TARGETS]
    assert by_sid[SID_PITR] == {"dynamodb:DescribeContinuousBackups", "dynamodb:ExportTableToPointInTime",
                                "dynamodb:DescribeExport"}
    assert {"s3:PutObjectAcl", "s3:AbortMultipartUpload"} <= by_sid[SID_PREFIX]  # DynamoDB's export needs them
    assert not any(a.startswith("dynamodb:") for a in by_sid[SID_PREFIX] | by_sid[SID_BUCKET])


def test_the_evaluator_matches_arns_segment_by_segment_and_evaluates_conditions():
    assert arn_matches("arn:aws:dynamodb:*:*:table/*", "arn:aws:dynamodb:us-east-1:1:table/T/index/I")
    assert arn_matches("arn:aws:dynamodb:*:*:table/T/export/*", "arn:aws:dynamodb:r:1:table/T/export/0-a")
    assert not arn_matches("arn:aws:dynamodb:*:*:table/T", "arn:aws:dynamodb:r:1:table/T/index/I")
    assert not arn_matches("arn:aws:dynamodb:*:*:table/T", "arn:aws:dynamodb:r:1:table/T2")
    assert not arn_matches("arn:aws:dynamodb:us-east-1:*:table/T", "arn:aws:dynamodb:eu-west-1:1:table/T")
    assert not arn_matches("arn:aws:s3:::*", "arn:aws:dynamodb:r:1:table/T")  # a wildcard stays in its segment
    assert arn_matches("arn:aws:s3:::b/bk/*", "arn:aws:s3:::b/bk/t/_restore_checkpoints/x.done")
    assert not arn_matches("arn:aws:s3:::b/bk/*", "arn:aws:s3:::b/bk2/x")
    assert not arn_matches("arn:aws:s3:::b/bk/*", "arn:aws:s3:::b/bk")
    assert not arn_matches("arn:aws:s3:::b", "arn:aws:s3:::b2")
    assert arn_matches("arn:aws:s3:::b?", "arn:aws:s3:::b2") and not glob("a[b]", "ab")  # only * and ? are special
    key = "arn:aws:kms:us-east-1:123456789012:key/k"
    via = {"kms:ViaService": "s3.us-east-1.amazonaws.com"}
    assert allowed(POLICY, "kms:GenerateDataKey", key, via)
    assert allowed(POLICY, "kms:Decrypt", key, {"KMS:VIASERVICE": "s3.us-east-1.amazonaws.com"})  # keys: any case
    assert not allowed(POLICY, "kms:GenerateDataKey", key)  # a direct call: no kms:ViaService
    assert not allowed(POLICY, "kms:Decrypt", key, {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"})
    assert not allowed(POLICY, "kms:Encrypt", key, via)
    with pytest.raises(AssertionError, match="IpAddress"):
        allowed(with_({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "*",
                                      "Condition": {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}}]}),
                "s3:GetObject", "arn:aws:s3:::b/k")
    deny = {"Statement": [{"Sid": "NoSource", "Effect": "Deny", "Action": "dynamodb:Scan",
                           "Resource": "arn:aws:dynamodb:*:*:table/T"}]}
    assert not allowed(with_(POLICY, deny), "dynamodb:Scan", "arn:aws:dynamodb:r:1:table/T")
    assert allowed(with_(POLICY, deny), "dynamodb:Scan", "arn:aws:dynamodb:r:1:table/U")


def test_the_narrowed_policy_denies_tables_buckets_and_prefixes_outside_it():
    scope = Scope("us-east-1", Accounts("000000000000"), ("src",), ("dst-staging", "src-drill"), "bkt", "bk",
                  topic_arn=f"arn:aws:sns:us-east-1:{MOTO_ACCOUNT}:notices",
                  key_arn=f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:key/k1", replaced=("dst-staging",),
                  drills=("src-drill",))
    policy = narrow(with_(POLICY, REPLACE_POLICY), scope)
    assert all("*" not in r or r.endswith(("/export/*", "/bk/*")) for s in policy["Statement"] for r in s["Resource"])
    src, dst = scope.table("src"), scope.table("dst-staging")
    assert allowing(policy, "dynamodb:Scan", src) == [SID_SOURCES]
    assert allowing(policy, "dynamodb:Scan", dst) == [SID_TARGETS]
    assert allowing(policy, "dynamodb:DescribeExport", f"{src}/export/01-a") == [SID_PITR]
    assert allowing(policy, "dynamodb:DeleteTable", dst) == [SID_REPLACE]
    assert allowing(policy, "dynamodb:DeleteTable", scope.table("src-drill")) == [SID_DRILL]
    assert allowing(policy, "dynamodb:CreateTable", scope.table("src-drill")) == [SID_TARGETS]
    assert not allowed(policy, "dynamodb:DeleteTable", src)
    assert not allowed(policy, "dynamodb:DeleteTable", scope.table("other-drill"))
    assert not allowed(policy, "dynamodb:BatchWriteItem", src)  # a source is never written
    assert not allowed(policy, "dynamodb:ExportTableToPointInTime", dst)
    for other in (scope.table("other"), table_arn("eu-west-1", "000000000000", "src"),
                  table_arn("us-east-1", "999999999999", "src"), f"{src}/index/by-x", f"{src}-staging"):
        for action in ("dynamodb:Scan", "dynamodb:DescribeTable", "dynamodb:BatchWriteItem"):
            assert not allowed(policy, action, other), (action, other)
    assert allowing(policy, "s3:ListBucket", "arn:aws:s3:::bkt") == [SID_BUCKET]
    assert allowing(policy, "s3:PutObject", "arn:aws:s3:::bkt/bk/t/2024/_SUCCESS") == [SID_PREFIX]
    assert allowing(policy, "s3:DeleteObjectVersion", "arn:aws:s3:::bkt/bk/t/2024/_SUCCESS") == [SID_PRUNE]
    assert allowing(policy, "s3:ListBucketVersions", "arn:aws:s3:::bkt") == [SID_PRUNE_LIST]
    assert not allowed(policy, "s3:ListBucketVersions", "arn:aws:s3:::other")
    for bad in ("arn:aws:s3:::bkt/other/x", "arn:aws:s3:::bkt/bk2/x", "arn:aws:s3:::other/bk/x", "arn:aws:s3:::bkt/x"):
        for action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
            assert not allowed(policy, action, bad), (action, bad)
    assert not allowed(policy, "s3:ListBucket", "arn:aws:s3:::other")
    assert not allowed(policy, "sns:Publish", f"arn:aws:sns:us-east-1:{MOTO_ACCOUNT}:other")
    assert not allowed(policy, "kms:Decrypt", f"arn:aws:kms:us-east-1:{MOTO_ACCOUNT}:key/k2",
                       {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
    assert not allowed(policy, "kms:Decrypt", scope.key_arn, {"kms:ViaService": "dynamodb.us-east-1.amazonaws.com"})
    assert not allowed(policy, "kms:Decrypt", scope.key_arn)
    assert allowed(policy, "kms:Decrypt", scope.key_arn, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
    loading = narrow(with_(POLICY, LOAD_CAPACITY_POLICY), replace(scope, loaded=("dst-staging",)))
    assert allowing(loading, "dynamodb:UpdateTable", dst) == [SID_LOAD_CAPACITY]
    for other in (src, scope.table("src-drill"), f"{dst}/index/by-x", table_arn("us-east-1", "999999999999",
                                                                             "dst-staging")):
        assert not allowed(loading, "dynamodb:UpdateTable", other), other
    assert not allowed(policy, "dynamodb:UpdateTable", dst)  # only the add-on grants it
    with pytest.raises(AssertionError, match="no narrowing known"):
        narrow(with_(POLICY, {"Statement": [{"Sid": "Anything", "Effect": "Allow", "Action": "s3:GetObject",
                                             "Resource": "*"}]}), scope)


# --- one run, end to end, against the narrowed policy ---------------------------------------------------


@dataclass
class Run:
    calls: list[Call]
    scope: Scope
    #: The tables: source, restored (plain), staging (replaced), copied, drill (a drill's scratch table).
    names: dict[str, str]
    #: What the two prunes returned (the operator's result: deleted, kept, locked, errors, ...).
    prunes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def policy(self) -> dict[str, Any]:
        return narrow(with_(POLICY, REPLACE_POLICY), self.scope)

    def requests(self) -> list[Request]:
        return requests(self.calls, self.scope.accounts)

    def denied(self, policy: dict[str, Any]) -> list[tuple[str, str]]:
        return denied_calls(self.calls, policy, self.scope.accounts)


def versions_of(s3: Any, bucket: str, prefix: str) -> list[dict[str, Any]]:
    """Every version and delete marker under ``prefix`` (read by the test's own client, not recorded)."""
    pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
    return [v for page in pages for v in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]]


def drill(table: str, scratch: str, bucket: str, put_extra: dict[str, Any]) -> dict[str, Any]:
    """A restore drill's tasks as its DAG runs them: start (the newest backup; no scratch table left),
    the restore into the scratch table (the CLI's, which the DAG's restore group shares), the claim (the
    drill's tag on the scratch table), and finish
    (deletes the scratch table, writes the record beside the backup)."""
    from dynamodb_backup.operators.drill import ClaimScratchOperator, FinishDrillOperator, StartDrillOperator

    where = {"table": table, "bucket": bucket, "prefix": "bk", "scratch_table": scratch}
    pushed: dict[str, Any] = {}
    ti = SimpleNamespace(xcom_push=lambda key, value: pushed.__setitem__(key, value))
    context: Any = {"run_id": "iam-drill", "ti": ti}
    start = StartDrillOperator(task_id="start", **where).execute(context)
    assert pushed == {"key_schema": ""}  # the backup has its sidecar: the restore creates the table from it
    assert run_cli("restore", start["folder"], "--table", scratch, "--create-table", "--workers", "1") == 0
    # The DAG tags the scratch table between creating and loading it; the CLI restore here does both at once.
    ClaimScratchOperator(task_id="claim", start=start, target={"created": True}, **where).execute(context)
    verified = {"verified": True, "match": True, "table_items": len(all_types_items())}
    record = FinishDrillOperator(task_id="finish", start=start, verified=verified, put_extra=put_extra,
                                 **where).execute(context)
    assert record["result"] == "passed", record
    return record


def prune(table: str, bucket: str, protect: str) -> dict[str, Any]:
    """The backup DAG's prune task, never the folder the run wrote: keep_min 1, and keep_days 0 (below what
    backups.yaml accepts) because the objects of the folder a lock left partial were written seconds ago."""
    from dynamodb_backup.operators.retention import PruneBackupsOperator
    from dynamodb_backup.retention.plan import RetentionPolicy

    context: Any = {}
    return PruneBackupsOperator(task_id="prune", table=table, bucket=bucket, prefix="bk", plan={"folder": protect},
                                policy=RetentionPolicy(keep_days=0, keep_min=1),
                                expected_bucket_owner=MOTO_ACCOUNT).execute(context)


@pytest.fixture(scope="module")
def run(local_aws) -> Run:
    """A scan export and a pitr export (SSE-KMS) of one table, a plain restore of the first, a replacing
    restore of the second, a verified copy, a failure notice, a restore drill of the newest backup, and
    two prunes of the (older) scan backup, in an Object Lock bucket: the first with two of its versions
    locked (a legal hold, a governance retention), the second after both are lifted. Every call recorded."""
    from dynamodb_backup.operators.notify import publish_sns
    from dynamodb_backup.pitr.job import run_pitr_backup

    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    uid = uuid.uuid4().hex[:8]
    source = f"t-iam-run-{uid}"
    names = {"source": source, "restored": f"{source}-r", "staging": f"{source}-staging", "copied": f"{source}-c",
             "drill": f"{source}-drill"}
    bucket = f"b-iam-run-{uid}"
    s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)  # versioned, as Object Lock needs
    prunes: list[dict[str, Any]] = []
    create_table(ddb, source, TABLE_SPECS["AllTypes"])
    enable_pitr(ddb, source)
    source_arn = ddb.describe_table(TableName=source)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=source_arn, Tags=[{"Key": "team", "Value": "backups"}])
    put_items(ddb, source, all_types_items())
    create_table(ddb, names["staging"], TABLE_SPECS["AllTypes"])
    put_items(ddb, names["staging"], all_types_items()[:3])
    key = local_aws.client("kms").create_key(Description="backups")["KeyMetadata"]["Arn"]
    topic = local_aws.sns_client().create_topic(Name=f"notices-{uid}")["TopicArn"]
    put_extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": key}
    moment = next_second()
    with pytest.MonkeyPatch.context() as mp, recording() as calls:
        for name, value in local_aws.airflow_conn_env().items():
            mp.setenv(name, value)
        scan = BackupRequest(table=source, destination=S3Location(bucket, "bk"), logical_date=DATE, read_ratio=1.0,
                             segments=2, settings=ExportSettings(file_max_items=3, put_extra=put_extra))
        assert run_backup(client_factory(), scan) is not None
        pitr = BackupRequest(table=source, destination=S3Location(bucket, "bk"), logical_date=moment,
                             settings=ExportSettings(put_extra=put_extra))
        assert run_pitr_backup(client_factory(), pitr, poll_seconds=0.3) is not None
        scan_folder = f"s3://{bucket}/bk/{source}/{DATE:%Y-%m-%d-%H-%M-%S}"
        pitr_folder = f"s3://{bucket}/bk/{source}/{moment:%Y-%m-%d-%H-%M-%S}"
        assert run_cli("restore", scan_folder, "--table", names["restored"], "--create-table", "--workers", "1") == 0
        assert run_cli("restore", pitr_folder, "--table", names["staging"], "--replace-table", "--workers", "1") == 0
        assert run_cli("copy", "--source-table", source, "--dest-table", names["copied"], "--create-dest",
                       "--verify") == 0
        assert publish_sns(topic, {"event": "dynamodb_backup_failed", "dag_id": f"dynamodb_backup_{source}"})
        record = drill(source, names["drill"], bucket, put_extra)
        assert record["folder"] == pitr_folder  # the newest backup
        # Retention: the scan backup is past keep_days and not the newest. Two of its versions are locked
        # (by the test's own client, not recorded): the prune deletes the rest, keeps those and the sidecar.
        scan_prefix = S3Location.parse(scan_folder).key("")
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=scan_prefix)["Contents"]  # data files, current versions
        files = sorted(o["Key"] for o in listed if o["Key"].endswith(".gz") and "/" not in o["Key"][len(scan_prefix):])
        assert len(files) >= 2, files
        held, retained = files[0], files[1]
        s3.put_object_legal_hold(Bucket=bucket, Key=held, LegalHold={"Status": "ON"})
        s3.put_object_retention(Bucket=bucket, Key=retained, Retention={
            "Mode": "GOVERNANCE", "RetainUntilDate": datetime.now(UTC) + timedelta(days=1)})
        prunes.append(prune(source, bucket, pitr_folder))
        assert {v["Key"] for v in versions_of(s3, bucket, scan_prefix)} == {
            held, retained, f"{scan_prefix}{SIDECAR}"}, "the locks really refused those deletions"
        # An administrator lifts the locks (the legal hold off, the governance retention bypassed).
        s3.put_object_legal_hold(Bucket=bucket, Key=held, LegalHold={"Status": "OFF"})
        s3.delete_object(Bucket=bucket, Key=retained, VersionId=next(
            v["VersionId"] for v in versions_of(s3, bucket, retained)), BypassGovernanceRetention=True)
        prunes.append(prune(source, bucket, pitr_folder))
        assert versions_of(s3, bucket, scan_prefix) == [], "the second prune removed every version left"
    scope = Scope.of(ddb, (source,), (names["restored"], names["staging"], names["copied"], names["drill"]),
                     bucket, "bk", topic_arn=topic, key_arn=key, replaced=(names["staging"],),
                     drills=(names["drill"],))
    return Run(list(calls), scope, names, prunes)


def test_the_run_made_every_kind_of_call(run):
    seen = {(c.service, c.operation) for c in run.calls}
    assert {("dynamodb", op) for op in ("Scan", "BatchWriteItem", "CreateTable", "DeleteTable", "DescribeTable",
                                        "ExportTableToPointInTime", "DescribeExport", "DescribeContinuousBackups",
                                        "DescribeTimeToLive", "ListTagsOfResource", "TagResource")} <= seen
    assert {("s3", "PutObject"), ("s3", "GetObject"), ("s3", "ListObjectsV2"), ("sns", "Publish")} <= seen
    assert {("s3", "ListObjectVersions"), ("s3", "DeleteObjects"), ("s3", "HeadObject")} <= seen  # the prunes
    actions = {r.action for r in run.requests()}
    assert {"kms:GenerateDataKey", "kms:Decrypt", "s3:PutObjectAcl", "s3:ListBucketVersions", "s3:DeleteObjectVersion",
            "s3:GetObjectVersion", "s3:GetObjectRetention", "s3:GetObjectLegalHold"} <= actions
    # The drill deleted its scratch table, and only that one besides the replaced table.
    deleted = {r.resource for r in run.requests() if r.action == "dynamodb:DeleteTable"}
    assert deleted == {run.scope.table(run.names["drill"]), run.scope.table(run.names["staging"])}
    written = {r.resource for r in run.requests() if r.action == "dynamodb:BatchWriteItem"}
    assert {run.scope.table(run.names[n]) for n in ("restored", "staging", "copied", "drill")} <= written
    assert re.fullmatch(r"\d{12}", run.scope.accounts.dynamodb)


def test_every_call_of_the_run_is_allowed_by_the_policy_narrowed_to_its_arns(run):
    policy = run.policy
    # The load-capacity add-on is checked by its own runs (test_a_restore_with_load_capacity_...).
    assert {s["Sid"] for s in policy["Statement"]} == set(NARROWING) - {SID_LOAD_CAPACITY}
    assert run.denied(policy) == []
    # What each role turned out to need (shown with -s).
    roles: dict[str, set[str]] = {}
    for r in run.requests():
        for sid in allowing(policy, r.action, r.resource, dict(r.context)):
            roles.setdefault(sid, set()).add(r.action + (f" (by {r.by})" if r.by else ""))
    for sid in NARROWING:
        print(f"{sid}: {sorted(roles.get(sid, ()))}")


#: Granted though no call of the run makes them, and why.
NOT_IN_THE_RUN = {
    (SID_TARGETS, "dynamodb:PutItem"): "a restore writes item by item only when DynamoDB refuses a whole batch, "
                                       "to name the item it refuses",
    (SID_TARGETS, "dynamodb:DeleteItem"): "applying an incremental link deletes item by item only when DynamoDB "
                                          "refuses a whole batch, to name the key it refuses",
    (SID_TARGETS, "dynamodb:BatchGetItem"): "restore --apply reads the keys a link changes before and after "
                                            "applying it, and --keys/--partition-key read the restored items "
                                            "back; the run restores whole tables",
    (SID_TARGETS, "dynamodb:UpdateTimeToLive"): "restore and copy turn TTL on when the source had it; "
                                                "dynalite has no TTL, so the run's source cannot",
}


def test_every_action_granted_is_one_the_run_needed_or_a_named_exception(run):
    """Least privilege, the other way round: nothing in the policy goes unused without a reason."""
    policy = run.policy
    used = {(sid, r.action) for r in run.requests() for sid in allowing(policy, r.action, r.resource, dict(r.context))}
    granted = {(s["Sid"], a) for s in policy["Statement"] for a in as_list(s["Action"])}
    assert granted - used == set(NOT_IN_THE_RUN), granted - used


def test_each_role_needs_its_statement(run):
    """Leave any one statement out of the narrowed policy and some call of the run is denied."""
    policy = run.policy
    for statement in policy["Statement"]:
        without = {**policy, "Statement": [s for s in policy["Statement"] if s is not statement]}
        assert run.denied(without), f"{statement['Sid']}: no call of the run needs it"


def test_verify_and_replace_read_the_targets_under_the_target_statement(run):
    """The reads on a target (verification scans, the replaced table's TTL and tags) are granted by the
    target statement; the source statement, narrowed to the source, grants none of them."""
    policy, scope = run.policy, run.scope
    target_reads = [r for r in run.requests() if r.resource in {scope.table(t) for t in scope.targets}
                    and r.action in ("dynamodb:Scan", "dynamodb:DescribeTimeToLive", "dynamodb:ListTagsOfResource")]
    assert {(r.action, r.resource) for r in target_reads} >= {
        ("dynamodb:Scan", scope.table(run.names["restored"])), ("dynamodb:Scan", scope.table(run.names["copied"])),
        ("dynamodb:DescribeTimeToLive", scope.table(run.names["staging"])),
        ("dynamodb:ListTagsOfResource", scope.table(run.names["staging"]))}
    for r in target_reads:
        assert allowing(policy, r.action, r.resource) == [SID_TARGETS], r


def test_restore_checkpoints_fall_under_the_backup_prefix_statement(run):
    """A restore writes and clears its markers under the prefix statement; the prune that deletes a
    folder removes the markers' versions (delete markers in a versioned bucket) under its own."""
    policy = run.policy
    markers = [r for r in run.requests() if f"/{CHECKPOINT_DIR}/" in r.resource]
    assert {r.action for r in markers} >= {"s3:PutObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    for r in markers:
        assert r.resource.startswith(f"arn:aws:s3:::{run.scope.bucket}/{run.scope.prefix}/"), r
        sid = SID_PRUNE if r.action == "s3:DeleteObjectVersion" else SID_PREFIX
        assert allowing(policy, r.action, r.resource, dict(r.context)) == [sid], r


def test_the_prunes_kept_what_object_lock_holds_then_deleted_the_folder(run):
    """The first prune was refused two versions by Object Lock (read back as locked, not as errors: the
    lock headers reached it) and kept the folder's sidecar; the second deleted the folder and what lies
    beside it. The newest backup (the drilled one) and its drill record stay."""
    first, second = run.prunes
    scope, source = run.scope, run.names["source"]
    scan_folder = f"s3://{scope.bucket}/bk/{source}/{DATE:%Y-%m-%d-%H-%M-%S}"
    assert first["deleted"] == [] and first["errors"] == [] and len(first["locked"]) == 2, first
    assert second["deleted"] == [scan_folder] and second["locked"] == [] and second["errors"] == [], second
    assert first["kept"] == second["kept"] and len(second["kept"]) == 1 and second["kept"][0] != scan_folder
    checks = [r for r in run.requests() if r.action in ("s3:GetObjectRetention", "s3:GetObjectLegalHold")]
    assert {(r.action, r.by) for r in checks} == {("s3:GetObjectRetention", "s3:GetObjectVersion"),
                                                  ("s3:GetObjectLegalHold", "s3:GetObjectVersion")}
    beside = {r.resource for r in run.requests() if r.action == "s3:DeleteObjectVersion"
              and not r.resource.startswith(f"arn:aws:s3:::{scan_folder[5:]}/")}
    assert beside and all(f"/{CHECKPOINT_DIR}/" in arn for arn in beside), beside


def test_a_wrong_table_narrowing_denies_the_runs_calls(run):
    """The check can fail: narrowed to another table, the run's own calls on its tables are denied."""
    scope, names = run.scope, run.names
    wrong_source = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, sources=(f"{names['source']}-other",)))
    denied = run.denied(wrong_source)
    source = scope.table(names["source"])
    assert {("dynamodb:Scan", source), ("dynamodb:ExportTableToPointInTime", source),
            ("dynamodb:DescribeContinuousBackups", source)} <= set(denied)
    assert all(resource == source or resource.startswith(f"{source}/") for _, resource in denied), denied
    wrong_target = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, targets=(names["restored"],)))
    assert ("dynamodb:BatchWriteItem", scope.table(names["copied"])) in run.denied(wrong_target)
    assert ("dynamodb:CreateTable", scope.table(names["copied"])) in run.denied(wrong_target)
    wrong_replace = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, replaced=(f"{names['source']}-x-staging",)))
    assert run.denied(wrong_replace) == [("dynamodb:DeleteTable", scope.table(names["staging"]))]
    wrong_drill = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, drills=(f"{names['source']}-x-drill",)))
    assert run.denied(wrong_drill) == [("dynamodb:DeleteTable", scope.table(names["drill"]))]
    assert scope.accounts.dynamodb != "999999999999"
    wrong_account = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, accounts=Accounts("999999999999")))
    assert {a for a, _ in run.denied(wrong_account)} >= {"dynamodb:Scan", "dynamodb:BatchWriteItem"}


def test_a_wrong_bucket_or_prefix_narrowing_denies_the_runs_calls(run):
    scope = run.scope
    objects = {r.resource for r in run.requests() if r.action.startswith("s3:") and "/" in r.resource}
    assert objects
    for wrong in (replace(scope, prefix="other"), replace(scope, prefix="b"),
                  replace(scope, bucket=f"{scope.bucket}x")):
        denied = run.denied(narrow(with_(POLICY, REPLACE_POLICY), wrong))
        assert {res for a, res in denied if a.startswith("s3:") and "/" in res} == objects, wrong
    denied = run.denied(narrow(with_(POLICY, REPLACE_POLICY), replace(scope, bucket=f"{scope.bucket}x")))
    assert ("s3:ListBucket", f"arn:aws:s3:::{scope.bucket}") in denied
    wrong_key = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, key_arn=f"{scope.key_arn}0"))
    assert {a for a, _ in run.denied(wrong_key)} == {"kms:GenerateDataKey", "kms:Decrypt"}
    wrong_topic = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, topic_arn=f"{scope.topic_arn}-other"))
    assert run.denied(wrong_topic) == [("sns:Publish", scope.topic_arn)]


# --- smaller runs ----------------------------------------------------------------------------------------


def test_a_pitr_backup_needs_only_the_policy_and_no_read_on_the_table(local_aws, s3_bucket, table_name, recorded):
    from dynamodb_backup.pitr.job import run_pitr_backup

    ddb = local_aws.dynamodb_client()
    create_table(ddb, table_name, TABLE_SPECS["AllTypes"])
    enable_pitr(ddb, table_name)
    put_items(ddb, table_name, all_types_items())
    moment = next_second()
    recorded.clear()
    request = BackupRequest(table=table_name, destination=S3Location(s3_bucket, "pitr"), logical_date=moment)
    assert run_pitr_backup(client_factory(), request, poll_seconds=0.3) is not None
    calls = list(recorded)
    seen = {(c.service, c.operation) for c in calls}
    assert {("dynamodb", "ExportTableToPointInTime"), ("dynamodb", "DescribeExport"),
            ("dynamodb", "DescribeContinuousBackups")} <= seen
    assert not {("dynamodb", op) for op in ("Scan", "Query", "GetItem", "BatchGetItem")} & seen
    scope = Scope.of(ddb, (table_name,), (), s3_bucket, "pitr")
    policy = narrow(POLICY, scope)
    assert not denied_calls(calls, policy, scope.accounts), denied_calls(calls, policy, scope.accounts)
    pitr = next(s for s in policy["Statement"] if "dynamodb:ExportTableToPointInTime" in s["Action"])
    assert pitr["Sid"].startswith("Pitr") and "dynamodb:Scan" not in pitr["Action"]
    without = {**policy, "Statement": [s for s in policy["Statement"] if s is not pitr]}
    assert ("dynamodb:ExportTableToPointInTime", scope.table(table_name)) in \
        denied_calls(calls, without, scope.accounts)
    # From the source statement a pitr backup needs only the table's description, TTL and tags (for the
    # sidecar), never an item.
    reads = {**policy, "Statement": [s for s in policy["Statement"] if s["Sid"] != SID_SOURCES]}
    assert {a for a, _ in denied_calls(calls, reads, scope.accounts)} == {
        "dynamodb:DescribeTable", "dynamodb:DescribeTimeToLive", "dynamodb:ListTagsOfResource"}


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
    calls = list(recorded)

    # A restore touches no source table: the policy narrowed to no source at all is enough.
    scope = Scope.of(ddb, (table_name,), (staging,), s3_bucket, "bk")
    policy = narrow(POLICY, replace(scope, sources=()))
    assert denied_calls(calls, policy, scope.accounts) == [("dynamodb:DeleteTable", scope.table(staging))]
    both = narrow(with_(POLICY, REPLACE_POLICY), replace(scope, sources=(), replaced=(staging,)))
    assert denied_calls(calls, both, scope.accounts) == []
    assert not allowed(both, "dynamodb:DeleteTable", scope.table(table_name))  # the source stays safe
    # The policy as written (table/*-staging) also grants it, and never a table not named so.
    assert allowed(with_(POLICY, REPLACE_POLICY), "dynamodb:DeleteTable", scope.table(staging))
    assert not allowed(with_(POLICY, REPLACE_POLICY), "dynamodb:DeleteTable", scope.table(table_name))


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
    local_aws.door.add_principal(Principal(ACCESS_KEY, SECRET, session_token=TOKEN))  # known at the front door
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
    key = kms.create_key(Description="backups")["KeyMetadata"]
    key_id = key["KeyId"]
    owner = MOTO_ACCOUNT
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
    calls = list(recorded)
    writes = [c for c in calls if c.service == "s3" and c.operation in
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
    # The KMS requests S3 made for those writes (and reads) are allowed through S3 only, on this key only.
    scope = Scope.of(ddb, (table_name,), (), s3_bucket, "kms", key_arn=key["Arn"])
    kms_requests = [r for r in requests(calls, scope.accounts) if r.action.startswith("kms:")]
    assert {r.action for r in kms_requests} == {"kms:GenerateDataKey", "kms:Decrypt"}
    assert {r.resource for r in kms_requests} == {key["Arn"]}
    assert denied_calls(calls, narrow(POLICY, scope), scope.accounts) == []
    other = narrow(POLICY, replace(scope, key_arn=kms.create_key()["KeyMetadata"]["Arn"]))
    assert {a for a, _ in denied_calls(calls, other, scope.accounts)} == {"kms:GenerateDataKey", "kms:Decrypt"}
    direct = [Call("kms", "GenerateDataKey", {"KeyId": key_id})]  # made by a client, not through S3
    assert denied_calls(direct, narrow(POLICY, scope), scope.accounts) == [("kms:GenerateDataKey", key["Arn"])]


# --- real enforcement: the front door evaluates the narrowed policy on every live call -----------------------

ROLE_KEY, ROLE_SECRET = "AKIDBACKUPROLE", "backup-role-secret"


@dataclass
class Enforced:
    """A source table with a scan backup (SSE-KMS) written by the test's administrator, and the role's
    principal at the session's front door, carrying the policies narrowed to this test's ARNs."""

    local_aws: Any
    names: dict[str, str]
    bucket: str
    key_arn: str
    folder: str

    @property
    def door(self) -> Any:
        return self.local_aws.door

    def scope(self) -> Scope:
        n = self.names
        return Scope(self.local_aws.region, Accounts(self.door.account), (n["source"],), (n["restored"], n["staging"]),
                     self.bucket, "bk", key_arn=self.key_arn, replaced=(n["staging"],))

    def policy(self, without: str = "") -> dict[str, Any]:
        """The narrowed policies, less ``without`` wherever a statement grants it."""
        policy = narrow(with_(POLICY, REPLACE_POLICY), self.scope())
        statements = [{**s, "Action": [a for a in as_list(s["Action"]) if a != without]} for s in policy["Statement"]]
        return {**policy, "Statement": [s for s in statements if s["Action"]]}

    def backup(self) -> None:
        request = BackupRequest(table=self.names["source"], destination=S3Location(self.bucket, "bk"),
                                logical_date=DATE, read_ratio=1.0, segments=2,
                                settings=ExportSettings(file_max_items=3, put_extra={
                                    "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.key_arn}))
        assert run_backup(client_factory(), request) is not None


@pytest.fixture
def enforced(local_aws, monkeypatch) -> Iterator[Enforced]:
    uid = uuid.uuid4().hex[:8]
    source = f"t-iam-door-{uid}"
    names = {"source": source, "restored": f"{source}-r", "staging": f"{source}-staging"}
    bucket = f"b-iam-door-{uid}"
    ddb, s3 = local_aws.dynamodb_client(), local_aws.s3_client()
    s3.create_bucket(Bucket=bucket)
    create_table(ddb, source, TABLE_SPECS["AllTypes"])
    put_items(ddb, source, all_types_items())
    create_table(ddb, names["staging"], TABLE_SPECS["AllTypes"])
    key = local_aws.client("kms").create_key(Description="backups")["KeyMetadata"]["Arn"]
    setup = Enforced(local_aws, names, bucket, key, f"s3://{bucket}/bk/{source}/{DATE:%Y-%m-%d-%H-%M-%S}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ROLE_KEY)  # from here on, every call is the role's
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ROLE_SECRET)
    yield setup
    local_aws.door.remove_principal(ROLE_KEY)


def give_role(setup: Enforced, policy: dict[str, Any]) -> Any:
    return setup.door.add_principal(Principal(ROLE_KEY, ROLE_SECRET, policy=policy, name="backup-role"))


def test_backup_and_restores_succeed_under_the_narrowed_policy_with_no_denial(enforced):
    give_role(enforced, enforced.policy())
    before = Counter(enforced.door.counters)
    enforced.backup()
    names = enforced.names
    assert run_cli("restore", enforced.folder, "--table", names["restored"], "--create-table", "--workers", "1") == 0
    assert run_cli("restore", enforced.folder, "--table", names["staging"], "--replace-table", "--workers", "1") == 0
    made = Counter(enforced.door.counters)
    made.subtract(before)
    assert {k: n for k, n in made.items() if k.startswith(("denied:", "refused:")) and n} == {}
    allowed_now = {k.removeprefix("allowed:") for k, n in made.items() if k.startswith("allowed:") and n > 0}
    assert {"dynamodb:Scan", "dynamodb:DescribeTable", "dynamodb:CreateTable", "dynamodb:BatchWriteItem",
            "dynamodb:DeleteTable", "s3:PutObject", "s3:GetObject", "s3:ListBucket", "kms:GenerateDataKey",
            "kms:Decrypt"} <= allowed_now, allowed_now


def failure_text(exc: BaseException) -> str:
    seen: list[str] = []
    current: BaseException | None = exc
    while current is not None and len(seen) < 6:
        seen.append(f"{type(current).__name__}: {current}")
        current = current.__cause__ or current.__context__
    return "\n".join(seen)


@pytest.mark.parametrize("action", ["dynamodb:Scan", "s3:PutObject", "kms:GenerateDataKey"])
def test_a_backup_without_one_needed_action_fails_naming_it(enforced, action):
    give_role(enforced, enforced.policy(without=action))
    before = enforced.door.counters[f"denied:{action}"]
    with pytest.raises(Exception) as caught:  # whatever the backup raises must say why
        enforced.backup()
    text = failure_text(caught.value)
    assert "AccessDenied" in text and f"not authorized to perform: {action}" in text, text
    assert enforced.door.counters[f"denied:{action}"] > before


@pytest.mark.parametrize("action", ["s3:GetObject", "kms:Decrypt", "dynamodb:BatchWriteItem", "dynamodb:CreateTable"])
def test_a_restore_without_one_needed_action_fails_naming_it(enforced, action, capsys):
    give_role(enforced, enforced.policy())
    enforced.backup()
    give_role(enforced, enforced.policy(without=action))
    before = enforced.door.counters[f"denied:{action}"]
    capsys.readouterr()
    try:
        code = run_cli("restore", enforced.folder, "--table", enforced.names["restored"], "--create-table",
                       "--workers", "1")
        text = capsys.readouterr().err
    except Exception as exc:  # unexplained by the CLI: must still name it
        code, text = -1, failure_text(exc)
    assert code != 0
    assert action in text, text
    assert enforced.door.counters[f"denied:{action}"] > before


# --- load capacity: the add-on policy's UpdateTable, enforced at the front door ------------------------------


@dataclass
class Loading:
    """A provisioned source (a GSI, capacities in its sidecar) backed up by the test's administrator, and two
    restore targets for ``--load-capacity on-demand``: ``new`` (created by the restore) and ``existing``
    (provisioned at 4 RCU / 6 WCU, empty)."""

    local_aws: Any
    folder: str
    bucket: str
    new: str
    existing: str

    @property
    def door(self) -> Any:
        return self.local_aws.door

    def scope(self) -> Scope:
        return Scope(self.local_aws.region, Accounts(self.door.account), (), (self.new, self.existing), self.bucket,
                     "backups", loaded=(self.new, self.existing))

    def restore(self, target: str) -> list[str]:
        argv = ["restore", self.folder, "--table", target, "--load-capacity", "on-demand", "--workers", "1"]
        return argv + (["--create-table"] if target == self.new else [])


LOADED_ITEMS = 30
#: The existing target's own capacities (what it goes back to after the load).
EXISTING_THROUGHPUT = {"ReadCapacityUnits": 4, "WriteCapacityUnits": 6}


@pytest.fixture
def loading(local_aws, monkeypatch) -> Iterator[Loading]:
    uid = uuid.uuid4().hex[:8]
    source, bucket = f"t-iam-load-{uid}", f"b-iam-load-{uid}"
    ddb = local_aws.dynamodb_client()
    local_aws.s3_client().create_bucket(Bucket=bucket)
    folder = gsi_bound_backup(local_aws, bucket, source, LOADED_ITEMS)  # as the administrator
    setup = Loading(local_aws, f"{folder.uri}/", bucket, f"{source}-new", f"{source}-existing")
    ddb.create_table(TableName=setup.existing, KeySchema=SPEC["KeySchema"],
                     AttributeDefinitions=SPEC["AttributeDefinitions"][:2], BillingMode="PROVISIONED",
                     ProvisionedThroughput=EXISTING_THROUGHPUT)
    ddb.get_waiter("table_exists").wait(TableName=setup.existing, WaiterConfig={"Delay": 0.2})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ROLE_KEY)  # from here on, every call is the role's
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ROLE_SECRET)
    yield setup
    local_aws.door.remove_principal(ROLE_KEY)


def door_changes(door: Any, before: Counter[str]) -> dict[str, int]:
    made = Counter(door.counters)
    made.subtract(before)
    return {k: n for k, n in made.items() if n}


def table_now(local_aws: Any, table: str) -> dict[str, Any]:
    """The table as the administrator sees it (a client made here with the test credentials, not recorded)."""
    ddb = local_aws.dynamodb_client(aws_access_key_id="testing", aws_secret_access_key="testing")
    described: dict[str, Any] = ddb.describe_table(TableName=table)["Table"]
    described["Count"] = ddb.scan(TableName=table, Select="COUNT")["Count"]  # a few dozen items: one page
    return described


def throughput(described: dict[str, Any]) -> dict[str, int]:
    return {k: described["ProvisionedThroughput"][k] for k in ("ReadCapacityUnits", "WriteCapacityUnits")}


def sidecar_settle(table: str) -> dict[str, Any]:
    """The UpdateTable that gives ``table`` the source's capacities as its sidecar holds them."""
    return {"TableName": table, "BillingMode": "PROVISIONED",
            "ProvisionedThroughput": {"ReadCapacityUnits": TABLE_RCU, "WriteCapacityUnits": TABLE_WCU},
            "GlobalSecondaryIndexUpdates": [{"Update": {"IndexName": "byStatus", "ProvisionedThroughput": {
                "ReadCapacityUnits": 3, "WriteCapacityUnits": INDEX_WCU}}}]}


def test_a_restore_with_load_capacity_runs_under_the_policy_and_its_add_on_with_no_denial(loading, capsys):
    """On demand into a new table made from a provisioned sidecar, then settled to the sidecar's capacities;
    and into an existing provisioned table, switched to on-demand for the load and back."""
    scope = loading.scope()
    give_role(loading, narrow(with_(POLICY, LOAD_CAPACITY_POLICY), scope))
    before = Counter(loading.door.counters)
    with recording() as calls:
        assert run_cli(*loading.restore(loading.new)) == 0, capsys.readouterr().err
        assert run_cli(*loading.restore(loading.existing)) == 0, capsys.readouterr().err
    made = door_changes(loading.door, before)
    assert {k: n for k, n in made.items() if k.startswith(("denied:", "refused:"))} == {}
    # One settle of the new table; the existing one switched to on-demand and back.
    assert made.get("allowed:dynamodb:UpdateTable") == 3, made
    assert made.get("allowed:dynamodb:CreateTable") == 1 and made.get("allowed:dynamodb:BatchWriteItem", 0) >= 2, made
    new, existing = table_now(loading.local_aws, loading.new), table_now(loading.local_aws, loading.existing)
    settle = sidecar_settle(loading.new)
    assert new["BillingModeSummary"]["BillingMode"] == "PROVISIONED" and new["TableStatus"] == "ACTIVE"
    assert throughput(new) == settle["ProvisionedThroughput"]
    [gsi] = new["GlobalSecondaryIndexes"]
    assert throughput(gsi) == settle["GlobalSecondaryIndexUpdates"][0]["Update"]["ProvisionedThroughput"]
    assert existing["BillingModeSummary"]["BillingMode"] == "PROVISIONED" and throughput(existing) == \
        EXISTING_THROUGHPUT
    assert "LastUpdateToPayPerRequestDateTime" in existing["BillingModeSummary"]  # it really was switched
    assert new["Count"] == existing["Count"] == LOADED_ITEMS
    # The recorded calls agree: the narrowed policies allow them all; without the add-on only UpdateTable on
    # the two targets is denied, and the add-on narrowed to the new table alone denies the existing one's.
    accounts = scope.accounts
    assert denied_calls(calls, narrow(with_(POLICY, LOAD_CAPACITY_POLICY), scope), accounts) == []
    assert denied_calls(calls, narrow(POLICY, scope), accounts) == sorted(
        ("dynamodb:UpdateTable", scope.table(t)) for t in (loading.new, loading.existing))
    only_new = narrow(with_(POLICY, LOAD_CAPACITY_POLICY), replace(scope, loaded=(loading.new,)))
    assert denied_calls(calls, only_new, accounts) == [("dynamodb:UpdateTable", scope.table(loading.existing))]


def test_a_restore_with_load_capacity_without_the_add_on_fails_naming_update_table(loading, capsys, caplog):
    """Without iam-policy-load-capacity.json: into a new table the restore loads and verifies, then its settle
    is denied: exit 1, the data stays loaded (on demand), and one line says so and gives the command that
    finishes it. Into an existing provisioned table the switch to on-demand is denied before any write."""
    caplog.set_level(logging.INFO)
    scope = loading.scope()
    give_role(loading, narrow(POLICY, scope))
    before = Counter(loading.door.counters)
    capsys.readouterr()
    code = run_cli(*loading.restore(loading.new))
    out, err = capsys.readouterr()
    made = door_changes(loading.door, before)
    assert code == 1, err
    # Denied once at the door (not retried), and nothing else was refused.
    assert {k: n for k, n in made.items() if k.startswith(("denied:", "refused:"))} == {
        "denied:dynamodb:UpdateTable": 1, "refused:AccessDeniedException": 1}, made
    # What a terminal shows: the CLI's stderr, and its log records at INFO and above (the CLI's logging.basicConfig
    # sends those to stderr too; under pytest they land in caplog instead).
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    finishing = [line for line in [*err.splitlines(), *logged] if "Finish with:" in line]
    assert len(finishing) == 1, finishing
    [line] = finishing
    settle = sidecar_settle(loading.new)
    assert line.startswith(f"the data is loaded, but {loading.new} could not be given its final capacities"), line
    assert "AccessDeniedException" in line and "not authorized to perform: dynamodb:UpdateTable" in line, line
    assert line.endswith(f"Finish with: {settle_command(settle)}"), line
    # Verified before the settle was tried.
    assert f"verified: {LOADED_ITEMS} items in {loading.new}, {LOADED_ITEMS} in the backup (digests equal)" in out, out
    new = table_now(loading.local_aws, loading.new)
    assert new["Count"] == LOADED_ITEMS  # nothing lost
    assert new["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"  # left at its load capacity
    # The line's command finishes it (run by someone allowed to).
    admin = loading.local_aws.dynamodb_client(aws_access_key_id="testing", aws_secret_access_key="testing")
    assert apply_settings(admin, settle)
    settled_now = table_now(loading.local_aws, loading.new)
    assert settled_now["BillingModeSummary"]["BillingMode"] == "PROVISIONED"
    assert throughput(settled_now) == settle["ProvisionedThroughput"]

    before = Counter(loading.door.counters)
    code = run_cli(*loading.restore(loading.existing))
    err = capsys.readouterr().err
    made = door_changes(loading.door, before)
    assert code != 0, err
    assert made.get("denied:dynamodb:UpdateTable") == 1, made
    assert "allowed:dynamodb:BatchWriteItem" not in made, made  # refused before any write
    assert "dynamodb:UpdateTable" in err and "Nothing was written" in err, err
    existing = table_now(loading.local_aws, loading.existing)
    assert existing["Count"] == 0
    # Never switched: still provisioned at its own capacities (a table never switched may have no BillingModeSummary).
    assert not is_on_demand(existing) and throughput(existing) == EXISTING_THROUGHPUT
