"""seasonal_profile: a stretch at the meter's own base load is a stretch, not a run of drops (f7).

A steel plant (or a school) whose working load is twenty times its night load reads its night load
for hours when it stops early on a holiday or stays off on a Sunday. Those readings are under the
log offset ``eps`` (a tenth of the 90th percentile), where ``_plateau`` refused every reading as
part of a stretch ("hours at a fortieth of the load are a drop however alike they are"), so each
was judged alone and the slot with the narrowest spread alerted: "a single reading dropping to
1.217 where 13.59 was expected" inside a four-hour stop (15-min fleet 1213 M-00104), "3 readings
off profile over 5.0 h" on a Sunday the plant stayed off (1217 M-00062). A reading at least as
high as the meter's normal 1st percentile is its own base load; one far under it is still a drop.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api


def plant(seed: int, weeks: int = 11) -> pd.DataFrame:
    """Production 06:00-18:00 on weekdays, 20 kW and bursty (lognormal, 35 %); 1 kW (5 %) otherwise."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=weeks * 7 * 96, freq="15min")
    h, dow = ts.hour.to_numpy(), ts.dayofweek.to_numpy()
    on = (dow < 5) & (h >= 6) & (h < 18)
    p = np.where(on, 20.0 * np.exp(0.35 * rng.standard_normal(len(ts))), 1.0 + 0.05 * rng.standard_normal(len(ts)))
    return pd.DataFrame({"meter_id": "plant", "ts": ts, "p_kw": p})


def _alerts(df: pd.DataFrame) -> list:
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26")
    return api.detect(df, state=fitted).alerts


def test_a_plant_stopping_early_for_the_afternoon_reads_its_night_load_as_a_stretch():
    """Thursday 14 March: production winds down from 11:00 (12, 6, 3 kW) and the plant reads its
    night load (1.2 kW) until midnight. No reading alerts (before f7: a "reading_run" of 4-9
    readings, the stretch's readings judged one by one)."""
    got = {}
    for seed in (3, 4):
        df = plant(seed)
        day = pd.Timestamp("2024-03-14")
        stop = ((df.ts >= day + pd.Timedelta("11h")) & (df.ts < day + pd.Timedelta("1D"))).to_numpy()
        df.loc[stop, "p_kw"] = 1.2 * (1 + 0.05 * np.random.default_rng(9).standard_normal(int(stop.sum())))
        for k, v in enumerate((12.0, 6.0, 3.0)):
            df.loc[(df.ts == day + pd.Timedelta("11h") + k * pd.Timedelta("15min")).to_numpy(), "p_kw"] = v
        got[seed] = [(a.start, a.evidence.get("kind"), a.message) for a in _alerts(df)]
    assert got == {3: [], 4: []}, got


def test_a_drop_far_under_the_plants_night_load_is_still_found():
    """Two working hours (Wednesday 10:00-12:00) at a tenth of the night load (0.1 kW: the plant
    never read under 0.89 kW while normal; above the zero reading's 2 % of typical): readings under
    the meter's normal low are no base load, and still alert as a run."""
    df = plant(3)
    sel = ((df.ts >= "2024-03-13 10:00") & (df.ts < "2024-03-13 12:00")).to_numpy()
    df.loc[sel, "p_kw"] = 0.1 * (1 + 0.05 * np.random.default_rng(2).standard_normal(int(sel.sum())))
    got = _alerts(df)
    assert len(got) == 1 and got[0].start.startswith("2024-03-13T10"), [(a.start, a.message) for a in got]
