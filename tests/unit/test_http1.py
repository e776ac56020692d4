"""aws.http1: the request as sent, and answers in every framing HTTP/1.1 allows."""

from __future__ import annotations

import http.client
import io

import pytest

from dynamodb_backup.aws.http1 import post_request, read_answer

HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n"


def answer(raw: bytes, method: str = "POST"):
    return read_answer(io.BytesIO(raw), method)


def test_the_request_is_one_buffer_with_its_length():
    raw = post_request({"Host": "h:1", "X-Amz-Target": "T"}, b'{"a":"\xc3\xbc"}')
    assert raw == b'POST / HTTP/1.1\r\nHost: h:1\r\nX-Amz-Target: T\r\nContent-Length: 10\r\n\r\n{"a":"\xc3\xbc"}'


@pytest.mark.parametrize("headers", [{"Host": "h", "X": "a\r\nInjected: 1"}, {"Host": "h", "Bad:Name": "v"},
                                     {"Host": "h\n", "X": "v"}])
def test_a_header_that_would_split_the_request_is_refused(headers):
    with pytest.raises(ValueError, match="invalid HTTP header"):
        post_request(headers, b"")


def test_content_length_framing_leaves_the_next_answer_in_the_buffer():
    reader = io.BytesIO(HEAD + b"Content-Length: 2\r\nX-Amz-Crc32: 1\r\n\r\n{}" + HEAD + b"Content-Length: 0\r\n\r\n")
    first = read_answer(reader)
    assert (first.status, first.body, first.header("x-amz-crc32"), first.will_close) == (200, b"{}", "1", False)
    assert read_answer(reader).body == b""


def test_chunked_answers_with_extensions_and_trailers():
    raw = HEAD + b"Transfer-Encoding: chunked\r\n\r\n3;ext=1\r\n{\"a\r\n4\r\n\":1}\r\n0\r\nTrailer: x\r\n\r\n"
    assert answer(raw).body == b'{"a":1}'


def test_interim_answers_are_skipped_and_repeated_headers_joined():
    raw = b"HTTP/1.1 100 Continue\r\n\r\n" + HEAD + b"Set: a\r\nset: b\r\nContent-Length: 2\r\n\r\n{}"
    got = answer(raw)
    assert (got.status, got.header("Set"), got.body) == (200, "a, b", b"{}")


def test_close_framing_and_http_1_0():
    assert answer(b"HTTP/1.1 500 Oops\r\n\r\nall of it").body == b"all of it"
    assert answer(b"HTTP/1.1 500 Oops\r\n\r\nall of it").will_close
    assert answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n").will_close
    assert answer(b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").will_close
    assert not answer(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n").will_close
    assert answer(b"HTTP/1.1 204 No Content\r\n\r\n").body == b""


@pytest.mark.parametrize(("raw", "error"), [
    (b"", http.client.RemoteDisconnected),
    (b"SSH-2.0-OpenSSH\r\n\r\n", http.client.BadStatusLine),
    (b"HTTP/1.1 2x0 OK\r\n\r\n", http.client.BadStatusLine),
    (HEAD, http.client.IncompleteRead),
    (HEAD + b"Content-Length: 10\r\n\r\n{}", http.client.IncompleteRead),
    (HEAD + b"Content-Length: -1\r\n\r\n", http.client.HTTPException),
    (HEAD + b"no colon here\r\n\r\n", http.client.HTTPException),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", http.client.IncompleteRead),
    (HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nab", http.client.IncompleteRead),
    (HEAD + b"X: " + b"a" * 70_000 + b"\r\n\r\n", http.client.LineTooLong),
    (HEAD + b"".join(b"H%d: v\r\n" % i for i in range(101)) + b"\r\n", http.client.HTTPException),
])
def test_malformed_or_cut_answers_raise_http_client_errors(raw, error):
    with pytest.raises(error):
        answer(raw)
