"""seasonal_profile's normal low (the 1st percentile a stretch at the meter's own base load is measured
against, ``_plateau``) is taken over the readings above zero: a profiled week holding an outage of three
hourly zeros (1.8 % of its 169 readings) made a home's 1st percentile 0, its standby (under ``eps``) was
judged reading by reading again, and a morning at the standby read as "a single reading dropping to
0.1857 where 4.289 was expected" (quality-log lvs: 1117 M-00026 at 60 min, a UCI home)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api

START = "2025-01-06"  # a Monday
DAYS = 14
LATE = 10             # the morning the household sleeps in (day 10: Thu 16 Jan)


def _home(outage: bool = True, late: float = 0.19) -> pd.DataFrame:
    """Hourly readings of a home: standby 0.15-0.26 kW, a morning peak at 06-07 h (3-4 kW) and an evening
    one; on day ``LATE`` the morning stays at the standby until 08 h (0.8 kW; its 07 h reading ``late``); with ``outage``, three
    zero readings on day 2 (12-14 h) of the profiled week."""
    rng = np.random.default_rng(3)
    ts = pd.date_range(START, periods=DAYS * 24, freq="1h")
    h = ts.hour.to_numpy()
    day = np.arange(len(ts)) // 24
    p = rng.uniform(0.15, 0.26, len(ts))
    p = np.where((h >= 6) & (h <= 7), rng.uniform(3.0, 4.0, len(ts)), p)
    p = np.where((h >= 17) & (h <= 21), rng.uniform(1.5, 2.5, len(ts)), p)
    p = np.where((h >= 9) & (h <= 16), rng.uniform(0.4, 0.9, len(ts)), p)
    p = np.where((day == LATE) & (h >= 6) & (h <= 7), np.array([0.2, late])[np.clip(h - 6, 0, 1)], p)
    p = np.where((day == LATE) & (h == 8), 0.8, p)
    if outage:
        p = np.where((day == 2) & (h >= 12) & (h <= 14), 0.0, p)
    return pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": p})


def _alerts(df: pd.DataFrame) -> list:
    fitted = api.fit(df, detectors=["seasonal_profile"], days=7)
    return api.detect(df, detectors=["seasonal_profile"], state=fitted).alerts


def test_a_morning_at_the_standby_is_no_single_reading_drop_after_an_outage_in_the_profile():
    fitted = api.fit(_home(), detectors=["seasonal_profile"], days=7)
    low = fitted.detectors[0].state_["home"]["low"]
    assert 0.14 < low < 0.2, low   # the standby's, not the outage's zeros
    got = _alerts(_home())
    assert not any("single reading" in a.message for a in got), [(a.start, a.message) for a in got]


def test_a_reading_far_under_the_standby_there_is_still_one():
    # (a twentieth of the standby: below the normal low, so judged alone, as before)
    got = _alerts(_home(late=0.01))
    assert any("single reading dropping to 0.01" in a.message for a in got), [(a.start, a.message) for a in got]
