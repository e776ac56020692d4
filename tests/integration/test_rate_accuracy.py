"""Consumed read units per second of an export, seen by the capacity-enforcing proxy, against ratio x RCU."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from faultproxy.rate_accuracy import measure

RATIOS = (0.25, 0.5, 1.0)


@pytest.mark.parametrize("ratio", RATIOS)
def test_simulated_minute_keeps_to_the_ratio(local_aws, ratio):
    result = measure(ratio, dynamodb_url=local_aws.dynamodb_url, s3_url=local_aws.s3_url, seconds=60)
    print(json.dumps(result))
    assert result["seconds"] >= 60
    assert 0.5 <= result["accuracy"] <= 1.1, result
    assert result["throttled"] == 0, "an export at or below capacity must not be throttled"


@pytest.mark.slow
def test_real_minute_keeps_to_the_ratio(local_aws):
    """Real time: the three ratios run side by side (one table each), about 70 s in all."""
    with ThreadPoolExecutor(len(RATIOS)) as pool:
        results = list(pool.map(lambda r: measure(r, dynamodb_url=local_aws.dynamodb_url,
                                                  s3_url=local_aws.s3_url, seconds=60, simulated=False),
                                 RATIOS))
    for result in results:
        print(json.dumps(result))
        assert result["seconds"] >= 55
        assert 0.5 <= result["accuracy"] <= 1.1, result
