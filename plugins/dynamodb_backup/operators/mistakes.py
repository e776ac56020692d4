"""The command line's one line for an AWS mistake, as the first thing a failed task says.

``@aws_mistakes`` on an ``execute``: when AWS refuses (credentials, region, permissions, clock,
an unreachable endpoint, endless throttling; ``aws.mistakes`` decides), the task logs
``error: <line>`` and fails with ``AirflowException(<line>)`` raised from the original, so the
task's failure (its log's last exception, the UI, the failure notice) reads the same line as the
CLI and the traceback stays below it. Airflow's retries apply as before. Errors the operator
already turns into a failure (``BackupError``) and bugs pass through untouched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from airflow.sdk.exceptions import AirflowException

from dynamodb_backup.aws.mistakes import explain
from dynamodb_backup.errors import BackupError

log = logging.getLogger(__name__)
Execute = TypeVar("Execute", bound=Callable[..., Any])


def aws_mistakes(execute: Execute) -> Execute:
    @functools.wraps(execute)
    def explained(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return execute(self, *args, **kwargs)
        except AirflowException:
            raise
        except Exception as exc:
            mistake = explain(exc)
            if mistake is None or isinstance(exc, BackupError):
                raise
            getattr(self, "log", log).error("error: %s", mistake.line)
            raise AirflowException(mistake.line) from exc

    return explained  # type: ignore[return-value]
