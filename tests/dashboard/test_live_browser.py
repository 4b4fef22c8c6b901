"""The Live page beside a real ``wattwatch watch``: the served dashboard in headless Chromium follows
the status file of a ``watch`` subprocess (a replayed fleet on 127.0.0.1, holding the store's write
lock) and its counters and open alerts change without the page being reloaded."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.dashboard.conftest import OPERATOR
from wattwatch.dashboard import browser as B
from wattwatch.dashboard.settings import Settings

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _metric(page, label: str) -> int | None:
    """The value of the metric ``label`` on the page (None when it is not shown)."""
    v = page.evaluate("(l) => { for (const m of document.querySelectorAll('[data-testid=\"stMetric\"]')) {"
                      " const lab = m.querySelector('[data-testid=\"stMetricLabel\"]');"
                      " if (lab && lab.innerText.trim() === l && !m.closest('.st-key-ww-preload'))"
                      " return m.querySelector('[data-testid=\"stMetricValue\"]').innerText.trim(); } return null; }",
                      label)
    return None if v is None else int(v.replace(",", ""))


def _wait(page, what, ok, timeout_s: float, proc) -> int:
    end = time.monotonic() + timeout_s
    while True:
        v = what()
        if v is not None and ok(v):
            return v
        assert proc.poll() is None, f"watch exited with {proc.returncode}"
        assert time.monotonic() < end, f"the Live page did not change in {timeout_s:.0f} s (last {v})"
        page.wait_for_timeout(200)


def test_live_page_follows_a_running_watch_without_reloading(tmp_path, users_env):
    if not Path(B.CHROMIUM).exists():
        pytest.skip(f"{B.CHROMIUM} is missing (bash scripts/system-deps.sh)")
    from playwright.sync_api import sync_playwright

    from wattwatch.sim import SimConfig, simulate
    from wattwatch.store import Store

    # 3 meters x 2 days at 15 min with faults, replayed at 10,800 data s per wall s (~16 s in all, then
    # watch ends; 7,200 until tt6: the test waits for the second day, 8 s in now, 12 s before, and
    # needs watch still running then); state is profiled on the first day, so alerts open from the second.
    simulate(SimConfig(meters=3, days=2.0, step="15min", seed=5, fault_share=1.0, profile_days=1.0), tmp_path)
    site = tmp_path / "site.toml"
    site.write_text('[store]\npath = "site.duckdb"\n[[sources]]\ntype = "replay"\npath = "telemetry.parquet"\n'
                    'cycle_s = 900\nspeed = 10800\n[[sinks]]\ntype = "status"\npath = "live.json"\n'
                    '[engine]\nprofile_days = 1.0\n')
    db, status = tmp_path / "site.duckdb", tmp_path / "live.json"
    settings = Settings(db=db, status=status, refresh_s=1.0, uploads=tmp_path / "uploads")
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "WATTWATCH_PROGRESS": "0"}
    with B.served(settings, env={"WATTWATCH_DASHBOARD_USERS": users_env}, log=tmp_path / "server.log") as base, \
            sync_playwright() as pw:
        browser = B.launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        # Straight to the Live page: no page opens the store before watch has taken it.
        page.goto(base + "/?page=Live")
        page.get_by_role("textbox", name="User").fill(OPERATOR[0])
        page.get_by_role("textbox", name="Password").fill(OPERATOR[1])
        page.get_by_role("button", name="Sign in").click()
        page.get_by_text("waiting for").wait_for(timeout=60_000)
        assert not db.exists() and _metric(page, "Readings") is None
        page.evaluate("() => { window.__wwSameDocument = true; }")   # gone if the page were reloaded
        loads = []
        page.on("framenavigated", lambda f: loads.append(f.url) if f == page.main_frame else None)
        watch = subprocess.Popen([sys.executable, "-m", "wattwatch.app.cli", "watch", "--config", str(site)],
                                 cwd=tmp_path, env=env, stdout=open(tmp_path / "watch.out", "wb"),
                                 stderr=subprocess.STDOUT)
        try:
            first = _wait(page, lambda: _metric(page, "Readings"), lambda v: v > 0, 60, watch)
            open0 = _metric(page, "Open alerts")
            # While watch runs it holds the store: a reader is refused (the page does not need one).
            with pytest.raises(Exception, match="cannot open store"):
                Store(db, read_only=True)
            later = _wait(page, lambda: _metric(page, "Readings"), lambda v: v > first, 30, watch)
            opened = _wait(page, lambda: _metric(page, "Open alerts"), lambda v: v > 0 and v != open0, 45, watch)
            page.get_by_role("heading", name="Open alerts").wait_for(timeout=10_000)
            assert _metric(page, "Meters reporting") == 3
            if os.environ.get("WATTWATCH_SCREENSHOTS"):    # docs/dashboard-live.png for the README
                page.screenshot(path=str(Path(os.environ["WATTWATCH_SCREENSHOTS"]) / "dashboard-live.png"),
                                full_page=True)
        finally:
            watch.send_signal(signal.SIGTERM)
            try:
                watch.wait(timeout=30)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
        assert page.evaluate("() => window.__wwSameDocument === true") and not loads, loads
        assert not errors, errors
        browser.close()
    assert 0 < first < later and opened > 0 and opened != open0
    # The page showed what watch kept: the store (free again) has at least the readings shown.
    with Store(db, read_only=True) as s:
        stored = s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0]
        open_now = s.con.execute("SELECT count(*) FROM alerts WHERE status = 'open'").fetchone()[0]
    assert stored >= later and open_now >= 1
