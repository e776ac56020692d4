"""The restore page: the restore DAG's main params for one backup folder, the run's conf shown live, a trigger.

Airflow 3.3's trigger dialog takes no conf from its URL (it pre-fills only "trigger again" from an earlier
run), so the page cannot hand the conf over; it posts the run to Airflow's REST API itself
(``POST /api/v2/dags/dynamodb_restore/dagRuns`` with the user's own session: Airflow's authorization decides),
and the conf it posts is the object the preview shows, built by one function from the form on every change.
"""

from __future__ import annotations

import json
from html import escape
from urllib.parse import quote, urlencode

from dynamodb_backup.console.page import airflow_link, page
from dynamodb_backup.formats.layout import S3Location

RESTORE_DAG = "dynamodb_restore"

SCRIPT = """
(function () {
  var form = document.getElementById('restore'), preview = document.getElementById('conf');
  var button = document.getElementById('trigger'), outcome = document.getElementById('outcome');
  function conf() {  // the run's conf: exactly what the preview shows and the button posts
    var data = new FormData(form), value = {source: data.get('source'),
      target_table: (data.get('target_table') || '').trim(), write_ratio: Number(data.get('write_ratio')),
      create_table: data.get('create_table') === 'on', verify: data.get('verify') === 'on'};
    if (data.get('replace_table') === 'on') value.replace_table = true;
    var capacity = (data.get('load_capacity') || '').trim();
    if (capacity) value.load_capacity = capacity;
    var workers = Number(data.get('workers'));
    if (workers && workers !== Number(form.dataset.workers)) value.workers = workers;
    return value;
  }
  function update() {
    preview.textContent = JSON.stringify(conf(), null, 2);
    button.disabled = !form.checkValidity();
  }
  form.addEventListener('input', update);
  form.addEventListener('change', update);
  update();
  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    if (!form.reportValidity()) return;
    button.disabled = true;
    outcome.textContent = 'Triggering\\u2026';
    var response = await fetch(form.dataset.api, {method: 'POST', credentials: 'same-origin',
      headers: {'Content-Type': 'application/json'}, body: JSON.stringify({logical_date: null, conf: conf()})});
    var body = await response.json().catch(function () { return {}; });
    if (response.ok) {
      var link = document.createElement('a');
      link.id = 'run'; link.dataset.airflow = ''; link.textContent = body.dag_run_id;
      link.href = form.dataset.runs + encodeURIComponent(body.dag_run_id);
      outcome.textContent = 'Triggered: ';
      outcome.appendChild(link);
    } else {
      outcome.textContent = 'Refused (HTTP ' + response.status + '): ' + JSON.stringify(body.detail);
      outcome.className = 'error';
      button.disabled = false;
    }
  });
})();
"""


def restore_html(folder: S3Location, table: str, root: str, base_url: str, defaults: dict[str, object]) -> str:
    """The form, with ``folder`` filled in; the person names the target and presses the button."""
    ratio = escape(str(defaults.get("write_ratio", 0.5)))
    workers = int(str(defaults.get("workers", 4)))
    checked = {name: " checked" if defaults.get(name) else "" for name in ("create_table", "verify")}
    conf = {"source": folder.uri, "target_table": "", **{k: v for k, v in defaults.items() if k != "workers"}}
    dag = f"{base_url}/dags/{RESTORE_DAG}"
    parts = folder.prefix.split("/")
    base = S3Location(folder.bucket, "/".join(parts[:-2])) if len(parts) >= 2 and parts[-2] == table else None
    backups = f"{root}/tables/{quote(table)}" + (f"?{urlencode({'base': base.uri})}" if base else "")
    body = f"""<p class='crumbs'><a href='{root}/'>DynamoDB backups</a> / <a
 href='{escape(backups)}'>{escape(table)}</a> / restore</p>
<h1>Restore a backup of {escape(table)}</h1>
<div class='columns'><form id='restore' data-api='{base_url}/api/v2/dags/{RESTORE_DAG}/dagRuns'
 data-runs='{dag}/runs/' data-workers='{workers}'>
<label for='source'>Backup to restore</label>
<input id='source' name='source' class='wide' value='{escape(folder.uri)}' readonly>
<label for='target_table'>Target table</label>
<input id='target_table' name='target_table' required pattern='[A-Za-z0-9_.\\-]{{3,255}}'
 placeholder='{escape(table)}-restored'>
<p class='hint'>Required. If it exists its keys must match the backup's; items with the same keys are
 overwritten.</p>
<label class='check'><input name='create_table' type='checkbox'{checked["create_table"]}>
 Create the table if missing</label>
<label class='check'><input name='replace_table' type='checkbox'> Replace the target table (delete and create it again
 first, so it holds exactly the backup)</label>
<label class='check'><input name='verify' type='checkbox'{checked["verify"]}> Verify afterwards</label>
<label for='write_ratio'>Write throughput ratio</label>
<input id='write_ratio' name='write_ratio' type='number' step='0.01' min='0.01' max='1.5' value='{ratio}' required>
<label for='load_capacity'>Load capacity (optional)</label>
<input id='load_capacity' name='load_capacity' pattern='on-demand|[1-9][0-9]*' placeholder='on-demand or write units'>
<p class='hint'>A table the restore creates is loaded at this capacity, then settled to the backup's.</p>
<label for='workers'>Worker tasks</label>
<input id='workers' name='workers' type='number' min='1' max='64' step='1' value='{workers}' required>
<p class='toolbar'><button id='trigger' type='submit'>Trigger {RESTORE_DAG}</button>
<span id='outcome' role='status'></span></p></form>
<div><h3>The run's conf</h3><pre id='conf' class='conf'>{escape(json.dumps(conf, indent=2))}</pre>
<p class='hint'>Follows the form as you fill it in; this is what the button sends to Airflow's REST API as
{airflow_link(dag, RESTORE_DAG)}'s conf. Nothing is restored until you press it, and Airflow decides whether you
may trigger that DAG. The DAG's own trigger form has the other params (latest, as of, keys, another account).</p>
</div></div><script>{SCRIPT}</script>"""
    return page(f"Restore {table}", body)
