"""The console's pages in a real browser, without an Airflow: Debian's Chromium (Playwright) drawing the HTML the
app renders. Seconds, not minutes; tests/e2e/test_console_ui.py does the same inside a real Airflow's UI.

- The restore form's conf preview follows the form live, and what the button would post is what it shows.
- Dark mode: inside a host page that stands in for Airflow's UI (the ``dark`` class on its ``<html>``, Chakra's
  ``--chakra-colors-*`` variables) the page takes the host's mode and colors and follows a switch at once; on
  its own it follows ``prefers-color-scheme`` (Airflow's ``system`` setting).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from html import escape
from pathlib import Path
from typing import Any

import pytest

from dynamodb_backup.console.render import restore_html, tables_html
from dynamodb_backup.console.theme import DARK, LIGHT
from dynamodb_backup.console.views import TableRow, TableSource
from dynamodb_backup.formats.layout import S3Location

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
FOLDER = S3Location("dynamodb-backups", "backups/ReferrerCounts/2024-06-01-03-00-00")
#: The color the browser draws for a CSS color value (Airflow's own are oklch()).
RESOLVE = """(color) => { const probe = document.createElement('div'); probe.style.background = color;
    document.body.appendChild(probe); const drawn = getComputedStyle(probe).backgroundColor; probe.remove();
    return drawn; }"""
HOST_CSS = ("body{--chakra-colors-bg:#fdfdf0;--chakra-colors-fg:#101010;background:var(--chakra-colors-bg)}"
            "html.dark body{--chakra-colors-bg:#123456;--chakra-colors-fg:#eeeeee}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


def rgb(hex_color: str) -> str:
    value = hex_color.lstrip("#")
    return "rgb({}, {}, {})".format(*(int(value[i:i + 2], 16) for i in (0, 2, 4)))


def test_the_conf_preview_follows_the_form(browser):
    page = browser.new_page()
    page.set_content(restore_html(FOLDER, "ReferrerCounts", "/dynamodb-backups", "",
                                  {"write_ratio": 0.5, "create_table": False, "verify": True, "workers": 4}))
    preview, button = page.locator("#conf"), page.locator("#trigger")

    def shown() -> dict[str, Any]:
        return dict(json.loads(preview.inner_text()))

    assert shown() == {"source": FOLDER.uri, "target_table": "", "write_ratio": 0.5, "create_table": False,
                       "verify": True}
    assert button.is_disabled(), "no target table yet"
    page.locator("input[name='create_table']").check()
    assert shown()["create_table"] is True
    page.locator("input[name='target_table']").fill("Import-test")
    assert shown()["target_table"] == "Import-test" and button.is_enabled()
    page.locator("input[name='write_ratio']").fill("1.25")
    page.locator("input[name='load_capacity']").fill("on-demand")
    page.locator("input[name='workers']").fill("8")
    page.locator("input[name='verify']").uncheck()
    page.locator("input[name='replace_table']").check()
    expected = {"source": FOLDER.uri, "target_table": "Import-test", "write_ratio": 1.25, "create_table": True,
                "verify": False, "replace_table": True, "load_capacity": "on-demand", "workers": 8}
    assert shown() == expected
    page.locator("input[name='create_table']").uncheck()
    assert shown()["create_table"] is False
    page.locator("input[name='target_table']").fill("no")  # too short for a DynamoDB table name
    assert button.is_disabled()

    # What the button posts: the same object (the request is caught, nothing is sent anywhere).
    page.locator("input[name='target_table']").fill("Import-test")
    posted: list[dict[str, Any]] = []

    def answer(route: Any) -> None:
        posted.append(json.loads(route.request.post_data))
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"dag_run_id": "manual__1"}))

    page.route("**/api/v2/dags/dynamodb_restore/dagRuns", answer)
    page.evaluate("document.getElementById('restore').dataset.api = 'http://console.test/api/v2/dags/"
                  "dynamodb_restore/dagRuns'")
    button.click()
    page.locator("#run").wait_for()
    assert posted == [{"logical_date": None, "conf": {**expected, "create_table": False}}], posted
    assert page.locator("#run").get_attribute("href") == "/dags/dynamodb_restore/runs/manual__1"
    page.close()


def test_dark_mode_follows_airflows_page_and_the_browser(browser):
    rows = [TableRow(TableSource("ReferrerCounts", S3Location("dynamodb-backups", "backups"), "@daily"))]
    html = tables_html(rows, "/dynamodb-backups")
    page = browser.new_page()
    page.set_content(f"<!doctype html><html class='light'><head><style>{HOST_CSS}</style></head><body>"
                     f"<iframe title='console' srcdoc='{escape(html, quote=True)}'></iframe></body></html>")
    frame = page.frame_locator("iframe[title='console']")
    frame.locator("tr[data-table='ReferrerCounts']").wait_for()

    def drawn() -> dict[str, str]:
        return dict(page.evaluate("""() => {
            const inner = document.querySelector('iframe').contentDocument;
            return {mode: inner.documentElement.dataset.colorMode, from: inner.documentElement.dataset.themeFrom,
                    bg: getComputedStyle(inner.body).backgroundColor, fg: getComputedStyle(inner.body).color};
        }"""))

    assert drawn() == {"mode": "light", "from": "airflow", "bg": rgb("#fdfdf0"), "fg": rgb("#101010")}, drawn()
    page.evaluate("document.documentElement.classList.replace('light', 'dark')")  # the user picks Dark Mode
    page.wait_for_function("document.querySelector('iframe').contentDocument.documentElement.dataset.colorMode"
                           " === 'dark'")
    assert drawn() == {"mode": "dark", "from": "airflow", "bg": rgb("#123456"), "fg": rgb("#eeeeee")}, drawn()
    page.evaluate("document.documentElement.classList.replace('dark', 'light')")
    page.wait_for_function("document.querySelector('iframe').contentDocument.documentElement.dataset.colorMode"
                           " === 'light'")
    assert drawn()["bg"] == rgb("#fdfdf0")
    page.close()

    # On its own (no Airflow around it): Airflow's "system" setting, the browser's preference, Airflow's colors.
    alone = browser.new_page()
    for scheme, colors in (("dark", DARK), ("light", LIGHT)):
        alone.emulate_media(color_scheme=scheme)
        alone.set_content(html)
        assert alone.evaluate("document.documentElement.dataset.colorMode") == scheme
        drawn = alone.evaluate("getComputedStyle(document.body).backgroundColor")
        assert drawn == alone.evaluate(RESOLVE, colors["bg"]), (scheme, drawn)
    alone.emulate_media(color_scheme="light")
    alone.emulate_media(color_scheme="dark")
    alone.wait_for_function("document.documentElement.dataset.colorMode === 'dark'")
    alone.close()
