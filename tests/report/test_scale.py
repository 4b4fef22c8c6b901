"""The report at the issue's scale: 1,000 meters x 35 days and 1,000 alerts, at most 2 MB, opened
and drawn in headless Chromium without errors. How fast it opens (<= 2 s, against a floor page
with the same plotly.js) is `wattwatch bench report`'s figure, not a test's."""

from __future__ import annotations

import math

import pytest

import pandas as pd

from wattwatch.app.bench import report_benchmark, synthetic_alerts


@pytest.mark.slow
def test_report_of_a_thousand_meters_is_small_and_opens(browser, tmp_path):
    # Hourly readings build the store in seconds; the report's size and open time do not depend on
    # the cadence (the channels are binned to the same budget of points whatever it is).
    r = report_benchmark(meters=1000, days=35, alerts=1000, cadence_s=3600, workdir=tmp_path, repeats=1,
                         browser=browser, log=lambda *a: None, floor=False)
    assert r["errors"] == []
    alerting = {a.meter_id for a in synthetic_alerts(1000, 1000, pd.Timestamp("2025-01-01", tz="UTC"), 35, 0)}
    # Every alerting meter has its section and every alert its evidence; the meters whose channels
    # did not fit are named on the page with the command that draws them.
    assert r["evidence_tables"] == 1000 and r["sections"] == len(alerting) > 300
    assert 0 < r["drawn_meters"] < r["sections"]
    assert f"of {len(alerting)} meters are drawn" in r["note"] and "--meters" in r["note"]
    assert r["bytes"] <= 2_000_000, r
    # Opened: built and every figure in view drawn (measure_open waits for both); a meter's section
    # scrolled to is drawn too.
    assert len(r["runs_open_s"]) == 1 and math.isfinite(r["meter_s"]), r
