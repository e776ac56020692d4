"""boto3 clients for the command line (Airflow builds its own through the AWS hook).

Endpoints come from the standard variables (AWS_ENDPOINT_URL_DYNAMODB,
AWS_ENDPOINT_URL_S3, ...) unless given explicitly.
"""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config

CLIENT_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": 5},
    max_pool_connections=32,
    connect_timeout=10,
    read_timeout=60,
)


def client(service: Any, endpoint_url: str | None = None, region: str | None = None) -> Any:
    session = boto3.session.Session(region_name=region) if region else boto3.session.Session()
    return session.client(service, endpoint_url=endpoint_url, config=CLIENT_CONFIG)
