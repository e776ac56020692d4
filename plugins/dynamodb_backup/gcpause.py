"""Fewer cyclic garbage collections during the hot loops that make and free millions of containers.

A restore's validation, load and verification, and a table's digest, each make and free dozens of
small dicts and lists per item, all acyclic (reference counting frees them). Every collection of
the oldest generation nevertheless walked every object botocore and Airflow had loaded: 8% of a
load worker's CPU, and on wide items (hundreds of values each) a third of the validation's.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson


@contextmanager
def few_collections() -> Iterator[None]:
    """Keep the collector off the objects that exist before the loop, and run it less often; restored after."""
    thresholds = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(thresholds[0], 10_000), *thresholds[1:])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()


def loads_uncollected(data: bytes) -> Any:
    """``orjson.loads(data)`` with the cyclic collector off meanwhile (decoded JSON has no cycles).

    A Scan page is up to ~100k fresh containers, and the collector firing during their decode cost
    10x the decode itself (measured).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return orjson.loads(data)
    finally:
        if enabled:
            gc.enable()
