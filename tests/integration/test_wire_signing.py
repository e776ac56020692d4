"""aws.wire and the restore's writer meet what AWS's front door checks, and the test doubles users put in front.

* A batch paced to wait more than 5 minutes (of the door's clock, moved from inside the pacing
  wait, never slept) is signed after the wait, so the door refuses nothing.
* An expired signature is mended once: signed again and resent.
* Refreshable credentials (assumed roles, IRSA, SSO) that expire mid-restore: later requests
  carry the new key, counted per access key at the door.
* A botocore Stubber sees every write of a restore, with its real items, and nothing reaches
  the network.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.credentials import CredentialProvider, CredentialResolver, RefreshableCredentials
from botocore.stub import Stubber

from backup_folders import assert_holds_exactly, datapipeline_folder, dp_lines, gz, simple_items
from demo_data import all_types_items
from dynamodb_backup.aws.throttle import TokenBucket
from dynamodb_backup.aws.wire import DynamoDBConnection
from dynamodb_backup.formats.codec import encode_item
from dynamodb_backup.loading.fastwrite import WireBatchWriter
from dynamodb_backup.repository.inspection import inspect_folder
from dynamodb_backup.restore.steps import load_files
from faultproxy import DynamoDBFaultProxy
from faultproxy.base import Response
from faultproxy.strict import FrontDoor, MovableClock, Principal


def restored_items(count: int, large: bool = True) -> list[dict[str, Any]]:
    """Items of every type in turn (one in eight of 500 KB unless not ``large``): ``count`` in all, keys distinct."""
    kinds = [item for item in all_types_items() if large or item["pk"]["S"] != "large"]
    return [dict(kinds[n % len(kinds)], pk={"S": f"item-{n:05d}"}) for n in range(count)]


# --------------------------------------------------------------------------- a Stubber sees every write


def test_a_restore_through_a_stubbed_client_shows_the_stubber_every_write_and_sends_nothing(local_aws, s3_bucket,
                                                                                            table_name):
    s3 = local_aws.s3_client()
    items = simple_items(230)  # ten batches: 9 of 25, one of 5
    folder = datapipeline_folder(s3, s3_bucket, "dp/2024-02-01-00-00-00", {"d.gz": gz(dp_lines(items))})
    source = inspect_folder(s3, folder)
    with DynamoDBFaultProxy(local_aws.dynamodb_url) as proxy:  # the network: it counts what reaches it
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        stubber = Stubber(client)
        batches = [items[n:n + 25] for n in range(0, len(items), 25)]
        for batch in batches:  # in order, with the real items: the Stubber checks each call's parameters
            stubber.add_response(
                "batch_write_item",
                {"UnprocessedItems": {}, "ConsumedCapacity": [{"TableName": table_name, "CapacityUnits": 25.0}]},
                expected_params={"RequestItems": {table_name: [{"PutRequest": {"Item": item}} for item in batch]},
                                 "ReturnConsumedCapacity": "TOTAL"})
        assert DynamoDBConnection.for_client(client) is not None, "without the Stubber, aws.wire would be used"
        with stubber:
            try:
                result = load_files(client, s3, s3_bucket, source.files, table_name, ["pk"], rate=1e6,
                                    sleep=lambda _: None)
            finally:
                reached = proxy.counters["requests"]
            assert reached == 0, "a write went past the Stubber to the network"
            stubber.assert_no_pending_responses()  # every write reached the Stubber
            assert DynamoDBConnection.for_client(client) is None
    assert result.items == 230 and result.consumed_write_units == 25.0 * len(batches)


def test_user_hooks_see_every_write_with_its_real_items(local_aws, table_name):
    local_aws.create_table(table_name, range_key="sk", range_type="N")
    client = boto3.client("dynamodb", endpoint_url=local_aws.dynamodb_url, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    seen: list[str] = []
    sent: list[bytes] = []
    client.meta.events.register("before-parameter-build.dynamodb.BatchWriteItem",
                                lambda params, **_: seen.extend(r["PutRequest"]["Item"]["pk"]["S"]
                                                                for r in params["RequestItems"][table_name]))
    client.meta.events.register("before-send.dynamodb.BatchWriteItem", lambda request, **_: sent.append(request.body))
    items = restored_items(60, large=False)
    writer = WireBatchWriter(client, table_name, ["pk", "sk"], TokenBucket(1e9), sleep=lambda _: None,
                             pipelined=True, direct=DynamoDBConnection.for_client(client))
    assert writer.direct is None and writer.plain_calls
    for n, item in enumerate(items):
        writer.put(encode_item(item), f"f:{n + 1}")
    writer.flush()
    assert seen == [item["pk"]["S"] for item in items] and len(sent) == 3
    assert_holds_exactly(local_aws.dynamodb_client(), table_name, items)


# --------------------------------------------------------------------------- the strict front door


def server_url(local_aws: Any) -> str:
    """The DynamoDB server itself, before any door the session puts in front of it (each test here has its own)."""
    return str(getattr(local_aws.dynamodb, "server", local_aws.dynamodb).url)


def front_door(*principals: Principal) -> FrontDoor:
    """A door of the test's own: its clock is moved far, which the session's door must not see."""
    return FrontDoor(principals=list(principals) or [Principal("testing", "testing")], clock=MovableClock(),
                     account="123456789012", region="us-east-1")


def keys_at(door: FrontDoor) -> list[str]:
    """The access key of every request the door lets in, in order (counted at the door itself)."""
    admitted: list[str] = []
    admit = door.admit

    def counting(request: Any, *args: Any, **kwargs: Any) -> Any:
        answer = admit(request, *args, **kwargs)
        if not isinstance(answer, Response):
            credential = request.header("Authorization").split("Credential=", 1)[1]
            admitted.append(credential.split("/", 1)[0])
        return answer

    door.admit = counting
    return admitted


class DoorPacedBucket(TokenBucket):
    """A token bucket whose waits move the door's clock (and its own) instead of sleeping."""

    def __init__(self, rate: float, door: Any) -> None:
        self.door, self.now, self.waits = door, 0.0, []
        super().__init__(rate, clock=lambda: self.now, sleep=self._pass)

    def _pass(self, seconds: float) -> None:
        self.now += seconds
        self.door.clock.advance(seconds)
        self.waits.append(seconds)

    def wait(self) -> float:
        waited = super().wait()
        if waited:
            self.waits.append(-waited)  # a whole wait (the sum of its steps), marked apart from the steps
        return waited


def wire_writer(client: Any, table: str, bucket: TokenBucket, clock: Callable[[], datetime],
                keys: tuple[str, ...] = ("pk", "sk")) -> WireBatchWriter:
    """The restore's writer on aws.wire, signing by ``clock`` (the door's: the machine's clock is not moved)."""
    connection = DynamoDBConnection.for_client(client, clock=clock, sleep=lambda _: None)
    assert connection is not None
    return WireBatchWriter(client, table, list(keys), bucket, direct=connection, sleep=lambda _: None)


def test_a_batch_that_waits_more_than_5_minutes_for_its_pace_is_signed_after_the_wait(local_aws, table_name):
    local_aws.create_table(table_name, range_key="sk", range_type="N")
    door = front_door()
    items = restored_items(75)  # three batches: each waits for the one before it to be paid for
    with DynamoDBFaultProxy(server_url(local_aws), strict=door) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        bucket = DoorPacedBucket(0.05, door)  # 25 write units or more a batch: 500 s or more of waiting
        writer = wire_writer(client, table_name, bucket, door.clock)
        for n, item in enumerate(items):
            writer.put(encode_item(item), f"f:{n + 1}")
        writer.flush()
        writer.direct.close()
    whole_waits = [-w for w in bucket.waits if w < 0]
    assert len(whole_waits) == 2 and min(whole_waits) > 300, whole_waits
    assert door.counters["requests"] == 3 and door.refused() == 0, door.counters
    assert_holds_exactly(local_aws.dynamodb_client(), table_name, items)


def test_an_expired_signature_is_signed_again_and_resent_once(local_aws, table_name):
    local_aws.create_table(table_name, range_key="sk", range_type="N")
    door = front_door()
    with DynamoDBFaultProxy(server_url(local_aws), strict=door) as proxy:
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        stale = iter([timedelta(seconds=-400)])  # the first signature is made 400 s before the door's now

        def clock() -> datetime:
            return door.clock() + next(stale, timedelta(0))

        connection = DynamoDBConnection.for_client(client, clock=clock, sleep=lambda _: None)
        assert connection is not None
        body = b'{"RequestItems":{"%s":[{"PutRequest":{"Item":{"pk":{"S":"a"},"sk":{"N":"1"}}}}]}}' % (
            table_name.encode())
        assert connection.call("BatchWriteItem", body)["UnprocessedItems"] == {}
    assert door.refused("InvalidSignatureException") == 1 and door.counters["requests"] == 2, door.counters


class Refreshing(CredentialProvider):
    """Temporary credentials as an assumed role gives them: each refresh brings the next key."""

    METHOD = "assume-role"

    def __init__(self, keys: list[tuple[str, str, str, datetime]], now: Callable[[], datetime]) -> None:
        self.keys, self.refreshes = iter(keys), 0
        access_key, secret, token, expires = next(self.keys)
        # botocore decides when to refresh (15 minutes before the expiry) by this clock: the door's.
        self.credentials = RefreshableCredentials(access_key, secret, token, expires, self._refresh, self.METHOD,
                                                  time_fetcher=now)

    def _next(self) -> dict[str, str]:
        access_key, secret, token, expires = next(self.keys)
        return {"access_key": access_key, "secret_key": secret, "token": token, "expiry_time": expires.isoformat()}

    def _refresh(self) -> dict[str, str]:
        self.refreshes += 1
        return self._next()

    def load(self) -> RefreshableCredentials:
        return self.credentials


@pytest.fixture
def refreshing_door() -> Iterator[tuple[FrontDoor, Refreshing]]:
    door = front_door(Principal("testing", "testing"))
    start = door.clock()
    first = ("ASIAFIRSTKEY", "first-secret", "first-token", start + timedelta(minutes=20))
    second = ("ASIASECONDKEY", "second-secret", "second-token", start + timedelta(hours=3))
    for key, secret, token, expires in (first, second):
        door.add_principal(Principal(key, secret, session_token=token, expires=expires))
    yield door, Refreshing([first, second], door.clock)


def test_credentials_that_expire_mid_restore_are_refreshed_and_later_requests_carry_the_new_key(
        local_aws, table_name, refreshing_door):
    local_aws.create_table(table_name)
    door, provider = refreshing_door
    admitted = keys_at(door)
    items = simple_items(1000)  # 40 batches of 25 write units, each paid for in 60 s of the door's clock: 40 minutes
    with DynamoDBFaultProxy(server_url(local_aws), strict=door) as proxy:
        session = botocore.session.Session()
        session.register_component("credential_provider", CredentialResolver(providers=[provider]))
        client = boto3.session.Session(botocore_session=session, region_name="us-east-1").client(
            "dynamodb", endpoint_url=proxy.url)
        bucket = DoorPacedBucket(25 / 60, door)
        writer = wire_writer(client, table_name, bucket, door.clock, keys=("pk",))
        for n, item in enumerate(items):
            writer.put(encode_item(item), f"f:{n + 1}")
        writer.flush()
        writer.direct.close()
    assert sum(-w for w in bucket.waits if w < 0) > 30 * 60, "the restore outlived the first key's 20 minutes"
    per_key = Counter(admitted)
    assert provider.refreshes == 1 and per_key["ASIAFIRSTKEY"] > 0 and per_key["ASIASECONDKEY"] > 0, per_key
    switched = admitted.index("ASIASECONDKEY")
    assert set(admitted[switched:]) == {"ASIASECONDKEY"}, "a request after the refresh carried the old key"
    assert door.refused() == 0, door.counters
    assert_holds_exactly(local_aws.dynamodb_client(), table_name, items)


@contextmanager
def botocore_on_the_doors_clock(door: FrontDoor, lags: list[timedelta]) -> Iterator[None]:
    """botocore signs by the door's clock (each signature the next of ``lags`` behind it, then on time)."""
    import botocore.auth

    pending = iter(lags)

    def now(remove_tzinfo: bool = True) -> datetime:
        moment = door.clock() - next(pending, timedelta(0))
        return moment.replace(tzinfo=None) if remove_tzinfo else moment

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(botocore.auth, "get_current_datetime", now)
        yield


def test_the_botocore_writer_paced_past_5_minutes_signs_after_the_wait_too(local_aws, table_name):
    local_aws.create_table(table_name)
    door = front_door()
    items = simple_items(75)  # 25 write units a batch: 500 s of waiting
    with DynamoDBFaultProxy(server_url(local_aws), strict=door) as proxy, botocore_on_the_doors_clock(door, []):
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        bucket = DoorPacedBucket(0.05, door)
        writer = WireBatchWriter(client, table_name, ["pk"], bucket, sleep=lambda _: None, pipelined=True)
        for n, item in enumerate(items):
            writer.put(encode_item(item), f"f:{n + 1}")
        writer.flush()
    assert min(-w for w in bucket.waits if w < 0) > 300
    assert door.counters["requests"] == 3 and door.refused() == 0, door.counters
    assert_holds_exactly(local_aws.dynamodb_client(), table_name, items)


def test_an_expired_signature_on_the_botocore_path_is_signed_again_once(local_aws, table_name):
    local_aws.create_table(table_name, range_key="sk", range_type="N")
    door = front_door()
    items = restored_items(10, large=False)
    stale = [timedelta(seconds=400)]  # the first signature is 400 s old on arrival
    with DynamoDBFaultProxy(server_url(local_aws), strict=door) as proxy, botocore_on_the_doors_clock(door, stale):
        client = boto3.client("dynamodb", endpoint_url=proxy.url, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        writer = WireBatchWriter(client, table_name, ["pk", "sk"], TokenBucket(1e9), sleep=lambda _: None)
        for n, item in enumerate(items):
            writer.put(encode_item(item), f"f:{n + 1}")
        writer.flush()
    assert door.refused("InvalidSignatureException") == 1 and door.counters["requests"] == 2, door.counters
    assert writer.stats.items == 10
