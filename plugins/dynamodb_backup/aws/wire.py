"""DynamoDB JSON calls whose request is sent and whose answer is read separately, on one connection.

Why: a botocore call is build, sign, send, wait, parse. Between one answer and the next
request the server idles while the client does all of that, and on a fast server those
gaps add up to a third of a restore's time (measured on dynalite: a one-connection writer
spent 8.6 ms per BatchWriteItem call, where the server needs 5.5). With the two halves
apart, a writer builds its next request (``prepare``: the body and its hash) while the server
works on the current one, and sends it the moment the answer arrives.

``send`` signs (SigV4, ``aws.sigv4``, tested equal to botocore's signature) at the moment it
sends, with the client's credentials as they are then (refreshed as botocore refreshes them):
a request may wait long for pacing, and AWS refuses a signature more than 5 minutes old
("Signature expired"). An answer saying so is mended once, by signing again and resending.
``call`` makes as many attempts as the client's ``retries`` configuration allows, with
botocore's backoff (``aws.retry.RetrySettings``). Requests go to the client's own
endpoint and region with its certificate checks and timeouts, framed by ``aws.http1``. Errors come back as
botocore's: an error answer is a ``ClientError`` with the same ``Error``/``ResponseMetadata``
shape, a dropped connection a ``ConnectionClosedError``, a refused one an
``EndpointConnectionError``, so callers retry them as they retry botocore's. An answer whose
``x-amz-crc32`` does not match its body is a ``MalformedResponseError`` (botocore checks the
same header).

:meth:`DynamoDBConnection.for_client` returns None for a client whose transport this does not
reproduce (a proxy, a client certificate, a signer other than SigV4, no credentials, an endpoint
with a path) or whose calls someone else handles on the way (event handlers beyond botocore's and
boto3's own, e.g. a botocore ``Stubber``, moto's mock or a user's ``before-send`` hook:
``aws.handlers``); callers then use the client itself.
"""

from __future__ import annotations

import http.client
import logging
import socket
import ssl
import time
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO
from urllib.parse import urlsplit

import orjson
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.httpsession import get_cert_path

from dynamodb_backup.aws.handlers import foreign_handlers
from dynamodb_backup.aws.http1 import Answer, post_request, read_answer
from dynamodb_backup.aws.retry import MalformedResponseError, RetrySettings, is_expired_signature, is_retryable
from dynamodb_backup.aws.sigv4 import PostSigner, payload_hash
from dynamodb_backup.gcpause import loads_uncollected

log = logging.getLogger(__name__)

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
#: botocore's default for DynamoDB in its standard retry mode (for_client reads the client's own).
DEFAULT_RETRIES = RetrySettings(4)


@dataclass(frozen=True)
class PreparedCall:
    """One request built ahead of sending: its headers and body, not yet signed (``send`` signs)."""

    operation: str
    headers: dict[str, str]
    body: bytes
    payload_hash: str


def _host_header(hostname: str, port: int | None, https: bool) -> str:
    """The Host header (and signed host) for an endpoint: no default port, IPv6 in brackets."""
    host = f"[{hostname}]" if ":" in hostname else hostname
    return host if port is None or port == (443 if https else 80) else f"{host}:{port}"


def _proxied(url: str) -> bool:
    """True if the environment routes ``url`` through a proxy (botocore honours HTTP(S)_PROXY)."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    return parts.scheme in proxies and not urllib.request.proxy_bypass(parts.hostname or "")


class DynamoDBConnection:
    """One keep-alive connection to a DynamoDB endpoint: ``send(call)`` then ``receive()``."""

    def __init__(self, url: str, region: str, credentials: Any, *, verify: bool | str | None = True,
                 connect_timeout: float = 10.0, read_timeout: float = 60.0, user_agent: str = "",
                 retries: RetrySettings = DEFAULT_RETRIES,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 sleep: Callable[[float], None] = time.sleep) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) endpoint: {url!r}")
        if parts.path not in ("", "/") or parts.query:
            raise ValueError(f"aws.wire sends to / only, not to the path of {url!r}")
        self.url = url.rstrip("/") + "/"
        self.region = region
        self._host, self._port, self._https = parts.hostname, parts.port, parts.scheme == "https"
        self._verify = verify
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout
        self._user_agent = user_agent
        self.retries = retries
        self._sleep = sleep
        self._signer = PostSigner(credentials, "dynamodb", region, _host_header(parts.hostname, parts.port,
                                                                               self._https), clock=clock)
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None
        self._pending: PreparedCall | None = None

    @classmethod
    def for_client(cls, client: Any, **options: Any) -> DynamoDBConnection | None:
        """A connection like ``client``'s, or None where this would not do what the client does.

        ``options`` go to the constructor (``clock``, ``sleep``: for tests).
        """
        try:
            config = client.meta.config
            # botocore keeps these on private attributes; without them, use the client itself.
            credentials = client._request_signer._credentials
            verify = client._endpoint.http_session._verify
        except AttributeError:
            return None
        url = client.meta.endpoint_url
        parts = urlsplit(url)
        if (credentials is None or config.proxies or getattr(config, "client_cert", None)
                or config.signature_version not in (None, "v4") or _proxied(url)
                or parts.path not in ("", "/") or parts.query):
            return None
        foreign = foreign_handlers(client)
        if foreign:
            log.info("calling DynamoDB through botocore: the client has event handlers of its own (%s)",
                     ", ".join(foreign))
            return None
        return cls(url, client.meta.region_name, credentials, verify=verify,
                   connect_timeout=config.connect_timeout, read_timeout=config.read_timeout,
                   user_agent=config.user_agent or "", retries=RetrySettings.of(client), **options)

    def prepare(self, operation: str, body: bytes) -> PreparedCall:
        """Build ``operation`` with ``body`` (not signed: ``send`` signs, as it sends)."""
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation}
        if self._user_agent:
            headers["User-Agent"] = self._user_agent
        return PreparedCall(operation, headers, body, payload_hash(body))

    def sign(self, call: PreparedCall) -> dict[str, str]:
        """``call``'s headers signed now: dated by the clock, with the credentials as they are now."""
        return self._signer.sign(call.headers, call.body, call.payload_hash)

    def send(self, call: PreparedCall) -> None:
        """Sign ``call`` and send it without waiting for its answer (one call at a time on this connection)."""
        if self._pending is not None:
            raise RuntimeError(f"{self._pending.operation} is still waiting for its answer")
        request = post_request(self.sign(call), call.body)
        try:
            self._connection().sendall(request)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._transport_error(exc) from exc
        self._pending = call

    def receive(self) -> dict[str, Any]:
        """The answer to the call sent last; an error answer raises ``ClientError``.

        An expired signature is mended once: the call is signed again and resent.
        """
        call = self._pending
        try:
            return self._receive()
        except ClientError as exc:
            if call is None or not is_expired_signature(exc):
                raise
            log.warning("%s: %s; signing it again and resending it", call.operation,
                        exc.response.get("Error", {}).get("Message"))
        self.send(call)
        return self._receive()

    def _receive(self) -> dict[str, Any]:
        call, self._pending = self._pending, None
        if call is None or self._reader is None:
            raise RuntimeError("nothing was sent")
        try:
            response = read_answer(self._reader)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            raise self._transport_error(exc) from exc
        if response.will_close:
            self.close()
        data = response.body
        crc = response.header("x-amz-crc32")
        if crc is not None and crc.isdigit() and int(crc) != zlib.crc32(data):
            raise MalformedResponseError(f"{call.operation}: the answer's CRC32 does not match its body")
        try:
            parsed = loads_uncollected(data) if data else {}
        except orjson.JSONDecodeError:
            parsed = None
        if response.status >= 300:
            raise _client_error(call.operation, response, parsed, data)
        if not isinstance(parsed, dict):
            raise MalformedResponseError(f"{call.operation}: a {response.status} answer that is not a JSON object")
        return parsed

    def call(self, operation: str, body: bytes) -> dict[str, Any]:
        """Send and wait, retried as the client's ``retries`` configuration says (as a botocore call is)."""
        prepared = self.prepare(operation, body)
        attempt = 1
        while True:
            try:
                self.send(prepared)
                return self.receive()
            except (ClientError, BotoConnectionError, HTTPClientError, MalformedResponseError) as exc:
                if attempt >= self.retries.total_attempts or not is_retryable(exc):
                    raise
                self._sleep(self.retries.backoff(exc, attempt))
                attempt += 1

    def close(self) -> None:
        self._pending = None
        reader, sock, self._reader, self._sock = self._reader, self._sock, None, None
        if reader is not None:
            reader.close()
        if sock is not None:
            sock.close()

    def _connection(self) -> socket.socket:
        if self._sock is None:
            sock = socket.create_connection((self._host, self._port or (443 if self._https else 80)),
                                            timeout=self._connect_timeout)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self._https:
                    sock = self._tls_context().wrap_socket(sock, server_hostname=self._host)
                sock.settimeout(self._read_timeout)
            except BaseException:
                sock.close()
                raise
            self._sock, self._reader = sock, sock.makefile("rb")
        return self._sock

    def _tls_context(self) -> ssl.SSLContext:
        if self._verify is False:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            return context
        # The bundle botocore would use: AWS_CA_BUNDLE or verify=<path>, else its default.
        bundle = self._verify if isinstance(self._verify, str) else get_cert_path(True)
        return ssl.create_default_context(cafile=bundle)

    def _transport_error(self, exc: BaseException) -> Exception:
        if isinstance(exc, ssl.SSLError):
            return SSLError(endpoint_url=self.url, error=exc)
        if isinstance(exc, TimeoutError | socket.timeout):
            return ReadTimeoutError(endpoint_url=self.url)
        if isinstance(exc, ConnectionRefusedError | socket.gaierror):
            return EndpointConnectionError(endpoint_url=self.url)
        return ConnectionClosedError(endpoint_url=self.url)


def _client_error(operation: str, response: Answer, parsed: Any, data: bytes) -> ClientError:
    """botocore's ClientError for an error answer of DynamoDB's JSON protocol."""
    body = parsed if isinstance(parsed, dict) else {}
    kind = str(body.get("__type") or response.header("x-amzn-ErrorType") or "")
    code = kind.rsplit("#", 1)[-1].split(":", 1)[0] or str(response.status)
    message = body.get("message") or body.get("Message") or data[:200].decode("utf-8", "replace")
    return ClientError({
        "Error": {"Code": code, "Message": str(message)},
        "ResponseMetadata": {"HTTPStatusCode": response.status,
                             "RequestId": response.header("x-amzn-RequestId") or "",
                             "HTTPHeaders": dict(response.headers),
                             "HostId": "", "RetryAttempts": 0},
    }, operation)

