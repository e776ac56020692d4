"""HTML for the console's pages: the tables, one table's backups, a run's tab (no CDN: there may be no internet).

The look is Airflow's own (:mod:`theme`); the chart is :mod:`chart`, the restore page :mod:`restore_form`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape
from urllib.parse import quote, urlencode

from dynamodb_backup.console.chart import chart_svg
from dynamodb_backup.console.page import (
    NOT_RECORDED,
    age_text,
    airflow_link,
    duration,
    message_html,
    num,
    page,
    rate,
)
from dynamodb_backup.console.restore_form import RESTORE_DAG, restore_html
from dynamodb_backup.console.views import BackupPage, BackupRow, RunView, TableRow
from dynamodb_backup.formats.catalog import age
from dynamodb_backup.formats.tablebackups import OURS

__all__ = ["RESTORE_DAG", "backups_html", "chart_svg", "message_html", "restore_html", "run_html", "tables_html"]


def _allowed(allowed: timedelta | None) -> str:
    return "unscheduled" if allowed is None else f"within {age_text(allowed)}"


def _location_picker(locations: list[str], chosen: str | None, root: str) -> str:
    """A filter by location, shown when the backups file names more than one bucket or prefix."""
    if len(locations) < 2:
        return ""
    options = "".join(f"<option value='{escape(loc)}'{' selected' if loc == chosen else ''}>{escape(loc)}/</option>"
                      for loc in locations)
    return (f"<form class='toolbar' method='get' action='{root}/'><label class='check' for='location'>Location"
            f"</label><select id='location' name='base' onchange='this.form.submit()'><option value=''>All "
            f"locations</option>{options}</select></form>")


def _recovery_cells(row: TableRow) -> str:
    """A streamed table's recovery point (newest second a restore can reach), its replicas' lag and its stream
    gaps, from ``replica.status.stream_status``; dashes for a table without a stream."""
    found = row.recovery
    if not found:
        return f"<td>{NOT_RECORDED}</td><td class='n'>{NOT_RECORDED}</td><td>{NOT_RECORDED}</td>"
    point, age_s = found.get("recovery_point"), found.get("recovery_point_age_seconds")
    held = " <span class='badge status-partial'>held back by a gap</span>" if found.get("held_back_by_gap") else ""
    ago = f" <span class='muted'>({age_text(timedelta(seconds=float(age_s)))} ago)</span>" if age_s is not None else ""
    point_cell = (f"<span class='nw'>{escape(str(point))}</span>{ago}" if point
                  else "<span class='muted'>no full backup to replay onto</span>") + held
    replicas = found.get("replicas") or []
    lags = [float(r["lag_seconds"]) for r in replicas if r.get("lag_seconds") is not None]
    detail = "; ".join(f"{r.get('to_table')} ({r.get('to_region') or 'same region'}): "
                       f"{'caught up' if r.get('caught_up') else 'catching up'}" for r in replicas)
    lag_cell = (f"<span title='{escape(detail)}'>{age_text(timedelta(seconds=max(lags)))}</span>" if lags
                else "<span class='muted'>no replica</span>" if not replicas else NOT_RECORDED)
    gaps = found.get("gaps") or []
    gap_cell = (f"<span class='badge status-partial' title='{escape('; '.join(str(g.get('message')) for g in gaps))}'>"
                f"{len(gaps)}</span>" if gaps else "<span class='muted'>none</span>")
    return f"<td>{point_cell}</td><td class='n'>{lag_cell}</td><td>{gap_cell}</td>"


def tables_html(rows: list[TableRow], root: str, locations: list[str] | None = None, chosen: str | None = None
                ) -> str:
    streams = any(r.recovery for r in rows)
    lines = []
    for r in rows:
        table = escape(r.source.table)
        link = f"<a href='{root}/tables/{quote(r.source.table)}?{urlencode({'base': r.source.base.uri})}'>{table}</a>"
        newest = escape(r.newest) if r.newest else "<span class='badge status-partial'>none</span>"
        age_cell = age(r.completed, r.now) if r.completed else NOT_RECORDED
        note = (f"<span class='error'>{escape(r.error)}</span>" if r.error else
                "<span class='badge status-partial'>stale: older than its schedule allows</span>" if r.stale else "")
        lines.append(
            f"<tr class='{'stale' if r.stale else 'ok'}' data-table='{table}'><td>{link}</td>"
            f"<td class='mono'>{escape(r.source.base.uri)}/</td><td>{escape(r.source.schedule or '-')}</td>"
            f"<td class='mono'>{newest}</td><td class='n'>{age_cell}</td><td>{_allowed(r.allowed)}</td>"
            f"{_recovery_cells(r) if streams else ''}<td>{note}</td></tr>")
    stream_heads = "<th>Recovery point</th><th>Replica lag</th><th>Stream gaps</th>" if streams else ""
    body = (f"<h1>DynamoDB backups</h1>{_location_picker(locations or [], chosen, root)}"
            "<div class='panel'><table><thead><tr><th>Table</th><th>Location</th><th>Schedule</th>"
            f"<th>Newest complete backup</th><th>Age</th><th>Allowed age</th>{stream_heads}<th></th></tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table></div>"
            "<p class='muted'>Age: since the newest complete backup's _SUCCESS was written. A scheduled table is "
            "highlighted when that is more than one schedule interval and a half (at least an hour) ago.</p>")
    return page("DynamoDB backups", body)


def _drill(row: BackupRow) -> str:
    if row.drill is None:
        return "<span class='muted'>never</span>"
    result = escape(str(row.drill.get("result")))
    title = escape(f"{row.drill.get('finished') or row.drill.get('started') or ''} {row.drill.get('error') or ''}")
    return f"<span class='badge drill-{result}' title='{title}'>{result}</span>"


def _snapshot(start: str, end: str) -> str:
    """When the backup read the table, in UTC: ``2024-06-01 03:00:02 → 03:00:09`` (the end's date when it differs)."""
    try:
        first, last = (datetime.fromisoformat(t).astimezone(UTC) for t in (start, end))
    except ValueError:
        return f"{escape(start)} &rarr; {escape(end)}"
    return (f"<span title='{escape(start)} to {escape(end)}'>{first:%Y-%m-%d %H:%M:%S} &rarr; "
            f"{last:%H:%M:%S}</span>" if first.date() == last.date() else
            f"{first:%Y-%m-%d %H:%M:%S} &rarr; {last:%Y-%m-%d %H:%M:%S}")


def _layout(row: BackupRow) -> str:
    """A folder found in the table's Data Pipeline output (``datapipeline_output``), not under our prefix."""
    if row.layout == OURS:
        return ""
    return f" <span class='badge layout-datapipeline' title='{escape(row.folder.uri)}/'>Data Pipeline</span>"


def _run_links(row: BackupRow, base_url: str) -> str:
    if row.run is None:
        return "<span class='muted'>no run found</span>"
    run = f"{base_url}/dags/{quote(row.run.dag_id)}/runs/{quote(row.run.run_id, safe='')}"
    return (f"{airflow_link(run, 'run')} &middot; {airflow_link(run + '/tasks/export_segments', 'export logs')} "
            f"&middot; {airflow_link(run + '/tasks/seal', 'seal log')}")


def backups_html(page_: BackupPage, root: str, base_url: str) -> str:
    source = page_.source
    lines = []
    for r in page_.rows:
        restore = f"{root}/restore?{urlencode({'folder': r.folder.uri, 'table': source.table})}"
        sidecar = r.sidecar
        read = _snapshot(sidecar.snapshot_start, sidecar.snapshot_end) if sidecar else NOT_RECORDED
        lines.append(
            f"<tr data-folder='{escape(r.name)}'><td><span class='badge status-{r.status}'>{r.status}</span></td>"
            f"<td class='mono nw' title='logical date {escape(r.logical_date)}'>{escape(r.name)}</td>"
            f"<td class='nw'>{read}</td>"
            f"<td class='nw'>{escape(r.mode or '') or NOT_RECORDED}{_layout(r)}</td>"
            f"<td class='n'>{num(r.items)}</td><td class='n'>{num(r.size)}</td><td class='n'>{r.files}</td>"
            f"<td class='n'>{duration(r.duration)}</td><td class='n'>{num(r.read_units, 1)}</td>"
            f"<td>{_drill(r)}</td><td class='nw'>{_run_links(r, base_url)}</td>"
            f"<td class='nw'><a class='restore' href='{escape(restore)}'>Restore&hellip;</a></td></tr>")
    older = ""
    if page_.next_before:
        older = (f" &middot; <a href='{root}/tables/{quote(source.table)}?"
                 f"{urlencode({'base': source.base.uri, 'before': page_.next_before})}'>older &rarr;</a>")
    dag = (f" &middot; DAG {airflow_link(f'{base_url}/dags/{quote(source.dag_id)}', escape(source.dag_id))}"
           if source.dag_id else "")
    body = (f"<p class='crumbs'><a href='{root}/'>DynamoDB backups</a> / {escape(source.table)}</p>"
            f"<h1>{escape(source.table)}</h1><p class='muted'><span class='mono'>{escape(source.table_base.uri)}/"
            f"</span> &middot; {page_.total} folders{dag}{older}</p>"
            "<div class='panel'><table><thead><tr><th>Status</th><th>Folder</th>"
            "<th>Snapshot (UTC)</th><th>Mode</th><th>Items</th><th>Bytes</th><th>Files</th>"
            "<th>Duration</th><th>Read units</th><th>Last drill</th><th>Airflow</th><th></th></tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table></div>")
    return page(f"{source.table} backups", body)


def run_html(view: RunView, dag_id: str, run_id: str) -> str:
    """A run's tab: per-worker items, MB, items/s and units, then units per second against the allowed line.
    The same page for a backup (read units, from its sidecar) and a restore (write units, from its record)."""
    kind = view.kind
    rows = "".join(
        f"<tr><td>{escape(w.worker)}</td><td>{escape(w.work)}</td><td class='n'>{w.items:,}</td>"
        f"<td class='n'>{w.megabytes:,.2f}</td><td class='n items-per-second'>"
        f"{rate(w.items_per_second, w.items_per_second_is_bound)}</td>"
        f"<td class='n'>{duration(w.seconds)}</td><td class='n'>{w.units:,.1f}</td>"
        f"<td class='n'>{num(w.rate, 1)}</td></tr>" for w in view.workers)
    if kind == "write":
        heading = f"Restore of <span class='mono'>{escape(view.folder.uri)}/</span> into {escape(view.target or '')}"
        status = (f"{len(view.workers)} load workers recorded their write units in <span class='mono'>"
                  f"{escape(view.record.uri if view.record else '')}/</span>" if view.complete
                  else "no load worker has recorded its write units yet (each records when it finishes)")
        totals = (f"<p>{sum(w.items for w in view.workers):,} items written, {view.usage.total:,.1f} write units.</p>"
                  if view.workers else "")
        work, line = "Files", "write ratio x the target's write capacity when the load started"
    else:
        heading = f"<span class='mono'>{escape(view.folder.uri)}/</span>"
        status = "sealed (_SUCCESS)" if view.complete else "not sealed (no _SUCCESS)"
        totals = ""
        sidecar = view.sidecar
        if sidecar is not None:
            totals = (f"<p>{sidecar.item_count:,} items, {sidecar.byte_count:,} bytes in {len(sidecar.files)} "
                      f"files; mode {escape(str(sidecar.source.get('mode', 'scan')))}; read "
                      f"{escape(sidecar.snapshot_start)} to {escape(sidecar.snapshot_end)}; "
                      f"{sidecar.consumed_read_units:,.1f} read units.</p>")
        work, line = "Segments", "read ratio x the table's read capacity when the run was planned"
    state = "complete" if view.complete else "partial"
    body = (f"<h2>{heading}</h2><p class='status'><span class='badge status-{state}'>{state}</span> {status}</p>"
            f"{totals}"
            f"<div class='panel'><table><thead><tr><th>Worker</th><th>{work}</th><th>Items</th><th>MB</th>"
            f"<th>Items/s</th><th>Duration</th><th>{kind.capitalize()} units</th><th>Allowed units/s</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></div><h3>{kind.capitalize()} units consumed per second</h3>"
            f"{chart_svg(view.series, view.allowed_rate, unit=f'{kind} units/s')}"
            "<p class='muted'>Line: units consumed in each 5 s interval, per second, all workers together. Dashed: "
            f"{line}. Items/s with &ge;: the worker finished within its clock's second (or recorded no times), "
            "so only a lower bound is known.</p>")
    return page(f"{dag_id} {run_id}", body)
