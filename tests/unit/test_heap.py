"""backup/heap.py fixes glibc malloc's mmap threshold, trim threshold and top pad, once per process."""

from __future__ import annotations

import ctypes

from dynamodb_backup.backup import heap


class FakeLibc:
    def __init__(self) -> None:
        self.calls: list[tuple[int, int]] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_the_three_settings_are_made_once(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(heap.ctypes.util, "find_library", lambda name: "libc.so.6")
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(heap, "_done", None)
    assert heap.return_large_buffers_to_the_os() is True
    assert heap.return_large_buffers_to_the_os() is True  # the second call changes nothing
    assert libc.calls == [(-3, 128 * 1024), (-1, 16 * 1024 * 1024), (-2, 4 * 1024 * 1024)]


def test_a_refused_setting_is_reported(monkeypatch):
    libc = FakeLibc()
    libc.mallopt = lambda param, value: 0 if param == -1 else 1  # type: ignore[method-assign]
    monkeypatch.setattr(heap.ctypes.util, "find_library", lambda name: "libc.so.6")
    monkeypatch.setattr(heap.ctypes, "CDLL", lambda name: libc)
    monkeypatch.setattr(heap, "_done", None)
    assert heap.return_large_buffers_to_the_os() is False


def test_without_glibc_nothing_is_done(monkeypatch):
    monkeypatch.setattr(heap.ctypes.util, "find_library", lambda name: None)
    monkeypatch.setattr(heap, "_done", None)
    assert heap.return_large_buffers_to_the_os() is False
    assert isinstance(ctypes.CDLL, type)
