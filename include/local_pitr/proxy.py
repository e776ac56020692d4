"""The HTTP front: answers the PITR/export operations itself and forwards everything else to dynalite.

A thread per client connection, each with its own kept-alive connection to dynalite.
Requests go upstream as they came (request line and header lines as bytes, body bytes; not
re-signed: dynalite only checks that a signature is there) and answers come back as dynalite
sent them, the body streamed in pieces. Only hop-by-hop headers (Connection, Keep-Alive, ...)
are not relayed: they describe each connection. Only writes are parsed (to record them), and
an UpdateItem answer is re-encoded only when the stand-in added ``ReturnValues`` itself.

A client that hangs up mid-request is dropped without anything reaching dynalite; one that
hangs up mid-answer costs the thread its upstream connection (the rest of that answer is unread).
"""

from __future__ import annotations

import socket
import socketserver
import sys
import zlib
from collections.abc import Callable
from typing import Any

import orjson

from local_pitr.httpwire import BadMessage, Head, read_body, read_head
from local_pitr.recorder import RECORDED_OPERATIONS, Recorder
from local_pitr.upstream import Upstream, UpstreamAnswer, UpstreamUnavailable
from local_pitr.wire import ApiError, answer, error_answer

TARGET_PREFIX = b"DynamoDB_20120810."
_REASONS = {200: b"OK", 400: b"Bad Request", 500: b"Internal Server Error"}
_CLIENT_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

LocalOperation = Callable[[dict[str, Any], Upstream], dict[str, Any]]


class StandInServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], upstream_url: str, recorder: Recorder,
                 operations: dict[str, LocalOperation]) -> None:
        super().__init__(address, ProxyHandler)
        self.upstream_url = upstream_url
        self.recorder = recorder
        self.operations = {name.encode(): operation for name, operation in operations.items()}


class ProxyHandler(socketserver.StreamRequestHandler):
    server: StandInServer

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream = Upstream(self.server.upstream_url)

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass  # the client is gone already
        finally:
            self.upstream.close()

    def handle(self) -> None:
        try:
            while self._handle_one():
                pass
        except _CLIENT_GONE:
            pass  # the client hung up mid-answer
        except (OSError, BadMessage) as exc:
            print(f"local_pitr: connection dropped: {exc!r}", file=sys.stderr)

    def _handle_one(self) -> bool:
        """Serve one request; False when the connection is to end."""
        try:
            head = read_head(self.rfile)
            if head is None:
                return False
            body = b"" if head.start.startswith(b"HEAD ") else read_body(self.rfile, head)
        except (BadMessage, ValueError, *_CLIENT_GONE):
            return False  # a client that hangs up mid-request: nothing goes upstream
        target = head.get(b"x-amz-target") or b""
        # Other services' targets (DynamoDBStreams_20120810.X) keep their prefix: answered here if the
        # stand-in serves them (its Streams API over the journal), relayed otherwise.
        operation = target[len(TARGET_PREFIX):] if target.startswith(TARGET_PREFIX) else target
        is_post = head.start.startswith(b"POST ")
        try:
            if is_post and operation in self.server.operations:
                self._answer_locally(operation, body, head.close)
            elif is_post and operation.decode() in RECORDED_OPERATIONS:
                self._forward_write(operation.decode(), head, body)
            else:
                self._relay(self.upstream.send(self._upstream_head(head, len(body)), body), head.close)
        except UpstreamUnavailable as exc:
            print(f"local_pitr: {operation.decode() or head.start.decode(errors='replace').strip()}: {exc}",
                  file=sys.stderr)
            self._send(*error_answer(ApiError("InternalServerError", "Internal server error", 500)), close=True)
            return False
        return not head.close

    @staticmethod
    def _upstream_head(head: Head, length: int) -> bytes:
        if head.chunked or head.length != length:  # de-chunked, or a new body: say its length
            return head.encode(replace={b"content-length": str(length).encode()})
        return head.encode()

    def _relay(self, upstream: UpstreamAnswer, close: bool) -> None:
        """dynalite's answer as it is: status line and headers, then the body in pieces."""
        if upstream.head.chunked or upstream.head.length is None:
            body = upstream.read()  # not seen from dynalite except on 413; sent on with a length
            self.wfile.write(upstream.head.encode(replace={b"content-length": str(len(body)).encode()},
                                                  close=close) + body)
            return
        pending = upstream.head.encode(close=close)
        for piece in upstream.chunks():
            self.wfile.write(pending + piece if pending else piece)  # head and first piece in one send
            pending = b""
        if pending:
            self.wfile.write(pending)

    def _send(self, status: int, headers: list[tuple[str, str]], body: bytes, *, close: bool) -> None:
        lines = [b"HTTP/1.1 " + str(status).encode() + b" " + _REASONS.get(status, b"Error") + b"\r\n"]
        lines += [f"{name}: {value}\r\n".encode() for name, value in headers]
        if close:
            lines.append(b"Connection: close\r\n")
        self.wfile.write(b"".join(lines) + b"\r\n" + body)

    def _forward_write(self, operation: str, head: Head, body: bytes) -> None:
        recorder = self.server.recorder
        prepared = recorder.prepare(operation, body)
        if prepared is None:
            self._relay(self.upstream.send(self._upstream_head(head, len(body)), body), head.close)
            return
        upstream = self.upstream.send(self._upstream_head(head, len(prepared.body)), prepared.body)
        data = upstream.read()
        try:
            changed = recorder.finish(prepared, upstream.status, data, self.upstream)
        except (KeyError, TypeError, ValueError, ApiError, UpstreamUnavailable) as exc:
            # The write happened; only its record failed. Say so loudly, answer the client anyway.
            print(f"local_pitr: could not record {operation}: {exc!r}", file=sys.stderr)
            changed = None
        if changed is None:
            self.wfile.write(upstream.head.encode(close=head.close) + data)
            return
        self.wfile.write(upstream.head.encode(replace={
            b"content-length": str(len(changed)).encode(), b"x-amz-crc32": str(zlib.crc32(changed)).encode(),
        }, close=head.close) + changed)

    def _answer_locally(self, operation: bytes, body: bytes, close: bool) -> None:
        try:
            try:
                request = orjson.loads(body) if body else {}
            except orjson.JSONDecodeError:
                raise ApiError("SerializationException", "Start of structure or map found where not expected") from None
            if not isinstance(request, dict):
                raise ApiError("SerializationException", "Start of structure or map found where not expected")
            reply = answer(200, self.server.operations[operation](request, self.upstream))
        except ApiError as error:
            reply = error_answer(error)
        except UpstreamUnavailable:
            raise
        except Exception as exc:  # a bug here must not look like a dropped connection to the client
            print(f"local_pitr: {operation.decode()} failed: {exc!r}", file=sys.stderr)
            reply = error_answer(ApiError("InternalServerError", "Internal server error", 500))
        self._send(*reply, close=close)
