"""Just enough HTTP/1.1 to relay DynamoDB requests: read a message head as raw lines, find its
framing (Content-Length or chunked) and whether the connection ends after it.

The stand-in forwards header lines as bytes, as they came, instead of parsing them into
objects (``http.server`` and ``http.client`` run every head through the email parser, which
cost more than everything else a pass-through request does).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

MAX_LINE = 65536
# Never forwarded: they describe one connection, not the message (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade",
                        b"transfer-encoding"})
CHUNK = 256 * 1024


class Reader(Protocol):
    """A buffered byte stream: a socket's ``makefile("rb")`` or a handler's ``rfile``."""

    def readline(self, size: int | None = -1, /) -> bytes: ...

    def read(self, size: int | None = -1, /) -> bytes: ...


class BadMessage(Exception):
    """A head that is not HTTP/1.x, or a body cut short."""


@dataclass
class Head:
    """A request or status line and its header lines (raw, ``\\r\\n`` kept), minus hop-by-hop ones."""

    start: bytes
    lines: list[bytes] = field(default_factory=list)
    values: dict[bytes, bytes] = field(default_factory=dict)  # lower-cased name -> last value
    length: int | None = None
    chunked: bool = False
    close: bool = False

    def get(self, name: bytes) -> bytes | None:
        return self.values.get(name)

    def encode(self, *, replace: dict[bytes, bytes] | None = None, close: bool = False) -> bytes:
        """The head as bytes, headers named in ``replace`` (lower-case) swapped for new values."""
        lines = self.lines
        if replace:
            lines = [line for line in lines if line.split(b":", 1)[0].strip().lower() not in replace]
            lines += [name + b": " + value + b"\r\n" for name, value in replace.items()]
        return self.start + b"".join(lines) + (b"Connection: close\r\n" if close else b"") + b"\r\n"


def read_head(reader: Reader) -> Head | None:
    """The next message head, or None when the peer closed the connection between messages."""
    start = reader.readline(MAX_LINE + 1)
    while start in (b"\r\n", b"\n"):  # tolerated before a request line (RFC 9112 2.2)
        start = reader.readline(MAX_LINE + 1)
    if not start:
        return None
    if not start.endswith(b"\n") or b"HTTP/1." not in start:
        raise BadMessage(f"not an HTTP/1.x message: {start[:80]!r}")
    head = Head(start=start, close=b"HTTP/1.0" in start)
    while True:
        line = reader.readline(MAX_LINE + 1)
        if line in (b"\r\n", b"\n"):
            return head
        if not line.endswith(b"\n"):
            raise BadMessage("connection closed inside a message head")
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        value = value.strip()
        head.values[lowered] = value
        if lowered == b"content-length":
            head.length = int(value)
        elif lowered == b"transfer-encoding":
            head.chunked = b"chunked" in value.lower()
        elif lowered == b"connection":
            head.close = b"close" in value.lower()
        if lowered not in HOP_BY_HOP:
            head.lines.append(line)


def read_body(reader: Reader, head: Head) -> bytes:
    """The whole body (de-chunked); BadMessage when the peer hangs up before its end."""
    if head.chunked:
        return b"".join(read_chunks(reader))
    if not head.length:
        return b""
    body = reader.read(head.length)
    if len(body) != head.length:
        raise BadMessage("connection closed inside a message body")
    return body


def read_chunks(reader: Reader) -> Iterator[bytes]:
    while True:
        size_line = reader.readline(MAX_LINE + 1)
        if not size_line.endswith(b"\n"):
            raise BadMessage("connection closed inside a chunked body")
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while reader.readline(MAX_LINE + 1) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields
            return
        chunk = reader.read(size + 2)
        if len(chunk) != size + 2:
            raise BadMessage("connection closed inside a chunked body")
        yield chunk[:size]


def stream_body(reader: Reader, head: Head) -> Iterator[bytes]:
    """A Content-Length body in pieces of at most CHUNK bytes (nothing is held whole)."""
    remaining = head.length or 0
    while remaining:
        piece = reader.read(min(CHUNK, remaining))
        if not piece:
            raise BadMessage("connection closed inside a message body")
        remaining -= len(piece)
        yield piece


def status_of(head: Head) -> int:
    return int(head.start.split(b" ", 2)[1])
