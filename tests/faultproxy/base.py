"""A threaded forwarding HTTP proxy that a subclass can make misbehave.

Each request is read in full, handed to ``decide`` (which may answer it, drop the
connection, or let it through, possibly rewritten), forwarded to the upstream
server over a per-thread keep-alive connection, and the upstream answer handed to
``after`` (which may rewrite it, delay it or drop the connection) before it goes
back to the client.

Fault decisions are reproducible: ``rng_for(key)`` gives a ``random.Random``
seeded by the proxy's seed, the request's content and how many times the same
content was seen before, so the n-th repetition of a request meets the same fate
in every run whatever order the threads run in.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import random
import secrets
import socket
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from .strict import FrontDoor

#: A request a strict proxy admitted carries this header to the next proxy with this process's token:
#: a door behind another door does not check again what the first one checked before a fault rewrote it.
CHECKED_HEADER = "X-Faultproxy-Checked"
CHECKED_TOKEN = secrets.token_hex(16)
#: Strict proxies running in this process, by URL: a proxy chained in front of one takes its door.
_DOORS: dict[str, FrontDoor] = {}

#: Headers that describe one hop, never forwarded.
HOP_HEADERS = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
    "transfer-encoding", "upgrade", "content-length",
})


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    #: What ``decide`` wants ``after`` to know about this request.
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def query(self) -> dict[str, list[str]]:
        return urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query, keep_blank_values=True)

    def header(self, name: str, default: str = "") -> str:
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    #: Close the socket without a response (after the upstream call, if any).
    drop: bool = False
    #: Seconds to wait before answering.
    delay: float = 0.0
    #: HEAD answers carry the upstream Content-Length but no body.
    head: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


DROP = Response(0, [], b"", drop=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away (a killed worker) is normal here; anything else is reported."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultProxy:
    """Base class: forwards everything; subclasses override ``decide`` and ``after``.

    With ``strict=`` a ``strict.FrontDoor``, every request first passes the door (signature,
    clock, keys, IAM) and is answered with the service's own error when it does not; faults and
    capacity apply only to what the door admitted, as on AWS. ``region``: the region this endpoint
    serves (a signature scoped to another is refused); None accepts any. A proxy whose upstream is a
    strict proxy of this process is strict with that proxy's door (unless given its own): it checks the
    client's request before its faults rewrite it, and the door behind it trusts what it admitted.
    """

    name = "proxy"
    #: The service whose error form a request without a usable credential scope gets.
    service = "s3"

    def __init__(self, upstream: str, *, seed: int = 0, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] = time.monotonic, upstream_timeout: float = 60.0,
                 strict: FrontDoor | None = None, region: str | None = None) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be an http:// URL, got {upstream!r}")
        self.upstream = upstream
        self._upstream_host, self._upstream_port = parsed.hostname, parsed.port or 80
        self.seed = seed
        self.clock = clock
        self.upstream_timeout = upstream_timeout
        self.counters: Counter[str] = Counter()
        self._seen: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._local = threading.local()
        self.enabled = True
        self.strict = strict if strict is not None else _DOORS.get(upstream.rstrip("/"))
        self.region = region
        self._server = _Server((host, port), self._handler_class())
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = self._server.server_address[0]
        return f"http://{host if isinstance(host, str) else host.decode()}:{self.port}"

    def start(self) -> Self:
        if self._thread is None:
            self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                            name=f"{self.name}-{self.port!s}", daemon=True)
            self._thread.start()
            if self.strict is not None:
                _DOORS[self.url] = self.strict
        return self

    def stop(self) -> None:
        _DOORS.pop(self.url, None)
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ helpers

    def count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counters[what] += n

    def rng_for(self, *parts: str | bytes) -> random.Random:
        """A generator for one request, reproducible from the seed and the request content."""
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part if isinstance(part, bytes) else part.encode())
            digest.update(b"\0")
        key = digest.hexdigest()
        with self._lock:
            occurrence = self._seen[key]
            self._seen[key] += 1
        return random.Random(f"{self.seed}:{key}:{occurrence}")

    def forward(self, request: Request) -> Response:
        """Send ``request`` upstream (one retry on a stale keep-alive connection)."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        if request.body or request.method in ("PUT", "POST"):
            headers["Content-Length"] = str(len(request.body))
        if self.strict is not None:
            headers[CHECKED_HEADER] = CHECKED_TOKEN
        for attempt in range(2):
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(self._upstream_host, self._upstream_port,
                                                  timeout=self.upstream_timeout)
                self._local.conn = conn
            try:
                conn.request(request.method, request.path, body=request.body or None, headers=headers)
                upstream = conn.getresponse()
                body = upstream.read()
                out = [(k, v) for k, v in upstream.getheaders() if k.lower() not in HOP_HEADERS]
                if request.method == "HEAD":
                    length = upstream.getheader("Content-Length")
                    if length is not None:
                        out.append(("Content-Length", length))
                return Response(upstream.status, out, body, head=request.method == "HEAD")
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ policy (override)

    def decide(self, request: Request) -> Request | Response:
        """Answer ``request`` here (a Response, or DROP) or return the request to forward."""
        return request

    def after(self, request: Request, original: Request, response: Response) -> Response:
        """Rewrite, delay or drop the upstream answer."""
        return response

    # ------------------------------------------------------------------ plumbing

    def _handle(self, request: Request) -> Response:
        door = self.strict
        if door is not None and request.headers.pop(CHECKED_HEADER, None) == CHECKED_TOKEN:
            door = None  # a door in front of this one checked it (before a fault rewrote it)
            self.count("checked_before")
        if door is not None:
            admitted = door.admit(request, self.service, self.region)
            if isinstance(admitted, Response):
                return admitted
        if not self.enabled:
            response = self.forward(request)
        else:
            decided = self.decide(request)
            response = decided if isinstance(decided, Response) else self.after(decided, request,
                                                                                self.forward(decided))
        return response if door is None or response.drop else door.review(request, response)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out in one write (below), and without Nagle's delay: otherwise a
                # small answer waits for the client's delayed ACK of the headers (40 ms a call).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def _read_body(self) -> bytes:
                """The whole body, or ConnectionError: a client killed mid-request (a SIGKILLed worker)
                must not have its truncated request forwarded, which no real service would accept."""
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks: list[bytes] = []
                    while True:
                        line = self.rfile.readline()
                        if not line:
                            raise ConnectionResetError("client went away mid-body")
                        size = int(line.split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunk = self.rfile.read(size)
                        if len(chunk) < size:
                            raise ConnectionResetError("client went away mid-body")
                        chunks.append(chunk)
                        self.rfile.readline()
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if len(body) < length:
                    raise ConnectionResetError(f"client went away after {len(body)} of {length} bytes")
                return body

            def _drop(self) -> None:
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

            def _serve(self) -> None:
                request = Request(self.command, self.path, dict(self.headers.items()), self._read_body())
                try:
                    response = proxy._handle(request)
                except Exception as exc:  # upstream down: answer 502 so the client sees an error
                    proxy.count("upstream_error")
                    response = Response(502, [("Content-Type", "text/plain")], f"proxy: {exc}".encode())
                if response.delay > 0:
                    time.sleep(response.delay)  # real time: slowness is about the client's timeouts
                if response.drop:
                    self._drop()
                    return
                self.send_response(response.status)
                has_length = False
                for key, value in response.headers:
                    if key.lower() == "content-length":
                        has_length = True
                    self.send_header(key, value)
                if not (response.head and has_length):
                    self.send_header("Content-Length", str(len(response.body)))
                if not response.head and response.body:
                    self._headers_buffer.append(b"\r\n" + response.body)  # type: ignore[attr-defined]
                    self.flush_headers()
                else:
                    self.end_headers()

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _serve

        return Handler
