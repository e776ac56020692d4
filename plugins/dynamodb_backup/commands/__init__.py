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
    """An ISO 8601 date or date and time (UTC unless it says otherwise); argparse prints the error after the flag."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: give an ISO 8601 date or time in UTC, e.g. 2026-11-20 or 2026-11-20T06:00:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def positive_int(text: str) -> int:
    """A count of at least 1 (workers, segments): 0 or less is refused, not quietly raised to 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def client_for(service: str, dynamodb_endpoint: str | None = None, region: str | None = None) -> Any:
    """A client; ``dynamodb_endpoint`` overrides the DynamoDB endpoint only (picklable via partial)."""
    return clients.client(service, dynamodb_endpoint if service == "dynamodb" else None, region)


def add_s3_arguments(p: argparse.ArgumentParser) -> None:
    """``--endpoint``/``--region`` for the commands that only read or delete in S3 (ls, show, prune)."""
    p.add_argument("--endpoint", help="S3 endpoint URL (default: AWS_ENDPOINT_URL_S3, else AWS)")
    p.add_argument("--region", help="the bucket's region (default: AWS_REGION / AWS_DEFAULT_REGION)")


def s3_client(args: argparse.Namespace) -> Any:
    return clients.client("s3", getattr(args, "endpoint", None), getattr(args, "region", None))


def add_datapipeline_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--datapipeline-output", action="append", default=[], metavar="S3_URI",
                   help="an AWS Data Pipeline output folder (its myOutputS3Loc) whose dated folders "
                        "(<output>/<YYYY-MM-DD-HH-MM-SS>/, no table level) are also this table's backups "
                        "(repeatable; backups.yaml: datapipeline_output)")


def client_factory(dynamodb_endpoint: str | None = None, region: str | None = None) -> Any:
    return functools.partial(client_for, dynamodb_endpoint=dynamodb_endpoint, region=region)
