"""One module per command; each defines ``register(subparsers)`` and sets ``run`` on its parser."""

from __future__ import annotations

import argparse
import functools
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dynamodb_backup.aws import clients

if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Subparsers = argparse._SubParsersAction


def parse_date(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def client_for(service: str, dynamodb_endpoint: str | None = None, region: str | None = None) -> Any:
    """A client; ``dynamodb_endpoint`` overrides the DynamoDB endpoint only (picklable via partial)."""
    return clients.client(service, dynamodb_endpoint if service == "dynamodb" else None, region)


def client_factory(dynamodb_endpoint: str | None = None, region: str | None = None) -> Any:
    return functools.partial(client_for, dynamodb_endpoint=dynamodb_endpoint, region=region)
