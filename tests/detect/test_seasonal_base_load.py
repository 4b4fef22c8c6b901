"""seasonal_profile: a stretch at the meter's own base load is a stretch, not a run of drops (f7).

A steel plant (or a school) whose working load is twenty times its night load reads its night load
for hours when it stops early on a holiday or stays off on a Sunday. Those readings are under the
log offset ``eps`` (a tenth of the 90th percentile), where ``_plateau`` refused every reading as
part of a stretch ("hours at a fortieth of the load are a drop however alike they are"), so each
was judged alone and the slot with the narrowest spread alerted: "a single reading dropping to
1.217 where 13.59 was expected" inside a four-hour stop (15-min fleet 1213 M-00104), "3 readings
off profile over 5.0 h" on a Sunday the plant stayed off (1217 M-00062). A reading at least as
high as the meter's normal 1st percentile is its own base load; one far under it is still a drop.

The 1st percentile is where the lowest 1 % of the base load's readings begin, not a level the base
load never goes under (fl): a plant off all Saturday reads its base load 24 times an hour apart and
one fell under it (60-min fleet 1451 M-00097: 0.6755 kW amid 0.70 and 0.74, the 1st percentile
0.709). The fit keeps ``low_ext``, as far below the 1st percentile as the 1st lies below the 10th,
but at least half the 1st (rfl: on a meter at its base load less than a tenth of the time the 10th
percentile is its working load, and ``low_ext`` fell to a twelfth of the 1st percentile).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import core

from tests.detect.test_core import _alert_mismatches, _stitched


def plant(seed: int, weeks: int = 11, round_the_clock: bool = False) -> pd.DataFrame:
    """Production 06:00-18:00 on weekdays, 20 kW and bursty (lognormal, 35 %); 1 kW (5 %) otherwise.
    ``round_the_clock``: production at every hour but 02:00-03:00 (its base load 4 % of the time)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=weeks * 7 * 96, freq="15min")
    h, dow = ts.hour.to_numpy(), ts.dayofweek.to_numpy()
    on = (h != 2) if round_the_clock else (dow < 5) & (h >= 6) & (h < 18)
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


def _stopped(share_of_low: float, seed: int = 3, round_the_clock: bool = False):
    """The plant stops at 11:00 on Thursday 14 March and reads its base load (1 kW, 5 %, held at
    least at its profiled 1st percentile) to midnight, but for its 12:00 reading, at ``share_of_low``
    of that 1st percentile. The frame and the fitted model."""
    df = plant(seed, round_the_clock=round_the_clock)
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-02-26")
    st = fitted.detectors[0].state_["plant"]
    day = pd.Timestamp("2024-03-14")
    stop = ((df.ts >= day + pd.Timedelta("11h")) & (df.ts < day + pd.Timedelta("1D"))).to_numpy()
    base = 1.0 + 0.05 * np.random.default_rng(9).standard_normal(int(stop.sum()))
    df.loc[stop, "p_kw"] = np.maximum(base, st["low"])
    df.loc[(df.ts == day + pd.Timedelta("12h")).to_numpy(), "p_kw"] = share_of_low * st["low"]
    return df, fitted


def _on_the_day(alerts) -> list:
    return [(a.start[:16], a.evidence.get("single_reading")) for a in alerts if a.start.startswith("2024-03-14")]


def test_a_base_load_reading_just_under_the_profiled_1st_percentile_is_part_of_the_stretch():
    """At 0.95 of the 1st percentile (M-00097's was 0.953), within the base load's own scatter
    (``low_ext`` below it): no alert (before fl: "a single reading dropping to 0.8512 where 33.67
    was expected")."""
    df, fitted = _stopped(0.95)
    st = fitted.detectors[0].state_["plant"]
    assert [(a.start, a.message) for a in api.detect(df, state=fitted).alerts] == []
    assert st["low_ext"] < 0.95 * st["low"] < st["eps"], st


def test_a_reading_at_a_third_of_the_base_load_amid_it_is_still_a_drop():
    """At a third of the 1st percentile (far under the base load's scatter): one alert, at 12:00."""
    df, fitted = _stopped(1 / 3)
    got = api.detect(df, state=fitted).alerts
    assert len(got) == 1 and got[0].start.startswith("2024-03-14T12:00"), [(a.start, a.message) for a in got]
    assert got[0].evidence.get("single_reading") is True, got[0].evidence


def test_a_drop_to_under_half_the_base_load_is_found_where_the_10th_percentile_is_the_working_load():
    """A plant producing round the clock but for one hour a night reads its base load 4 % of the
    time: its 10th percentile is its working load (12 kW), and the scatter the 1st percentile over the
    10th makes is none of its base load's (``low`` x ``low`` / 10th percentile: 0.08 kW, a twelfth of
    its 1st percentile). Stopped on a Thursday, its 12:00 reading at 0.45 of the 1st percentile amid
    its base load (1 kW) is a drop: found at 12:00, as before fl (on fl: no alert that day but the
    day's own). ``low_ext`` is at least half the 1st percentile."""
    df, fitted = _stopped(0.45, round_the_clock=True)
    assert ("2024-03-14T12:00", True) in _on_the_day(api.detect(df, state=fitted).alerts)
    st = fitted.detectors[0].state_["plant"]
    assert st["low_ext"] == pytest.approx(0.5 * st["low"]), st   # the bound, not the scatter


def test_a_state_stored_before_low_ext_judges_by_low_in_batch_and_stream():
    """A state written before ``low_ext`` (no key; same ``state_version``) judges the stretch by
    ``low`` as before: the 12:00 reading at 0.95 of it alerts alone ("a single reading dropping"),
    the stretch's other readings (at least ``low``) do not - in one run and streamed in pieces cut
    at the reading, the stream resumed with the old state."""
    df, fitted = _stopped(0.95)
    det = fitted.detectors[0]
    det.state_["plant"].pop("low_ext", None)
    frame = df[df.ts >= "2024-03-01"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC"))
    whole = core.run(frame, [det])
    assert _on_the_day(whole.alerts) == [("2024-03-14T12:00", True)], [(a.start, a.message) for a in whole.alerts]
    t0 = pd.Timestamp("2024-03-14 12:00", tz="UTC").timestamp()
    steps = _stitched(frame, [det], np.array([t0 - 1.0, t0 + 3600.0]))
    assert not _alert_mismatches(whole, steps)


def test_a_fit_with_no_reading_above_zero_or_one_below_keeps_no_low():
    """Every reading of the fit at or below zero (a meter that only exports, and one reading zero
    throughout), or some below zero (a net meter importing at night, exporting at noon): no base
    load, ``low`` and ``low_ext`` NaN, the fit does not fail (a fit of two quantiles at once over no
    reading did; fl)."""
    ts = pd.date_range("2024-01-01", periods=14 * 24, freq="1h")
    sun = np.clip(np.sin((ts.hour.to_numpy() - 6) / 12 * np.pi), 0, None)
    df = pd.concat([pd.DataFrame({"meter_id": "pv", "ts": ts, "p_kw": -sun - 0.01}),
                    pd.DataFrame({"meter_id": "dead", "ts": ts, "p_kw": 0.0}),
                    pd.DataFrame({"meter_id": "net", "ts": ts, "p_kw": 0.3 - sun})])
    st = api.fit(df, detectors=["seasonal_profile"], normal_end="2024-01-14").detectors[0].state_
    assert all(np.isnan(st[m].get("low", np.nan)) and np.isnan(st[m].get("low_ext", np.nan))
               for m in ("pv", "dead", "net")), st
