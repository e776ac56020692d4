"""Airflow plugin: the "DynamoDB backups" page (Browse menu) and a tab on backup runs.

Kept to this one small module because Airflow's plugin loader imports every top-level .py file in
plugins/ (the package itself is ignored, see .airflowignore); the work is in dynamodb_backup.console.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dynamodb_backup.console.app import URL_PREFIX, create_app


class DynamoDBBackupConsole(AirflowPlugin):
    name = "dynamodb_backup_console"
    fastapi_apps = [  # noqa: RUF012 -- the shape AirflowPlugin declares
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "DynamoDB backups"}]
    external_views = [  # noqa: RUF012
        # A plain link (no url_route): the page is a whole browser page, so its links to runs and logs,
        # and the restore form's call to the REST API, work (the UI's plugin iframe is sandboxed).
        {"name": "DynamoDB backups", "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse"},
        # A tab on every run page: a backup run's read units, a restore (or drill) run's write units; the app
        # answers "not a backup or restore run" for other DAGs.
        {"name": "Backup folder", "href": URL_PREFIX + "/run/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "dynamodb-backup-run"},
    ]
