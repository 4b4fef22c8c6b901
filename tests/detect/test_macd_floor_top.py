"""baseline_macd judges a rise of two days' floors against the upper half of the profiled days' floors too,
where it is above every one of them (:meth:`BaselineMACD._floor_top_rise`). A plant that runs a night shift
on some days and stops on others has profiled floors in two groups (the real steel plant: 2.0 kW on three
days, 4.4-5.6 kW on four); their all-pairs spread is the gap between the groups, and against it the rise
limit was x40 of the median floor: a load of 25 kW added for nine days, the plant then shut for a holiday
week (every reading at 26.5 kW, ten times its stopped nights), scored 0.49 and nothing alerted (quality-log
f7, 1213 M-00116 at 5 and 15 min). The same plant without the load, holiday included, stays quiet."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api

START = "2025-01-06"  # a Monday
DAYS = 26
ADDED_FROM = 18       # Fri 24 Jan: the load is added (for the rest of the run)
HOLIDAY = (23, 24, 25)  # Wed-Fri 29-31 Jan: the plant shut (its standby all day)


def _plant(added_kw: float = 0.0) -> pd.DataFrame:
    """15-minute readings of a plant: standby 2 kW; weekdays production 08-22 h (30-45 kW, a dip at noon);
    the first week's Tuesday-Friday nights run a shift (18 kW, its quietest quarter hours 4.5-5.6 kW),
    later nights stop at the standby; Saturday a short morning, Sunday off; ``HOLIDAY`` days shut. From
    day ``ADDED_FROM`` a constant ``added_kw`` runs all the time."""
    rng = np.random.default_rng(11)
    ts = pd.date_range(START, periods=DAYS * 96, freq="15min")
    day = np.arange(len(ts)) // 96
    h = ts.hour.to_numpy()
    wd = ts.dayofweek.to_numpy()
    level = np.exp(rng.normal(0, 0.2, DAYS))[day]
    work = (wd < 5) & (h >= 8) & (h < 22)
    p = 2.0 + 0.1 * rng.standard_normal(len(ts))
    p = np.where(work, 37.0 * level * (1 + 0.15 * rng.standard_normal(len(ts))), p)
    p = np.where(work & (h == 12), 12.0, p)
    p = np.where((wd == 5) & (h >= 8) & (h < 13), 15.0 * (1 + 0.1 * rng.standard_normal(len(ts))), p)
    shift = (day >= 1) & (day <= 4) & ((h >= 22) | (h < 8))
    p = np.where(shift, 18.0 * (1 + 0.05 * rng.standard_normal(len(ts))), p)
    # The shift's quietest quarter hour of each night (a break): 4.5-5.6 kW
    dips = {1: 5.6, 2: 4.5, 3: 4.4, 4: 4.6}
    for d, v in dips.items():
        p[d * 96 + 3 * 4] = v
    p = np.where(np.isin(day, HOLIDAY), 2.0 + 0.1 * rng.standard_normal(len(ts)), p)
    p = np.where(day >= ADDED_FROM, p + added_kw, p)
    return pd.DataFrame({"meter_id": "plant", "ts": ts, "p_kw": np.clip(p, 0.05, None)})


def _alerts(df: pd.DataFrame, **config) -> list:
    cfg = {"baseline_macd": config} if config else None
    fitted = api.fit(df, detectors=["baseline_macd"], days=7, config=cfg)
    return api.detect(df, state=fitted, config=cfg).alerts


def test_a_load_added_to_a_plant_with_shifts_is_found_through_its_holiday():
    df = _plant(added_kw=25.0)
    got = _alerts(df)
    assert len(got) == 1, [(a.start, a.message) for a in got]
    a = got[0]
    assert a.evidence["basis"] == "floor" and "above" in a.message, a.message
    # Within the nine days of the added load, from its second night on (two days' floors).
    t0 = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=ADDED_FROM)
    assert t0 < pd.Timestamp(a.start) < t0 + pd.Timedelta(days=3), a.start
    # Judged against the upper half of the profiled floors (4.5-5.6 kW), not the median of all days.
    assert 4.0 < a.evidence["expected_kw"] < 6.0 and a.evidence["actual_kw"] > 25.0, a.evidence
    # Without the upper half, the floor's rise limit is set by the gap between stopped and shift nights.
    assert _alerts(df, floor_top=False) == []


def test_the_same_plant_without_the_load_is_quiet():
    assert _alerts(_plant()) == []
