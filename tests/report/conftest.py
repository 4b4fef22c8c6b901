"""Fixtures of the report tests: one headless Chromium per module, a small simulated run
(rule detectors: fast) kept in a store, and a small synthetic fleet with hand-made alerts."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattwatch.app.bench import BROWSER_ARGS, CHROMIUM


@pytest.fixture(scope="module")
def browser():
    # Per module, not per session: while Playwright's sync API is open its event loop counts as
    # running in this thread, and any later test in the same process that calls asyncio.run (watch)
    # failed with "asyncio.run() cannot be called from a running event loop" — which test came
    # after the report tests depended on how pytest-xdist dealt them.
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (install it with `bash scripts/system-deps.sh`)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=BROWSER_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def sim_run(tmp_path_factory):
    """A simulated fleet of 5 meters x 3 days with faults, ingested, judged by the rule detectors;
    returns (store, alerts.jsonl)."""
    from wattwatch import api
    from wattwatch.detect.registry import DEFAULT_DETECTORS, LEARNED
    from wattwatch.sim import SimConfig, simulate

    root = tmp_path_factory.mktemp("sim_run")
    sim = simulate(SimConfig(meters=5, days=3, seed=11, fault_share=0.8))
    db = root / "s.duckdb"
    api.ingest(sim["frame"], db)
    result = api.detect(db, detectors=[n for n in DEFAULT_DETECTORS if n not in LEARNED])
    assert result.alerts, "the simulated run raised no alert: the fixture is no use"
    alerts = root / "alerts.jsonl"
    alerts.write_text("".join(a.to_json() + "\n" for a in result.alerts))
    return db, alerts


def open_page(browser, path: Path):
    """A page with ``path`` opened and built; its console errors and page errors in ``page.errors``."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(Path(path).resolve().as_uri())
    page.wait_for_selector("body[data-ready='1'][data-sections='1']", timeout=30_000)
    return page


def draw_all(page) -> dict[str, int]:
    """Scroll every figure into view, wait until each is drawn; SVG paths per figure id."""
    ids = page.eval_on_selector_all(".plot", "ds => ds.map(d => d.id)")
    for i in ids:
        page.eval_on_selector(f"#{i}", "d => d.scrollIntoView()")
        page.wait_for_selector(f"#{i}[data-drawn='1']", timeout=20_000)
    return dict(page.eval_on_selector_all(".plot", "ds => ds.map(d => [d.id, d.querySelectorAll('.main-svg path').length])"))
