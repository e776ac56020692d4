"""The "DynamoDB backups" console inside a real Airflow's UI, in a real browser (Debian's Chromium via Playwright).

The tables are `make run`'s demo tables (include/demo_data.py's seed: ReferrerCounts and AllTypes, backed up into
s3://dynamodb-backups/backups as include/backups.yaml and include/run_demo.sh do), next to the session's test
tables. The plugin's API refuses requests without Airflow's token (401) or with a forged one (403). Then Chromium
logs in and, inside Airflow's UI (the Browse menu's page), finds every table, opens ReferrerCounts' backups,
follows "Restore..." to the form, whose conf preview follows the form as it is filled in and is exactly the conf
the run gets, and opens a backup run's tab and the restore run's tab. Then Airflow's own Appearance menu switches
to dark mode: the open console follows at once, with Airflow's own colors. Screenshots of each page in light and
dark mode go to docs/console-*.png (docs/console.md shows them).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_e2e import log_in
from test_ui_trigger import page  # noqa: F401 -- the same Chromium fixture

from demo_data import ALL_TYPES_TABLE, REFERRER_TABLE, seed

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

DOCS = Path(__file__).resolve().parents[2] / "docs"
DATE = datetime(2024, 6, 1, 3, 0, tzinfo=UTC)
PREFIX = "/dynamodb-backups"
NAV = "/plugin/dynamodb-backups"
#: Where `make run` writes (include/run_demo.sh's defaults) and how include/backups.yaml backs the tables up.
DEMO_BUCKET, DEMO_PREFIX = "dynamodb-backups", "backups"
DEMO_BASE = f"s3://{DEMO_BUCKET}/{DEMO_PREFIX}"
DEMO_ENTRIES = [
    {"table": REFERRER_TABLE, "bucket": DEMO_BUCKET, "prefix": DEMO_PREFIX, "schedule": "@daily", "read_ratio": 0.25,
     "segments": 8, "max_workers": 3},
    {"table": ALL_TYPES_TABLE, "bucket": DEMO_BUCKET, "prefix": DEMO_PREFIX, "schedule": "@daily",
     "read_ratio": 0.5},
]
RESTORED = "Import-test"  # the demo's restore target


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def add_demo_tables(e2e: Any) -> None:
    """Seed the demo tables as `make run` does and give them backup DAGs (the backups file is re-read)."""
    seed(e2e.local_aws.dynamodb_client())
    s3 = e2e.s3()
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=DEMO_BUCKET)
    doc = json.loads(e2e.backups_file.read_text())
    doc["backups"] += [entry for entry in DEMO_ENTRIES if entry["table"] not in {b["table"] for b in doc["backups"]}]
    e2e.backups_file.write_text(json.dumps(doc))


def wait_for_all_runs(af: Any, dag_id: str, timeout: float = 300.0) -> list[dict[str, Any]]:
    """Every run of ``dag_id`` (ours and the @daily schedule's) finished successfully."""
    deadline = time.monotonic() + timeout
    while True:
        runs = af.dag_runs(dag_id)
        if runs and all(r["state"] in ("success", "failed") for r in runs):
            assert all(r["state"] == "success" for r in runs), runs
            return runs
        assert time.monotonic() < deadline, runs
        time.sleep(2)


def console(ui: Any) -> Any:
    return ui.frame_locator("iframe[title='DynamoDB backups']")


def shot(ui: Any, name: str, mode: str) -> None:
    ui.wait_for_timeout(300)  # the frame's last paint; what is shown was already checked
    suffix = "" if mode == "light" else "-dark"
    ui.screenshot(path=str(DOCS / f"console-{name}{suffix}.png"))


def theme_of(ui: Any, frame_title: str) -> dict[str, str]:
    """The console's mode and background, and Airflow's page background around it, as the browser drew them."""
    return ui.evaluate("""(title) => {
        const frame = document.querySelector(`iframe[title='${title}']`), inner = frame.contentDocument;
        const painted = (doc) => [doc.body, doc.documentElement].map((e) => getComputedStyle(e).backgroundColor)
            .find((c) => c !== 'rgba(0, 0, 0, 0)');
        return {airflow_mode: document.documentElement.classList.contains('dark') ? 'dark' : 'light',
                console_mode: inner.documentElement.dataset.colorMode, from: inner.documentElement.dataset.themeFrom,
                airflow_bg: painted(document), console_bg: painted(inner),
                airflow_token: getComputedStyle(document.body).getPropertyValue('--chakra-colors-bg').trim(),
                copied: inner.documentElement.style.getPropertyValue('--af-bg'),
                copied_brand: inner.documentElement.style.getPropertyValue('--af-brand'),
                copied_font: inner.documentElement.style.getPropertyValue('--af-font'),
                copied_count: inner.documentElement.style.length, copied_all: inner.documentElement.style.cssText};
    }""", frame_title)


def switch_airflow_to(ui: Any, mode: str) -> None:
    """Airflow's own user menu: User > Appearance > Dark Mode / Light Mode."""
    label = {"dark": "Dark Mode", "light": "Light Mode"}[mode]
    ui.get_by_role("button", name=re.compile(r"^(User|admin)$")).first.click()
    ui.get_by_role("menuitem", name="Appearance").click()
    ui.get_by_role("menuitemradio", name=label).click()
    ui.keyboard.press("Escape")


def test_console_inside_airflows_ui_in_light_and_dark_mode(e2e, page):  # noqa: F811 -- the fixture above
    from playwright.sync_api import expect

    af = e2e.airflow
    add_demo_tables(e2e)
    dag_id = e2e.dag_id(REFERRER_TABLE)
    for table in (REFERRER_TABLE, ALL_TYPES_TABLE):
        af.wait_for_dag(e2e.dag_id(table), timeout=180)
    run_id = af.trigger(dag_id, logical_date=DATE)
    af.trigger(e2e.dag_id(ALL_TYPES_TABLE), logical_date=DATE)

    # Airflow's own authentication guards the plugin: no token, a forged one, then the real one.
    api = f"{af.url}{PREFIX}/api/tables"
    assert status_of(api) == 401
    assert status_of(f"{af.url}{PREFIX}/") == 401
    assert status_of(api, {"Authorization": "Bearer forged.token.value"}) == 403
    assert status_of(api, {"Authorization": f"Bearer {af.token()}"}) == 200
    plugins = af.api("GET", "/plugins")["plugins"]
    views = [v for p in plugins if p["name"] == "dynamodb_backup_console" for v in p["external_views"]]
    assert {(v["destination"], v.get("category"), v.get("url_route")) for v in views} == {
        ("nav", "browse", "dynamodb-backups"), ("dag_run", None, "dynamodb-backup-run")}, views

    for table in (REFERRER_TABLE, ALL_TYPES_TABLE):
        wait_for_all_runs(af, e2e.dag_id(table))
    folder_name = f"{DATE:%Y-%m-%d-%H-%M-%S}"
    folder = f"{DEMO_BASE}/{REFERRER_TABLE}/{folder_name}"
    request = urllib.request.Request(api, headers={"Authorization": f"Bearer {af.token()}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        rows = {r["table"]: r for r in json.loads(response.read())}
    assert set(rows) >= {e2e.tables.logs, e2e.tables.ui, REFERRER_TABLE, ALL_TYPES_TABLE}, rows
    assert rows[REFERRER_TABLE]["newest"] >= folder_name and not rows[REFERRER_TABLE]["stale"], rows[REFERRER_TABLE]

    # Inside Airflow's UI: the Browse menu's page in Airflow's frame, every table, then the demo's location.
    log_in(page, af)
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{af.url}{NAV}")
    frame = console(page)
    for name in (e2e.tables.logs, e2e.tables.ui, REFERRER_TABLE, ALL_TYPES_TABLE):
        expect(frame.locator(f"tr[data-table='{name}']")).to_be_visible()
    frame.locator("select#location").select_option(DEMO_BASE)
    expect(frame.locator("tbody tr")).to_have_count(2)
    expect(frame.locator(f"tr[data-table='{REFERRER_TABLE}']")).to_contain_text("within 1.5d")
    page.wait_for_url(lambda url: "base=" in url)  # Airflow's address follows the frame: a deep link
    urls = {"tables": page.url}
    theme = theme_of(page, "DynamoDB backups")
    assert theme["from"] == "airflow" and theme["console_mode"] == theme["airflow_mode"] == "light", theme
    print("light theme:", theme)
    assert theme["console_bg"] == theme["airflow_bg"] and theme["copied"], theme
    shot(page, "tables", "light")

    # ReferrerCounts' backups; a link to its run opens Airflow's run page (not Airflow inside the frame).
    frame.locator(f"tr[data-table='{REFERRER_TABLE}'] a").first.click()
    row = frame.locator(f"tr[data-folder='{folder_name}']")
    expect(row).to_contain_text("complete")
    expect(row).to_contain_text("3,000")
    run_path = f"/dags/{dag_id}/runs/{urllib.parse.quote(run_id, safe='')}"
    expect(row.get_by_role("link", name="run", exact=True)).to_have_attribute("href", run_path)
    page.wait_for_url(lambda url: "/tables/" in url)
    urls["backups"] = page.url
    shot(page, "backups", "light")
    row.get_by_role("link", name="run", exact=True).click()
    page.wait_for_url(lambda url: urllib.parse.urlparse(url).path == run_path)
    expect(page.locator("iframe[title='DynamoDB backups']")).to_have_count(0)
    page.goto(urls["backups"])

    # "Restore...": the form, its conf preview following the form, then the trigger posting exactly that conf.
    console(page).locator(f"tr[data-folder='{folder_name}']").get_by_role("link", name="Restore…").click()
    frame = console(page)
    expect(frame.locator("input[name='source']")).to_have_value(folder)
    preview = frame.locator("#conf")

    def shown() -> dict[str, Any]:
        return dict(json.loads(preview.inner_text()))

    assert shown() == {"source": folder, "target_table": "", "write_ratio": 0.5, "create_table": False,
                       "verify": True}, shown()
    expect(frame.get_by_role("button", name="Trigger dynamodb_restore")).to_be_disabled()
    frame.locator("input[name='target_table']").fill(RESTORED)
    expect(preview).to_contain_text(f'"target_table": "{RESTORED}"')
    frame.locator("input[name='create_table']").check()
    expect(preview).to_contain_text('"create_table": true')
    frame.locator("input[name='write_ratio']").fill("1")
    frame.locator("input[name='load_capacity']").fill("on-demand")
    expected = {"source": folder, "target_table": RESTORED, "write_ratio": 1, "create_table": True, "verify": True,
                "load_capacity": "on-demand"}
    expect(preview).to_contain_text('"load_capacity": "on-demand"')
    assert shown() == expected, shown()
    assert af.dag_runs("dynamodb_restore") == [], "filling in the form must not start a restore"
    page.wait_for_url(lambda url: "/restore" in url)
    urls["restore-form"] = page.url
    shot(page, "restore-form", "light")
    frame.get_by_role("button", name="Trigger dynamodb_restore").click()
    expect(frame.locator("#run")).to_be_visible()
    runs = af.dag_runs("dynamodb_restore")
    assert len(runs) == 1 and runs[0]["conf"] == expected, runs
    restore_run = runs[0]["dag_run_id"]

    # The backup run's tab: per-worker figures and the chart, inside Airflow's run page.
    urls["run-tab"] = f"{af.url}{run_path}/plugin/dynamodb-backup-run"
    page.set_viewport_size({"width": 1440, "height": 1100})
    page.goto(urls["run-tab"])
    tab = page.frame_locator("iframe[title='Backup folder']")
    expect(tab.locator("#capacity-chart")).to_be_visible()
    expect(tab.locator("tbody tr")).to_have_count(3)  # max_workers 3
    expect(tab.locator("polyline.consumed")).to_have_count(1)
    assert "?" not in "".join(tab.locator("td.items-per-second").all_inner_texts())
    shot(page, "run-tab", "light")

    # The restore run's tab: its load workers' write units.
    af.wait_for_run("dynamodb_restore", restore_run, timeout=300)
    restore_path = f"/dags/dynamodb_restore/runs/{urllib.parse.quote(restore_run, safe='')}"
    urls["restore-run-tab"] = f"{af.url}{restore_path}/plugin/dynamodb-backup-run"
    page.goto(urls["restore-run-tab"])
    tab = page.frame_locator("iframe[title='Backup folder']")
    expect(tab.locator("h2")).to_contain_text(f"into {RESTORED}")
    expect(tab.locator("polyline.consumed")).to_have_count(1)
    shot(page, "restore-run-tab", "light")

    # Dark mode from Airflow's own menu: the open console follows at once (no reload), in Airflow's colors.
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(urls["tables"])
    expect(console(page).locator(f"tr[data-table='{REFERRER_TABLE}']")).to_be_visible()
    switch_airflow_to(page, "dark")
    page.wait_for_function("""() => document.querySelector("iframe[title='DynamoDB backups']")
        .contentDocument.documentElement.classList.contains('dark')""")
    dark = theme_of(page, "DynamoDB backups")
    assert dark["airflow_mode"] == dark["console_mode"] == "dark" and dark["console_bg"] == dark["airflow_bg"], dark
    print("dark theme:", dark)
    assert dark["console_bg"] != theme["console_bg"], (theme, dark)
    assert page.evaluate("localStorage.getItem('theme')") == "dark"  # Airflow's own setting, nothing of ours
    shot(page, "tables", "dark")
    for name in ("backups", "restore-form", "run-tab", "restore-run-tab"):
        page.set_viewport_size({"width": 1440, "height": 1100 if "run-tab" in name else 900})
        page.goto(urls[name])  # the deep links Airflow's address bar showed
        title = "Backup folder" if "run-tab" in name else "DynamoDB backups"
        page.wait_for_function(f"""() => {{ const f = document.querySelector("iframe[title='{title}']");
            return f && f.contentDocument && f.contentDocument.body &&
                   f.contentDocument.body.children.length > 0 &&
                   f.contentDocument.documentElement.dataset.colorMode === 'dark'; }}""")
        assert theme_of(page, title)["console_bg"] == dark["airflow_bg"], name
        if name == "restore-form":
            frame = console(page)
            frame.locator("input[name='target_table']").fill(RESTORED)
            frame.locator("input[name='create_table']").check()
            expect(frame.locator("#conf")).to_contain_text('"create_table": true')
        if "run-tab" in name:
            expect(page.frame_locator(f"iframe[title='{title}']").locator("polyline.consumed")).to_have_count(1)
        shot(page, name, "dark")
    switch_airflow_to(page, "light")
