"""boto3 clients for the command line (Airflow builds its own through the AWS hook).

Endpoints come from the standard variables (AWS_ENDPOINT_URL_DYNAMODB,
AWS_ENDPOINT_URL_S3, ...) unless given explicitly.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=32,
    connect_timeout=10,
    read_timeout=60,
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
        return session.client(service, endpoint_url=endpoint_url, config=CLIENT_CONFIG)
