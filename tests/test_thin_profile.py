"""(reg48) A meter whose profiling period holds fewer bins than firmware_drift's ``min_hours`` is said.

adv36 saw ``fit --days 3`` learn a daily meter on 3 readings, unsaid; cad43 (item 3) left the notice
for its own branch. The notice names the meter, the bins and readings it held, the period, and what
to do (``--normal-start/--normal-end``, ``--days`` / ``profile_days``); ``fit`` and ``detect`` (which
profiles a meter without state) say it, an hourly meter's few days and a long declared period do not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch import api


def _meter(meter: str, freq: str, periods: int) -> pd.DataFrame:
    t = pd.date_range("2026-01-01", periods=periods, freq=freq, tz="UTC")
    k = np.arange(periods, dtype=float)
    h = pd.Timedelta(freq).total_seconds() / 3600
    p = 1.0 + 0.2 * np.sin(k / 3.0)
    return pd.DataFrame({"meter_id": meter, "ts": t, "p_kw": p, "v_l1_v": 230 + np.cos(k), "i_l1_a": p * 4.3,
                         "e_kwh": 100 + np.cumsum(p * h)})


def _csv(tmp_path: Path) -> Path:
    f = pd.concat([_meter("D1", "1D", 120), _meter("H1", "1h", 24 * 30)], ignore_index=True)
    path = tmp_path / "m.csv"
    f.assign(ts=f["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(path, index=False)
    return path


def _thin(notices) -> list[str]:
    return [n for n in notices if "profiling period" in n]


def test_api_fit_on_three_days_says_the_daily_meter_learned_on_three_bins(tmp_path):
    fitted = api.fit(str(_csv(tmp_path)), db=str(tmp_path / "s.duckdb"), days=3)
    said = _thin(fitted.notices)
    assert len(said) == 1, fitted.notices
    n = said[0]
    assert n.startswith("meter D1:") and "held 4 daily bin(s)" in n and "(4 reading(s))" in n
    assert "2026-01-01 00:00 UTC .. 2026-01-04 00:00 UTC" in n and "fewer than the 18" in n
    assert "--normal-start/--normal-end" in n and "profile_days" in n


def test_api_a_long_declared_period_is_not_said(tmp_path):
    fitted = api.fit(str(_csv(tmp_path)), db=str(tmp_path / "s.duckdb"), normal_start="2026-01-01",
                     normal_end="2026-02-20")
    assert _thin(fitted.notices) == []


def test_api_detect_profiling_a_daily_meter_on_its_first_week_says_it(tmp_path):
    found = api.detect(str(_csv(tmp_path)), db=str(tmp_path / "s.duckdb"),
                       detectors=["supply_outage", "firmware_drift"])
    said = _thin(found.notices)
    assert len(said) == 1 and said[0].startswith("meter D1:") and "held 8 daily bin(s)" in said[0], found.notices
    # Its state is kept: the next run profiles nothing and says nothing.
    again = api.detect(str(tmp_path / "s.duckdb"), detectors=["supply_outage", "firmware_drift"])
    assert _thin(again.notices) == []


def test_api_many_thin_meters_are_said_in_few_notices(tmp_path):
    f = pd.concat([_meter(f"D{k:02d}", "1D", 60) for k in range(8)], ignore_index=True)
    fitted = api.fit(f, days=3, detectors=["supply_outage", "firmware_drift"])
    said = _thin(fitted.notices)
    assert len(said) == 6 and said[-1].startswith("3 more meter(s) held fewer than 18 bins"), fitted.notices


def test_cli_fit_days_3_prints_the_notice(tmp_path):
    r = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "fit", str(_csv(tmp_path)), "--db",
                        str(tmp_path / "s.duckdb"), "--days", "3", "--detectors", "supply_outage,firmware_drift",
                        "--rejects", str(tmp_path / "rej.csv")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    err = " ".join(r.stderr.split())
    assert "note: meter D1: its profiling period" in err and "held 4 daily bin(s)" in err
    assert "meter H1" not in err


def test_the_notice_names_firmware_drift_only_when_it_runs(tmp_path):
    # The bar (18 bins) is the same; "firmware_drift needs" is said only of a run that has it.
    f = _meter("D1", "1D", 60)
    without = _thin(api.fit(f, days=3, detectors=["supply_outage", "baseline_macd"]).notices)
    assert len(without) == 1 and "held 4 daily bin(s)" in without[0], without
    assert "firmware_drift" not in without[0] and "fewer than 18 and too few" in without[0]
    with_fw = _thin(api.fit(f, days=3, detectors=["supply_outage", "firmware_drift"]).notices)
    assert len(with_fw) == 1 and "fewer than the 18 firmware_drift needs (min_hours)" in with_fw[0], with_fw
