"""IAM for the front door: which authorizations a request needs, and what a policy says to each.

Evaluation (identity-based policies only, as for an IAM user): a request is allowed when some
Allow statement matches it and no Deny statement does; an explicit Deny wins; nothing matching
is an implicit deny. A statement matches when its ``Action`` (or ``NotAction``), its ``Resource``
(or ``NotResource``) and its ``Condition`` all hold. Actions match case-insensitively with ``*``
and ``?``; ARNs match segment by segment (a wildcard does not cross ``:`` before the resource
part), as IAM does. Condition operators: String(Not)Equals(IgnoreCase), String(Not)Like,
Arn(Not)Equals, Arn(Not)Like, Bool, Null, each also with ``IfExists``; any other operator is
refused when the principal is made, never silently ignored.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "allow", "explicit-deny", "implicit-deny"


@dataclass(frozen=True)
class Authorization:
    """One IAM request: an action on a resource, with the request context's condition keys."""

    action: str
    resource: str
    context: tuple[tuple[str, str], ...] = ()


@lru_cache(maxsize=4096)
def _pattern(pattern: str, case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile(regex, 0 if case else re.IGNORECASE)


def glob(pattern: str, text: str, case: bool = True) -> bool:
    return _pattern(pattern, case).fullmatch(text) is not None


def arn_matches(pattern: str, arn: str) -> bool:
    if pattern == "*":
        return True
    wanted, have = pattern.split(":", 5), arn.split(":", 5)
    if len(wanted) != 6 or len(have) != 6:
        return glob(pattern, arn)
    return all(glob(w, h) for w, h in zip(wanted, have, strict=True))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _bool(actual: str, wanted: str) -> bool:
    return actual.lower() == str(wanted).lower()


OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "StringEquals": lambda a, w: a == w,
    "StringNotEquals": lambda a, w: a != w,
    "StringEqualsIgnoreCase": lambda a, w: a.lower() == w.lower(),
    "StringNotEqualsIgnoreCase": lambda a, w: a.lower() != w.lower(),
    "StringLike": lambda a, w: glob(w, a),
    "StringNotLike": lambda a, w: not glob(w, a),
    "ArnEquals": lambda a, w: a == w,
    "ArnNotEquals": lambda a, w: a != w,
    "ArnLike": lambda a, w: arn_matches(w, a),
    "ArnNotLike": lambda a, w: not arn_matches(w, a),
    "Bool": _bool,
}
NEGATED = {"StringNotEquals", "StringNotEqualsIgnoreCase", "StringNotLike", "ArnNotEquals", "ArnNotLike"}


def check_policy(policy: dict[str, Any]) -> None:
    """Refuse a policy the evaluator would misread (unknown condition operators, missing parts)."""
    for statement in _as_list(policy.get("Statement", [])):
        if statement.get("Effect") not in ("Allow", "Deny"):
            raise ValueError(f"statement {statement.get('Sid', '')!r}: Effect must be Allow or Deny")
        if ("Action" in statement) == ("NotAction" in statement):
            raise ValueError(f"statement {statement.get('Sid', '')!r}: exactly one of Action, NotAction")
        if ("Resource" in statement) == ("NotResource" in statement):
            raise ValueError(f"statement {statement.get('Sid', '')!r}: exactly one of Resource, NotResource")
        for operator in statement.get("Condition", {}):
            base = operator.removesuffix("IfExists")
            if base not in OPERATORS and base != "Null":
                raise ValueError(f"the front door does not know the condition operator {operator}")


def _condition_holds(condition: dict[str, Any], context: dict[str, str]) -> bool:
    for operator, tests in condition.items():
        if_exists = operator.endswith("IfExists")
        base = operator.removesuffix("IfExists")
        for key, wanted in tests.items():
            actual = context.get(key.lower())
            values = [str(v) for v in _as_list(wanted)]
            if base == "Null":
                if any((actual is None) != _bool("true", v) for v in values):
                    return False
                continue
            if actual is None:
                if if_exists or base in NEGATED:
                    continue
                return False
            test = OPERATORS[base]
            if base in NEGATED:
                if not all(test(actual, v) for v in values):
                    return False
            elif not any(test(actual, v) for v in values):
                return False
    return True


def _matches(statement: dict[str, Any], request: Authorization, context: dict[str, str]) -> bool:
    if "Action" in statement:
        action_ok = any(glob(a, request.action, case=False) for a in _as_list(statement["Action"]))
    else:
        action_ok = not any(glob(a, request.action, case=False) for a in _as_list(statement["NotAction"]))
    if not action_ok:
        return False
    if "Resource" in statement:
        resource_ok = any(arn_matches(r, request.resource) for r in _as_list(statement["Resource"]))
    else:
        resource_ok = not any(arn_matches(r, request.resource) for r in _as_list(statement["NotResource"]))
    return resource_ok and _condition_holds(statement.get("Condition", {}), context)


def evaluate(policy: dict[str, Any] | None, request: Authorization) -> str:
    """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY. No policy at all is an administrator (allow)."""
    if policy is None:
        return ALLOW
    context = {k.lower(): v for k, v in request.context}
    verdict = IMPLICIT_DENY
    for statement in _as_list(policy.get("Statement", [])):
        if _matches(statement, request, context):
            if statement["Effect"] == "Deny":
                return EXPLICIT_DENY
            verdict = ALLOW
    return verdict


# --------------------------------------------------------------------------- DynamoDB


@dataclass
class Place:
    """Where the door's ARNs live: its account and the request's region."""

    account: str
    region: str

    def table(self, name: str) -> str:
        if name.startswith("arn:"):  # given as an ARN: re-homed into the door's account and region
            return self.rehome(name)
        return f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"

    def rehome(self, arn: str) -> str:
        parts = arn.split(":", 5)
        if len(parts) == 6 and parts[2] == "dynamodb":
            parts[3], parts[4] = self.region, self.account
        return ":".join(parts)


TRANSACT_ACTIONS = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem",
                    "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}


def dynamodb_authorizations(operation: str, body: dict[str, Any], place: Place) -> list[Authorization]:
    """``dynamodb:<Operation>`` on each resource the call names (one per table for batches)."""
    action = f"dynamodb:{operation}"
    if operation in ("BatchWriteItem", "BatchGetItem"):
        return [Authorization(action, place.table(t)) for t in body.get("RequestItems") or {}]
    if operation in ("TransactWriteItems", "TransactGetItems"):
        out: list[Authorization] = []
        for entry in body.get("TransactItems") or []:
            for kind, detail in entry.items():
                auth = Authorization(f"dynamodb:{TRANSACT_ACTIONS.get(kind, kind)}",
                                     place.table(str(detail.get("TableName"))))
                if auth not in out:
                    out.append(auth)
        return out
    for key in ("ExportArn", "ImportArn", "BackupArn", "StreamArn", "TableArn", "ResourceArn"):
        if isinstance(body.get(key), str):
            return [Authorization(action, place.rehome(body[key]))]
    name = body.get("TableName")
    if isinstance(name, str):
        resource = place.table(name)
        if body.get("IndexName"):
            resource += f"/index/{body['IndexName']}"
        return [Authorization(action, resource)]
    return [Authorization(action, "*")]


# --------------------------------------------------------------------------- S3 (path-style REST)

BUCKET_GET = {"location": "GetBucketLocation", "versioning": "GetBucketVersioning", "versions": "ListBucketVersions",
              "uploads": "ListBucketMultipartUploads", "object-lock": "GetBucketObjectLockConfiguration",
              "tagging": "GetBucketTagging", "policy": "GetBucketPolicy", "lifecycle": "GetLifecycleConfiguration",
              "encryption": "GetEncryptionConfiguration", "acl": "GetBucketAcl", "cors": "GetBucketCORS",
              "notification": "GetBucketNotification", "ownershipControls": "GetBucketOwnershipControls",
              "publicAccessBlock": "GetBucketPublicAccessBlock", "logging": "GetBucketLogging",
              "replication": "GetReplicationConfiguration", "website": "GetBucketWebsite"}
BUCKET_PUT = {"versioning": "PutBucketVersioning", "tagging": "PutBucketTagging", "policy": "PutBucketPolicy",
              "lifecycle": "PutLifecycleConfiguration", "object-lock": "PutBucketObjectLockConfiguration",
              "encryption": "PutEncryptionConfiguration", "acl": "PutBucketAcl", "cors": "PutBucketCORS",
              "notification": "PutBucketNotification", "ownershipControls": "PutBucketOwnershipControls",
              "publicAccessBlock": "PutBucketPublicAccessBlock", "logging": "PutBucketLogging",
              "replication": "PutReplicationConfiguration", "website": "PutBucketWebsite"}
BUCKET_DELETE = {"tagging": "PutBucketTagging", "policy": "DeleteBucketPolicy",
                 "lifecycle": "PutLifecycleConfiguration", "encryption": "PutEncryptionConfiguration",
                 "cors": "PutBucketCORS", "website": "DeleteBucketWebsite",
                 "ownershipControls": "PutBucketOwnershipControls", "publicAccessBlock": "PutBucketPublicAccessBlock",
                 "replication": "PutReplicationConfiguration"}
OBJECT_GET = {"uploadId": "ListMultipartUploadParts", "tagging": "GetObjectTagging", "acl": "GetObjectAcl",
              "retention": "GetObjectRetention", "legal-hold": "GetObjectLegalHold",
              "attributes": "GetObjectAttributes"}
OBJECT_PUT = {"tagging": "PutObjectTagging", "acl": "PutObjectAcl", "retention": "PutObjectRetention",
              "legal-hold": "PutObjectLegalHold"}
#: Object actions that become their ...Version form when a versionId is given.
VERSIONED = {"GetObject": "GetObjectVersion", "GetObjectTagging": "GetObjectVersionTagging",
             "GetObjectAcl": "GetObjectVersionAcl", "PutObjectTagging": "PutObjectVersionTagging",
             "PutObjectAcl": "PutObjectVersionAcl", "DeleteObject": "DeleteObjectVersion",
             "GetObjectAttributes": "GetObjectVersionAttributes"}


@dataclass
class S3Call:
    """What an S3 REST request is: its operation name, bucket, key and IAM requests."""

    operation: str
    bucket: str
    key: str
    authorizations: list[Authorization] = field(default_factory=list)


def split_path(raw_path: str) -> tuple[str, str]:
    from urllib.parse import unquote

    path = unquote(raw_path.split("?", 1)[0]).lstrip("/")
    bucket, _, key = path.partition("/")
    return bucket, key


def _first(query: dict[str, str], table: dict[str, str]) -> str | None:
    return next((op for sub, op in table.items() if sub in query), None)


def _deleted_keys(body: bytes) -> list[tuple[str, bool]]:
    """(key, with a version id) of each object a DeleteObjects body names."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return []
    out = []
    for obj in root.iter():
        if obj.tag.rsplit("}", 1)[-1] == "Object":
            key = next((c.text or "" for c in obj if c.tag.rsplit("}", 1)[-1] == "Key"), "")
            versioned = any(c.tag.rsplit("}", 1)[-1] == "VersionId" for c in obj)
            out.append((key, versioned))
    return out


def s3_call(method: str, raw_path: str, query: dict[str, str], headers: dict[str, str], body: bytes) -> S3Call:
    """The IAM requests of a path-style S3 request (virtual-host style is not used against local endpoints)."""
    bucket, key = split_path(raw_path)
    bucket_arn, object_arn = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/{key}"
    lower = {k.lower(): v for k, v in headers.items()}
    versioned = "versionId" in query

    def one(operation: str, action: str, resource: str) -> S3Call:
        return S3Call(operation, bucket, key, [Authorization(f"s3:{action}", resource)])

    if not bucket:
        return one("ListBuckets", "ListAllMyBuckets", "*")
    if not key:
        if method in ("GET", "HEAD"):
            if method == "HEAD":
                return one("HeadBucket", "ListBucket", bucket_arn)
            op = _first(query, BUCKET_GET)
            if op is None:
                return one("ListObjectsV2" if query.get("list-type") == "2" else "ListObjects", "ListBucket",
                           bucket_arn)
            return one(op, op, bucket_arn)
        if method == "PUT":
            op = _first(query, BUCKET_PUT) or "CreateBucket"
            return one(op, op, bucket_arn)
        if method == "DELETE":
            sub = next((sub for sub in BUCKET_DELETE if sub in query), None)
            return one(f"DeleteBucket?{sub}" if sub else "DeleteBucket", BUCKET_DELETE.get(sub or "", "DeleteBucket"),
                       bucket_arn)
        if method == "POST" and "delete" in query:
            call = S3Call("DeleteObjects", bucket, "")
            for name, with_version in _deleted_keys(body):
                call.authorizations.append(Authorization("s3:DeleteObject", f"{bucket_arn}/{name}"))
                if with_version:
                    call.authorizations.append(Authorization("s3:DeleteObjectVersion", f"{bucket_arn}/{name}"))
            return call
        return one(f"{method}Bucket", f"{method}Bucket", bucket_arn)
    if method in ("GET", "HEAD"):
        op = _first(query, OBJECT_GET) if method == "GET" else None
        name = op or ("GetObject" if method == "GET" else "HeadObject")
        action = op or "GetObject"
        call = one(name, VERSIONED.get(action, action) if versioned else action, object_arn)
        if action == "GetObjectAttributes":  # needs the read itself too
            call.authorizations.append(Authorization(f"s3:{'GetObjectVersion' if versioned else 'GetObject'}",
                                                     object_arn))
        return call
    if method == "PUT":
        op = _first(query, OBJECT_PUT)
        if op:
            return one(op, VERSIONED.get(op, op) if versioned else op, object_arn)
        source = lower.get("x-amz-copy-source", "")
        name = ("UploadPartCopy" if source else "UploadPart") if "uploadId" in query else (
            "CopyObject" if source else "PutObject")
        call = one(name, "PutObject", object_arn)
        if source:
            from urllib.parse import unquote

            path, _, version = unquote(source).lstrip("/").partition("?versionId=")
            call.authorizations.append(Authorization("s3:GetObjectVersion" if version else "s3:GetObject",
                                                     f"arn:aws:s3:::{path}"))
        if name in ("PutObject", "CopyObject"):
            call.authorizations += _put_extras(lower, object_arn)
        return call
    if method == "POST" and "uploads" in query:
        call = one("CreateMultipartUpload", "PutObject", object_arn)
        call.authorizations += _put_extras(lower, object_arn)
        return call
    if method == "POST" and "uploadId" in query:
        return one("CompleteMultipartUpload", "PutObject", object_arn)
    if method == "DELETE" and "uploadId" in query:
        return one("AbortMultipartUpload", "AbortMultipartUpload", object_arn)
    if method == "DELETE":
        call = one("DeleteObject", "DeleteObject", object_arn)
        if versioned:
            call.authorizations.append(Authorization("s3:DeleteObjectVersion", object_arn))
        return call
    return one(f"{method}Object", f"{method}Object", object_arn)


def _put_extras(lower: dict[str, str], object_arn: str) -> list[Authorization]:
    """What headers of a write ask for beyond s3:PutObject (ACLs, tags, Object Lock)."""
    extra = []
    if any(h in lower for h in ("x-amz-acl", "x-amz-grant-read", "x-amz-grant-full-control", "x-amz-grant-read-acp",
                                "x-amz-grant-write-acp")):
        extra.append(Authorization("s3:PutObjectAcl", object_arn))
    if "x-amz-tagging" in lower:
        extra.append(Authorization("s3:PutObjectTagging", object_arn))
    if "x-amz-object-lock-mode" in lower or "x-amz-object-lock-retain-until-date" in lower:
        extra.append(Authorization("s3:PutObjectRetention", object_arn))
    if "x-amz-object-lock-legal-hold" in lower:
        extra.append(Authorization("s3:PutObjectLegalHold", object_arn))
    return extra


def kms_key_arn(key: str, region: str, account: str) -> str:
    if key.startswith("arn:"):
        return key
    return f"arn:aws:kms:{region}:{account}:{key if key.startswith('alias/') else f'key/{key}'}"


def via_s3(action: str, key: str, region: str, account: str) -> Authorization:
    """A KMS request S3 makes as the caller (``kms:ViaService`` names S3 in the region)."""
    return Authorization(action, kms_key_arn(key, region, account),
                         (("kms:ViaService", f"s3.{region}.amazonaws.com"), ("kms:CallerAccount", account)))


# --------------------------------------------------------------------------- other services on moto


def other_authorizations(service: str, target: str, body: bytes, content_type: str) -> list[Authorization]:
    """JSON services (``X-Amz-Target: Prefix.Operation``) and query services (``Action=...``)."""
    if target:
        operation = target.rsplit(".", 1)[-1]
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = {}
        resource = "*"
        for key in ("KeyId", "TopicArn", "ResourceArn", "Arn"):
            if isinstance(params.get(key), str):
                resource = params[key]
                break
        return [Authorization(f"{service}:{operation}", resource)]
    from urllib.parse import parse_qs

    form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()} \
        if "x-www-form-urlencoded" in content_type else {}
    operation = form.get("Action", "")
    if service == "sts" and operation == "GetCallerIdentity":
        return []  # needs no permission
    resource = form.get("TopicArn") or form.get("TargetArn") or form.get("RoleArn") or "*"
    return [Authorization(f"{service}:{operation}", resource)]
