"""baseline_macd's rise of two days' floors against the upper half of the profiled floors
(:meth:`BaselineMACD._floor_top_rise`) counts only where the two days' floor is above the highest
profiled day's floor by ``min_rel``: a level the meter lived at while profiled is no evidence however
long it lasts. A home profiled on a fortnight, a week without its heater at night (floor 0.15 kW) and a
week with it (0.5 kW, the coldest night 0.9 kW): the upper half of its floors is tight (the heated
nights), so nights at the coldest profiled night's level are far above its median, yet the home has
been there before. Nights well above every profiled one are still found (rlvs)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api

START = "2025-01-06"  # a Monday
PROFILE = 14
DAYS = 28


def _home(late_kw: float) -> pd.DataFrame:
    """Hourly readings: nights (00-06 h) at the day's floor to 1.3 times it, days 0.3-0.8 kW and evenings
    0.9-1.3 kW above it. Floors: 0.15 kW on days 0-6, 0.5 kW on days 7-12 and 0.9 kW on day 13 (profiled);
    0.5 kW on days 14-20, then ``late_kw`` for the last week."""
    rng = np.random.default_rng(5)
    ts = pd.date_range(START, periods=DAYS * 24, freq="1h")
    day = np.arange(len(ts)) // 24
    h = ts.hour.to_numpy()
    floor = np.select([day < 7, day < 13, day == 13, day < 21], [0.15, 0.5, 0.9, 0.5], late_kw)
    p = floor * rng.uniform(1.0, 1.3, len(ts))
    p = np.where((h >= 7) & (h < 17), rng.uniform(0.3, 0.8, len(ts)) + floor, p)
    p = np.where(h >= 17, rng.uniform(0.9, 1.3, len(ts)) + floor, p)
    p[day * 24 + 3] = floor   # each night's quietest hour: the day's floor
    return pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": p})


def _floor_alerts(late_kw: float) -> list:
    df = _home(late_kw)
    fitted = api.fit(df, detectors=["baseline_macd"], days=PROFILE)
    got = api.detect(df, state=fitted, detectors=["baseline_macd"]).alerts
    return [a for a in got if a.evidence.get("basis") == "floor"]


def test_nights_at_the_coldest_profiled_nights_level_are_no_rise():
    got = _floor_alerts(0.85)
    assert got == [], [(a.start, a.message) for a in got]


def test_nights_above_every_profiled_one_are():
    got = _floor_alerts(1.6)
    assert got and "above" in got[0].message, [(a.start, a.message) for a in got]
