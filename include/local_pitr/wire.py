"""The DynamoDB JSON wire protocol as the stand-in speaks it: errors, answers, timestamps.

Errors follow the reference's section 0: HTTP 400 (500 for InternalServerError), body
``{"__type": "com.amazonaws.dynamodb.v20120810#<Code>", "message": ...}``. botocore only checks
``x-amz-crc32`` when the header is there, so every answer made here carries a correct one.
"""

from __future__ import annotations

import secrets
import time
import zlib
from datetime import UTC, datetime
from typing import Any

import orjson

ERROR_PREFIX = "com.amazonaws.dynamodb.v20120810#"
JSON_CONTENT_TYPE = "application/x-amz-json-1.0"


class ApiError(Exception):
    """An error answer: ``code`` becomes ``__type`` (after the prefix), ``message`` its text."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status


def validation_error(message: str) -> ApiError:
    return ApiError("ValidationException", message)


def constraint_error(value: object, member: str, constraint: str) -> ApiError:
    """AWS's wording for a member that fails a model constraint (enum, range, pattern)."""
    shown = "null" if value is None else f"'{value}'"
    return validation_error(
        f"1 validation error detected: Value {shown} at '{member}' failed to satisfy constraint: {constraint}"
    )


def request_id() -> str:
    """52 characters like DynamoDB's x-amzn-RequestId."""
    return secrets.token_hex(26).upper()


def answer(status: int, payload: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a JSON answer made by the stand-in itself."""
    body = orjson.dumps(payload)
    headers = [
        ("x-amzn-RequestId", request_id()),
        ("x-amz-crc32", str(zlib.crc32(body))),
        ("Content-Type", JSON_CONTENT_TYPE),
        ("Content-Length", str(len(body))),
    ]
    return status, headers, body


def error_answer(error: ApiError) -> tuple[int, list[tuple[str, str]], bytes]:
    return answer(error.status, {"__type": ERROR_PREFIX + error.code, "message": error.message})


# --------------------------------------------------------------------------- time

def now_us() -> int:
    """Wall clock in epoch microseconds (the journal's and the exports' time unit)."""
    return time.time_ns() // 1000


def epoch_seconds(us: int) -> float:
    """Microseconds as the JSON number botocore reads as a timestamp."""
    return us / 1_000_000


def whole_seconds_us(us: int) -> int:
    """``us`` truncated to a whole second: PITR's enable time is reported in whole seconds."""
    return us - us % 1_000_000


def ms_us(us: int) -> int:
    """``us`` truncated to milliseconds: export start, end and (omitted) export times have ms precision."""
    return us - us % 1000


def iso_ms(us: int) -> str:
    """``2020-11-11T21:33:52.834Z``: the manifests' time format (UTC, milliseconds, ``Z``)."""
    moment = datetime.fromtimestamp(us // 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{us % 1_000_000 // 1000:03d}Z"


def iso_seconds(us: int) -> str:
    """``2026-01-02T03:00:00Z``: how the incremental window errors name a time (Java ``Instant``)."""
    return datetime.fromtimestamp(us // 1_000_000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timestamp_us(value: object, member: str) -> int:
    """A request timestamp in microseconds: botocore sends epoch seconds (float with ms).

    ISO-8601 strings are accepted too, since botocore passes strings through unchanged.
    """
    if isinstance(value, bool):
        raise validation_error(f"Invalid timestamp for {member}: {value!r}")
    if isinstance(value, int | float):
        return round(float(value) * 1_000_000)
    if isinstance(value, str):
        try:
            return round(float(value) * 1_000_000)
        except ValueError:
            pass
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise validation_error(f"Invalid timestamp for {member}: {value!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return round(moment.timestamp() * 1_000_000)
    raise validation_error(f"Invalid timestamp for {member}: {value!r}")
