"""Airflow plugin: the "DynamoDB backups" page (Browse menu) and a tab on backup runs, inside Airflow's UI.

Kept to this one small module because Airflow's plugin loader imports every top-level .py file in
plugins/ (the package itself is ignored, see .airflowignore); the work is in dynamodb_backup.console.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from dynamodb_backup.console.app import URL_PREFIX, create_app

#: The page's address in Airflow's UI: /plugin/dynamodb-backups (the console's own pages follow it there).
NAV_ROUTE = "dynamodb-backups"


class DynamoDBBackupConsole(AirflowPlugin):
    name = "dynamodb_backup_console"
    fastapi_apps = [  # noqa: RUF012 -- the shape AirflowPlugin declares
        {"app": create_app(), "url_prefix": URL_PREFIX, "name": "DynamoDB backups"}]
    external_views = [  # noqa: RUF012
        # Shown inside Airflow's UI (url_route): Airflow 3.3 frames a nav plugin page same-origin with scripts
        # allowed, so the pages take Airflow's theme and color mode, the restore form posts to the REST API
        # with the user's session, and links to runs and logs open in Airflow's UI (console/theme.py).
        {"name": "DynamoDB backups", "href": f"{URL_PREFIX}/", "destination": "nav", "category": "browse",
         "url_route": NAV_ROUTE},
        # A tab on every run page: a backup run's read units, a restore (or drill) run's write units; the app
        # answers "not a backup or restore run" for other DAGs.
        {"name": "Backup folder", "href": URL_PREFIX + "/run/{DAG_ID}/{RUN_ID}", "destination": "dag_run",
         "url_route": "dynamodb-backup-run"},
    ]
