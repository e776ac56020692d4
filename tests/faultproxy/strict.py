"""The front door: a strict mode for the fault proxies that checks what AWS's front door checks.

    door = FrontDoor(principals=[Principal("testing", "testing")], clock=MovableClock())
    DynamoDBFaultProxy(url, strict=door) / S3FaultProxy(url, strict=door)
    door.clock.advance(301)   # the door's clock, not the machine's
    door.counters             # Counter: requests, refused:<Code>, allowed:<action>, denied:<action>

On every request, in this order: an Authorization header or a presigned query is there and is
SigV4; the access key is known; its session token matches and has not expired (by the door's
clock); ``X-Amz-Date`` is within 5 minutes of the door's clock (S3: 15 minutes; a presigned URL:
until its X-Amz-Expires); S3's declared payload hash matches the body; the signature, recomputed
from the request as it arrived (``sigcheck``), matches; then the principal's IAM policy allows
every authorization the call needs (``iam``). A refusal is the service's own error in its own wire
form (DynamoDB and KMS JSON with ``__type``, S3 XML, SNS/STS query XML), so botocore parses it as
it parses AWS's. GetObject of an SSE-KMS object is checked against ``kms:Decrypt`` when the
answer shows the key, and a refused answer replaced by AccessDenied (a read changes nothing).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from xml.sax.saxutils import escape

from . import iam, sigcheck
from .base import Request, Response

DEFAULT_ACCOUNT = "123456789012"
#: AWS's allowed clock skew: 5 minutes for SigV4 generally, 15 minutes for S3 (MaxAllowedSkewMilliseconds).
MAX_SKEW = {"s3": 900}
DEFAULT_MAX_SKEW = 300
QUERY_SERVICES = frozenset({"sns", "sts", "sqs", "iam", "ses", "cloudformation", "ec2"})
BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                 "Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
S3_BAD_SIGNATURE = ("The request signature we calculated does not match the signature you provided. "
                    "Check your key and signing method.")
INVALID_TOKEN = "The security token included in the request is invalid."
EXPIRED_TOKEN = "The security token included in the request is expired"

#: kind -> (JSON services: status, code), (S3: status, code, message or None for the JSON message),
#: (query services: status, code)
ERRORS: dict[str, tuple[tuple[int, str], tuple[int, str, str | None], tuple[int, str]]] = {
    "missing": ((400, "MissingAuthenticationTokenException"), (403, "AccessDenied", "Access Denied"),
                (403, "MissingAuthenticationToken")),
    "malformed": ((400, "IncompleteSignatureException"), (400, "AuthorizationHeaderMalformed", None),
                  (400, "IncompleteSignature")),
    "unknown_key": ((400, "UnrecognizedClientException"),
                    (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records."),
                    (403, "InvalidClientTokenId")),
    "bad_token": ((400, "UnrecognizedClientException"),
                  (400, "InvalidToken", "The provided token is malformed or otherwise invalid."),
                  (403, "InvalidClientTokenId")),
    "expired_token": ((400, "ExpiredTokenException"), (400, "ExpiredToken", "The provided token has expired."),
                      (403, "ExpiredToken")),
    "skew": ((400, "InvalidSignatureException"),
             (403, "RequestTimeTooSkewed",
              "The difference between the request time and the current time is too large."),
             (403, "SignatureDoesNotMatch")),
    "signature": ((400, "InvalidSignatureException"), (403, "SignatureDoesNotMatch", S3_BAD_SIGNATURE),
                  (403, "SignatureDoesNotMatch")),
    "presign_expired": ((400, "InvalidSignatureException"), (403, "AccessDenied", "Request has expired"),
                        (403, "SignatureDoesNotMatch")),
    "denied": ((400, "AccessDeniedException"), (403, "AccessDenied", None), (403, "AuthorizationError")),
    "unsigned": ((400, "InvalidSignatureException"), (403, "AccessDenied", None), (403, "SignatureDoesNotMatch")),
    "payload_hash": ((400, "InvalidSignatureException"), (400, "XAmzContentSHA256Mismatch", None),
                     (403, "SignatureDoesNotMatch")),
    "invalid_request": ((400, "ValidationException"), (400, "InvalidRequest", None), (400, "InvalidParameterValue")),
    "bad_digest": ((400, "ValidationException"), (400, "BadDigest", None), (400, "InvalidParameterValue")),
}


class MovableClock:
    """Wall-clock time plus an offset the tests move (no sleeping); ``frozen`` stands still at ``start``
    (or now) except when moved, for exact messages."""

    def __init__(self, start: datetime | None = None, *, frozen: bool = False) -> None:
        self._frozen = frozen
        self._base = (start or datetime.now(UTC)).timestamp() if frozen else time.time()
        self._offset = 0.0 if start is None or frozen else start.timestamp() - time.time()

    def now(self) -> datetime:
        return datetime.fromtimestamp((self._base if self._frozen else time.time()) + self._offset, UTC)

    __call__ = now

    def advance(self, seconds: float) -> None:
        self._offset += seconds

    def set(self, moment: datetime) -> None:
        self._offset = moment.timestamp() - (self._base if self._frozen else time.time())


@dataclass
class Principal:
    """An access key the door knows, its secret, an optional session token with its expiry, and
    an optional IAM policy (None: everything is allowed, as for an administrator)."""

    access_key: str
    secret_key: str
    session_token: str | None = None
    expires: datetime | None = None
    policy: dict[str, Any] | None = None
    #: The IAM user name in denial messages (default: the access key).
    name: str | None = None

    def __post_init__(self) -> None:
        if self.policy is not None:
            iam.check_policy(self.policy)

    def arn(self, account: str) -> str:
        return f"arn:aws:iam::{account}:user/{self.name or self.access_key}"


class Refused(Exception):
    def __init__(self, kind: str, message: str, extra: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.extra = kind, message, extra or {}


def _protocol(service: str) -> str:
    return "s3" if service == "s3" else "query" if service in QUERY_SERVICES else "json"


def error(service: str, kind: str, message: str, extra: dict[str, str] | None = None) -> Response:
    """``kind`` as ``service`` answers it on the wire."""
    (json_status, json_code), (s3_status, s3_code, s3_message), (q_status, q_code) = ERRORS[kind]
    protocol = _protocol(service)
    if protocol == "s3":
        fields = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in (extra or {}).items())
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{s3_code}</Code>'
                f"<Message>{escape(s3_message or message)}</Message>{fields}"
                f"<RequestId>frontdoor</RequestId><HostId>frontdoor</HostId></Error>").encode()
        return Response(s3_status, [("Content-Type", "application/xml"), ("x-amz-request-id", "frontdoor")], body)
    if protocol == "query":
        body = (f'<ErrorResponse xmlns="https://{service}.amazonaws.com/doc/"><Error><Type>Sender</Type>'
                f"<Code>{q_code}</Code><Message>{escape(message)}</Message></Error>"
                f"<RequestId>frontdoor</RequestId></ErrorResponse>").encode()
        return Response(q_status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", "frontdoor")], body)
    body = json.dumps({"__type": f"com.amazon.coral.service#{json_code}", "message": message}).encode()
    content_type = "application/x-amz-json-1.0" if service == "dynamodb" else "application/x-amz-json-1.1"
    headers = [("Content-Type", content_type), ("x-amzn-RequestId", "frontdoor"), ("x-amzn-ErrorType", f"{json_code}:")]
    if service == "dynamodb":
        headers.append(("x-amz-crc32", str(zlib.crc32(body))))
    return Response(json_status, headers, body)


def _stamp(moment: datetime) -> str:
    return moment.strftime(sigcheck.AMZ_DATE)


@dataclass
class Admitted:
    """What the door learned about an admitted request (kept in ``Request.meta['door']``)."""

    principal: Principal
    service: str
    region: str
    s3: iam.S3Call | None = None
    checked: list[str] = field(default_factory=list)


class FrontDoor:
    def __init__(self, principals: Iterable[Principal] = (), *, clock: MovableClock | None = None,
                 account: str = DEFAULT_ACCOUNT, region: str = "us-east-1",
                 max_skew: dict[str, int] | None = None) -> None:
        self.clock = clock or MovableClock()
        self.account, self.region = account, region
        self.max_skew = {**MAX_SKEW, **(max_skew or {})}
        self.counters: Counter[str] = Counter()
        self._principals: dict[str, Principal] = {}
        self._lock = threading.Lock()
        #: SSE-KMS key of each multipart upload S3 started (its parts need kms:Decrypt... as AWS asks).
        self._upload_keys: dict[str, str] = {}
        for principal in principals:
            self.add_principal(principal)

    # ------------------------------------------------------------------ principals

    def add_principal(self, principal: Principal) -> Principal:
        with self._lock:
            self._principals[principal.access_key] = principal
        return principal

    def remove_principal(self, access_key: str) -> None:
        with self._lock:
            self._principals.pop(access_key, None)

    def principal(self, access_key: str) -> Principal | None:
        return self._principals.get(access_key)

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counters[what] += n

    def refused(self, code: str | None = None) -> int:
        """How many requests were refused (with ``code``, or in all)."""
        if code is not None:
            return self.counters[f"refused:{code}"]
        return sum(n for k, n in self.counters.items() if k.startswith("refused:"))

    def denied(self) -> dict[str, int]:
        return {k.removeprefix("denied:"): n for k, n in self.counters.items() if k.startswith("denied:")}

    # ------------------------------------------------------------------ the check

    def admit(self, request: Request, service: str, endpoint_region: str | None = None) -> Request | Response:
        """``request`` (with what the door learned in ``meta['door']``) or the refusal to answer."""
        self.count("requests")
        try:
            admitted = self._check(request, service, endpoint_region)
        except Refused as refusal:
            scope_service = request.meta.get("door_service", service)
            answer = error(scope_service, refusal.kind, refusal.message, refusal.extra)
            answer.head = request.method == "HEAD"
            self.count(f"refused:{self._code(scope_service, refusal.kind)}")
            return answer
        request.meta["door"] = admitted
        return request

    @staticmethod
    def _code(service: str, kind: str) -> str:
        json_part, s3_part, query_part = ERRORS[kind]
        protocol = _protocol(service)
        return s3_part[1] if protocol == "s3" else query_part[1] if protocol == "query" else json_part[1]

    def _check(self, request: Request, default_service: str, endpoint_region: str | None) -> Admitted:
        raw_path, _, raw_query = request.path.partition("?")
        pairs = sigcheck.query_pairs(raw_query)
        query = dict(pairs)
        authorization = request.header("Authorization")
        if authorization.startswith("AWS ") or ("Signature" in query and "AWSAccessKeyId" in query):
            # Signature Version 2: S3 refuses it for every bucket made since 2020.
            raise Refused("invalid_request", "The authorization mechanism you have provided is not supported. "
                                             "Please use AWS4-HMAC-SHA256.")
        if not authorization and "X-Amz-Signature" not in query:
            raise Refused("missing", "Request is missing Authentication Token")
        try:
            credential = (sigcheck.parse_authorization(authorization) if authorization
                          else sigcheck.parse_presigned(pairs))
        except sigcheck.Malformed as bad:
            raise Refused("malformed", str(bad)) from None
        service = credential.service
        request.meta["door_service"] = service
        principal = self.principal(credential.access_key)
        if principal is None:
            raise Refused("unknown_key", INVALID_TOKEN, {"AWSAccessKeyId": credential.access_key})
        token = request.header("X-Amz-Security-Token") or query.get("X-Amz-Security-Token", "")
        if (principal.session_token or "") != token:
            raise Refused("bad_token", INVALID_TOKEN)
        now = self.clock.now()
        if principal.expires is not None and now >= principal.expires:
            raise Refused("expired_token", EXPIRED_TOKEN)
        amz_date = query.get("X-Amz-Date") if credential.presigned else request.header("X-Amz-Date")
        try:
            signed_at = datetime.strptime(amz_date or "", sigcheck.AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise Refused("malformed", f"Date must be in ISO-8601 'basic format'. Got '{amz_date}'.") from None
        assert amz_date is not None
        if credential.day != amz_date[:8]:
            raise Refused("signature", f"Date in Credential scope does not match YYYYMMDD from ISO-8601 version of "
                                       f"date from HTTP: '{credential.day}' != '{amz_date[:8]}', from '{amz_date}'.")
        if endpoint_region is not None and credential.region != endpoint_region:
            raise Refused("signature", f"Credential should be scoped to a valid region, not '{credential.region}'. ")
        self._check_time(credential, signed_at, now, amz_date, service)
        payload = self._payload_hash(request, service, credential)
        key = sigcheck.signing_key(principal.secret_key, credential.day, credential.region, service)
        header_block, missing = sigcheck.canonical_headers(request.headers, credential.signed_headers)
        canonical = sigcheck.canonical_request(
            request.method, sigcheck.canonical_uri(raw_path, service), sigcheck.canonical_query(pairs),
            header_block, ";".join(credential.signed_headers), payload)
        to_sign = sigcheck.string_to_sign(amz_date, credential.scope, canonical)
        expected = sigcheck.sign(key, to_sign)
        if missing or "host" not in credential.signed_headers or \
                not hmac.compare_digest(expected, credential.signature):
            details = f"\n\nThe Canonical String for this request should have been\n'{canonical}'\n\n" \
                      f"The String-to-Sign should have been\n'{to_sign}'\n"
            raise Refused("signature", BAD_SIGNATURE + details,
                          {"AWSAccessKeyId": credential.access_key, "StringToSign": to_sign,
                           "SignatureProvided": credential.signature, "CanonicalRequest": canonical})
        if service == "s3" and not credential.presigned:
            unsigned = sorted(h.lower() for h in request.headers
                              if h.lower().startswith("x-amz-") and h.lower() not in credential.signed_headers)
            if unsigned:
                raise Refused("unsigned", "There were headers present in the request which were not signed",
                              {"HeadersNotSigned": ", ".join(unsigned)})
        if payload in (sigcheck.STREAMING_SIGNED, sigcheck.STREAMING_SIGNED_TRAILER):
            self._check_chunks(request, key, amz_date, credential, payload)
        if service == "s3" and request.method in ("PUT", "POST"):
            self._check_digests(request, payload)
        admitted = Admitted(principal, service, credential.region)
        self._authorize(request, admitted, raw_path, query)
        return admitted

    def _check_time(self, credential: sigcheck.Credential, signed_at: datetime, now: datetime, amz_date: str,
                    service: str) -> None:
        if credential.presigned:
            expires = credential.expires if credential.expires is not None else 604800
            if now > signed_at + timedelta(seconds=expires):
                raise Refused("presign_expired", "Request has expired",
                              {"X-Amz-Expires": str(expires), "Expires": (signed_at + timedelta(seconds=expires))
                               .strftime("%Y-%m-%dT%H:%M:%SZ"), "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ")})
            return
        skew = self.max_skew.get(service, DEFAULT_MAX_SKEW)
        window = timedelta(seconds=skew)
        minutes = f"{skew // 60} min."
        extra = {"RequestTime": amz_date, "ServerTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "MaxAllowedSkewMilliseconds": str(skew * 1000)}
        now_stamp = _stamp(now)
        if signed_at < now - window:
            raise Refused("skew", f"Signature expired: {amz_date} is now earlier than {_stamp(now - window)} "
                                  f"({now_stamp} - {minutes})", extra)
        if signed_at > now + window:
            raise Refused("skew", f"Signature not yet current: {amz_date} is still later than "
                                  f"{_stamp(now + window)} ({now_stamp} + {minutes})", extra)

    @staticmethod
    def _payload_hash(request: Request, service: str, credential: sigcheck.Credential) -> str:
        declared = request.header("x-amz-content-sha256")
        body_hash = hashlib.sha256(request.body).hexdigest()
        if credential.presigned:
            return sigcheck.UNSIGNED_PAYLOAD if service == "s3" else body_hash
        if not declared:
            if service == "s3":
                raise Refused("invalid_request", "Missing required header for this request: x-amz-content-sha256")
            return body_hash
        if sigcheck.HEX64.fullmatch(declared):
            if declared != body_hash:
                raise Refused("payload_hash", "The provided 'x-amz-content-sha256' header does not match what was "
                                           "computed.", {"ClientComputedContentSHA256": declared,
                                                         "S3ComputedContentSHA256": body_hash})
            return declared
        if declared == sigcheck.UNSIGNED_PAYLOAD or declared in sigcheck.STREAMING:
            return declared
        raise Refused("invalid_request", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, "
                                         "STREAMING-UNSIGNED-PAYLOAD-TRAILER, STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
                                         "(-TRAILER), or a valid sha256 value.")

    @staticmethod
    def _check_chunks(request: Request, key: bytes, amz_date: str, credential: sigcheck.Credential,
                      payload: str) -> None:
        try:
            chunked = sigcheck.decode_aws_chunked(request.body)
        except (sigcheck.Malformed, ValueError) as bad:
            raise Refused("malformed", f"Invalid aws-chunked body: {bad}") from None
        previous = credential.signature
        for signature, data in chunked.chunks:
            expected = sigcheck.sign(key, sigcheck.chunk_string_to_sign(amz_date, credential.scope, previous, data))
            if not hmac.compare_digest(expected, signature):
                raise Refused("signature", BAD_SIGNATURE)
            previous = signature
        if payload == sigcheck.STREAMING_SIGNED_TRAILER:
            given = dict(chunked.trailers).get("x-amz-trailer-signature", "")
            expected = sigcheck.sign(key, sigcheck.trailer_string_to_sign(amz_date, credential.scope, previous,
                                                                          chunked.trailers))
            if not hmac.compare_digest(expected, given):
                raise Refused("signature", BAD_SIGNATURE)

    def _check_digests(self, request: Request, payload: str) -> None:
        """Content-MD5 and x-amz-checksum-* (headers or aws-chunked trailers) against the data, as S3 does."""
        declared = [(h.lower(), v) for h, v in request.headers.items()
                    if h.lower() == "content-md5" or h.lower().startswith("x-amz-checksum-")]
        data = request.body
        if payload in sigcheck.STREAMING:
            try:
                chunked = sigcheck.decode_aws_chunked(request.body)
            except (sigcheck.Malformed, ValueError) as bad:
                raise Refused("invalid_request", f"Invalid aws-chunked body: {bad}") from None
            data = chunked.data
            declared += [(n, v) for n, v in chunked.trailers if n.startswith("x-amz-checksum-")]
            length = request.header("x-amz-decoded-content-length")
            if length and int(length) != len(data):
                raise Refused("invalid_request", f"The decoded length {len(data)} of the aws-chunked body is not "
                                                 f"x-amz-decoded-content-length {length}.")
        for name, value in declared:
            if name == "x-amz-checksum-type":
                continue
            algorithm = "md5" if name == "content-md5" else name.removeprefix("x-amz-checksum-")
            computed = sigcheck.checksum(algorithm, data)
            if computed is None:
                self.count(f"unchecked:{algorithm}")
            elif computed != value:
                message = ("The Content-MD5 you specified did not match what we received." if algorithm == "md5"
                           else f"The {algorithm.upper()} you specified did not match the calculated checksum.")
                raise Refused("bad_digest", message)

    # ------------------------------------------------------------------ IAM

    def _authorize(self, request: Request, admitted: Admitted, raw_path: str, query: dict[str, str]) -> None:
        place = iam.Place(self.account, admitted.region)
        service = admitted.service
        if service == "dynamodb":
            operation = request.header("X-Amz-Target").rpartition(".")[2]
            if admitted.principal.policy is None:  # an administrator: counted per call, the body not parsed
                self.count(f"allowed:dynamodb:{operation}")
                return
            try:
                body = json.loads(request.body or b"{}")
            except ValueError:
                body = {}
            needed = iam.dynamodb_authorizations(operation, body, place)
        elif service == "s3":
            call = iam.s3_call(request.method, raw_path, query, request.headers, self._data(request))
            admitted.s3 = call
            needed = list(call.authorizations)
            needed += self._kms_for_write(request, call, admitted.region, query)
        else:
            needed = iam.other_authorizations(service, request.header("X-Amz-Target"), request.body,
                                              request.header("Content-Type"))
            if service == "kms":
                needed = [iam.Authorization(a.action, iam.kms_key_arn(a.resource, admitted.region, self.account)
                                            if a.resource != "*" else "*", a.context) for a in needed]
        for authorization in needed:
            self._decide(admitted, authorization)

    @staticmethod
    def _data(request: Request) -> bytes:
        if request.header("x-amz-content-sha256") in sigcheck.STREAMING:
            return sigcheck.decode_aws_chunked(request.body).data
        return request.body

    def _kms_for_write(self, request: Request, call: iam.S3Call, region: str,
                       query: dict[str, str]) -> list[iam.Authorization]:
        if call.operation in ("PutObject", "CreateMultipartUpload", "CopyObject") and \
                request.header("x-amz-server-side-encryption") == "aws:kms":
            key = request.header("x-amz-server-side-encryption-aws-kms-key-id")
            if key:  # without one S3 uses the AWS managed key aws/s3: its key policy, no IAM grant
                return [iam.via_s3("kms:GenerateDataKey", key, region, self.account)]
        if call.operation in ("UploadPart", "CompleteMultipartUpload"):
            upload_key = self._upload_keys.get(query.get("uploadId", ""))
            if upload_key:
                return [iam.via_s3("kms:Decrypt", upload_key, region, self.account)]
        return []

    def _decide(self, admitted: Admitted, authorization: iam.Authorization) -> None:
        verdict = iam.evaluate(admitted.principal.policy, authorization)
        if verdict == iam.ALLOW:
            self.count(f"allowed:{authorization.action}")
            return
        self.count(f"denied:{authorization.action}")
        resource = authorization.resource
        shown = f'"{resource}"' if admitted.service == "s3" and authorization.action.startswith("s3:") else resource
        why = ("with an explicit deny in an identity-based policy" if verdict == iam.EXPLICIT_DENY
               else f"because no identity-based policy allows the {authorization.action} action")
        raise Refused("denied", f"User: {admitted.principal.arn(self.account)} is not authorized to perform: "
                                f"{authorization.action} on resource: {shown} {why}")

    # ------------------------------------------------------------------ answers

    def review(self, request: Request, response: Response) -> Response:
        """Look at the upstream answer: remember multipart uploads' KMS keys; check kms:Decrypt for a read."""
        admitted: Admitted | None = request.meta.get("door")
        if admitted is None or admitted.s3 is None or response.status >= 300:
            return response
        call = admitted.s3
        headers = {k.lower(): v for k, v in response.headers}
        kms_key = headers.get("x-amz-server-side-encryption-aws-kms-key-id") \
            if headers.get("x-amz-server-side-encryption") == "aws:kms" else None
        if call.operation == "CreateMultipartUpload" and kms_key:
            match = re.search(rb"<UploadId>([^<]+)</UploadId>", response.body)
            if match:
                with self._lock:
                    self._upload_keys[match.group(1).decode()] = kms_key
        if call.operation == "GetObject" and kms_key:
            try:
                self._decide(admitted, iam.via_s3("kms:Decrypt", kms_key, admitted.region, self.account))
            except Refused as refusal:
                self.count("refused:AccessDenied")
                answer = error("s3", refusal.kind, refusal.message)
                answer.head = request.method == "HEAD"
                return answer
        return response
