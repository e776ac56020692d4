"""Failure notices: an ``on_failure_callback`` that tells someone a backup failed.

Data Pipeline sent an SNS notice when an activity failed; ``failure_notifier`` does the same
for a backup task, to an SNS topic (through the Amazon provider's ``SnsHook``, so the Airflow
connection decides credentials, region and endpoint) and/or to a webhook (an HTTP connection,
through the HTTP provider's ``HttpHook``, JSON body)::

    default_args["on_failure_callback"] = failure_notifier(sns_topic_arn="arn:aws:sns:...:backup-failures")

It is a task-level callback: Airflow calls it once a task has failed for good (after its retries;
a retry calls ``on_retry_callback`` instead), in the task's own process, where the exception and
the task's log link are known. A run that fails because ``plan`` failed sends one notice (the
downstream tasks end ``upstream_failed`` and call nothing).

The notice holds the DAG, run, task, logical date, try number, the exception (first line, at most
500 characters, passed through Airflow's secrets masker) and the task's log URL. It never holds a
connection, a credential, a param value or the run's conf.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)

MAX_EXCEPTION_CHARS = 500
SNS_SUBJECT_MAX = 100


def _redact(text: str) -> str:
    """Mask registered secrets (connection passwords, sensitive variables) as Airflow's logs do."""
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # pragma: no cover - another Airflow layout
        return text
    return str(redact(text))


def _exception_text(exception: Any) -> str | None:
    if exception is None:
        return None
    text = str(exception).strip() or type(exception).__name__
    first = text.splitlines()[0]
    name = type(exception).__name__ if isinstance(exception, BaseException) else ""
    if name and not first.startswith(name):
        first = f"{name}: {first}"
    if len(first) > MAX_EXCEPTION_CHARS:
        first = first[: MAX_EXCEPTION_CHARS - 1] + "…"
    return _redact(first)


def failure_notice(context: Mapping[str, Any]) -> dict[str, Any]:
    """The facts of a failure, from an Airflow callback context (JSON-ready, no secrets)."""
    ti = context.get("ti") or context.get("task_instance")
    dag_run = context.get("dag_run")
    dag = context.get("dag")
    logical_date = context.get("logical_date")
    if logical_date is None and dag_run is not None:
        logical_date = getattr(dag_run, "logical_date", None) or getattr(dag_run, "run_after", None)
    map_index = getattr(ti, "map_index", -1)
    log_url = None
    if ti is not None:
        try:
            log_url = ti.log_url
        except Exception:
            log_url = None
    notice: dict[str, Any] = {
        "event": "dynamodb_backup_failed",
        "dag_id": getattr(ti, "dag_id", None) or getattr(dag, "dag_id", None) or getattr(dag_run, "dag_id", None),
        "run_id": getattr(ti, "run_id", None) or context.get("run_id") or getattr(dag_run, "run_id", None),
        "task_id": getattr(ti, "task_id", None),
        "map_index": map_index if isinstance(map_index, int) and map_index >= 0 else None,
        "try_number": getattr(ti, "try_number", None),
        "logical_date": logical_date.isoformat() if isinstance(logical_date, datetime) else logical_date,
        "exception": _exception_text(context.get("exception")),
        "reason": context.get("reason"),
        "log_url": log_url,
    }
    return {k: v for k, v in notice.items() if v is not None}


def notice_text(notice: Mapping[str, Any]) -> tuple[str, str]:
    """A subject (at most 100 ASCII characters, for SNS) and a short plain-text body."""
    task = notice.get("task_id") or "-"
    if notice.get("map_index") is not None:
        task = f"{task}[{notice['map_index']}]"
    subject = f"Backup failed: {notice.get('dag_id', '?')} {task}"
    subject = subject.encode("ascii", "replace").decode()[:SNS_SUBJECT_MAX]
    lines = [
        f"DynamoDB backup failed: {notice.get('dag_id', '?')}",
        f"run: {notice.get('run_id', '-')}",
        f"task: {task} (try {notice.get('try_number', '-')})",
        f"logical date: {notice.get('logical_date', '-')}",
        f"error: {notice.get('exception') or notice.get('reason') or 'unknown'}",
    ]
    if notice.get("log_url"):
        lines.append(f"log: {notice['log_url']}")
    return subject, "\n".join(lines)


def publish_sns(topic_arn: str, notice: Mapping[str, Any], aws_conn_id: str | None = "aws_default") -> str:
    """Publish the notice to SNS; the body is the text, ``notice`` travels as JSON in an attribute."""
    from airflow.providers.amazon.aws.hooks.sns import SnsHook

    subject, body = notice_text(notice)
    hook = SnsHook(aws_conn_id=aws_conn_id)  # type: ignore[no-untyped-call]
    response = hook.publish_to_target(
        target_arn=topic_arn, message=body, subject=subject,
        message_attributes={"event": str(notice.get("event", "dynamodb_backup_failed")),
                            "dag_id": str(notice.get("dag_id", ""))},
    )
    return str(response.get("MessageId", "")) if isinstance(response, Mapping) else ""


def post_webhook(http_conn_id: str, notice: Mapping[str, Any], endpoint: str = "") -> int:
    """POST the notice as JSON (plus a ``text`` field, for chat webhooks) to an HTTP connection."""
    from airflow.providers.http.hooks.http import HttpHook

    _, body = notice_text(notice)
    payload = {**notice, "text": body}
    response = HttpHook(method="POST", http_conn_id=http_conn_id).run(
        endpoint=endpoint, data=json.dumps(payload), headers={"Content-Type": "application/json"},
    )
    return int(getattr(response, "status_code", 0))


def failure_notifier(
    sns_topic_arn: str | None = None,
    http_conn_id: str | None = None,
    aws_conn_id: str | None = "aws_default",
    http_endpoint: str = "",
) -> Callable[[Any], None]:
    """An ``on_failure_callback`` that sends a notice to ``sns_topic_arn`` and/or ``http_conn_id``.

    With neither, the callback only logs the notice. A failure to deliver is logged, never raised:
    the task has already failed, and its own error must stay the one recorded.
    """

    def notify_failure(context: Any) -> None:
        notice = failure_notice(context)
        log.error("backup failure notice: %s", json.dumps(notice, sort_keys=True))
        if sns_topic_arn:
            try:
                message_id = publish_sns(sns_topic_arn, notice, aws_conn_id)
                log.info("failure notice published to %s (message %s)", sns_topic_arn, message_id)
            except Exception:
                log.exception("could not publish the failure notice to %s", sns_topic_arn)
        if http_conn_id:
            try:
                status = post_webhook(http_conn_id, notice, http_endpoint)
                log.info("failure notice posted to connection %s (HTTP %s)", http_conn_id, status)
            except Exception:
                log.exception("could not post the failure notice to connection %s", http_conn_id)

    notify_failure.__name__ = "notify_failure"
    return notify_failure
