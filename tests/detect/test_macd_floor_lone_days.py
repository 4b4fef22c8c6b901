"""baseline_macd's floor rise is judged on two days' floors (the lower of the last 24 h's and the
24 h before's), so its limit is learned from the same statistic: a home that left a load on all day
on single days of its profiled week (the UCI household: daily floors 0.20, 0.21, 1.51, 0.40, 0.21,
0.40, 0.22 kW over a 0.2 kW standby) had an all-pairs floor spread of 0.69, a rise limit of x21, and a load of
1.9 kW added for four days scored 0.74 from its floor throughout (real-shape fleet, seed 43,
M-00049; seed 41, M-00051)."""

from __future__ import annotations

import numpy as np

from wattwatch import api

from tests.detect.test_macd_floor import home


def _with_lone_days(df, days, kw=1.3):
    """A load of ``kw`` left on all day (a heater, the household's own) on each of ``days``."""
    for d in days:
        on = (df.ts >= d) & (df.ts < np.datetime64(d) + np.timedelta64(1, "D"))
        df.loc[on, "p_kw"] += kw
    return df


def _alerts(df):
    fitted = api.fit(df, detectors=["baseline_macd"], days=7)
    return fitted, api.detect(df, state=fitted).alerts


def test_a_load_added_for_days_is_found_on_a_home_whose_profiled_week_had_lone_all_day_loads():
    found, lone, spreads = 0, 0, []
    for seed in range(4):
        df = _with_lone_days(home(days=24, seed=seed), ["2025-01-07", "2025-01-09", "2025-01-11", "2025-01-23"])
        df.loc[(df.ts >= "2025-01-15") & (df.ts < "2025-01-19T12:00"), "p_kw"] += 1.0
        fitted, got = _alerts(df)
        st = fitted.detectors[0].state_["home"]
        spreads.append((st["floor_spread"], st.get("floor_spread_up")))
        found += any("2025-01-15" <= a.start < "2025-01-19T12:00" for a in got)
        # A lone all-day load after profiling lifts no two-day floor.
        lone += any("2025-01-22T12:00" <= a.start < "2025-01-24" and a.evidence["basis"] == "floor" for a in got)
    assert found == 4 and lone == 0, (found, lone, spreads)
    # The lone days widen the spread of days' floors, not of two-day lows.
    assert all(a > 0.4 and b < 0.25 for a, b in spreads), spreads
