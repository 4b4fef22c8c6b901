"""seasonal_profile: a reading of a stretch run low together whose neighbour was lost is still part
of the stretch (``NEAR_CAD``), while a short dip next to a lost reading is still a drop (q8)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import registry

from tests.detect.test_seasonal import building


@pytest.mark.parametrize("step", ["15min", "1h"])
def test_a_stretch_reading_whose_neighbour_was_lost_is_no_single_reading_drop(step):
    """The office eases down to 60 % through the middle of a weekday (a school's Easter Monday),
    and one reading in the stretch is lost. Its neighbours had no neighbour within 1.5 cadences on
    that side, so nothing said they ran with the stretch: each alerted as a drop (seed 811 at 15
    minutes: "a single reading dropping to 21.14 where 31.15 was expected", its next reading lost).
    The reading two cadences away is as low: no reading of the day is over the limit. Three
    readings at 30 % between readings on profile, the reading after them lost, are still a drop."""
    df = building(weeks=11, step=step, seed=6)
    h = pd.Timedelta(step)
    at = lambda s: (df.ts == pd.Timestamp(s)).to_numpy()  # noqa: E731
    day = pd.Timestamp("2024-03-14")
    t = day + pd.Timedelta("9h")
    while t < day + pd.Timedelta("17h"):
        df.loc[at(t), "p_kw"] *= 0.6 if 11 <= t.hour < 15 else (0.7 if t.hour in (10, 15) else 0.85)
        t += h
    lost = [day + pd.Timedelta("13h")]
    dip = pd.Timestamp("2024-03-12 10:00")
    for k, v in enumerate((30.0, 31.0, 29.5)):  # (not one repeated value: that is a frozen run)
        df.loc[at(dip + k * h), "p_kw"] = v
    lost.append(dip + 3 * h)
    df = df[~df.ts.isin(lost)].reset_index(drop=True)
    score = registry.build("seasonal_profile").fit(df[df.ts < "2024-02-26"]).score(df).to_numpy()
    on_day = ((df.ts >= day) & (df.ts < day + pd.Timedelta("1D"))).to_numpy()
    assert score[on_day].max() < 1, df.ts[on_day][score[on_day] >= 1].tolist()
    assert score[at(dip)][0] >= 1 and score[at(dip + 2 * h)][0] >= 1, score[at(dip)]


def test_a_late_ramp_beside_a_lost_reading_passes_and_a_drop_part_way_down_it_does_not():
    """The office ramps up over an hour on weekdays (07:00 30 kW to 08:00 100 kW). One morning the
    ramp starts slowly and runs 30 minutes late, its 08:00 reading lost: its readings lie between the reading one
    side and the ramp where the lost reading was (853 M-00115, 15 min: 29.98 kW between 23.7 and
    a lost reading, 51.4 beyond it): none over the limit. Another morning 07:45 drops to 50 kW
    (82.5 expected) with 07:30 lost: 50 lies between 07:15's 47.5 and 08:00's 100, but not between
    the ramp's 65 at 07:30 and 100: still a drop (rq8; on q8's 2.5-cadence neighbour it passed)."""
    df = building(weeks=11, step="15min", seed=6)
    ts = df.ts
    for m in (15, 30, 45):  # the weekday ramp: 47.5, 65, 82.5 kW
        sel = (ts.dt.dayofweek < 5) & (ts.dt.hour == 7) & (ts.dt.minute == m)
        df.loc[sel, "p_kw"] *= (30 + 70 * m / 60) / 30
    fit = registry.build("seasonal_profile").fit(df[df.ts < "2024-02-26"])
    at = lambda d, s: (d.ts == pd.Timestamp(s)).to_numpy()  # noqa: E731
    late, drop = "2024-03-13", "2024-03-14"
    morning = ((df.ts >= f"{late} 07:00") & (df.ts <= f"{late} 08:30")).to_numpy()
    df.loc[morning, "p_kw"] *= np.array([30, 32.5, 37.5, 47.5, 65, 82.5, 100]) / [30, 47.5, 65, 82.5, 100, 100, 100]
    df.loc[at(df, f"{drop} 07:45"), "p_kw"] = 50.0
    df = df[~df.ts.isin(pd.to_datetime([f"{late} 08:00", f"{drop} 07:30"]))].reset_index(drop=True)
    score = fit.score(df).to_numpy()
    on_late = ((df.ts >= late) & (df.ts < drop)).to_numpy()
    assert score[on_late].max() < 1, (df.ts[on_late][score[on_late] >= 1].tolist(), score[on_late].max())
    assert score[at(df, f"{drop} 07:45")][0] >= 1, score[at(df, f"{drop} 07:45")]
