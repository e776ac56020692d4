"""The restore fast path's pure parts: line -> wire form, and the request body."""

from __future__ import annotations

import base64

import orjson
import pytest

from demo_data import all_types_items
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.errors import CodecError
from dynamodb_backup.formats.codec import canonical_bytes, decode_line, encode_item
from dynamodb_backup.formats.codec.wireform import wire_item_from_client, wire_item_from_line
from dynamodb_backup.loading.fastwrite import WireBatchWriter, batch_write_body


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
        from dynamodb_backup.loading import fastwrite

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


class GatedClient(FakeClient):
    """A client whose calls block until the test lets them through, recording what was in flight."""

    def __init__(self, fail_on=None):
        super().__init__()
        import threading

        self.gate = threading.Semaphore(0)
        self.started = threading.Semaphore(0)
        self.in_flight = 0
        self.most_in_flight = 0
        self.keys = []
        self.fail_on = fail_on

    def batch_write_item(self, RequestItems, ReturnConsumedCapacity):
        from dynamodb_backup.loading import fastwrite

        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.started.release()
        self.gate.acquire()
        self.in_flight -= 1
        body = orjson.loads(fastwrite._pending.body)["RequestItems"]["T"]
        self.keys += [r["PutRequest"]["Item"]["k"]["S"] for r in body]
        if self.fail_on is not None and len(self.calls) == self.fail_on:
            self.calls.append(len(body))
            raise RuntimeError("the batch in flight failed")
        return super().batch_write_item(RequestItems, ReturnConsumedCapacity)


def test_pipelined_writer_builds_the_next_batch_while_one_is_in_flight_and_keeps_the_order():
    client = GatedClient()
    writer = WireBatchWriter(client, "T", ["k"], TokenBucket(1e9), sleep=lambda s: None, pipelined=True)
    data = lines(60)
    for line in data[:26]:  # the 26th line sends the first batch and is kept for the second
        writer.put(line, "f")
    assert client.started.acquire(timeout=30), "the first batch was sent"
    for line in data[26:50]:  # put() goes on while batch 1 is in flight: 24 lines, no call needed
        writer.put(line, "f")
    assert client.calls == [] and writer.stats.items == 0, "batch 1 is still in flight, nothing returned yet"
    for _ in range(3):
        client.gate.release()
    for line in data[50:]:
        writer.put(line, "f")
    writer.flush()
    assert client.calls == [25, 25, 10] and writer.stats.items == 60
    assert client.keys == [f"key{i}" for i in range(60)], "written in the order put"
    assert client.most_in_flight == 1, "never more than one batch in flight"


def test_pipelined_writer_raises_the_error_of_the_batch_in_flight_and_sends_nothing_after_it():
    client = GatedClient(fail_on=0)
    writer = WireBatchWriter(client, "T", ["k"], TokenBucket(1e9), sleep=lambda s: None, pipelined=True)
    for _ in range(3):
        client.gate.release()
    with pytest.raises(RuntimeError, match="in flight failed"):
        for line in lines(60):
            writer.put(line, "f")
        writer.flush()
    assert client.calls == [25], "the failed batch was the only call"


class RecordingConnection:
    """aws.wire's interface, recording when each batch is built, signed (send signs), and answered."""

    def __init__(self, events, answers=None):
        self.events, self.answers, self.sent = events, list(answers or []), 0

    def prepare(self, operation, body):
        n = len([e for e in self.events if e.startswith("build")])
        self.events.append(f"build {n}")
        return n

    def send(self, call):
        self.events.append(f"sign+send {call}")

    def receive(self):
        self.events.append("answer")
        answer = self.answers.pop(0) if self.answers else None
        if isinstance(answer, Exception):
            raise answer
        return {"UnprocessedItems": {}, "ConsumedCapacity": [{"CapacityUnits": 25.0}]}

    def call(self, operation, body):
        self.events.append("call")
        return {"UnprocessedItems": {}, "ConsumedCapacity": [{"CapacityUnits": 25.0}]}


class RecordingBucket(TokenBucket):
    def __init__(self, events):
        self.events = events
        super().__init__(1e9)

    def wait(self):
        self.events.append("pace")
        return super().wait()


def test_the_overlapped_writer_builds_a_batch_early_but_signs_it_after_the_answer_before_and_the_pacing_wait():
    events = []
    writer = WireBatchWriter(FakeClient(), "T", ["k"], RecordingBucket(events), sleep=lambda s: None,
                             direct=RecordingConnection(events))
    for i, line in enumerate(lines(75)):
        writer.put(line, f"f:{i + 1}")
    writer.flush()
    assert events == ["build 0", "pace", "sign+send 0",
                      "build 1", "answer", "pace", "sign+send 1",
                      "build 2", "answer", "pace", "sign+send 2",
                      "answer"]
    assert writer.stats.items == 75


def expired_signature():
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "InvalidSignatureException",
                                  "Message": "Signature expired: 20260101T000000Z is now earlier than "
                                             "20260101T000100Z (20260101T000600Z - 5 min.)"}}, "BatchWriteItem")


def throttled():
    from botocore.exceptions import ClientError

    return ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"},
                        "ResponseMetadata": {"HTTPStatusCode": 400}}, "BatchWriteItem")


def failing(*errors):
    """A call that raises ``errors`` in turn, then answers; ``calls`` counts its tries."""
    left = list(errors)

    def call():
        call.calls += 1
        if left:
            raise left.pop(0)
        return "answer"

    call.calls = 0
    return call


def test_an_expired_signature_is_retried_once_by_the_outer_layer():
    from dynamodb_backup.aws.retry import call_with_retries, is_expired_signature

    assert is_expired_signature(expired_signature()) and not is_expired_signature(throttled())
    once = failing(expired_signature())
    assert call_with_retries(once, sleep=lambda s: None) == "answer" and once.calls == 2
    twice = failing(expired_signature(), expired_signature())
    with pytest.raises(Exception, match="Signature expired"):
        call_with_retries(twice, sleep=lambda s: None)
    assert twice.calls == 2


class ConfiguredClient:
    def __init__(self, retries):
        self.meta = type("M", (), {"config": type("C", (), {"retries": retries})(),
                                   "service_model": type("S", (), {"service_name": "dynamodb"})()})()


def test_the_outer_layer_honours_a_client_configured_for_one_attempt_and_is_bounded_otherwise():
    from dynamodb_backup.aws.retry import OUTER_ROUNDS, RetrySettings, call_with_retries

    assert RetrySettings.of(ConfiguredClient({"mode": "standard"})).total_attempts == 4  # botocore's, for DynamoDB
    assert RetrySettings.of(ConfiguredClient({"mode": "legacy"})).total_attempts == 10
    assert RetrySettings.of(ConfiguredClient({"mode": "standard", "total_max_attempts": 7})).total_attempts == 7
    off = failing(*[throttled()] * 50)
    with pytest.raises(Exception, match="ThrottlingException"):
        call_with_retries(off, client=ConfiguredClient({"mode": "standard", "total_max_attempts": 1}),
                          sleep=lambda s: None)
    assert off.calls == 1
    forever = failing(*[throttled()] * 50)
    with pytest.raises(Exception, match="ThrottlingException"):
        call_with_retries(forever, client=ConfiguredClient({"mode": "standard"}), sleep=lambda s: None)
    assert forever.calls == OUTER_ROUNDS
    past_deadline = failing(*[throttled()] * 50)
    with pytest.raises(Exception, match="ThrottlingException"):
        call_with_retries(past_deadline, deadline=0.0, sleep=lambda s: None)
    assert past_deadline.calls == 1


def test_one_calls_backoff_is_botocores_and_its_worst_case_is_stated():
    from dynamodb_backup.aws.retry import RetrySettings

    settings = RetrySettings(6)
    assert all(0 <= settings.backoff(throttled(), n) <= min(2 ** (n - 1), 20) for n in range(1, 6) for _ in range(50))
    assert settings.worst_case_seconds() == 1 + 2 + 4 + 8 + 16


def dropped():
    from botocore.exceptions import ConnectionClosedError

    return ConnectionClosedError(endpoint_url="http://127.0.0.1:9/")


@pytest.mark.parametrize("error", [throttled, dropped], ids=["throttled", "dropped"])
def test_the_overlapped_writer_sends_a_failed_batch_again_only_if_the_clients_retries_allow(error):
    writes = lines(25)
    events = []
    retried = WireBatchWriter(ConfiguredClient({"mode": "standard"}), "T", ["k"], TokenBucket(1e9),
                              sleep=lambda s: None, direct=RecordingConnection(events, answers=[error()]))
    for line in writes:
        retried.put(line, "f")
    retried.flush()
    assert events.count("call") == 1 and retried.stats.items == 25, events  # sent again, round trip by round trip

    events = []
    off = WireBatchWriter(ConfiguredClient({"mode": "standard", "total_max_attempts": 1}), "T", ["k"],
                          TokenBucket(1e9), sleep=lambda s: None, direct=RecordingConnection(events, answers=[error()]))
    with pytest.raises(type(error())):
        for line in writes:
            off.put(line, "f")
        off.flush()
    assert "call" not in events and off.stats.items == 0, events  # retries off: the client said so
