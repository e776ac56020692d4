"""The token bucket keeps consumed units within budget, on a simulated clock."""

import random

import pytest

from dynamodb_backup.aws.throttle import CapacityWatcher, SimulatedClock, TokenBucket


def run_calls(bucket: TokenBucket, clock: SimulatedClock, seconds: float, cost) -> list[tuple[float, float]]:
    """Call as fast as the bucket allows for ``seconds``; return (time, units) per call."""
    calls = []
    while clock.now < seconds:
        bucket.wait()
        units = cost()
        calls.append((clock.now, units))
        bucket.charge(units)
        clock.now += 0.002  # the call itself takes a little time
    return calls


@pytest.mark.parametrize("rate", [1.0, 25.0, 400.0, 5000.0])
def test_consumed_units_stay_within_rate_plus_burst(rate):
    clock = SimulatedClock()
    bucket = TokenBucket(rate=rate, burst_seconds=5.0, clock=clock, sleep=clock.sleep)
    rng = random.Random(1)
    max_cost = 128.0
    calls = run_calls(bucket, clock, 300.0, lambda: rng.uniform(0.5, max_cost))
    total = sum(units for _, units in calls)
    # Over the whole run: at most rate x T, plus the opening second, plus one call in debt.
    assert total <= rate * 300.0 + rate + max_cost
    # And the limiter does not starve: at least 90% of the budget is used.
    assert total >= 0.9 * rate * 300.0
    # Over every 60 s window: within rate x 60 plus the burst and one call.
    for start in range(0, 240, 10):
        window = sum(u for t, u in calls if start <= t < start + 60)
        assert window <= rate * 60 + rate * 5.0 + max_cost


def test_idle_time_banks_at_most_the_burst():
    clock = SimulatedClock()
    bucket = TokenBucket(rate=10.0, burst_seconds=5.0, clock=clock, sleep=clock.sleep)
    clock.now = 1000.0  # a long idle period
    spent = 0.0
    while True:
        if bucket.wait() > 0:
            break
        bucket.charge(1.0)
        spent += 1.0
    assert spent <= 50.0 + 1.0


def test_set_rate_retunes_pacing():
    clock = SimulatedClock()
    bucket = TokenBucket(rate=10.0, clock=clock, sleep=clock.sleep)
    run_calls(bucket, clock, 10.0, lambda: 1.0)
    charged_before = bucket.charged
    bucket.set_rate(100.0)
    run_calls(bucket, clock, 20.0, lambda: 1.0)
    assert bucket.charged - charged_before == pytest.approx(1000.0, rel=0.1)


def test_capacity_watcher_polls_once_a_minute():
    clock = SimulatedClock()
    bucket = TokenBucket(rate=10.0, clock=clock, sleep=clock.sleep)
    reads = []

    def read_rate() -> float:
        reads.append(clock.now)
        return 20.0

    watcher = CapacityWatcher(bucket, read_rate, every_seconds=60.0, clock=clock)
    for _ in range(130):
        watcher.refresh_if_due()
        clock.now += 1.0
    assert reads == [60.0, 120.0]
    assert bucket.rate == 20.0


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        TokenBucket(rate=0)
