"""`paramill serve` in a real browser: Debian's headless Chromium driven by Playwright.

Fills the form, runs the bikeshare report (four plots, records), sees a field error before any
kernel starts, cancels a running run, compares two runs. Screenshots go to tmp (and to
$PARAMILL_SERVE_SCREENSHOTS, e.g. docs/, when set: that is how the README's are made).
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.serve_support import Server, notebooks_folder

CHROMIUM = "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = notebooks_folder(tmp_path_factory.mktemp("serve-browser") / "nbs", bikeshare=True)
    srv = Server(folder, "--workers", "2").start()
    yield srv
    assert srv.stop() == 0
    assert not srv.leftover_processes()


@pytest.fixture(scope="module")
def browser():
    assert os.path.exists(CHROMIUM), "run .ci/deps/serve.sh (Debian's chromium)"
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(120_000)
    playwright_api.expect.set_options(timeout=120_000)  # generous: a loaded 2-core machine
    page.goto(f"{server.base}/?token={server.token}")  # then the cookie carries the token
    yield page
    context.close()


def shot(page, tmp_path, name: str) -> None:
    path = tmp_path / name
    page.screenshot(path=str(path), full_page=True)
    target = os.environ.get("PARAMILL_SERVE_SCREENSHOTS")
    if target:
        shutil.copy(path, os.path.join(target, name))


def test_form_run_bikeshare_plots_and_records(page, server, tmp_path):
    expect = playwright_api.expect
    page.click("text=bikeshare/report.ipynb")
    expect(page.locator("h1")).to_have_text("bikeshare/report.ipynb")
    date = page.locator("#p-date")
    expect(date).to_have_value("2019-11-01")  # the notebook's default
    date.fill("2019-11-07")
    shot(page, tmp_path, "serve-form.png")
    page.click("#run-button")
    expect(page).to_have_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    # live page: turns into the report when done (it reloads itself)
    expect(page.locator("#status")).to_have_text("completed")
    expect(page.locator("#records")).to_contain_text("trips")
    trips = page.locator("#records tr", has_text="trips").locator("td").inner_text()
    assert int(trips) > 0
    report = page.frame_locator("#report")
    expect(report.locator("img")).to_have_count(4)  # the report's four plots
    expect(report.locator("body")).to_contain_text("trips on 2019-11-07")
    for link in ("#dl-ipynb", "#dl-html", "#dl-record"):
        expect(page.locator(link)).to_be_visible()
    page.wait_for_timeout(300)  # let the iframe's images paint for the screenshot
    shot(page, tmp_path, "serve-run.png")


def test_field_error_shown_before_any_kernel(page, server):
    expect = playwright_api.expect
    before = len(server.request("GET", "/api/runs?limit=1000")[1])
    page.goto(f"{server.base}/notebooks/add.py")
    page.fill("#p-tags", "5")  # YAML for an int, the parameter is a list
    page.select_option("#p-mode", "slow")
    page.click("#run-button")
    expect(page.locator("#error-tags")).to_contain_text("tags")
    expect(page.locator("#p-tags")).to_have_value("5")  # what was typed is kept
    assert len(server.request("GET", "/api/runs?limit=1000")[1]) == before
    page.fill("#p-tags", "[b, c]")
    page.fill("#p-x", "4")
    page.click("#run-button")
    expect(page.locator("#status")).to_have_text("completed")
    expect(page.locator("#records")).to_contain_text("6.5")


def test_cancel_running_run(page, server):
    expect = playwright_api.expect
    page.goto(f"{server.base}/notebooks/slow.ipynb")
    page.fill("#p-hold", "500")
    page.click("#run-button")
    expect(page.locator("#stream")).to_contain_text("started")  # streamed output
    expect(page.locator("#progress")).to_contain_text("of 7 cells")
    page.click("#cancel-button")
    expect(page.locator("#status")).to_have_text("cancelled")
    run_id = page.url.rsplit("/", 1)[1]
    assert server.request("GET", f"/api/runs/{run_id}")[1]["status"] == "cancelled"


def test_compare_two_runs(page, server):
    expect = playwright_api.expect
    for day in ("2019-11-04", "2019-11-05"):
        assert server.run("bikeshare/report.ipynb", {"date": day})["status"] == "completed"
    page.goto(f"{server.base}/notebooks/bikeshare/report.ipynb?status=completed")
    boxes = page.locator(".compare-box")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("#compare-button")
    expect(page.locator("h1")).to_have_text("Compare runs")
    expect(page.locator("#compare-table thead th")).to_have_count(3)
    expect(page.locator("#compare-table tr.param")).to_contain_text("2019-11-0")
    expect(page.locator("#compare-table tr.record", has_text="trips")).to_have_count(1)
    expect(page.locator("#charts svg.chart")).to_have_count(2)  # trips, stations
    expect(page.locator("#charts svg.chart circle")).to_have_count(4)
