"""One persistent HTTP connection to dynalite, owned by one thread.

Node closes an idle keep-alive connection after 5 s (``server.keepAliveTimeout``), so a
connection idle for longer is replaced before use, and a request that fails on a reused
connection before any answer byte arrived is sent once more on a fresh one (the same rule
urllib3 applies: the server never saw it).
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import orjson

from local_pitr.wire import JSON_CONTENT_TYPE, ApiError

# Below Node's 5 s keep-alive timeout, so we never race the server closing the socket.
IDLE_LIMIT_SECONDS = 4.0
CHUNK = 256 * 1024

# dynalite checks that a request carries a SigV4-shaped signature, never that it is right.
_OWN_AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=local-pitr/20200101/us-east-1/dynamodb/aws4_request, "
    "SignedHeaders=host;x-amz-date;x-amz-target, Signature=0"
)

_RETRYABLE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class UpstreamUnavailable(Exception):
    """dynalite could not be reached, or dropped the connection before answering."""


class UpstreamAnswer:
    """An answer from dynalite: status line, headers as received, and the body (streamed or read)."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response
        self.status = response.status
        self.reason = response.reason
        self.headers: list[tuple[str, str]] = response.getheaders()

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)

    def read(self) -> bytes:
        return self.response.read()

    def chunks(self) -> Iterator[bytes]:
        while True:
            chunk = self.response.read(CHUNK)
            if not chunk:
                return
            yield chunk


class Upstream:
    """dynalite at ``url``; not thread-safe: one instance per thread."""

    def __init__(self, url: str, timeout: float = 120.0) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None
        self._last_used = 0.0

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """The connection and whether it was used before (a stale one may fail harmlessly)."""
        if self._conn is not None and time.monotonic() - self._last_used > IDLE_LIMIT_SECONDS:
            self.close()
        if self._conn is not None:
            return self._conn, True
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.connect()
        except OSError as exc:
            raise UpstreamUnavailable(f"dynalite at {self.host}:{self.port}: {exc!r}") from exc
        assert conn.sock is not None
        # Request/answer ping-pong on a kept-alive socket: Nagle plus delayed ACK would add 40 ms.
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._conn = conn
        return conn, False

    def send(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes) -> UpstreamAnswer:
        """Forward one request as it came (headers in order, body as bytes); the answer is not read yet.

        The caller must read the answer whole (or call :meth:`close`) before the next request.
        """
        for attempt in (1, 2):
            conn, reused = self._connection()
            try:
                conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
                for name, value in headers:
                    conn.putheader(name, value)
                conn.endheaders(body)
                response = conn.getresponse()
            except _RETRYABLE as exc:
                self.close()
                if reused and attempt == 1:
                    continue
                raise UpstreamUnavailable(f"dynalite at {self.host}:{self.port}: {exc!r}") from exc
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise UpstreamUnavailable(f"dynalite at {self.host}:{self.port}: {exc!r}") from exc
            except BaseException:
                self.close()
                raise
            self._last_used = time.monotonic()
            if response.will_close:
                self._conn = None  # the answer ends the connection; the response object owns it now
            return UpstreamAnswer(response)
        raise AssertionError("unreachable")

    def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The stand-in's own request to dynalite (readbacks, baselines, table lookups).

        Raises :class:`ApiError` with dynalite's error code when it answers with an error.
        """
        body = orjson.dumps(payload)
        headers = [
            ("Host", f"{self.host}:{self.port}"),
            ("Content-Type", JSON_CONTENT_TYPE),
            ("X-Amz-Target", f"DynamoDB_20120810.{operation}"),
            ("X-Amz-Date", time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())),
            ("Authorization", _OWN_AUTHORIZATION),
            ("Content-Length", str(len(body))),
        ]
        answer = self.send("POST", "/", headers, body)
        data = answer.read()
        parsed: dict[str, Any] = orjson.loads(data) if data else {}
        if answer.status != 200:
            code = str(parsed.get("__type", "InternalServerError")).rpartition("#")[2]
            raise ApiError(code, str(parsed.get("message") or parsed.get("Message") or ""), answer.status)
        return parsed
