"""Incremental exports: the window rules (reference 2.4) and the change lines (reference 2.3).

One line per primary key written inside [from, to), compacted to the net change: NewImage is
the item at the end of the window, OldImage the item before it, Metadata.WriteTimestampMicros
the last write inside the window (a typed N string). A key inserted and deleted inside the
window writes nothing. Baseline images (stamped just before PITR's enable time) are never
inside a window, since a window cannot start before the enable time.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from local_pitr.items import KeySchema, item_size
from local_pitr.wire import ApiError, constraint_error, iso_seconds, timestamp_us, validation_error

VIEW_TYPES = ("NEW_AND_OLD_IMAGES", "NEW_IMAGE")
DEFAULT_VIEW = "NEW_AND_OLD_IMAGES"
MAX_WINDOW_US = 24 * 3600 * 1_000_000
# Billed per export even when nothing changed [reference 6].
MIN_BILLED_BYTES = 10_000_000


@dataclass(frozen=True)
class Window:
    from_us: int
    to_us: int
    view: str


@dataclass(frozen=True)
class RequestedWindow:
    """The specification as sent: ExportToTime may be left out ("now")."""

    from_us: int
    to_us: int | None
    view: str


def parse_specification(spec: object) -> RequestedWindow:
    if not isinstance(spec, dict):
        raise validation_error("Invalid Request: ExportFromTime must be provided in IncrementalExportSpecification")
    view = spec.get("ExportViewType", DEFAULT_VIEW)
    if view not in VIEW_TYPES:
        raise constraint_error(view, "incrementalExportSpecification.exportViewType",
                               "Member must satisfy enum value set: [NEW_AND_OLD_IMAGES, NEW_IMAGE]")
    if spec.get("ExportFromTime") is None:
        raise validation_error("Invalid Request: ExportFromTime must be provided in IncrementalExportSpecification")
    from_us = timestamp_us(spec["ExportFromTime"], "ExportFromTime")
    to_raw = spec.get("ExportToTime")
    to_us = None if to_raw is None else timestamp_us(to_raw, "ExportToTime")
    return RequestedWindow(from_us, to_us, str(view))


def check_window(requested: RequestedWindow, earliest_us: int | None, now: int, min_window_us: int) -> Window:
    """The window, or InvalidExportTimeException with AWS's message for the first rule it breaks."""
    if earliest_us is None:
        raise ApiError("InvalidExportTimeException", "Incremental export start time outside PITR window")
    to_us = now if requested.to_us is None else requested.to_us
    if requested.from_us < earliest_us or requested.from_us > to_us:
        raise ApiError("InvalidExportTimeException",
                       f"Incremental export period from time cannot be less than the table creation time : "
                       f"{iso_seconds(earliest_us)}")
    if to_us > now:
        raise ApiError("InvalidExportTimeException",
                       "Incremental export period to time cannot be greater than the current time : "
                       f"{iso_seconds(now)}")
    if to_us - requested.from_us < min_window_us:
        raise ApiError("InvalidExportTimeException",
                       f"Difference between export period from time and export period to time is less than "
                       f"{_duration(min_window_us)}")
    if to_us - requested.from_us > MAX_WINDOW_US:
        raise ApiError("InvalidExportTimeException",  # AWS's wording for this case is unconfirmed
                       "Difference between export period from time and export period to time is greater than 24 hours")
    return Window(requested.from_us, to_us, requested.view)


def _duration(us: int) -> str:
    seconds = us // 1_000_000
    return f"{seconds // 60} minutes" if seconds % 60 == 0 else f"{seconds} seconds"


@dataclass
class Change:
    key: bytes
    line: bytes


@dataclass
class ChangeTally:
    """Bytes of journaled images read for the window (what an incremental export bills)."""

    processed_bytes: int = 0


def changes(history: Iterable[tuple[bytes, int, bytes | None]], window: Window, keys: KeySchema,
            tally: ChangeTally) -> Iterator[Change]:
    """Change lines from the journal's rows (ordered by key, then time, all before ``to``)."""
    current: bytes | None = None
    before: bytes | None = None
    after: bytes | None = None
    last_write: int | None = None
    for key, ts_us, image in history:
        if key != current:
            if current is not None and last_write is not None:
                yield from _line(current, before, after, last_write, window.view, keys)
            current, before, after, last_write = key, None, None, None
        if ts_us < window.from_us:
            before = image
        else:
            after = image
            last_write = ts_us
            if image is not None:
                tally.processed_bytes += item_size(orjson.loads(image))
    if current is not None and last_write is not None:
        yield from _line(current, before, after, last_write, window.view, keys)


def _line(key: bytes, before: bytes | None, after: bytes | None, last_write: int, view: str,
          keys: KeySchema) -> Iterator[Change]:
    if before is None and after is None:
        return  # inserted and deleted inside the window
    parts = [b'{"Metadata":{"WriteTimestampMicros":{"N":"', str(last_write).encode(), b'"}},"Keys":',
             orjson.dumps(keys.key_from_bytes(key))]
    if after is not None:
        parts += [b',"NewImage":', after]
    if before is not None and view == "NEW_AND_OLD_IMAGES":
        parts += [b',"OldImage":', before]
    parts.append(b"}\n")
    yield Change(key, b"".join(parts))


def billed_bytes(tally: ChangeTally) -> int:
    return max(MIN_BILLED_BYTES, tally.processed_bytes)


def echo(window: Window) -> dict[str, Any]:
    """The IncrementalExportSpecification as DescribeExport answers it (times resolved)."""
    return {"ExportFromTime": window.from_us / 1_000_000, "ExportToTime": window.to_us / 1_000_000,
            "ExportViewType": window.view}
