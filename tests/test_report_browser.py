"""The report in a real browser (headless Chromium from file://): sortable columns, drill-down, screenshot.

Skipped only when /usr/bin/chromium is missing (Debian: `apt-get install chromium`); Playwright drives the
system browser, since its own browser download is not available offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.config import RunConfig
from harness.runner import Runner
from harness.store import Store
from reports.leaderboard import build_report

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store") / "s.sqlite"
    config = RunConfig(models=("dummy", "dummy-blind"), tasks=("smoke_colours",), store=str(path), limit=20,
                       progress=False)
    Runner(config, argv=["mgbench", "run"]).run()
    with Store(path) as store:
        return build_report(store, tmp_path_factory.mktemp("report"))


@pytest.fixture(scope="module")
def page(report: Path):
    from playwright.sync_api import sync_playwright  # a dev dependency: drives the system Chromium

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(report.resolve().as_uri())
            page.errors = errors
            yield page
        finally:
            browser.close()


def column(page, table: str, index: int, attribute: str = "data-sort") -> list[str | None]:
    return page.eval_on_selector_all(f"{table} tbody tr",
                                     f"rows => rows.map(r => r.cells[{index}].getAttribute('{attribute}'))")


def test_clicking_a_header_sorts_the_column(page, report):
    table = "#metrics-smoke_colours"
    before = column(page, table, 3)
    page.click(f"{table} th[data-col='3']")
    ascending = column(page, table, 3)
    assert ascending != before and sorted(ascending, key=float) == ascending
    assert page.get_attribute(f"{table} th[data-col='3']", "aria-sort") == "ascending"
    page.click(f"{table} th[data-col='3']")
    assert column(page, table, 3) == sorted(before, key=float, reverse=True)
    # a paper table, sorted by its "paper" sub-column under a two-row header (rows the store lacks: paper only)
    page.click("#paper-table-6 th[data-col='3']")
    roles = [r.strip() for r in column(page, "#paper-table-6", 1, "data-sort")]
    assert roles == ["MiniGPT-4", "Finetune Vicuna", "BLIP-2"]  # 58.2 < 67.2 < 80.2
    assert json.loads((report.parent / "report.json").read_text())["tables"][5]["number"] == 6
    assert page.errors == []


def test_drilldown_opens_and_screenshot(page, tmp_path):
    sample = page.locator("#samples-smoke_colours details.sample").first
    assert sample.evaluate("el => el.open") is False
    sample.locator("summary").click()
    assert sample.evaluate("el => el.open") is True
    assert sample.locator("pre.text").first.is_visible()
    assert sample.locator("img").first.evaluate("img => img.complete && img.naturalWidth > 0")
    shot = tmp_path / "report.png"
    page.screenshot(path=str(shot), full_page=False)
    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000
    assert page.errors == []
