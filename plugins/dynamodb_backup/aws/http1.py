"""HTTP/1.1 framing for aws.wire: a POST as one buffer out, an answer read from a buffered socket.

Why not ``http.client``: it parses every answer's headers with the ``email`` package, about
70 us a call, and on a restore's writer that time sits between the server's answer and the
next request, when the server has nothing to do. aws.wire needs a small part of HTTP/1.1:
POST with a Content-Length body, and answers framed by Content-Length, chunked encoding or
the connection's end (1xx interim answers skipped). Malformed framing raises http.client's
own exceptions, so callers treat it as they treated http.client's.
"""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import BinaryIO

MAX_LINE = 65_536
MAX_HEADERS = 100


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased; repeated headers joined with ", "
    body: bytes
    will_close: bool

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def post_request(headers: dict[str, str], body: bytes) -> bytes:
    """``POST /`` with ``headers`` (which must include Host) and ``body``, ready to send."""
    lines = ["POST / HTTP/1.1"]
    for name, value in headers.items():
        if any(c in name or c in value for c in "\r\n\0") or ":" in name:
            raise ValueError(f"invalid HTTP header {name!r}: {value!r}")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise http.client.LineTooLong("header line")
    return line


def _head(reader: BinaryIO) -> tuple[bytes, int, dict[str, str]]:
    status_line = _line(reader)
    if not status_line:
        raise http.client.RemoteDisconnected("the server closed the connection without an answer")
    version, _, rest = status_line.partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise http.client.BadStatusLine(repr(status_line))
    headers: dict[str, str] = {}
    while True:
        line = _line(reader)
        if not line:
            raise http.client.IncompleteRead(b"", None)
        if line in (b"\r\n", b"\n"):
            return version, int(code), headers
        name, sep, value = line.partition(b":")
        if not sep:
            raise http.client.HTTPException(f"malformed header line {line[:100]!r}")
        key, text = name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
        if len(headers) > MAX_HEADERS:
            raise http.client.HTTPException(f"more than {MAX_HEADERS} headers")


def _exactly(reader: BinaryIO, n: int) -> bytes:
    data = reader.read(n)
    if len(data) != n:
        raise http.client.IncompleteRead(data, n - len(data))
    return data


def _chunked(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size_line = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise http.client.IncompleteRead(b"".join(parts)) from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        parts.append(_exactly(reader, size))
        _exactly(reader, 2)  # the CRLF after each chunk


def read_answer(reader: BinaryIO, method: str = "POST") -> Answer:
    """Read one answer (skipping 1xx interim answers) from ``reader``."""
    version, status, headers = _head(reader)
    while 100 <= status < 200:
        version, status, headers = _head(reader)
    connection = headers.get("connection", "").lower()
    will_close = "close" in connection or (version == b"HTTP/1.0" and "keep-alive" not in connection)
    if method == "HEAD" or status in (204, 304):
        body = b""
    elif "chunked" in headers.get("transfer-encoding", "").lower():
        body = _chunked(reader)
    elif (length := headers.get("content-length")) is not None:
        if not length.isdigit():
            raise http.client.HTTPException(f"bad Content-Length {length!r}")
        body = _exactly(reader, int(length))
    else:  # framed by the connection's end
        body, will_close = reader.read(), True
    return Answer(status, headers, body, will_close)
