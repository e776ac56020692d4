"""A load, a validation or a digest keeps the cyclic collector off what existed before, and restores it after."""

from __future__ import annotations

import contextlib
import gc

import pytest

from dynamodb_backup.gcpause import few_collections


@pytest.mark.parametrize("fails", [False, True])
def test_the_collector_is_as_it_was_afterwards(fails):
    before = gc.get_threshold()
    with contextlib.suppress(RuntimeError), few_collections():
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] >= 10_000
        if fails:
            raise RuntimeError("a load failed")
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0

