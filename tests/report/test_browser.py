"""report.html in a real headless browser: every image loads and every registered claim has a row."""

from __future__ import annotations

import shutil

import pytest

from geodyn.experiments import REGISTRY
from geodyn.experiments.runner import run_experiments

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install playwright)"
)

BROWSER = next(
    (path for name in ("chromium", "chromium-browser", "google-chrome") if (path := shutil.which(name))), None
)
# Flags for a closed network: no background connections, no first-run work, no sandbox as root.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.mark.skipif(
    BROWSER is None,
    reason="no Chromium on PATH and none could be installed (make test installs Debian's chromium where apt works)",
)
def test_report_renders_in_chromium(tmp_path):
    out = tmp_path / "run"
    # A quick real experiment plus every other registered claim listed as not run.
    run_experiments(REGISTRY, out, size="quick", only=["fluctuation-exponent"])
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=BROWSER, args=FLAGS)
        try:
            page = browser.new_page()
            page.goto((out / "report.html").resolve().as_uri())
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({ok: e.complete && e.naturalWidth > 0, w: e.naturalWidth}))"
            )
            rows = page.eval_on_selector_all("tr.claim-row", "els => els.map(e => e.dataset.experiment)")
            verdicts = page.eval_on_selector_all("tr.claim-row .verdict", "els => els.map(e => e.textContent.trim())")
            title = page.title()
        finally:
            browser.close()
    assert "geodyn reproduce" in title
    assert images and all(img["ok"] for img in images), images
    assert sorted(rows) == sorted(REGISTRY.names())
    assert verdicts[rows.index("fluctuation-exponent")] == "reproduced"
    assert all(v == "not run" for r, v in zip(rows, verdicts) if r != "fluctuation-exponent")
