"""aws.sigv4 signs exactly as botocore's SigV4Auth does, for the POSTs aws.wire sends."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore import auth as botocore_auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dynamodb_backup.aws.sigv4 import PostSigner
from dynamodb_backup.aws.wire import _host_header

BASE = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.BatchWriteItem"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def botocore_signed(monkeypatch: pytest.MonkeyPatch, credentials: Credentials, url: str, region: str,
                    headers: dict[str, str], body: bytes, now: datetime) -> dict[str, str]:
    # botocore reads the time through auth.get_current_datetime (naive UTC).
    monkeypatch.setattr(botocore_auth, "get_current_datetime", lambda: now.replace(tzinfo=None))
    request = AWSRequest(method="POST", url=url, data=body, headers=dict(headers))
    botocore_auth.SigV4Auth(credentials.get_frozen_credentials(), "dynamodb", region).add_auth(request)
    return dict(request.headers.items())


CASES = [
    ("http://127.0.0.1:4569/", "us-east-1", Credentials("AKIDEXAMPLE", "secret"), BASE, b'{"a":1}'),
    ("https://dynamodb.eu-west-3.amazonaws.com/", "eu-west-3",
     Credentials("ASIAEXAMPLE", "s3cr3t/+=", token="token-123"), BASE, b""),
    ("http://localhost:80/", "ap-south-1", Credentials("AKID", "k"),
     {**BASE, "User-Agent": "Boto3/1.0 md/x  y", "X-Custom": "  spaced   value "}, "ümlaut ロ".encode()),
    ("https://[::1]:8443/", "us-west-2", Credentials("AKID", "k"), BASE, b"x" * 30_000),
]


@pytest.mark.parametrize(("url", "region", "credentials", "headers", "body"), CASES)
def test_headers_are_botocores(monkeypatch, url, region, credentials, headers, body):
    now = datetime(2026, 12, 2, 5, 59, 58, tzinfo=UTC)
    from urllib.parse import urlsplit
    parts = urlsplit(url)
    host = _host_header(parts.hostname or "", parts.port, parts.scheme == "https")
    ours = PostSigner(credentials, "dynamodb", region, host, clock=Clock(now)).sign(dict(headers), body)
    theirs = botocore_signed(monkeypatch, credentials, url, region, headers, body, now)
    assert ours.pop("Host") == host
    assert ours == theirs
    assert "host" in ours["Authorization"].split("SignedHeaders=")[1]


def test_a_new_day_and_rotated_credentials_give_a_new_signing_key(monkeypatch):
    credentials = Credentials("AKID", "old-secret")
    clock = Clock(datetime(2026, 12, 2, 23, 59, 59, tzinfo=UTC))
    signer = PostSigner(credentials, "dynamodb", "us-east-1", "127.0.0.1:4569", clock=clock)
    url = "http://127.0.0.1:4569/"
    for now, secret in [(clock.now, "old-secret"), (datetime(2026, 12, 3, 0, 0, 1, tzinfo=UTC), "old-secret"),
                        (datetime(2026, 12, 3, 0, 0, 2, tzinfo=UTC), "new-secret")]:
        clock.now = now
        credentials.secret_key = secret
        ours = signer.sign(dict(BASE), b"{}")
        ours.pop("Host")
        assert ours == botocore_signed(monkeypatch, credentials, url, "us-east-1", BASE, b"{}", now)
