"""The HTTP front: answers the PITR/export operations itself and forwards everything else to dynalite.

A thread per client connection (``ThreadingHTTPServer``), each with its own kept-alive
connection to dynalite. Requests go upstream as they came (headers in order, body bytes; not
re-signed: dynalite only checks that a signature is there) and answers come back as dynalite
sent them, streamed in chunks. Only writes to followed tables are parsed (to record them), and
an UpdateItem answer is re-encoded only when the stand-in added ``ReturnValues`` itself.

A client that hangs up mid-request is dropped without anything reaching dynalite; one that
hangs up mid-answer costs the thread its upstream connection (the rest of that answer is unread).
"""

from __future__ import annotations

import http.client
import socket
import sys
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson

from local_pitr.recorder import RECORDED_OPERATIONS, Recorder
from local_pitr.upstream import Upstream, UpstreamAnswer, UpstreamUnavailable
from local_pitr.wire import ApiError, answer, error_answer

TARGET_PREFIX = "DynamoDB_20120810."
# Never forwarded: they describe one hop, not the request (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade",
                         "transfer-encoding"})

LocalOperation = Callable[[dict[str, Any], Upstream], dict[str, Any]]


class StandInServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], upstream_url: str, recorder: Recorder,
                 operations: dict[str, LocalOperation]) -> None:
        super().__init__(address, ProxyHandler)
        self.upstream_url = upstream_url
        self.recorder = recorder
        self.operations = operations


class ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as botocore expects
    server: StandInServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream = Upstream(self.server.upstream_url)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.upstream.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would cost more than the forwarding itself

    def do_POST(self) -> None:
        self._handle("POST")

    def do_GET(self) -> None:
        self._handle("GET")

    def do_OPTIONS(self) -> None:
        self._handle("OPTIONS")

    def _handle(self, method: str) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True  # the client hung up mid-request: nothing goes upstream
            return
        target = self.headers.get("X-Amz-Target", "")
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else ""
        try:
            try:
                if method == "POST" and operation in self.server.operations:
                    self._answer_locally(operation, body)
                elif method == "POST" and operation in RECORDED_OPERATIONS:
                    self._forward_write(method, operation, body)
                else:
                    self._forward(method, body)
            except UpstreamUnavailable as exc:
                print(f"local_pitr: {operation or method}: {exc}", file=sys.stderr)
                status, headers, payload = error_answer(ApiError("InternalServerError", "Internal server error", 500))
                self._send(status, "Internal Server Error", headers, payload)
        except (OSError, http.client.HTTPException) as exc:
            # The client hung up mid-answer, or dynalite mid-answer: drop both connections, since
            # an answer may be half read or half sent.
            self.close_connection = True
            self.upstream.close()
            if not isinstance(exc, BrokenPipeError | ConnectionResetError | ConnectionAbortedError):
                print(f"local_pitr: {operation or method} failed: {exc!r}", file=sys.stderr)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        return body if len(body) == length else None

    def _read_chunked(self) -> bytes | None:
        parts: list[bytes] = []
        while True:
            line = self.rfile.readline()
            if not line:
                return None
            size = int(line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(parts)
            chunk = self.rfile.read(size + 2)
            if len(chunk) < size + 2:
                return None
            parts.append(chunk[:size])

    def _upstream_headers(self, body: bytes) -> list[tuple[str, str]]:
        headers = [(name, value) for name, value in self.headers.items() if name.lower() not in _HOP_BY_HOP]
        if "Transfer-Encoding" in self.headers:  # a chunked request goes on with a length instead
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            headers.append(("Content-Length", str(len(body))))
        return headers

    def _forward(self, method: str, body: bytes) -> None:
        upstream = self.upstream.send(method, self.path, self._upstream_headers(body), body)
        self._relay(upstream)

    def _relay(self, upstream: UpstreamAnswer) -> None:
        """Send dynalite's answer on as it is: status line, headers, then the body in chunks."""
        length = upstream.header("Content-Length")
        if length is None:  # chunked upstream: send it on with a length
            self._send(upstream.status, upstream.reason, upstream.headers, upstream.read(), fix_length=True)
            return
        head = self._head(upstream.status, upstream.reason, upstream.headers)
        first = True
        for chunk in upstream.chunks():
            self.wfile.write(head + chunk if first else chunk)  # one send for head and first chunk
            first = False
        if first:
            self.wfile.write(head)

    def _head(self, status: int, reason: str, headers: list[tuple[str, str]]) -> bytes:
        lines = [f"HTTP/1.1 {status} {reason}"]
        lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
        if self.close_connection:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _send(self, status: int, reason: str, headers: list[tuple[str, str]], body: bytes, *,
              fix_length: bool = False, fix_crc: bool = False) -> None:
        if fix_length or fix_crc:
            replaced = {"content-length", "x-amz-crc32"} if fix_crc else {"content-length"}
            headers = [(n, v) for n, v in headers if n.lower() not in replaced]
            headers.append(("Content-Length", str(len(body))))
            if fix_crc:
                headers.append(("x-amz-crc32", str(zlib.crc32(body))))
        self.wfile.write(self._head(status, reason, headers) + body)

    def _forward_write(self, method: str, operation: str, body: bytes) -> None:
        recorder = self.server.recorder
        prepared = recorder.prepare(operation, body)
        if prepared is None:
            self._forward(method, body)
            return
        outgoing = prepared.body
        headers = self._upstream_headers(outgoing)
        if outgoing is not body:
            headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
            headers.append(("Content-Length", str(len(outgoing))))
        upstream = self.upstream.send(method, self.path, headers, outgoing)
        data = upstream.read()
        try:
            changed = recorder.finish(prepared, upstream.status, data, self.upstream)
        except (KeyError, TypeError, ValueError, ApiError, UpstreamUnavailable) as exc:
            # The write happened; only its record failed. Say so loudly, answer the client anyway.
            print(f"local_pitr: could not record {operation}: {exc!r}", file=sys.stderr)
            changed = None
        if changed is None:
            self._send(upstream.status, upstream.reason, upstream.headers, data)
        else:
            self._send(upstream.status, upstream.reason, upstream.headers, changed, fix_length=True, fix_crc=True)

    def _answer_locally(self, operation: str, body: bytes) -> None:
        try:
            try:
                request = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                raise ApiError("SerializationException", "Start of structure or map found where not expected") from None
            if not isinstance(request, dict):
                raise ApiError("SerializationException", "Start of structure or map found where not expected")
            status, headers, payload = answer(200, self.server.operations[operation](request, self.upstream))
        except ApiError as error:
            status, headers, payload = error_answer(error)
        except Exception as exc:  # a bug here must not look like a dropped connection to the client
            print(f"local_pitr: {operation} failed: {exc!r}", file=sys.stderr)
            status, headers, payload = error_answer(ApiError("InternalServerError", "Internal server error", 500))
        self._send(status, "OK" if status == 200 else "Bad Request", headers, payload)
