"""boto3 clients for the command line (Airflow builds its own through the AWS hook).

Endpoints come from the standard variables (AWS_ENDPOINT_URL_DYNAMODB,
AWS_ENDPOINT_URL_S3, ...) unless given explicitly.

Two things make their failures short and clear (``aws.mistakes`` words them):

* ``annotate_client``: an error AWS answers carries the call's table, bucket, key and region;
* first contact fails fast: until an endpoint has answered once in this process, a refused
  connection, a connect timeout or a read timeout from it is not retried (neither by botocore nor
  by ``aws.retry``). A wrong endpoint fails at once (refused) or within ``CONNECT_TIMEOUT`` (no
  answer to the connection) or ``CONNECT_TIMEOUT + READ_TIMEOUT`` (accepted, never answered),
  instead of a minute of retries. Once the endpoint has answered, errors get the usual retries.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from dynamodb_backup.aws.mistakes import CALL_KEY, EndpointUnreachableError, call_facts, connection_reason

CONNECT_TIMEOUT = 10
READ_TIMEOUT = 60
CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=32,
    connect_timeout=CONNECT_TIMEOUT,
    read_timeout=READ_TIMEOUT,
)


# Sessions are shared: a session keeps the service models it has parsed (a new session parses them
# again, about 0.1 s a client), and worker processes forked from here inherit them. A session also
# keeps the credentials and region it resolved, so there is one per region and per AWS_* setting
# they come from. boto3 sessions are not thread-safe: clients are made under a lock.
_ENVIRONMENT = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
_sessions: dict[tuple[str | None, ...], boto3.session.Session] = {}
_sessions_lock = threading.Lock()


def client(service: Any, endpoint_url: str | None = None, region: str | None = None) -> Any:
    key = (region, *(os.environ.get(name) for name in _ENVIRONMENT))
    with _sessions_lock:
        session = _sessions.get(key)
        if session is None:
            session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
            _sessions[key] = session
        made = session.client(service, endpoint_url=endpoint_url, config=CLIENT_CONFIG)
    annotate_client(made)
    made.meta.events.register_first("needs-retry", _first_contact_fails_fast, unique_id="dynamodb-backup-first-contact")
    return made


def annotate_client(made: Any) -> Any:
    """Make ``made``'s ClientErrors carry the call's table, bucket, key and region (``aws.mistakes.CALL_KEY``)."""
    service = made.meta.service_model.service_name
    events = made.meta.events

    def remember(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        context[CALL_KEY] = call_facts(service, context.get("client_region"), params)

    def attach(parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        if isinstance(parsed, dict) and "Error" in parsed and CALL_KEY in context:
            parsed[CALL_KEY] = context[CALL_KEY]

    events.register("before-parameter-build", remember, unique_id="dynamodb-backup-remember-call")
    events.register("after-call", attach, unique_id="dynamodb-backup-attach-call")
    return made


#: Endpoints (scheme://host[:port]) that have answered this process; forked workers inherit it.
_answered: set[str] = set()
_FIRST_CONTACT_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)


def _first_contact_fails_fast(endpoint: Any = None, operation: Any = None, response: Any = None,
                              caught_exception: BaseException | None = None, **_: Any) -> None:
    host = str(getattr(endpoint, "host", ""))
    if response is not None:
        _answered.add(host)
    elif isinstance(caught_exception, _FIRST_CONTACT_ERRORS) and host not in _answered:
        if isinstance(caught_exception, ReadTimeoutError):
            reason = f"it accepted the connection but did not answer within {READ_TIMEOUT} s"
        elif isinstance(caught_exception, ConnectTimeoutError):
            reason = f"it did not accept a connection within {CONNECT_TIMEOUT} s"
        else:
            reason = connection_reason(caught_exception.kwargs.get("error") or caught_exception)
        name = getattr(operation, "name", "a call")
        raise EndpointUnreachableError(host, name, reason) from caught_exception
