"""baseline_macd on a building whose night is most of its load (a school, a hospital: the lowest
reading 0.5-0.85 of the mean on the BDG2 buildings). Such a night is no standby to accuse from,
but it tells a change of the whole load from one of the working hours alone: a load added for good
(a level shift) or a share taken (a bypass) reaches the night too, while a building working harder
with the weather or a term leaves its night where it was (real-shape fleets: Eleonora schools
60-85 % above their profiled week for days with the night up 10-28 %)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api

START = "2025-01-06"  # a Monday


def school(days: int = 21, seed: int = 0, night_x: dict | None = None, work_x: dict | None = None) -> pd.DataFrame:
    """5-minute readings of a building with a steady night (60 kW, 3 % from day to day) and a
    working-hours load (08-18 h, 100 kW at its peak) whose days vary by 5 %; weekends at half the
    working-hours load; 3 % reading noise. ``night_x``/``work_x``: {day number: factor} on the
    night or the working-hours load of those days (day 0 is the first Monday)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=days * 288, freq="5min")
    h = (ts.hour + ts.minute / 60).to_numpy()
    day = np.arange(len(ts)) // 288

    def per_day(x):
        f = np.ones(days)
        for d, v in (x or {}).items():
            f[d] = v
        return f

    night = 60 * (np.exp(rng.normal(0, 0.03, days)) * per_day(night_x))[day]
    weekend = np.asarray(ts.dayofweek >= 5)
    work = 100 * np.exp(-0.5 * ((h - 13) / 3.0) ** 2) * (np.exp(rng.normal(0, 0.05, days)) * per_day(work_x))[day] \
        * np.where(weekend, 0.5, 1)
    p = (night + work) * (1 + 0.03 * rng.standard_normal(len(ts)))
    return pd.DataFrame({"meter_id": "school", "ts": ts, "p_kw": p})


def _alerts(df: pd.DataFrame, lo: str, hi: str) -> list:
    fitted = api.fit(df, detectors=["baseline_macd"], days=7)
    return [a for a in api.detect(df, state=fitted).alerts if lo <= a.start < hi]


def _stretch(df: pd.DataFrame, lo: str, hi: str) -> np.ndarray:
    return ((df.ts >= lo) & (df.ts < hi)).to_numpy()


def test_working_hours_busier_for_days_with_the_night_unchanged_is_no_baseline_deviation():
    """The working hours 2.2x as busy for five weekdays (+75 % of the day's energy), the night as
    it was: weather or a term, not a fault."""
    n = 0
    for seed in range(3):
        df = school(seed=seed)
        busy = _stretch(df, "2025-01-20", "2025-01-25")
        h = df.ts.dt.hour + df.ts.dt.minute / 60
        work = 100 * np.exp(-0.5 * ((h - 13) / 3.0) ** 2)
        df.loc[busy, "p_kw"] += 1.2 * work[busy] * (1 + 0.03 * np.random.default_rng(seed).standard_normal(busy.sum()))
        n += len(_alerts(df, "2025-01-19", "2025-01-28"))
    assert n == 0, n


def test_a_load_added_for_two_days_or_a_share_taken_still_alerts_on_the_building():
    """A load of 60 % of the mean running all the time for two days (it lifts the night), and a
    bypass leaving half the load on the meter for four days (it halves the night): both alert."""
    added = taken = 0
    for seed in range(3):
        df = school(seed=seed)
        mean = df.p_kw[: 7 * 288].mean()
        df.loc[_stretch(df, "2025-01-21 10:00", "2025-01-23 10:00"), "p_kw"] += 0.6 * mean
        added += bool(_alerts(df, "2025-01-21", "2025-01-24"))
        df = school(seed=seed)
        df.loc[_stretch(df, "2025-01-21 10:00", "2025-01-25 10:00"), "p_kw"] *= 0.5
        taken += bool(_alerts(df, "2025-01-21", "2025-01-26"))
    assert added == 3 and taken == 3, (added, taken)


def test_working_hours_ever_busier_for_a_week_with_the_night_up_a_little_is_no_baseline_deviation():
    """The school's working hours twice as busy on Monday and three times from Tuesday to Friday
    (the day's energy +40 % then +80 %) with the night up 10-20 % (heating or cooling running into
    it), as Eleonora's source weeks do on the real-shape fleets: once a whole day of it is in, the
    floor carries a sixth of the energy's excess in kW, where a load added for good carries all of
    it (it runs at night too). Fails on main (one alert for four days on each seed: the night rose
    by enough of its own limit that the veto did not halve it)."""
    n = 0
    for seed in range(3):
        df = school(seed=seed, night_x={14: 1.1, 15: 1.2, 16: 1.2, 17: 1.2, 18: 1.2},
                    work_x={14: 2.0, 15: 3.0, 16: 3.0, 17: 3.0, 18: 3.0})
        n += len(_alerts(df, "2025-01-19", "2025-01-28"))
    assert n == 0, n


def test_a_term_break_with_the_night_a_little_lower_is_no_baseline_deviation():
    """A week of term break: the working hours at a fifth of their load from Monday to Friday, the
    night 15 % lower (heating set back): the day's energy 37 % below its profile, the floor 15 %.
    A bypass taking a share of the load takes that share of the night too (the floor would fall by
    the energy's own log fall; ``test_a_load_added_for_two_days_or_a_share_taken_still_alerts_on_the_building``).
    Fails on main (one alert for three to four days on each seed)."""
    n = 0
    for seed in range(3):
        df = school(seed=seed, night_x={d: 0.85 for d in range(14, 19)}, work_x={d: 0.2 for d in range(14, 19)})
        n += len(_alerts(df, "2025-01-19", "2025-01-28"))
    assert n == 0, n
