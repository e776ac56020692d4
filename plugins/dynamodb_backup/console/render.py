"""HTML for the console's pages and the inline SVG chart (no script, no CDN: there may be no internet)."""

from __future__ import annotations

import json
from datetime import timedelta
from html import escape
from urllib.parse import quote, urlencode

from dynamodb_backup.console.views import BackupPage, BackupRow, RunView, TableRow
from dynamodb_backup.formats.catalog import age
from dynamodb_backup.formats.layout import S3Location

RESTORE_DAG = "dynamodb_restore"
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#1a202c}
table{border-collapse:collapse;margin:.5rem 0}th,td{padding:.3rem .6rem;border-bottom:1px solid #e2e8f0;
text-align:left;font-size:.9rem}td.n{text-align:right;font-variant-numeric:tabular-nums}
tr.stale td{background:#fed7d7}.status-complete{color:#276749}.status-partial{color:#c53030}
.status-running{color:#2b6cb0}.drill-passed{color:#276749}.drill-failed{color:#c53030;font-weight:bold}
a{color:#2b6cb0}.muted{color:#718096}form label{display:block;margin:.5rem 0}input{font-size:1rem}
"""


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
            f"<style>{STYLE}</style></head><body>{body}</body></html>")


def _num(value: float | int | None, digits: int = 0) -> str:
    return "?" if value is None else f"{value:,.{digits}f}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    return str(timedelta(seconds=round(seconds)))


def _allowed(allowed: timedelta | None) -> str:
    return "unscheduled" if allowed is None else f"within {age_text(allowed)}"


def age_text(delta: timedelta) -> str:
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0", "")
    return f"{max(seconds, 0):.0f}s"


def tables_html(rows: list[TableRow], root: str) -> str:
    lines = []
    for r in rows:
        table = escape(r.source.table)
        link = f"<a href='{root}/tables/{quote(r.source.table)}?base={quote(r.source.base.uri)}'>{table}</a>"
        newest = escape(r.newest) if r.newest else "<span class='status-partial'>none</span>"
        age_cell = age(r.completed, r.now) if r.completed else "&ndash;"
        note = escape(r.error) if r.error else ("STALE: older than its schedule allows" if r.stale else "")
        lines.append(
            f"<tr class='{'stale' if r.stale else 'ok'}' data-table='{table}'><td>{link}</td>"
            f"<td>{escape(r.source.base.uri)}/</td><td>{escape(r.source.schedule or '-')}</td><td>{newest}</td>"
            f"<td class='n'>{age_cell}</td><td>{_allowed(r.allowed)}</td><td>{note}</td></tr>")
    body = ("<h1>DynamoDB backups</h1><table><thead><tr><th>Table</th><th>Location</th><th>Schedule</th>"
            "<th>Newest complete backup</th><th>Age</th><th>Allowed age</th><th></th></tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>"
            "<p class='muted'>Age: since the newest complete backup's _SUCCESS was written. A scheduled table is "
            "highlighted when that is more than one schedule interval and a half (at least an hour) ago.</p>")
    return _page("DynamoDB backups", body)


def _drill(row: BackupRow) -> str:
    if row.drill is None:
        return "<span class='muted'>never</span>"
    result = escape(str(row.drill.get("result")))
    title = escape(f"{row.drill.get('finished') or row.drill.get('started') or ''} {row.drill.get('error') or ''}")
    return f"<span class='drill-{result}' title='{title}'>{result}</span>"


def _run_links(row: BackupRow, base_url: str) -> str:
    if row.run is None:
        return "<span class='muted'>no run found</span>"
    run = f"{base_url}/dags/{quote(row.run.dag_id)}/runs/{quote(row.run.run_id, safe='')}"
    return (f"<a href='{run}'>run</a> &middot; <a href='{run}/tasks/export_segments'>export logs</a> "
            f"&middot; <a href='{run}/tasks/seal'>seal log</a>")


def backups_html(page: BackupPage, root: str, base_url: str) -> str:
    source = page.source
    lines = []
    for r in page.rows:
        restore = f"{root}/restore?{urlencode({'folder': r.folder.uri})}"
        sidecar = r.sidecar
        lines.append(
            f"<tr data-folder='{escape(r.name)}'><td class='status-{r.status}'>{r.status}</td>"
            f"<td>{escape(r.name)}</td><td>{escape(r.logical_date)}</td>"
            f"<td>{escape(sidecar.snapshot_start) if sidecar else '?'}</td>"
            f"<td>{escape(sidecar.snapshot_end) if sidecar else '?'}</td><td>{escape(r.mode or '?')}</td>"
            f"<td class='n'>{_num(r.items)}</td><td class='n'>{_num(r.size)}</td><td class='n'>{r.files}</td>"
            f"<td class='n'>{_duration(r.duration)}</td><td class='n'>{_num(r.read_units, 1)}</td>"
            f"<td>{_drill(r)}</td><td>{_run_links(r, base_url)}</td>"
            f"<td><a class='restore' href='{restore}'>Restore&hellip;</a></td></tr>")
    older = ""
    if page.next_before:
        older = (f"<a href='{root}/tables/{quote(source.table)}?"
                 f"{urlencode({'base': source.base.uri, 'before': page.next_before})}'>older &rarr;</a>")
    body = (f"<p><a href='{root}/'>&larr; all tables</a></p><h1>{escape(source.table)}</h1>"
            f"<p>{escape(source.table_base.uri)}/ &middot; {page.total} folders &middot; {older}</p>"
            "<table><thead><tr><th>Status</th><th>Folder</th><th>Logical date</th><th>Snapshot start</th>"
            "<th>Snapshot end</th><th>Mode</th><th>Items</th><th>Bytes</th><th>Files</th><th>Duration</th>"
            "<th>Read units</th><th>Last drill</th><th>Airflow</th><th></th></tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>")
    return _page(f"{source.table} backups", body)


def restore_html(folder: S3Location, table: str, root: str, base_url: str, defaults: dict[str, object]) -> str:
    """The restore DAG's trigger form with the folder filled in; the person names the target and confirms.

    Airflow 3.3.2's own trigger dialog takes no conf from its URL, so this form posts the run to Airflow's
    REST API itself (``POST /api/v2/dags/dynamodb_restore/dagRuns``, with the user's own session), and
    Airflow's own authorization decides whether this user may trigger it.
    """
    conf = {"source": folder.uri, **defaults}
    body = f"""<p><a href='{root}/'>&larr; all tables</a></p><h1>Restore a backup of {escape(table)}</h1>
<form id='restore' data-api='{base_url}/api/v2/dags/{RESTORE_DAG}/dagRuns'
 data-runs='{base_url}/dags/{RESTORE_DAG}/runs/'>
<label>Backup to restore <input name='source' size='90' value='{escape(folder.uri)}' readonly></label>
<label>Target table (required) <input name='target_table' required pattern='[A-Za-z0-9_.\\-]{{3,255}}'></label>
<label>Write throughput ratio <input name='write_ratio' type='number' step='0.01' min='0.01' max='1.5'
 value='{escape(str(defaults.get("write_ratio", 0.5)))}'></label>
<label><input name='create_table' type='checkbox'> Create the table if missing</label>
<button type='submit'>Trigger dynamodb_restore</button></form>
<p id='outcome'></p>
<p class='muted'>Nothing is restored until you name the target and press the button. The same run can be
started from <a href='{base_url}/dags/{RESTORE_DAG}'>the DAG's own trigger form</a> with this conf:</p>
<pre id='conf'>{escape(json.dumps(conf, indent=2))}</pre>
<script>
const form = document.getElementById('restore');
form.addEventListener('submit', async (event) => {{
  event.preventDefault();
  const data = new FormData(form);
  const conf = {{...JSON.parse(document.getElementById('conf').textContent),
                source: data.get('source'), target_table: data.get('target_table'),
                write_ratio: Number(data.get('write_ratio')), create_table: data.get('create_table') === 'on'}};
  const response = await fetch(form.dataset.api, {{method: 'POST', credentials: 'same-origin',
    headers: {{'Content-Type': 'application/json'}}, body: JSON.stringify({{logical_date: null, conf}})}});
  const body = await response.json();
  const outcome = document.getElementById('outcome');
  if (response.ok) {{
    outcome.innerHTML = 'Triggered: <a id="run" href="' + form.dataset.runs + encodeURIComponent(body.dag_run_id) +
      '">' + body.dag_run_id + '</a>';
  }} else {{
    outcome.textContent = 'Refused (HTTP ' + response.status + '): ' + JSON.stringify(body.detail);
  }}
}});
</script>"""
    return _page(f"Restore {table}", body)


def chart_svg(series: list[tuple[float, float]], allowed: float | None, width: int = 720, height: int = 240,
              unit: str = "read units/s") -> str:
    """Units per second over the run (a step line) against the allowed rate (a dashed line)."""
    if not series:
        return "<p class='muted'>No capacity was recorded for this run (one recorded before 5 s intervals " \
               "were, a pitr export, which reads no capacity, or a restore still loading).</p>"
    left, bottom, top, right = 60, 30, 10, 10
    span = max(series[-1][0] + (series[1][0] - series[0][0] if len(series) > 1 else 5.0), 1.0)
    peak = max(max(v for _, v in series), allowed or 0.0, 1e-9) * 1.1
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(t: float) -> float:
        return left + t / span * plot_w

    def y(v: float) -> float:
        return top + plot_h - v / peak * plot_h

    step = series[1][0] - series[0][0] if len(series) > 1 else span
    points = []
    for t, v in series:
        points += [f"{x(t):.1f},{y(v):.1f}", f"{x(t + step):.1f},{y(v):.1f}"]
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' id='capacity-chart' width='{width}' height='{height}' "
             f"role='img' aria-label='{unit} over the run'>",
             f"<line x1='{left}' y1='{top + plot_h}' x2='{left + plot_w}' y2='{top + plot_h}' stroke='#4a5568'/>",
             f"<line x1='{left}' y1='{top}' x2='{left}' y2='{top + plot_h}' stroke='#4a5568'/>",
             f"<polyline class='consumed' fill='none' stroke='#2b6cb0' stroke-width='2' points='{' '.join(points)}'/>"]
    if allowed:
        parts.append(f"<line class='allowed' x1='{left}' y1='{y(allowed):.1f}' x2='{left + plot_w}' "
                     f"y2='{y(allowed):.1f}' stroke='#c53030' stroke-dasharray='6 4'/>"
                     f"<text x='{left + plot_w - 4}' y='{y(allowed) - 4:.1f}' text-anchor='end' font-size='11' "
                     f"fill='#c53030'>allowed {allowed:,.1f}</text>")
    for frac in (0.0, 0.5, 1.0):
        value = peak / 1.1 * frac
        parts.append(f"<text x='{left - 4}' y='{y(value) + 4:.1f}' text-anchor='end' font-size='11'>"
                     f"{value:,.0f}</text>")
    parts.append(f"<text x='{left + plot_w}' y='{height - 8}' text-anchor='end' font-size='11'>{span:,.0f} s</text>"
                 f"<text x='{left}' y='{height - 8}' font-size='11'>0 s &middot; {unit}</text></svg>")
    return "".join(parts)


def run_html(view: RunView, dag_id: str, run_id: str) -> str:
    """A run's tab: per-worker items, MB, items/s and units, then units per second against the allowed line.
    The same page for a backup (read units, from its sidecar) and a restore (write units, from its record)."""
    kind = view.kind
    rows = "".join(
        f"<tr><td>{escape(w.worker)}</td><td>{escape(w.work)}</td><td class='n'>{w.items:,}</td>"
        f"<td class='n'>{w.megabytes:,.2f}</td><td class='n'>{_num(w.items_per_second)}</td>"
        f"<td class='n'>{_duration(w.seconds)}</td><td class='n'>{w.units:,.1f}</td>"
        f"<td class='n'>{_num(w.rate, 1)}</td></tr>" for w in view.workers)
    if kind == "write":
        heading = f"Restore of {escape(view.folder.uri)}/ into {escape(view.target or '?')}"
        status = (f"{len(view.workers)} load workers recorded their write units in "
                  f"{escape(view.record.uri if view.record else '?')}/" if view.complete
                  else "no load worker has recorded its write units yet (each records when it finishes)")
        totals = (f"<p>{sum(w.items for w in view.workers):,} items written, {view.usage.total:,.1f} write units.</p>"
                  if view.workers else "")
        work, line = "Files", "write ratio x the target's write capacity when the load started"
    else:
        heading = f"{escape(view.folder.uri)}/"
        status = "complete" if view.complete else "not sealed (no _SUCCESS)"
        totals = ""
        sidecar = view.sidecar
        if sidecar is not None:
            totals = (f"<p>{sidecar.item_count:,} items, {sidecar.byte_count:,} bytes in {len(sidecar.files)} "
                      f"files; mode {escape(str(sidecar.source.get('mode', 'scan')))}; read "
                      f"{escape(sidecar.snapshot_start)} to {escape(sidecar.snapshot_end)}; "
                      f"{sidecar.consumed_read_units:,.1f} read units.</p>")
        work, line = "Segments", "read ratio x the table's read capacity when the run was planned"
    body = (f"<h2>{heading}</h2><p class='status-{'complete' if view.complete else 'partial'}'>"
            f"{status}</p>{totals}<table><thead><tr><th>Worker</th><th>{work}</th><th>Items</th><th>MB</th>"
            f"<th>Items/s</th><th>Duration</th><th>{kind.capitalize()} units</th><th>Allowed units/s</th></tr>"
            f"</thead><tbody>{rows}</tbody></table><h3>{kind.capitalize()} units consumed per second</h3>"
            f"{chart_svg(view.series, view.allowed_rate, unit=f'{kind} units/s')}"
            "<p class='muted'>Blue: units consumed in each 5 s interval, per second, all workers together. Red "
            f"dashed: {line}.</p>")
    return _page(f"{dag_id} {run_id}", body)


def message_html(title: str, text: str) -> str:
    return _page(title, f"<h2>{escape(title)}</h2><p>{escape(text)}</p>")
