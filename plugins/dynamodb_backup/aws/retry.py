"""Retrying AWS calls on throttling, server errors and dropped connections.

botocore retries a few times on its own; this is the outer layer that keeps a
long export alive through a sustained throttle instead of failing the segment.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "Throttling",
        "RequestLimitExceeded",
        "InternalServerError",
        "InternalFailure",
        "ServiceUnavailable",
        "SlowDown",
        "RequestTimeout",
        "TransactionInProgressException",
    }
)


class MalformedResponseError(Exception):
    """A 200 answer that is not what the operation returns (cut short, or another call's body).

    Real DynamoDB never sends one, but a proxy or a broken connection can; trusting it could
    end a segment early and lose items silently, so it is retried like a dropped connection.
    """


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, MalformedResponseError):
        return True
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return code in RETRYABLE_CODES or int(status or 0) >= 500
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying after %s (attempt %d)", exc, state.attempt_number)


def call_with_retries(call: Callable[[], T], attempts: int = 12, max_wait: float = 20.0) -> T:
    """Run ``call``; on a retryable error wait with full jitter and try again."""
    retrying = Retrying(
        retry=retry_if_exception(is_retryable),
        wait=wait_random_exponential(multiplier=0.1, max=max_wait),
        stop=stop_after_attempt(attempts),
        before_sleep=_log_retry,
        reraise=True,
    )
    return retrying(call)
