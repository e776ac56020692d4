"""boto3 clients through the Amazon provider's hook, so Airflow connections decide credentials,
region and endpoints (``service_config`` in the connection extra points at local servers)."""

from __future__ import annotations

from typing import Any

from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook
from botocore.config import Config

from dynamodb_backup.aws.clients import annotate_client

CLIENT_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5}, max_pool_connections=32)


def aws_client(service: str, aws_conn_id: str | None, region: str | None = None) -> Any:
    hook = AwsBaseHook(aws_conn_id=aws_conn_id or None, client_type=service, region_name=region or None)
    return annotate_client(hook.get_client_type(region_name=region or None, config=CLIENT_CONFIG))
