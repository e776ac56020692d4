"""One persistent HTTP connection to dynalite, owned by one thread.

Node closes an idle keep-alive connection after 5 s (``server.keepAliveTimeout``), so a
connection idle for longer is replaced before use, and a request that fails on a reused
connection before any answer byte arrived is sent once more on a fresh one (the same rule
urllib3 applies: the server never saw it).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from local_pitr.httpwire import BadMessage, Head, Reader, read_body, read_head, status_of, stream_body
from local_pitr.wire import JSON_CONTENT_TYPE, ApiError

# Below Node's 5 s keep-alive timeout, so we never race the server closing the socket.
IDLE_LIMIT_SECONDS = 4.0
# Answers run to 1 MB (a Scan page): read them in big pieces, not the default 8 KB.
READ_BUFFER = 256 * 1024

# dynalite checks that a request carries a SigV4-shaped signature, never that it is right. DynamoDB
# Local also wants the access key to be letters and digits only (UnrecognizedClientException else).
_OWN_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=localpitr/20200101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"
)


class UpstreamUnavailable(Exception):
    """dynalite could not be reached, or dropped the connection before answering."""


class UpstreamAnswer:
    """dynalite's answer: its head as received, the body still to be read from the connection."""

    def __init__(self, head: Head, reader: Reader, upstream: Upstream) -> None:
        self.head = head
        self.status = status_of(head)
        self._reader = reader
        self._upstream = upstream

    def read(self) -> bytes:
        try:
            body = read_body(self._reader, self.head)
        except BadMessage as exc:
            self._upstream.close()
            raise UpstreamUnavailable(f"dynalite hung up mid-answer: {exc}") from exc
        self._done()
        return body

    def chunks(self) -> Iterator[bytes]:
        """A Content-Length body in pieces; the caller must consume it all or close the upstream."""
        try:
            yield from stream_body(self._reader, self.head)
        except BadMessage as exc:
            self._upstream.close()
            raise UpstreamUnavailable(f"dynalite hung up mid-answer: {exc}") from exc
        self._done()

    def _done(self) -> None:
        if self.head.close:
            self._upstream.close()


class Upstream:
    """dynalite at ``url``; not thread-safe: one instance per thread."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._reader: Reader | None = None
        self._last_used = 0.0

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            self._reader = None

    def _connection(self) -> tuple[socket.socket, Reader, bool]:
        """The socket, its reader, and whether it was used before (a stale one may fail harmlessly)."""
        if self._sock is not None and time.monotonic() - self._last_used > IDLE_LIMIT_SECONDS:
            self.close()
        if self._sock is not None and self._reader is not None:
            return self._sock, self._reader, True
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise UpstreamUnavailable(f"dynalite at {self.host}:{self.port}: {exc!r}") from exc
        # Request/answer ping-pong on a kept-alive socket: Nagle plus delayed ACK would add 40 ms.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self._reader = sock.makefile("rb", buffering=READ_BUFFER)
        return sock, self._reader, False

    def send(self, head: bytes, body: bytes) -> UpstreamAnswer:
        """Send one request (its head already encoded, body as bytes); the answer body is not read yet.

        The caller must read that body whole (or call :meth:`close`) before the next request.
        """
        for attempt in (1, 2):
            sock, reader, reused = self._connection()
            try:
                sock.sendall(head + body)
                answer_head = read_head(reader)
                if answer_head is None:
                    raise ConnectionResetError("dynalite closed the connection without answering")
            except (OSError, BadMessage) as exc:
                self.close()
                if reused and attempt == 1 and not isinstance(exc, TimeoutError | BadMessage):
                    continue
                raise UpstreamUnavailable(f"dynalite at {self.host}:{self.port}: {exc!r}") from exc
            self._last_used = time.monotonic()
            return UpstreamAnswer(answer_head, reader, self)
        raise AssertionError("unreachable")

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The stand-in's own request to dynalite (readbacks, baselines, table lookups).

        Raises :class:`ApiError` with dynalite's error code when it answers with an error.
        """
        body = orjson.dumps(payload)
        head = (
            f"POST / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {JSON_CONTENT_TYPE}\r\n"
            f"X-Amz-Target: DynamoDB_20120810.{operation}\r\n"
            f"X-Amz-Date: {time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}\r\n"
            f"Authorization: {_OWN_AUTHORIZATION}\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        answer = self.send(head, body)
        data = answer.read()
        parsed: dict[str, Any] = orjson.loads(data) if data else {}
        if answer.status != 200:
            code = str(parsed.get("__type", "InternalServerError")).rpartition("#")[2]
            raise ApiError(code, str(parsed.get("message") or parsed.get("Message") or ""), answer.status)
        return parsed
