"""prefetched(): the next Scan page is fetched while the caller works on the current one."""

from __future__ import annotations

import threading
import time

import pytest

from dynamodb_backup.backup.scan import prefetched


def test_the_next_page_is_fetched_while_the_caller_works_and_no_more():
    fetched: list[int] = []
    caller_busy = threading.Event()
    second_fetched = threading.Event()

    def pages():
        for i in range(4):
            fetched.append(i)
            if i == 1:
                second_fetched.set()
            yield i

    it = prefetched(pages())
    assert next(it) == 0
    caller_busy.set()  # the caller now works on page 0 ...
    assert second_fetched.wait(30), "... while page 1 is fetched on the thread"
    time.sleep(0.3)
    assert fetched == [0, 1], "one page ahead, never further"
    assert list(it) == [1, 2, 3]
    assert fetched == [0, 1, 2, 3]


def test_an_error_comes_after_the_pages_before_it():
    def pages():
        yield "a"
        yield "b"
        raise RuntimeError("scan failed after b")

    it = prefetched(pages())
    assert next(it) == "a" and next(it) == "b"
    with pytest.raises(RuntimeError, match="after b"):
        next(it)


def test_a_caller_that_stops_early_stops_the_thread():
    made: list[int] = []

    def pages():
        for i in range(1000):
            made.append(i)
            yield i

    before = set(threading.enumerate())
    it = prefetched(pages())
    assert next(it) == 0
    (thread,) = [t for t in set(threading.enumerate()) - before if t.name == "scan-prefetch"]
    it.close()
    thread.join(timeout=30)  # the event: the thread ends (it polls the stop flag every 0.2 s)
    assert not thread.is_alive(), "the fetching thread stopped"
    assert len(made) <= 2, made
