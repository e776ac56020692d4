"""Scan's page size: small items capped near 256 KB a page (memory), large ones a full 1 MB page (calls)."""

from __future__ import annotations

from dynamodb_backup.backup.scan import PageSizer, ScanPage


def learnt(item_bytes: int) -> PageSizer:
    sizer = PageSizer()
    units = item_bytes / PageSizer.BYTES_PER_UNIT
    sizer.learn(ScanPage(items=[], consumed=units * 100, scanned=100, last_key=None))
    return sizer


def test_small_items_are_capped_near_256_kb_a_page():
    assert learnt(400).limit(1e9) == 655  # 256 KB / 400 B
    assert learnt(4_000).limit(1e9) == 65


def test_large_items_get_full_pages_so_each_call_carries_a_megabyte():
    # 100 KB items: 11 asked for, DynamoDB stops the page at 1 MB (about 10); it was 2 a page.
    assert learnt(100 * 1024).limit(1e9) == 11
    assert learnt(400 * 1024).limit(1e9) == 3
    assert learnt(16 * 1024).limit(1e9) == 65


def test_a_slow_budget_still_shrinks_pages_to_about_a_second():
    assert learnt(100 * 1024).limit(50.0) == 4  # 50 units/s at 12.5 units an item
