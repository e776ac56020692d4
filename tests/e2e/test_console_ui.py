"""The "DynamoDB backups" page in a real Airflow and a real browser (Debian's Chromium via Playwright).

One backup of the console table through the scheduler; then the plugin's API refuses requests without
Airflow's token (401) or with a forged one (403) from the real api-server; then Chromium logs in, finds every
table's row, opens the table, follows "Restore..." to the form with the folder filled in, triggers a restore
run from it (the person names the target), and opens the backup run's tab with the chart. Screenshots go
to docs/ (the README shows them).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest
from airflow_e2e import log_in
from test_ui_trigger import page  # noqa: F401 -- the same Chromium fixture

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DOCS = Path(__file__).resolve().parents[2] / "docs"
DATE = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
PREFIX = "/dynamodb-backups"


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_console_page_in_a_browser(e2e, page):  # noqa: F811 -- the fixture imported above
    from playwright.sync_api import expect

    af, table = e2e.airflow, e2e.tables.console
    dag_id = e2e.dag_id(table)
    run_id = af.trigger(dag_id, conf={"segments": 4, "max_workers": 2}, logical_date=DATE)

    # Airflow's own authentication guards the plugin: no token, a forged one, then the real one.
    api = f"{af.url}{PREFIX}/api/tables"
    assert status_of(api) == 401
    assert status_of(f"{af.url}{PREFIX}/") == 401
    assert status_of(api, {"Authorization": "Bearer forged.token.value"}) == 403
    assert status_of(api, {"Authorization": f"Bearer {af.token()}"}) == 200
    plugins = af.api("GET", "/plugins")["plugins"]
    views = [v for p in plugins if p["name"] == "dynamodb_backup_console" for v in p["external_views"]]
    assert {(v["destination"], v.get("category")) for v in views} == {("nav", "browse"), ("dag_run", None)}, views

    af.wait_for_run(dag_id, run_id, timeout=240)
    folder_name = f"{DATE:%Y-%m-%d-%H-%M-%S}"
    folder = f"s3://{e2e.bucket}/{e2e.prefix}/{table}/{folder_name}"
    request = urllib.request.Request(api, headers={"Authorization": f"Bearer {af.token()}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        rows = {r["table"]: r for r in json.loads(response.read())}
    assert set(rows) >= {e2e.tables.logs, e2e.tables.backfill, e2e.tables.ui, table}, rows
    assert rows[table]["newest"] == folder_name and not rows[table]["stale"], rows[table]

    # The browser: log in, the Browse menu's page, every table's row.
    log_in(page, af)
    page.goto(f"{af.url}{PREFIX}/")
    for name in (e2e.tables.logs, e2e.tables.backfill, e2e.tables.ui, table):
        expect(page.locator(f"tr[data-table='{name}']")).to_be_visible()
    expect(page.locator(f"tr[data-table='{table}']")).to_contain_text(folder_name)
    page.screenshot(path=str(DOCS / "console-tables.png"), full_page=True)

    # The table's backups, then "Restore..." to the form with the folder filled in.
    page.locator(f"tr[data-table='{table}'] a").first.click()
    row = page.locator(f"tr[data-folder='{folder_name}']")
    expect(row).to_contain_text("complete")
    expect(row).to_contain_text("600")
    run_link = f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"
    expect(row.get_by_role("link", name="run", exact=True)).to_have_attribute("href", run_link)
    page.screenshot(path=str(DOCS / "console-backups.png"), full_page=True)
    row.get_by_role("link", name="Restore…").click()
    source = page.locator("input[name='source']")
    expect(source).to_have_value(folder)
    assert af.dag_runs("dynamodb_restore") == [], "the link alone must not start a restore"
    page.locator("input[name='target_table']").fill(f"{table}-restored")
    page.locator("input[name='create_table']").check()
    page.screenshot(path=str(DOCS / "console-restore-form.png"), full_page=True)
    page.get_by_role("button", name="Trigger dynamodb_restore").click()
    expect(page.locator("#run")).to_be_visible()
    runs = af.dag_runs("dynamodb_restore")
    assert len(runs) == 1 and runs[0]["conf"]["source"] == folder, runs
    assert runs[0]["conf"]["target_table"] == f"{table}-restored" and runs[0]["conf"]["create_table"] is True

    # The backup run's tab: per-worker figures and the chart, inside Airflow's run page.
    page.goto(f"{af.url}/dags/{dag_id}/runs/{run_id}/plugin/dynamodb-backup-run")
    frame = page.frame_locator("iframe[title='Backup folder']")
    expect(frame.locator("#capacity-chart")).to_be_visible()
    expect(frame.locator("tbody tr")).to_have_count(2)
    expect(frame.locator("polyline.consumed")).to_have_count(1)
    time.sleep(0.5)
    page.screenshot(path=str(DOCS / "console-run-tab.png"), full_page=True)
