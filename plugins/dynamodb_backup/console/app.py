"""The console's FastAPI app: the thin shell around :mod:`views` and :mod:`render`.

It runs inside Airflow's api-server (mounted at ``/dynamodb-backups`` by the plugin) and gets
from Airflow what the core cannot: the user (Airflow's own ``get_user``: a bearer token or the
UI's session cookie; nothing is served without one), the AWS connection (the provider's hook),
and the DAG runs that wrote each folder (the metadata database). Airflow modules are imported
inside the functions that use them: every Airflow process loads plugins, and only the api-server
serves this app.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from botocore.exceptions import ClientError
from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from dynamodb_backup.config import TableBackup, load_backups
from dynamodb_backup.console import render
from dynamodb_backup.console.views import (
    RecoveryLookup,
    RunRef,
    TableSource,
    backup_page,
    discover_tables,
    restore_view,
    run_view,
    table_rows,
    table_sources,
)
from dynamodb_backup.errors import BackupError, ParameterError
from dynamodb_backup.formats.layout import S3Location, check_table_name, folder_name

URL_PREFIX = "/dynamodb-backups"
BACKUP_DAG_PREFIX = "dynamodb_backup_"
#: The restore DAG and the restore drills (``dynamodb_restore_drill_<table>``).
RESTORE_DAG_PREFIX = "dynamodb_restore"


async def authenticated(request: Request) -> Any:
    """Airflow's own ``get_user``: 401 without a token or session cookie, 403 with a bad one."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    return await get_user(request, None, credentials)


def backups_file() -> Path:
    default = Path(__file__).resolve().parents[3] / "include" / "backups.yaml"
    return Path(os.environ.get("DYNAMODB_BACKUPS_FILE") or default)


def configured() -> list[TableBackup]:
    return load_backups(backups_file())


@functools.lru_cache(maxsize=8)
def s3_client(aws_conn_id: str) -> Any:
    from dynamodb_backup.hooks.clients import aws_client

    return aws_client("s3", aws_conn_id)


def ui_base() -> str:
    """The path Airflow's UI is served under ("" at the root), for links out of the console."""
    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def find_runs(dag_id: str, names: list[str]) -> dict[str, RunRef]:
    """The runs of ``dag_id`` whose logical date (or, without one, run_after) names these folders."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import or_, select

    from dynamodb_backup.formats.layout import parse_folder_name

    dates = [d for d in (parse_folder_name(n) for n in names) if d is not None]
    if not dates:
        return {}
    found: dict[str, RunRef] = {}
    with create_session() as session:
        rows = session.execute(select(DagRun.run_id, DagRun.logical_date, DagRun.run_after, DagRun.state).where(
            DagRun.dag_id == dag_id, or_(DagRun.logical_date.in_(dates), DagRun.run_after.in_(dates)))).all()
    for run_id, logical, after, state in rows:
        moment = logical or after
        if moment is not None:
            found.setdefault(folder_name(moment), RunRef(dag_id, str(run_id), str(state)))
    return found


def _decoded(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value


def plan_folder(dag_id: str, run_id: str) -> str | None:
    """The folder a backup run wrote, from its plan task's XCom (it knows pitr and incremental dates)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        value = _decoded(session.execute(select(XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.task_id == "plan",
            XComModel.key == "plan", XComModel.map_index == -1)).scalar())
    folder = value.get("folder") if isinstance(value, dict) else None
    return str(folder) if folder else None


def restore_xcoms(dag_id: str, run_id: str) -> tuple[dict[str, Any] | None, list[dict[str, Any]], dict[str, Any]]:
    """A restore run's inspection (``inspect``'s XCom), its load workers' results and the run's conf.

    The task ids are ``inspect``/``load`` in the restore DAG and ``<group>.inspect``/``<group>.load`` where
    ``restore_tasks`` sits in a task group (the drills)."""
    from airflow.models.dagrun import DagRun
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(XComModel.task_id, XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id,
            XComModel.key.in_(("inspection", "return_value")))).all()
        conf = session.execute(select(DagRun.conf).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).scalar()
    inspection, loads = None, []
    for task_id, key, value in rows:
        step = str(task_id).rpartition(".")[2]
        value = _decoded(value)
        if step == "inspect" and key == "inspection" and isinstance(value, dict):
            inspection = value
        elif step == "load" and key == "return_value" and isinstance(value, dict):
            loads.append(value)
    return inspection, loads, dict(conf or {})


def _restore_tab(dag_id: str, run_id: str) -> str | None:
    """The run tab of a restore (or drill) run; None when the run restores nothing (not a restore DAG)."""
    from dynamodb_backup.loading.checkpoint import default_checkpoint_base, safe_part
    from dynamodb_backup.loading.load import write_units_location

    inspection, loads, conf = restore_xcoms(dag_id, run_id)
    if inspection is None:
        return None
    folder = S3Location.parse(str(inspection["source"]["folder"]), "folder")
    recorded = sorted({str(r["write_units"]) for r in loads if r.get("write_units")})
    target = conf.get("target_table")
    if recorded:  # where the load workers said they recorded their units
        record = S3Location.parse(recorded[0], "write_units")
        target = target or record.prefix.rsplit("/", 2)[-2]
    elif target:  # a run from before loads returned it: where load_files records them for this run
        checkpoint_uri = conf.get("checkpoint_uri")
        base = S3Location.parse(checkpoint_uri, "checkpoint_uri") if checkpoint_uri else default_checkpoint_base(
            folder)
        record = write_units_location(base.child(safe_part(str(target)), safe_part(run_id)))
    else:
        return render.message_html("No write units yet", f"{run_id} has not finished a load worker yet")
    try:
        view = restore_view(s3_client(str(conf.get("aws_conn_id") or configured_conn(folder))), record, folder,
                            None if target is None else str(target))
    except (BackupError, ClientError) as exc:
        return render.message_html("Unreadable record", str(exc))
    return render.run_html(view, dag_id, run_id)


def _source(table: str, base: str | None) -> TableSource:
    check_table_name(table)
    for backup in configured():
        location = S3Location(backup.bucket, backup.prefix)
        if backup.table == table and (base is None or base == location.uri):
            return TableSource(table, location, backup.schedule, backup.aws_conn_id,
                               datapipeline=backup.backups.datapipeline)  # its Data Pipeline folders too
    if base is None:
        raise HTTPException(404, f"table {table!r} is not in {backups_file()}; give base=s3://bucket/prefix")
    location = S3Location.parse(base, "base")
    if location not in {S3Location(b.bucket, b.prefix) for b in configured()}:
        raise HTTPException(404, f"base {base!r} is not a prefix of the backups file")
    return TableSource(table, location, None, configured_conn(location), configured=False)


def configured_conn(location: S3Location) -> str:
    return next((b.aws_conn_id for b in configured() if S3Location(b.bucket, b.prefix) == location), "aws_default")


def create_app() -> FastAPI:
    app = FastAPI(title="DynamoDB backups", dependencies=[Depends(authenticated)])

    @app.exception_handler(ParameterError)
    async def bad_parameter(request: Request, exc: ParameterError) -> HTMLResponse:
        return HTMLResponse(render.message_html("Bad request", str(exc)), status_code=400)

    @app.get("/", response_class=HTMLResponse)
    def tables_page(base: str | None = None) -> str:
        rows = _rows()
        locations = sorted({r.source.base.uri for r in rows})
        chosen = base if base in locations else None
        shown = [r for r in rows if chosen is None or r.source.base.uri == chosen]
        return render.tables_html(shown, URL_PREFIX, locations, chosen)

    @app.get("/api/tables")
    def tables_json() -> list[dict[str, Any]]:
        return [{"table": r.source.table, "base": r.source.base.uri, "schedule": r.source.schedule,
                 "newest": r.newest, "completed": r.completed.isoformat() if r.completed else None,
                 "age_seconds": r.age.total_seconds() if r.age else None, "stale": r.stale, "listed": r.listed,
                 "stream": r.recovery, "error": r.error} for r in _rows()]

    @app.get("/tables/{table}", response_class=HTMLResponse)
    def backups(table: str, base: str | None = None, before: str | None = None) -> str:
        source = _source(table, base)
        page = backup_page(s3_client(source.aws_conn_id), source, before, runs=find_runs)
        return render.backups_html(page, URL_PREFIX, ui_base())

    @app.get("/api/tables/{table}/backups")
    def backups_json(table: str, base: str | None = None, before: str | None = None,
                     size: int = Query(25, ge=1, le=200)) -> dict[str, Any]:
        source = _source(table, base)
        page = backup_page(s3_client(source.aws_conn_id), source, before, size, runs=find_runs)
        return {"table": table, "total": page.total, "next_before": page.next_before, "backups": [
            {"folder": r.folder.uri, "status": r.status, "logical_date": r.logical_date, "mode": r.mode,
             "items": r.items, "bytes": r.size, "files": r.files, "duration_seconds": r.duration,
             "read_units": r.read_units, "drill": r.drill, "run": asdict(r.run) if r.run else None,
             "snapshot_start": r.sidecar.snapshot_start if r.sidecar else None,
             "snapshot_end": r.sidecar.snapshot_end if r.sidecar else None, "error": r.error}
            for r in page.rows]}

    @app.get("/restore", response_class=HTMLResponse)
    def restore_form(folder: str, table: str | None = None) -> str:
        location = S3Location.parse(folder, "folder")
        if table is None:  # <prefix>/<table>/<date>; a Data Pipeline-layout folder has no table level: the page
            # that links here names it
            table = location.prefix.rsplit("/", 2)[-2] if location.prefix.count("/") >= 1 else location.bucket
        check_table_name(table, "table")
        defaults: dict[str, object] = {"write_ratio": 0.5, "create_table": False, "verify": True, "workers": 4}
        return render.restore_html(location, table, URL_PREFIX, ui_base(), defaults)

    @app.get("/run/{dag_id}/{run_id}", response_class=HTMLResponse)
    def run_tab(dag_id: str, run_id: str) -> str:
        if not dag_id.startswith(BACKUP_DAG_PREFIX):
            restore = _restore_tab(dag_id, run_id) if dag_id.startswith(RESTORE_DAG_PREFIX) else None
            return restore or render.message_html("Not a backup or restore run",
                                                  f"{dag_id} is not a DynamoDB backup or restore DAG")
        folder = plan_folder(dag_id, run_id)
        if folder is None:
            return render.message_html("No folder yet", f"{run_id} has not planned its backup folder yet")
        location = S3Location.parse(folder, "folder")
        table = dag_id[len(BACKUP_DAG_PREFIX):]
        conn = next((b.aws_conn_id for b in configured() if b.table == table), "aws_default")
        try:
            view = run_view(s3_client(conn), location)
        except BackupError as exc:
            return render.message_html("Unreadable folder", str(exc))
        return render.run_html(view, dag_id, run_id)

    return app


def recovery_lookup() -> RecoveryLookup | None:
    """For the tables whose entry says ``stream: true``: their recovery point, replicas' lag and stream gaps
    (``replica.status.stream_status``, a reading of S3 only). None when no table streams: no extra calls."""
    streamed = {(S3Location(b.bucket, b.prefix), b.table) for b in configured() if b.stream}
    if not streamed:
        return None
    from dynamodb_backup.replica.status import stream_status

    def lookup(source: TableSource) -> dict[str, Any] | None:
        if (source.base, source.table) not in streamed:
            return None
        return stream_status(s3_client(source.aws_conn_id), source.base, source.table)

    return lookup


def _rows() -> list[Any]:
    backups = configured()
    sources = table_sources(backups)
    sources = table_sources(backups, discover_tables(s3_client, sources))
    return table_rows(s3_client, sources, recovery=recovery_lookup())
