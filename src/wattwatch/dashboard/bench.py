"""``wattwatch bench dashboard``: page load, fleet view and meter view times of the served
dashboard in headless Chromium, with 1,000 meters x 35 days (and one meter with a year of
1-minute readings) in the store."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from wattwatch.dashboard import browser as B
from wattwatch.dashboard.settings import Settings

TARGET_FLEET_S = 2.0
YEAR_METER = "Y-1min"


def build_store(db: Path, meters: int, days: float, cadence_s: int, alerts: int, seed: int, log=print) -> Path:
    """The bench store (kept for the next run): the synthetic fleet of ``bench report``, its
    synthetic alerts, and one meter with a year of 1-minute readings and a few alerts."""
    import numpy as np
    import pandas as pd

    from wattwatch import api
    from wattwatch.alerts.model import Alert
    from wattwatch.alerts.store import upsert
    from wattwatch.app.bench import synthetic_alerts, synthetic_fleet
    from wattwatch.store import Store

    if db.exists():
        return db
    t0 = time.perf_counter()
    frame = synthetic_fleet(meters, days, cadence_s, seed)
    log(f"building {len(frame):,} readings ({meters} meters x {days:g} days at {cadence_s} s) + a year of 1-min "
        f"readings of {YEAR_METER} into {db} ...")
    tmp = db.with_suffix(".tmp.duckdb")
    tmp.unlink(missing_ok=True)
    api.ingest(frame, tmp)
    rng = np.random.default_rng(seed)
    n = 365 * 1440
    ts = pd.date_range("2025-01-01", periods=n, freq="1min", tz="UTC")
    day = np.sin(2 * np.pi * np.arange(n) / 1440)
    year = pd.DataFrame({"meter_id": YEAR_METER, "ts": ts, "p_kw": 5 + 2 * day + rng.normal(0, 0.2, n),
                         "v_l1_v": 230 + rng.normal(0, 1.5, n), "i_l1_a": (5 + 2 * day) * 1000 / 230})
    api.ingest(year, tmp)
    extra = [Alert(meter_id=YEAR_METER, start=str(ts[k]), end=str(ts[k + 90]), code="WARN_THERM_DRIFT",
                   severity="warning", score=0.8, detector="synthetic", message="synthetic thermal drift",
                   evidence={"k": int(k)}, action="inspect the connection") for k in (40_000, 200_000, 400_000)]
    with Store(tmp) as s:
        upsert(s.con, synthetic_alerts(meters, alerts, frame["ts"].min(), days, seed) + extra)
    tmp.rename(db)
    log(f"  built in {time.perf_counter() - t0:.1f} s")
    return db


def _signed_in(page, user: str, pw: str, name: str) -> float:
    """Fill the sign-in form (untimed: a person types for longer) and the seconds from clicking
    Sign in until page ``name`` is drawn with its chart and table."""
    page.get_by_role("textbox", name="User").fill(user)
    page.get_by_role("textbox", name="Password").fill(pw)
    t0 = time.perf_counter()
    page.get_by_role("button", name="Sign in").click()
    B.drawn(page, name, charts=1, tables=1)
    return time.perf_counter() - t0


def dashboard_benchmark(meters: int = 1000, days: float = 35.0, cadence_s: int = 900, alerts: int = 1000,
                        workdir: Path = Path("bench-out"), repeats: int = 3, seed: int = 0, log=print) -> dict:
    from playwright.sync_api import sync_playwright

    from wattwatch.dashboard import data
    from wattwatch.dashboard.auth import hash_password

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    db = build_store(workdir / f"dashboard-{meters}x{days:g}d-{cadence_s}s-{alerts}a-{seed}.duckdb", meters, days,
                     cadence_s, alerts, seed, log)
    # The meter view's query alone (server side): a year of 1-min readings binned, and one day raw.
    t0 = time.perf_counter()
    year, binned = data.meter_series(db, YEAR_METER, ["p_kw", "v_l1_v", "i_l1_a"])
    q_year = time.perf_counter() - t0
    t0 = time.perf_counter()
    one_day, raw_binned = data.meter_series(db, YEAR_METER, ["p_kw", "v_l1_v", "i_l1_a"], "2025-06-01", "2025-06-02")
    q_day = time.perf_counter() - t0
    user, pw = "bench", "bench-" + os.urandom(6).hex()
    env = {"WATTWATCH_DASHBOARD_USERS": f"{user}:viewer:{hash_password(pw)}"}
    runs = []
    with B.served(Settings(db=db.resolve()), env=env, log=workdir / "dashboard-server.log") as base, \
            sync_playwright() as pw_:
        browser = B.launch(pw_)
        try:
            for k in range(max(1, repeats)):
                r = {}
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                t0 = time.perf_counter()
                page.goto(base)
                page.get_by_role("button", name="Sign in").wait_for(timeout=60_000)
                r["load_s"] = time.perf_counter() - t0
                B.sign_in_ready(page)      # a person types for longer than this takes
                r["sign_in_ready_s"] = time.perf_counter() - t0
                r["fleet_after_sign_in_s"] = _signed_in(page, user, pw, "Fleet")
                run = B.last_run(page)
                B.go(page, "Alerts")
                B.drawn(page, "Alerts", tables=1, after=run)
                run = B.last_run(page)
                t0 = time.perf_counter()
                B.go(page, "Fleet")
                B.drawn(page, "Fleet", charts=1, tables=1, after=run)
                r["fleet_s"] = time.perf_counter() - t0
                run = B.last_run(page)
                t0 = time.perf_counter()
                page.get_by_role("button", name="Open meter").click()
                B.drawn(page, "Meter", charts=1, tables=1, after=run)
                r["meter_s"] = time.perf_counter() - t0
                page.close()
                # The year of 1-minute readings: straight to its meter view after signing in.
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{base}/?page=Meter&meter={YEAR_METER}")
                B.sign_in_ready(page)
                r["year_meter_after_sign_in_s"] = _signed_in(page, user, pw, "Meter")
                if k == 0:
                    page.screenshot(path=str(workdir / "dashboard-bench-year-meter.png"), full_page=True)
                page.close()
                runs.append(r)
                log("  run %d: %s" % (k + 1, ", ".join(f"{a} {b:.2f}" for a, b in r.items())))
        finally:
            browser.close()
    med = {key: round(statistics.median(r[key] for r in runs), 3) for key in runs[0]}
    from wattwatch.app.bench import _machine

    return {"benchmark": "dashboard", "machine": _machine(), "date": time.strftime("%Y-%m-%d"), "meters": meters,
            "days": days, "cadence_s": cadence_s, "alerts": alerts, "year_meter_readings": 365 * 1440,
            "repeats": len(runs), **{f"median_{k}": v for k, v in med.items()},
            "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
            "query_year_binned_s": round(q_year, 3), "query_year_points": len(year), "query_year_binned": binned,
            "query_one_day_raw_s": round(q_day, 3), "query_one_day_points": len(one_day),
            "query_one_day_binned": raw_binned, "target_fleet_s": TARGET_FLEET_S,
            "meets_target": med["fleet_s"] <= TARGET_FLEET_S}
