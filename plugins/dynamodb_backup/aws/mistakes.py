"""One line for every AWS mistake: what is wrong and what to do, and the exit code that says which kind.

``explain(exc)`` maps an exception (botocore's, a ``ClientError`` AWS answered with, or one of this
package's own) to a ``Mistake``: an exit code and one line. The command line prints the line as
``error: <line>``; the Airflow operators put it first in a failed task's log. Exceptions it does not
know (bugs) map to ``None`` and keep their traceback.

Exit codes (the README's "When AWS says no" table lists every case):

* 2 ``BAD_INPUT``: a parameter, a backup folder or a name is wrong or missing (``BackupError``),
  including a table that is not in the region asked;
* 3 ``AWS_SETUP``: AWS refuses who is asking or how: no region, no or unknown credentials, an
  expired token, a denied action, a bucket of another account or region, a clock off by more than
  5 minutes;
* 4 ``UNREACHABLE``: the endpoint refused the connection, did not accept it in time, accepted it
  and never answered, or kept answering server errors;
* 5 ``THROTTLED``: AWS kept throttling after every retry.

1 stays what it was: the command ran, and its result says no (a verify that did not match).

Plain Python: no Airflow, no network. ``annotate_client`` (in ``aws.clients``) adds the call's
table, bucket, key and region to an error's response, so the line can name them even when AWS's
message does not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    PartialCredentialsError,
    ProfileNotFound,
    ProxyConnectionError,
    ReadTimeoutError,
    SSLError,
    TokenRetrievalError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from dynamodb_backup.errors import BackupError

BAD_INPUT = 2
AWS_SETUP = 3
UNREACHABLE = 4
THROTTLED = 5

#: Where ``annotate_client`` puts the call's facts in a ClientError's response.
CALL_KEY = "DynamoDBBackupCall"

THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
                              "RequestLimitExceeded", "SlowDown", "TooManyRequestsException"})
UNKNOWN_KEY_CODES = frozenset({"UnrecognizedClientException", "InvalidAccessKeyId", "InvalidClientTokenId"})
EXPIRED_TOKEN_CODES = frozenset({"ExpiredTokenException", "ExpiredToken", "TokenRefreshRequired", "InvalidToken"})
DENIED_CODES = frozenset({"AccessDeniedException", "AccessDenied", "AllAccessDisabled", "403"})
# An action and resource as AWS names them: "... is not authorized to perform: dynamodb:Scan on resource:
# arn:aws:dynamodb:...:table/T because ...". S3 quotes the resource, some messages omit "resource:".
DENIAL = re.compile(r"(?:User: (?P<principal>\S+) )?is not authorized to perform: (?P<action>[\w-]+:[\w*-]+)"
                    r"(?: on (?:resource: )?\"?(?P<resource>arn:[^\s\"]+|this resource)\"?)?")
# The IAM action an S3 operation needs, where its name is not the action's.
S3_ACTIONS = {"HeadBucket": "s3:ListBucket", "ListObjectsV2": "s3:ListBucket", "ListObjects": "s3:ListBucket",
              "HeadObject": "s3:GetObject", "CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject",
              "CompleteMultipartUpload": "s3:PutObject", "DeleteObjects": "s3:DeleteObject",
              "ListMultipartUploads": "s3:ListBucketMultipartUploads"}
IAM_HINT = "the policy in include/iam-policy.json lists what each command needs"


@dataclass(frozen=True)
class Mistake:
    code: int
    line: str


class EndpointUnreachableError(Exception):
    """An endpoint that never answered this process failed its first call: retrying would only wait.

    Raised by the command line's clients (``aws.clients``) on the first connection error or read
    timeout from an endpoint that has not answered yet; an endpoint that has answered once gets the
    usual retries (a dropped connection mid-run is worth them).
    """

    def __init__(self, endpoint: str, operation: str, reason: str) -> None:
        super().__init__(endpoint, operation, reason)
        self.endpoint, self.operation, self.reason = endpoint, operation, reason

    def __str__(self) -> str:
        return f"{self.endpoint} ({self.operation}): {self.reason}"


def explain(exc: BaseException) -> Mistake | None:
    """The exit code and one line for ``exc`` or the exception it was raised from; None for a bug."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short explicit chain: raise X from Y
        if seen is None:
            return None
        mistake = _explain_one(seen)
        if mistake is not None:
            return mistake
        seen = seen.__cause__
    return None


def _explain_one(exc: BaseException) -> Mistake | None:
    if isinstance(exc, BackupError):
        return Mistake(BAD_INPUT, str(exc))
    if isinstance(exc, ClientError):
        return _client_error(exc)
    if isinstance(exc, EndpointUnreachableError):
        return Mistake(UNREACHABLE, _unreachable(exc.endpoint, exc.operation, exc.reason))
    if isinstance(exc, BotoCoreError):
        return _botocore_error(exc)
    return None


def _botocore_error(exc: BotoCoreError) -> Mistake | None:
    kwargs: dict[str, Any] = getattr(exc, "kwargs", {}) or {}
    if isinstance(exc, NoRegionError):
        return Mistake(AWS_SETUP, "no AWS region is set: give --region, or set AWS_DEFAULT_REGION (or region in "
                                  "your AWS profile's config)")
    if isinstance(exc, NoCredentialsError):
        return Mistake(AWS_SETUP, "no AWS credentials found (looked in the environment, AWS_PROFILE / ~/.aws, and the "
                                  "container and instance roles): set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
                                  "or AWS_PROFILE, or log in with `aws sso login`")
    if isinstance(exc, PartialCredentialsError):
        return Mistake(AWS_SETUP, f"AWS credentials are incomplete ({exc}): set both AWS_ACCESS_KEY_ID and "
                                  "AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for a temporary key), or neither")
    if isinstance(exc, ProfileNotFound):
        return Mistake(AWS_SETUP, f"AWS profile {kwargs.get('profile')!r} is not in your AWS config: fix AWS_PROFILE "
                                  "or add the profile to ~/.aws/config")
    if isinstance(exc, (TokenRetrievalError, CredentialRetrievalError)) or type(exc).__name__.startswith("SSO") \
            or type(exc).__name__ == "UnauthorizedSSOTokenError":
        return Mistake(AWS_SETUP, f"AWS credentials could not be obtained ({exc}): log in again (`aws sso login`) "
                                  "or fix the profile's credential source")
    if isinstance(exc, SSLError):
        return Mistake(UNREACHABLE, f"TLS with {kwargs.get('endpoint_url')} failed ({kwargs.get('error')}): check the "
                                    "endpoint URL, and AWS_CA_BUNDLE if a proxy re-signs certificates")
    if isinstance(exc, ProxyConnectionError):
        return Mistake(UNREACHABLE, f"could not connect to the proxy {kwargs.get('proxy_url')}: check HTTPS_PROXY / "
                                    "HTTP_PROXY and NO_PROXY")
    if isinstance(exc, ConnectTimeoutError):
        return Mistake(UNREACHABLE, _unreachable(kwargs.get("endpoint_url"), None, "the connection timed out"))
    if isinstance(exc, EndpointConnectionError):
        return Mistake(UNREACHABLE, _unreachable(kwargs.get("endpoint_url"), None,
                                                 connection_reason(kwargs.get("error") or exc)))
    if isinstance(exc, ReadTimeoutError):
        return Mistake(UNREACHABLE, f"{kwargs.get('endpoint_url')} accepted the connection but did not answer in time, "
                                    "even after retries: check that it is the service's endpoint and that it is "
                                    "not overloaded")
    if isinstance(exc, BotoConnectionError):
        return Mistake(UNREACHABLE, _unreachable(kwargs.get("endpoint_url"), None, str(exc)))
    return None


def connection_reason(error: object) -> str:
    """urllib3's long connection error as a few words (refused, unknown host), else as it is."""
    text = str(error)
    if "Connection refused" in text:
        return "the connection was refused"
    if any(sign in text for sign in ("Name or service not known", "nodename nor servname", "getaddrinfo failed",
                                     "Temporary failure in name resolution")):
        return "its host name does not resolve"
    return text


def _unreachable(endpoint: object, operation: str | None, reason: str) -> str:
    call = f"{operation}: " if operation else ""
    return (f"could not reach {endpoint} ({call}{reason}): check the endpoint (--endpoint, AWS_ENDPOINT_URL_*), "
            "the region, and the network or proxy")


def _client_error(exc: ClientError) -> Mistake | None:
    response: dict[str, Any] = dict(exc.response or {})
    error: dict[str, Any] = response.get("Error", {}) or {}
    code = str(error.get("Code") or "")
    message = str(error.get("Message") or "").strip()
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    call: dict[str, Any] = response.get(CALL_KEY) or {}
    operation = exc.operation_name
    service = call.get("service") or _service_of(code, operation)
    said = f"{_service_name(service)} {operation}: {code}" + (f" {message!r}" if message else "")

    if code in THROTTLING_CODES:
        return Mistake(THROTTLED, f"AWS kept throttling {operation}{_on(call)} after every retry ({code}): the table "
                                  "or bucket is at its limit; lower --read-ratio / --write-ratio, raise the table's "
                                  "capacity, or run when it is quieter")
    if code == "RequestTimeTooSkewed" or (code == "InvalidSignatureException" and "expired" in message.lower()) \
            or "not yet current" in message.lower():
        return Mistake(AWS_SETUP, f"AWS refused the request because this machine's clock is more than 5 minutes off "
                                  f"({said}): fix the clock (enable NTP, e.g. `timedatectl set-ntp true`) and run "
                                  "again")
    if code in UNKNOWN_KEY_CODES:
        key = error.get("AWSAccessKeyId")
        which = f"the access key {key}" if key else "the access key"
        return Mistake(AWS_SETUP, f"AWS does not recognize {which} ({said}): check AWS_ACCESS_KEY_ID / AWS_PROFILE "
                                  "(a deleted key, a key of another partition, or a temporary key without its "
                                  "AWS_SESSION_TOKEN)")
    if code in EXPIRED_TOKEN_CODES:
        return Mistake(AWS_SETUP, f"the AWS session token has expired or is invalid ({said}): get fresh credentials "
                                  "(`aws sso login`, or assume the role again) and run again")
    if code in ("InvalidSignatureException", "SignatureDoesNotMatch"):
        return Mistake(AWS_SETUP, f"AWS rejected the request's signature ({said}): the secret key does not belong "
                                  "to the access key; check AWS_SECRET_ACCESS_KEY / AWS_PROFILE")
    if code in ("PermanentRedirect", "301", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException") \
            or (status == 301 and service == "s3"):
        return Mistake(AWS_SETUP, _wrong_bucket_region(call, error, response, said))
    if code in DENIED_CODES or code.startswith("KMS.") or status == 403:
        return Mistake(AWS_SETUP, _denied(call, service, operation, code, message, said))
    if code == "ResourceNotFoundException":
        region = call.get("region") or "the configured region"
        what = _what(call) or "the resource"
        return Mistake(BAD_INPUT, f"{what} was not found in {region} ({said}): check the name, "
                                  "and --region / AWS_DEFAULT_REGION (it may be in another region or account)")
    if status >= 500:
        return Mistake(UNREACHABLE, f"AWS kept failing {operation}{_on(call)} after every retry ({said}): the service "
                                    "is having trouble; run again later (a restore resumes with --run-id)")
    if code in ("NoSuchBucket", "404") and service == "s3" and call.get("bucket"):
        return Mistake(BAD_INPUT, f"S3 bucket {call['bucket']!r} does not exist ({said}): check the S3 URI")
    return None


def _service_of(code: str, operation: str) -> str:
    if code in ("AccessDenied", "InvalidAccessKeyId", "ExpiredToken", "SignatureDoesNotMatch",
                "RequestTimeTooSkewed") or operation.startswith(("HeadBucket", "HeadObject")) \
            or operation.endswith(("Object", "Objects", "ObjectsV2", "MultipartUpload", "MultipartUploads", "Part")):
        return "s3"
    return "dynamodb"


def _service_name(service: str) -> str:
    return {"s3": "S3", "dynamodb": "DynamoDB", "kms": "KMS", "sts": "STS"}.get(service, service)


def _what(call: dict[str, Any]) -> str:
    if call.get("table"):
        return f"DynamoDB table {call['table']!r}"
    if call.get("bucket"):
        return f"s3://{call['bucket']}/{call['key']}" if call.get("key") else f"S3 bucket {call['bucket']!r}"
    return ""


def _on(call: dict[str, Any]) -> str:
    what = _what(call)
    return f" on {what}" if what else ""


def _resource_arn(call: dict[str, Any]) -> str | None:
    if call.get("bucket"):
        return f"arn:aws:s3:::{call['bucket']}" + (f"/{call['key']}" if call.get("key") else "")
    if call.get("table"):
        return f"table {call['table']}"
    return None


def _denied(call: dict[str, Any], service: str, operation: str, code: str, message: str, said: str) -> str:
    named = DENIAL.search(message)
    action = named.group("action") if named else None
    resource = named.group("resource") if named and named.group("resource") else None
    if resource in (None, "this resource") and not (action or "").startswith("kms:"):
        resource = _resource_arn(call) or resource
    if action is None:
        action = S3_ACTIONS.get(operation, f"s3:{operation}") if service == "s3" else f"{service}:{operation}"
    whom = f" to {named.group('principal')}" if named and named.group("principal") else ""
    target = f" on {resource}" if resource else ""
    if code.startswith("KMS.") and not action.startswith("kms:"):
        return (f"the KMS key refused {operation}{_on(call)} ({said}): check that the key exists and is enabled, and "
                "that its key policy and your IAM policy allow kms:GenerateDataKey and kms:Decrypt")
    if action.startswith("kms:") or "kms:" in message.lower():
        return (f"AWS denied {action}{target}{whom} ({said}): the backup's KMS key must allow it; grant {action} on "
                "the key in the IAM policy and the key's policy")
    if operation == "HeadBucket" and call.get("bucket"):
        return (f"S3 refused HeadBucket on bucket {call['bucket']!r} ({said}): the bucket belongs to another account, "
                f"or these credentials may not {action} on {resource}; check the bucket name, then the IAM and "
                "bucket policies")
    return f"AWS denied {action}{target}{whom} ({said}): allow it in the IAM policy ({IAM_HINT})"


def _wrong_bucket_region(call: dict[str, Any], error: dict[str, Any], response: dict[str, Any], said: str) -> str:
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {}) or {}
    where = error.get("Region") or headers.get("x-amz-bucket-region")
    bucket = call.get("bucket") or error.get("BucketName") or "the bucket"
    asked = call.get("region") or "the configured region"
    region = f"region {where}" if where else "another region"
    return (f"S3 bucket {bucket!r} is in {region}, not {asked} ({said}): give its region (--region or "
            "AWS_DEFAULT_REGION), or use a bucket in the table's region")


def call_facts(service: str, region: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """What an error line names: the service, region, table, bucket and key of one call (JSON-ready)."""
    table = params.get("TableName")
    if table is None and isinstance(params.get("RequestItems"), dict) and params["RequestItems"]:
        table = next(iter(params["RequestItems"]))
    facts = {"service": service, "region": region, "table": table, "bucket": params.get("Bucket"),
             "key": params.get("Key")}
    return {name: value for name, value in facts.items() if isinstance(value, str)}
