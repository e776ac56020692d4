"""The trigger form in a real browser: Debian's headless Chromium driven by Playwright.

Log in, open a backup DAG's trigger form, refuse a ratio of 5, change the read ratio and the
segment count, trigger, wait for success, check the folder in S3, and save screenshots of the form
and of the finished run under test-artifacts/.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from airflow_e2e import log_in

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS,
            headless=True, viewport={"width": 1400, "height": 1400})
        context.set_default_timeout(30_000)
        try:
            yield context.new_page()
        finally:
            context.close()


def number_input(dialog: Any, param: str) -> Any:
    """The number field of a param: its increment button names the param and points at the input."""
    increment = dialog.locator(f'[id="number-input:element_{param}:inc"]')
    return dialog.locator(f'[id="{increment.get_attribute("aria-controls")}"]')


def test_trigger_form_runs_a_backup(e2e, page, artifacts):
    from playwright.sync_api import expect

    af, table = e2e.airflow, e2e.tables.ui
    dag_id = e2e.dag_id(table)

    # 1. Log in.
    log_in(page, af)

    # 2. The DAG's trigger form, with the params' titles and descriptions.
    page.goto(f"{af.url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger Dag").click()
    dialog = page.get_by_role("dialog")
    dialog.wait_for()
    for text in ("Read throughput ratio", "Share of the table's read capacity", "Scan segments",
                 "Worker tasks", "Overwrite a complete backup"):
        assert dialog.get_by_text(text).first.is_visible(), text
    submit = dialog.get_by_test_id("trigger-dag-submit")
    ratio, segments = number_input(dialog, "read_ratio"), number_input(dialog, "segments")

    # An invalid ratio is refused: the trigger button is disabled (or the value does not stick).
    ratio.fill("5")
    ratio.press("Tab")
    page.wait_for_timeout(500)
    ratio.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "ui-trigger-form-invalid-ratio.png"))
    value = ratio.input_value()
    if value == "5":
        if submit.is_enabled():
            submit.click()
            page.wait_for_timeout(2000)
            assert dialog.is_visible(), "the form accepted a ratio of 5"
    else:
        assert float(value) <= 1.5, value
    assert af.dag_runs(dag_id) == [], "a run was created with a ratio of 5"

    # 3. A valid ratio and segment count.
    ratio.fill("0.5")
    ratio.press("Tab")
    segments.fill("6")
    segments.press("Tab")
    expect(submit).to_be_enabled(timeout=30_000)  # waits for the form to take the values, not a fixed time
    ratio.scroll_into_view_if_needed()
    page.screenshot(path=str(artifacts / "ui-trigger-form.png"))

    # 4. Trigger.
    submit.click()
    deadline = time.monotonic() + 30
    while not (runs := af.dag_runs(dag_id)):
        assert time.monotonic() < deadline, "no run was created by the form"
        time.sleep(0.5)
    assert len(runs) == 1
    run = runs[0]
    assert run["conf"]["read_ratio"] == 0.5 and run["conf"]["segments"] == 6, run["conf"]

    # 5. Wait for success.
    af.wait_for_run(dag_id, run["dag_run_id"], timeout=180)
    tis = af.task_instances(dag_id, run["dag_run_id"])
    assert len([ti for ti in tis if ti["task_id"] == "export_segments"]) == 2  # 6 segments over 2 workers

    # 6. The folder in S3, sealed.
    logical = datetime.fromisoformat(run["logical_date"].replace("Z", "+00:00"))
    folder = f"{e2e.prefix}/{table}/{logical:%Y-%m-%d-%H-%M-%S}/"
    assert folder + "_SUCCESS" in e2e.keys(e2e.bucket, folder)

    # 7. The finished run, as a person sees it.
    page.goto(f"{af.url}/dags/{dag_id}/runs/{run['dag_run_id']}")
    page.get_by_text("success").first.wait_for()
    page.wait_for_timeout(1000)
    page.screenshot(path=str(artifacts / "ui-finished-run.png"))
