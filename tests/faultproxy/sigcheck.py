"""SigV4 as a server sees it: canonical requests rebuilt from what arrived, from the AWS SigV4 spec.

Written apart from ``dynamodb_backup.aws.sigv4`` and from botocore's signer on purpose: the front
door (``strict.py``) must catch a client that signs wrongly, so it cannot share the client's code.

* Canonical URI: S3 signs the path as sent (decoded once, encoded once); every other service
  signs the URI-encoded path of the encoded path (double encoding), dot segments removed.
* Canonical query: each name and value URI-encoded (only ``A-Za-z0-9-_.~`` left bare), sorted
  by name then value; ``X-Amz-Signature`` left out (query-string auth).
* Canonical headers: the ``SignedHeaders``, lower-cased, values trimmed with runs of spaces
  collapsed, sorted.
* Payload: the hash the request declares (S3's ``x-amz-content-sha256``: a real hash,
  ``UNSIGNED-PAYLOAD`` or a ``STREAMING-...`` value) or, for services without it, the body's hash.
* aws-chunked bodies are decoded here; signed chunks (``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``)
  are checked chunk by chunk with the seed signature, and trailer checksums against the data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import quote, unquote

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING = frozenset({STREAMING_UNSIGNED_TRAILER, STREAMING_SIGNED, STREAMING_SIGNED_TRAILER})
HEX64 = re.compile(r"[0-9a-f]{64}")
AMZ_DATE = "%Y%m%dT%H%M%SZ"


def uri_encode(text: str, safe: str = "") -> str:
    """SigV4's URI encoding: unreserved characters bare, everything else %XX (upper-case hex)."""
    return quote(text, safe="-_.~" + safe)


def canonical_uri(raw_path: str, service: str) -> str:
    path = raw_path or "/"
    if service == "s3":
        return uri_encode(unquote(path), safe="/")
    return uri_encode(remove_dot_segments(path), safe="/")


def remove_dot_segments(path: str) -> str:
    """RFC 3986 normalization as SigV4 asks: ``.``, ``..`` and empty segments go."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    return "/" + "/".join(kept) + ("/" if path.endswith("/") and kept else "")


def query_pairs(raw_query: str) -> list[tuple[str, str]]:
    """Decoded (name, value) pairs in order; a bare name has the empty value."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((unquote(name), unquote(value)))
    return pairs


def canonical_query(pairs: list[tuple[str, str]]) -> str:
    encoded = sorted((uri_encode(k), uri_encode(v)) for k, v in pairs if k != "X-Amz-Signature")
    return "&".join(f"{k}={v}" for k, v in encoded)


def canonical_headers(headers: dict[str, str], names: list[str]) -> tuple[str, list[str]]:
    """The canonical header block for ``names``, and the names the request lacks."""
    lowered: dict[str, str] = {}
    for key, value in headers.items():
        lowered[key.lower()] = value if key.lower() not in lowered else f"{lowered[key.lower()]},{value}"
    missing = [n for n in names if n not in lowered]
    lines = "".join(f"{n}:{' '.join(lowered.get(n, '').split())}\n" for n in names)
    return lines, missing


def canonical_request(method: str, uri: str, query: str, header_block: str, signed: str, payload: str) -> str:
    return "\n".join([method, uri, query, header_block, signed, payload])


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


@lru_cache(maxsize=256)
def signing_key(secret: str, day: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


@dataclass
class Credential:
    """What an Authorization header or a presigned URL's query declares."""

    access_key: str
    day: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str
    presigned: bool = False
    expires: int | None = None

    @property
    def scope(self) -> str:
        return f"{self.day}/{self.region}/{self.service}/aws4_request"


class Malformed(ValueError):
    """The request's authentication is incomplete or not SigV4."""


def parse_credential(text: str) -> tuple[str, str, str, str]:
    parts = text.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request":
        raise Malformed(f"Credential should be scoped to a valid region, not '{parts[2] if len(parts) > 2 else ''}'. "
                        if len(parts) == 5 else "Credential should be of the form <key>/<date>/<region>/<service>/"
                        "aws4_request.")
    return parts[0], parts[1], parts[2], parts[3]


def parse_authorization(header: str) -> Credential:
    algorithm, _, rest = header.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise Malformed(f"Unsupported authorization algorithm {algorithm!r}; use {ALGORITHM}.")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, eq, value = item.strip().partition("=")
        if eq:
            fields[name] = value
    for needed in ("Credential", "SignedHeaders", "Signature"):
        if needed not in fields:
            raise Malformed(f"Authorization header requires '{needed}' parameter. "
                            f"Authorization={header.strip()}")
    key, day, region, service = parse_credential(fields["Credential"])
    return Credential(key, day, region, service, fields["SignedHeaders"].split(";"), fields["Signature"])


def parse_presigned(pairs: list[tuple[str, str]]) -> Credential:
    query = dict(pairs)
    if query.get("X-Amz-Algorithm") != ALGORITHM:
        raise Malformed(f"X-Amz-Algorithm only supports {ALGORITHM}")
    for needed in ("X-Amz-Credential", "X-Amz-Date", "X-Amz-SignedHeaders", "X-Amz-Signature"):
        if needed not in query:
            raise Malformed(f"Query-string authentication requires the {needed} parameter")
    key, day, region, service = parse_credential(query["X-Amz-Credential"])
    expires = int(query["X-Amz-Expires"]) if query.get("X-Amz-Expires", "").isdigit() else None
    return Credential(key, day, region, service, query["X-Amz-SignedHeaders"].split(";"), query["X-Amz-Signature"],
                      presigned=True, expires=expires)


# --------------------------------------------------------------------------- aws-chunked bodies


@dataclass
class ChunkedBody:
    data: bytes
    #: (chunk signature or "", chunk data), the final empty chunk included.
    chunks: list[tuple[str, bytes]] = field(default_factory=list)
    trailers: list[tuple[str, str]] = field(default_factory=list)


def decode_aws_chunked(body: bytes) -> ChunkedBody:
    """``size[;chunk-signature=sig]\\r\\n data \\r\\n`` ... ``0...\\r\\n`` trailers ``\\r\\n``."""
    out = ChunkedBody(b"")
    pieces: list[bytes] = []
    at = 0
    while True:
        end = body.find(b"\r\n", at)
        if end < 0:
            raise Malformed("aws-chunked body ends inside a chunk header")
        header = body[at:end].decode("latin-1")
        size_text, _, extension = header.partition(";")
        size = int(size_text.strip(), 16)
        signature = extension.partition("chunk-signature=")[2].strip()
        data = body[end + 2:end + 2 + size]
        if len(data) < size:
            raise Malformed("aws-chunked body is shorter than its chunk sizes")
        out.chunks.append((signature, data))
        pieces.append(data)
        at = end + 2 + size
        if size == 0:
            break
        if body[at:at + 2] != b"\r\n":
            raise Malformed("aws-chunked chunk not followed by CRLF")
        at += 2
    for line in body[at:].decode("latin-1").split("\r\n"):
        if line.strip():
            name, _, value = line.partition(":")
            out.trailers.append((name.strip().lower(), value.strip()))
    out.data = b"".join(pieces)
    return out


def chunk_string_to_sign(amz_date: str, scope: str, previous: str, data: bytes) -> str:
    return "\n".join(["AWS4-HMAC-SHA256-PAYLOAD", amz_date, scope, previous, EMPTY_SHA256,
                      hashlib.sha256(data).hexdigest()])


def trailer_string_to_sign(amz_date: str, scope: str, previous: str, trailers: list[tuple[str, str]]) -> str:
    block = "".join(f"{n}:{v}\n" for n, v in trailers if n != "x-amz-trailer-signature")
    return "\n".join(["AWS4-HMAC-SHA256-TRAILER", amz_date, scope, previous,
                      hashlib.sha256(block.encode()).hexdigest()])


def checksum(algorithm: str, data: bytes) -> str | None:
    """S3's base64 checksum of ``data``, or None for an algorithm checked nowhere here (CRC32C, CRC64NVME)."""
    if algorithm == "crc32":
        return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    if algorithm in ("sha1", "sha256"):
        return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()
    if algorithm == "md5":
        return base64.b64encode(hashlib.md5(data).digest()).decode()
    return None
