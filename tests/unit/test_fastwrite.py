"""The restore fast path's pure parts: line -> wire form, and the request body."""

from __future__ import annotations

import base64

import orjson
import pytest

from demo_data import all_types_items
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import canonical_bytes, decode_line, encode_item
from dynamodb_backup.restore.fastwrite import (
    WireBatchWriter,
    batch_write_body,
    wire_item_from_client,
    wire_item_from_line,
)


@pytest.mark.parametrize("item", all_types_items(), ids=lambda i: i["pk"]["S"])
def test_wire_form_of_a_line_is_the_decoded_item(item):
    line = encode_item(item)
    wire = wire_item_from_line(line)
    assert canonical_bytes(wire) == canonical_bytes(decode_line(line))
    assert wire == wire_item_from_client(decode_line(line))


def test_binary_stays_base64_text_and_numbers_strings():
    wire = wire_item_from_line(b'{"k":{"s":"a"},"b":{"b":"AAE="},"n":{"n":"1.50"},"bs":{"bS":["AA=="]}}')
    assert wire == {"k": {"S": "a"}, "b": {"B": "AAE="}, "n": {"N": "1.50"}, "bs": {"BS": ["AA=="]}}


def test_type_keys_in_any_casing():
    wire = wire_item_from_line('{"k":{"S":"a"},"m":{"M":{"x":{"BOOL":true}}},"l":{"L":[{"nULL":true}]}}')
    assert wire == {"k": {"S": "a"}, "m": {"M": {"x": {"BOOL": True}}}, "l": {"L": [{"NULL": True}]}}


def test_hive_era_line_takes_the_plain_decoder():
    line = b'k\x03{"s":"a"}\x02b\x03{"b":"AAE="}'
    assert wire_item_from_line(line) == {"k": {"S": "a"}, "b": {"B": base64.b64encode(b"\x00\x01").decode()}}


@pytest.mark.parametrize("line", [b"[1]", b"{not json", b'{"k":{"x":"a"}}', b'{"k":{"s":"a","n":"1"}}',
                                  b'{"k":{"m":[]}}'])
def test_malformed_lines_raise_codec_error(line):
    with pytest.raises(CodecError):
        wire_item_from_line(line)


def test_body_is_the_batch_write_request():
    body = orjson.loads(batch_write_body("T", [{"k": {"S": "a"}}]))
    assert body == {"RequestItems": {"T": [{"PutRequest": {"Item": {"k": {"S": "a"}}}}]},
                    "ReturnConsumedCapacity": "TOTAL"}


class FakeClient:
    """Records the bodies the fast path would send (the hook is exercised in the integration test)."""

    def __init__(self, unprocessed_once=False):
        self.calls = []
        self.unprocessed_once = unprocessed_once
        self.meta = type("M", (), {"events": type("E", (), {"register": lambda *a, **k: None})()})()

    def batch_write_item(self, RequestItems, ReturnConsumedCapacity):
        from dynamodb_backup.restore import fastwrite

        body = getattr(fastwrite._pending, "body", None)
        items = orjson.loads(body)["RequestItems"] if body else RequestItems
        ((table, requests),) = items.items()
        self.calls.append(len(requests))
        if self.unprocessed_once and len(self.calls) == 1:
            return {"UnprocessedItems": {table: requests[:2]}, "ConsumedCapacity": [{"CapacityUnits": 1.0}]}
        return {"UnprocessedItems": {}, "ConsumedCapacity": [{"CapacityUnits": float(len(requests))}]}


def lines(n):
    return [orjson.dumps({"k": {"s": f"key{i}"}, "v": {"n": str(i)}}) for i in range(n)]


def test_writer_batches_25_and_retries_unprocessed():
    client = FakeClient(unprocessed_once=True)
    writer = WireBatchWriter(client, "T", ["k"], TokenBucket(1e9), sleep=lambda s: None)
    for i, line in enumerate(lines(60)):
        writer.put(line, f"f:{i + 1}")
    writer.flush()
    assert client.calls == [25, 2, 25, 10]
    assert writer.stats.items == 60
    assert writer.stats.unprocessed_retries == 1


def test_writer_flushes_before_a_repeated_key():
    client = FakeClient()
    writer = WireBatchWriter(client, "T", ["k"], TokenBucket(1e9), sleep=lambda s: None)
    for line in lines(3) + lines(1):
        writer.put(line, "f")
    writer.flush()
    assert client.calls == [3, 1]


def test_bad_line_goes_to_the_fallback_in_order():
    client = FakeClient()
    seen = []
    writer = WireBatchWriter(client, "T", ["k"], TokenBucket(1e9), fallback=seen.extend, sleep=lambda s: None)
    good = lines(3)
    for line in [good[0], b"{broken", good[1]]:
        writer.put(line, "f")
    writer.flush()
    assert seen == [(b"{broken", "f")]
    assert client.calls == [1, 1]  # the batch before the bad line was flushed first
