"""seasonal_profile's frozen-meter evidence on a home with solar panels behind its import register:
a standby of a few register steps repeated for hours is no frozen meter, a working value frozen
for hours still is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api


def prosumer(weeks: int = 20, seed: int = 0) -> pd.DataFrame:
    """Hourly grid import (kWh per hour from a 1-Wh register) of a home: 0.25 kWh at night, 0.4-1.0
    by day. After the 8 profiled winter weeks its solar panels cover the house around noon on
    sunny days (every other day): 5 hours of 0.02 kWh (the standby the panels leave, 20 Wh an
    hour, the same count of register steps each hour)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=weeks * 7 * 24, freq="1h")
    h = ts.hour.to_numpy()
    p = np.where((h < 6) | (h >= 22), 0.25 + 0.05 * rng.random(len(ts)), 0.4 + 0.6 * rng.random(len(ts)))
    day = np.arange(len(ts)) // 24
    sunny = (ts >= pd.Timestamp("2024-03-01")) & (day % 2 == 0) & (h >= 10) & (h < 15)
    p = np.where(sunny, 0.02, p)
    # kWh differences of the register, as a loader computes them (float rounding included)
    e = np.round(np.cumsum(p), 3)
    return pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": np.diff(e, prepend=0.0)})


def _flats(df):
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26")
    res = api.detect(df, state=fitted)
    return [a.start[:13] for a in res.alerts if a.evidence.get("kind") == "flat_line"]


def test_a_solar_homes_noon_standby_in_register_steps_is_no_frozen_meter():
    # Before: a "frozen meter" alert on each sunny noon (0.02 repeated for 5 readings).
    assert _flats(prosumer()) == []


def test_a_working_value_frozen_for_hours_still_is():
    df = prosumer()
    frozen = (df.ts >= "2024-04-10 08:00") & (df.ts < "2024-04-10 20:00")
    df.loc[frozen, "p_kw"] = 0.55
    assert _flats(df) == ["2024-04-10T08"]
