"""A smaller fault layer for S3 (in front of moto): 500/503 answers and dropped connections
while data goes up (PutObject, UploadPart, and optionally CompleteMultipartUpload) or comes
down (GetObject, when ``operations`` names it). Each fault is counted by kind and by
``<kind>:<operation>``.

Other requests pass through untouched. Requests are not re-signed: with ``strict=`` a front door
(``strict.py``) checks the client's signature before any fault.

    with S3FaultProxy(moto_url, seed=3, faults=S3Faults(internal_error=0.05, drop_after=0.02)) as proxy:
        s3 = boto3.client("s3", endpoint_url=proxy.url)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import DROP, FaultProxy, Request, Response

PUT_OBJECT, UPLOAD_PART, COMPLETE_UPLOAD = "PutObject", "UploadPart", "CompleteMultipartUpload"
GET_OBJECT = "GetObject"
#: Query parameters a GetObject may carry (anything else is another GET: ListParts, tagging, ACL...).
_GET_OBJECT_QUERY = frozenset({"x-id", "versionId", "partNumber"})


@dataclass
class S3Faults:
    internal_error: float = 0.0
    unavailable: float = 0.0
    drop_before: float = 0.0
    drop_after: float = 0.0
    operations: frozenset[str] = frozenset({PUT_OBJECT, UPLOAD_PART})


def error_xml(status: int, code: str, message: str) -> Response:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>faultproxy</RequestId></Error>").encode()
    return Response(status, [("Content-Type", "application/xml")], body)


def s3_operation(request: Request) -> str | None:
    """The upload or download operation a request is, or None for everything else."""
    query = request.query
    path = request.path.split("?", 1)[0].strip("/")
    if "/" not in path:  # bucket-level request
        return None
    if request.method == "PUT" and "partNumber" in query and "uploadId" in query:
        return UPLOAD_PART
    if request.method == "PUT" and not request.header("x-amz-copy-source") and not query:
        return PUT_OBJECT
    if request.method == "POST" and "uploadId" in query:
        return COMPLETE_UPLOAD
    if request.method == "GET" and set(query) <= _GET_OBJECT_QUERY:
        return GET_OBJECT
    return None


class S3FaultProxy(FaultProxy):
    name = "s3-faultproxy"

    def __init__(self, upstream: str, *, seed: int = 0, faults: S3Faults | None = None, **kwargs: Any) -> None:
        super().__init__(upstream, seed=seed, **kwargs)
        self.faults = faults or S3Faults()

    def decide(self, request: Request) -> Request | Response:
        self.count("requests")
        operation = s3_operation(request)
        if operation is None or operation not in self.faults.operations:
            return request
        self.count(f"op:{operation}")
        rng = self.rng_for(request.method, request.path, request.body)
        roll = rng.random()
        edge = 0.0
        for kind, rate in (("drop_before", self.faults.drop_before),
                           ("internal_error", self.faults.internal_error),
                           ("unavailable", self.faults.unavailable)):
            edge += rate
            if roll < edge:
                self.count(kind)
                self.count(f"{kind}:{operation}")
                if kind == "drop_before":
                    return DROP
                if kind == "internal_error":
                    return error_xml(500, "InternalError", "We encountered an internal error (injected).")
                return error_xml(503, "SlowDown", "Please reduce your request rate (injected).")
        request.meta["drop_after"] = rng.random() < self.faults.drop_after
        request.meta["operation"] = operation
        return request

    def after(self, request: Request, original: Request, response: Response) -> Response:
        if request.meta.get("drop_after"):
            self.count("drop_after")
            self.count(f"drop_after:{request.meta.get('operation')}")
            return DROP
        return response
