"""Screenshots of the dashboard for the README (docs/dashboard-*.png): a simulated fleet of 30
meters x 14 days judged by the rule detectors, served, signed in as an operator, in headless Chromium.

    PYTHONPATH=src .venv/bin/python scripts/dashboard_screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--meters", type=int, default=30)
    ap.add_argument("--days", type=float, default=14)
    args = ap.parse_args()

    from playwright.sync_api import sync_playwright

    from wattwatch import api
    from wattwatch.dashboard import browser as B
    from wattwatch.dashboard.auth import hash_password
    from wattwatch.dashboard.settings import Settings
    from wattwatch.detect.registry import DEFAULT_DETECTORS, LEARNED
    from wattwatch.sim import SimConfig, simulate

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sim = simulate(SimConfig(meters=args.meters, days=args.days, seed=7))
        (tmp / "events.json").write_text(json.dumps(sim["events"], default=str))
        db = tmp / "site.duckdb"
        api.ingest(sim["frame"], db)
        api.detect(db, detectors=[d for d in DEFAULT_DETECTORS if d not in LEARNED])
        env = {"WATTWATCH_DASHBOARD_USERS": f"olga:operator:{hash_password('screenshots')}"}
        with B.served(Settings(db=db, events=tmp / "events.json"), env=env) as base, sync_playwright() as pw:
            browser = B.launch(pw)
            page = browser.new_page(viewport={"width": 1440, "height": 1750})
            page.goto(base)
            page.get_by_role("button", name="Sign in").wait_for()
            page.screenshot(path=str(args.out / "dashboard-signin.png"))
            B.sign_in(page, base, "olga", "screenshots")
            B.drawn(page, "Fleet", charts=1, tables=1)
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "dashboard-fleet.png"), full_page=True)
            run = B.last_run(page)
            page.get_by_role("button", name="Open meter").click()
            B.drawn(page, "Meter", charts=1, tables=1, after=run)
            page.wait_for_timeout(500)
            page.screenshot(path=str(args.out / "dashboard-meter.png"), full_page=True)
            for name, charts, tables in (("Alerts", 0, 1), ("Evaluation", 0, 3)):
                run = B.last_run(page)
                B.go(page, name)
                B.drawn(page, name, charts=charts, tables=tables, after=run)
                page.wait_for_timeout(500)
                page.screenshot(path=str(args.out / f"dashboard-{name.lower()}.png"), full_page=True)
            browser.close()
    for p in sorted(args.out.glob("dashboard-*.png")):
        print(p, p.stat().st_size)


if __name__ == "__main__":
    main()
