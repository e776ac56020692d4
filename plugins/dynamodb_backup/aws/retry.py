"""Retrying AWS calls on throttling, server errors and dropped connections: two layers.

The inner layer is one call's own attempts, as the client's ``retries`` configuration says
(``total_max_attempts``/``max_attempts`` and ``mode``): botocore does it for its calls, and
aws.wire's ``DynamoDBConnection.call`` does the same for its own (:class:`RetrySettings`).

The outer layer, :func:`call_with_retries`, keeps a long export or restore alive through a
sustained throttle instead of failing a segment: it runs the whole call again, after a jittered
wait, for at most :data:`OUTER_ROUNDS` rounds, and starts no round later than
:data:`SUSTAINED_THROTTLE_SECONDS` after the first. So throttling that never ends fails within
``SUSTAINED_THROTTLE_SECONDS`` plus one call's own attempts (:meth:`RetrySettings.worst_case_seconds`
bounds those for answers that come at once; a server that never answers adds each attempt's
read timeout). A client configured for one attempt (``total_max_attempts=1``, retries off) gets
no outer rounds either.

An expired signature (``InvalidSignatureException``, "Signature expired") is retried once: the
retry is signed again (botocore signs every attempt; aws.wire signs at the moment it sends).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from tenacity import (
    RetryCallState,
    Retrying,
    stop_before_delay,
    wait_random_exponential,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The outer layer's rounds of one call, and the seconds after its first try past which it starts none.
OUTER_ROUNDS = 12
SUSTAINED_THROTTLE_SECONDS = 120.0
#: The longest wait between two outer rounds (full jitter, doubling from 0.1 s).
MAX_OUTER_WAIT = 20.0
#: botocore's cap on one backoff, and its base per attempt (throttled, or any other retryable error).
MAX_BACKOFF = 20.0
THROTTLED_BASE, OTHER_BASE = 1.0, 0.025
THROTTLING_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException", "Throttling",
                              "RequestLimitExceeded", "SlowDown"})

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


def error_code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, MalformedResponseError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in RETRYABLE_CODES or int(status or 0) >= 500
    return isinstance(exc, (BotoConnectionError, HTTPClientError))


def is_expired_signature(exc: BaseException) -> bool:
    """AWS refused a request signed more than 5 minutes from its clock (signing it again mends it)."""
    if not isinstance(exc, ClientError) or error_code(exc) != "InvalidSignatureException":
        return False
    return "signature expired" in str(exc.response.get("Error", {}).get("Message", "")).lower()


def is_throttled(exc: BaseException) -> bool:
    return error_code(exc) in THROTTLING_CODES


@dataclass(frozen=True)
class RetrySettings:
    """One call's own attempts, as a botocore client's ``retries`` configuration gives them."""

    total_attempts: int
    mode: str = "standard"

    @classmethod
    def of(cls, client: Any) -> RetrySettings:
        """The client's settings; botocore's defaults for its mode where the configuration names none."""
        config = getattr(getattr(client, "meta", None), "config", None)
        retries = dict(getattr(config, "retries", None) or {})
        mode = str(retries.get("mode") or "standard")
        total = retries.get("total_max_attempts")
        if total is None and retries.get("max_attempts") is not None:  # botocore's spelling: retries after the first
            total = int(retries["max_attempts"]) + 1
        if total is None:
            try:
                service = client.meta.service_model.service_name
            except AttributeError:
                service = ""
            # botocore's defaults: standard/adaptive retries.standard._SERVICE_MAX_ATTEMPTS, legacy _retry.json.
            total = ({"dynamodb": 10}.get(service, 5) if mode == "legacy"
                     else {"dynamodb": 4}.get(service, 3))
        return cls(max(1, int(total)), mode)

    def backoff(self, exc: BaseException, attempt: int) -> float:
        """Seconds before attempt ``attempt + 1``: botocore's standard truncated exponential backoff, full jitter."""
        base = THROTTLED_BASE if is_throttled(exc) else OTHER_BASE
        return float(random.random() * min(base * 2 ** (attempt - 1), MAX_BACKOFF))

    def worst_case_seconds(self) -> float:
        """The most one call's backoffs can add up to (throttled every time)."""
        return float(sum(min(THROTTLED_BASE * 2 ** (n - 1), MAX_BACKOFF) for n in range(1, self.total_attempts)))


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("retrying after %s (attempt %d)", exc, state.attempt_number)


def call_with_retries(call: Callable[[], T], attempts: int = OUTER_ROUNDS, max_wait: float = MAX_OUTER_WAIT,
                      *, client: Any = None, deadline: float = SUSTAINED_THROTTLE_SECONDS,
                      sleep: Callable[[float], None] = time.sleep) -> T:
    """Run ``call``; on a retryable error wait with full jitter and run it again (the outer layer).

    ``client``: the botocore client ``call`` uses; one configured for a single attempt gets no
    outer rounds. An expired signature is retried once, whatever the rest.
    """
    if client is not None and RetrySettings.of(client).total_attempts == 1:
        attempts = 1
    expired_retried = False

    def should_retry(state: RetryCallState) -> bool:
        nonlocal expired_retried
        exc = state.outcome.exception() if state.outcome is not None else None
        if exc is None:
            return False
        if is_expired_signature(exc) and not expired_retried:
            expired_retried = True
            return True
        return is_retryable(exc)

    past_deadline = stop_before_delay(deadline)

    def should_stop(state: RetryCallState) -> bool:
        # The expired signature's one retry may be the round past ``attempts``.
        return state.attempt_number >= attempts + int(expired_retried) or past_deadline(state)

    retrying = Retrying(
        retry=should_retry,
        wait=wait_random_exponential(multiplier=0.1, max=max_wait),
        stop=should_stop,
        before_sleep=_log_retry,
        sleep=sleep,
        reraise=True,
    )
    return retrying(call)
