"""The served dashboard in headless Chromium: `streamlit run` on 127.0.0.1 (a free port), one
server for this module. An operator signs in, uploads telemetry, runs detection, sees the alerts,
opens a meter and acknowledges an alert (the store says so); an anonymous visitor and a viewer
find no way to write, and nothing reaches the store."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dashboard.conftest import OPERATOR, VIEWER, snapshot
from wattwatch.dashboard import browser as B
from wattwatch.dashboard.settings import Settings

WRITE_BUTTONS = ("Acknowledge", "Clear", "Run detection", "Ingest into the store")


@pytest.fixture(scope="module")
def served(tmp_path_factory, users_env):
    if not Path(B.CHROMIUM).exists():
        pytest.skip(f"{B.CHROMIUM} is missing (bash scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("served")
    db = root / "site.duckdb"
    settings = Settings(db=db, uploads=root / "uploads")
    with B.served(settings, env={"WATTWATCH_DASHBOARD_USERS": users_env}, log=root / "server.log") as base, \
            sync_playwright() as pw:
        browser = B.launch(pw)
        try:
            yield base, browser, db
        finally:
            browser.close()


def _page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def _buttons(page) -> list[str]:
    return page.evaluate("() => [...document.querySelectorAll(\"[data-testid='stMain'] button\")]"
                         ".filter(b => !b.closest('.st-key-ww-preload') && b.getAttribute('aria-label') !== 'Show password')"
                         ".map(b => b.innerText.trim())")


def test_operator_uploads_runs_sees_alerts_and_acknowledges(served, sim_store):
    base, browser, db = served
    assert not db.exists()
    page = _page(browser)
    B.sign_in(page, base, *OPERATOR)
    B.drawn(page, "Fleet")
    assert page.get_by_text("no store yet").is_visible()
    r = B.last_run(page)
    B.go(page, "Data")
    B.drawn(page, "Data", after=r)
    page.locator("input[type='file']").set_input_files(str(sim_store[2]))       # the simulated fleet's CSV
    page.get_by_role("button", name="Ingest into the store").click()
    page.get_by_text("readings stored").wait_for(timeout=120_000)
    assert page.get_by_text(", 0 rejected").is_visible()
    r = B.last_run(page)
    page.get_by_role("button", name="Run detection").click()
    page.get_by_text("detection: ").wait_for(timeout=180_000)
    n = int(page.get_by_text("detection: ").inner_text().split("detection: ")[1].split(" ")[0])
    assert n >= 3
    r = B.last_run(page)
    B.go(page, "Alerts")
    B.drawn(page, "Alerts", tables=1, after=r)
    assert page.get_by_text(f"{n:,} alert(s)", exact=True).is_visible()        # every alert found is open
    r = B.last_run(page)
    B.go(page, "Fleet")
    B.drawn(page, "Fleet", charts=1, tables=1, after=r)
    r = B.last_run(page)
    page.get_by_role("button", name="Open meter").click()
    B.drawn(page, "Meter", charts=1, tables=1, after=r)
    before = {a[0]: a[1] for a in snapshot(db)["alerts"]}
    assert set(before.values()) == {"open"} and len(before) == n
    page.get_by_role("textbox", name="Note").fill("seen on site")
    r = B.last_run(page)
    page.get_by_role("button", name="Acknowledge (1)").click()
    page.get_by_text("1 alert(s) acknowledged").wait_for(timeout=60_000)
    B.drawn(page, "Meter", charts=1, tables=1, after=r)   # the run after the click (which ends in st.rerun)
    after = snapshot(db)["alerts"]
    changed = [a for a in after if a[1] != "open"]
    assert len(changed) == 1 and changed[0][1] == "acknowledged" and changed[0][2] == "[olga] seen on site"
    # The page reads the new status back from the store.
    assert page.locator("[data-testid='stMarkdownContainer'] strong", has_text="acknowledged").count() == 1
    assert not page.errors
    page.close()


def test_anonymous_and_viewer_cannot_write(served, sim_store):
    base, browser, db = served
    if not db.exists():   # run alone: the store the operator test would have made
        from wattwatch import api
        from wattwatch.detect.registry import DEFAULT_DETECTORS, LEARNED

        api.ingest(sim_store[2], db)
        api.detect(db, detectors=[d for d in DEFAULT_DETECTORS if d not in LEARNED])
    before = snapshot(db)
    uploads = sorted((db.parent / "uploads").glob("*")) if (db.parent / "uploads").exists() else []
    anon = _page(browser)
    anon.goto(base + "/?page=Alerts&meter=M-00001")
    anon.get_by_role("button", name="Sign in").wait_for()
    anon.wait_for_timeout(500)
    assert _buttons(anon) == ["Sign in"] and anon.locator("input[type='file']").count() == 0
    assert anon.evaluate("() => [...document.querySelectorAll('[data-testid=\"stDataFrame\"]')]"
                         ".filter(d => !d.closest('.st-key-ww-preload')).length") == 0   # no data shown
    anon.close()
    page = _page(browser)
    B.sign_in(page, base, *VIEWER)
    B.drawn(page, "Fleet", tables=1)
    for name in ("Alerts", "Meter", "Data", "Evaluation", "Fleet"):
        r = B.last_run(page)
        B.go(page, name)
        B.drawn(page, name, after=r)
        shown = _buttons(page)
        assert not [b for b in shown if b.startswith(WRITE_BUTTONS)], (name, shown)
        assert page.locator("input[type='file']").count() == 0, name
    assert snapshot(db) == before
    now = sorted((db.parent / "uploads").glob("*")) if (db.parent / "uploads").exists() else []
    assert now == uploads
    page.close()
