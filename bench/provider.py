"""The Amazon provider's DynamoDBToS3Operator, run directly (``op.execute(context={})``).

``python -m bench.provider --table T --bucket B --prefix P --segments S``:
S=1 scans in one process; S>1 runs S processes, each an operator with
``dynamodb_scan_kwargs={"Segment": i, "TotalSegments": S}``. The connection
comes from ``AIRFLOW_CONN_AWS_DEFAULT`` (JSON with ``service_config`` endpoints).
The provider's default ``process_func`` (``--process-func default``) turns Decimal
into float and raises on sets and binary; ``--process-func typed`` (the default
here) is one built on boto3's TypeSerializer that carries every type.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from boto3.dynamodb.types import Binary, TypeSerializer

_serializer = TypeSerializer()


def _default(obj: Any) -> Any:
    if isinstance(obj, Binary):
        raw: bytes = obj.value  # type: ignore[attr-defined]
        return base64.b64encode(raw).decode("ascii")
    if isinstance(obj, (bytes, bytearray)):
        return base64.b64encode(obj).decode("ascii")
    if isinstance(obj, set):
        return sorted(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__}")


def typed_json_line(item: dict[str, Any]) -> bytes:
    """A resource-form item as one line of DynamoDB-typed JSON (sets and binary survive)."""
    typed = {k: _serializer.serialize(v) for k, v in item.items()}
    return (json.dumps(typed, default=_default, ensure_ascii=False) + "\n").encode("utf-8")


def run_one(table: str, bucket: str, prefix: str, segment: int | None, total: int | None,
            process_func: str = "typed") -> None:
    from airflow.providers.amazon.aws.transfers.dynamodb_to_s3 import DynamoDBToS3Operator

    scan_kwargs = {"Segment": segment, "TotalSegments": total} if total and total > 1 else None
    chosen: dict[str, Any] = {"process_func": typed_json_line} if process_func == "typed" else {}
    op = DynamoDBToS3Operator(
        task_id=f"provider_{segment or 0}",
        dynamodb_table_name=table,
        s3_bucket_name=bucket,
        s3_key_prefix=f"{prefix}/{segment or 0}/",
        **chosen,
        dynamodb_scan_kwargs=scan_kwargs,
        source_aws_conn_id="aws_default",
        dest_aws_conn_id="aws_default",
    )
    op.execute(context={})  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--table", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--prefix", required=True)
    p.add_argument("--segments", type=int, default=1)
    p.add_argument("--process-func", choices=["typed", "default"], default="typed",
                   help="typed: every DynamoDB type survives; default: the provider's own (JSON, floats)")
    args = p.parse_args(argv)
    if args.segments <= 1:
        run_one(args.table, args.bucket, args.prefix, None, None, args.process_func)
    else:
        with ProcessPoolExecutor(args.segments) as pool:
            futures = [pool.submit(run_one, args.table, args.bucket, args.prefix, s, args.segments,
                                   args.process_func)
                       for s in range(args.segments)]
            for f in futures:
                f.result()
    return 0


if __name__ == "__main__":
    sys.exit(main())
