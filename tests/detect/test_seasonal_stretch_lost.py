"""seasonal_profile: a reading of a stretch run low together whose neighbour was lost is still part
of the stretch (``NEAR_CAD``), while a short dip next to a lost reading is still a drop (q8)."""

from __future__ import annotations

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
