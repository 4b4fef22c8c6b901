"""baseline_macd on a real household's day-to-day variability: a home whose daily energy varies by a
third from one day to the next (as the UCI household does, days independent) is judged against
that out-of-sample spread, not against the spread of its profiled week measured in-sample."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api
from wattwatch.detect import registry

DAY_SD = 0.33  # the UCI household's daily energy, log standard deviation


def home(days: int = 28, seed: int = 0) -> pd.DataFrame:
    """5-minute readings: a morning and an evening peak on a 0.3 kW base, each day scaled by an
    independent log-normal factor (sd ``DAY_SD``), 10 % reading noise."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-06", periods=days * 288, freq="5min")
    h = (ts.hour + ts.minute / 60).to_numpy()
    shape = 0.3 + 0.8 * np.exp(-0.5 * ((h - 7.5) / 1.0) ** 2) + 2.0 * np.exp(-0.5 * ((h - 19.5) / 2.0) ** 2)
    day = np.exp(rng.normal(0, DAY_SD, days))[np.arange(len(ts)) // 288]
    p = shape * day * (1 + 0.1 * rng.standard_normal(len(ts)))
    return pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": np.clip(p, 0.05, None)})


def _alerts(df, **config):
    fitted = api.fit(df, detectors=["baseline_macd"], days=7, config={"baseline_macd": config} if config else None)
    return api.detect(df, state=fitted).alerts


def test_the_day_to_day_spread_is_measured_out_of_sample():
    spreads = []
    for seed in range(6):
        d = registry.build("baseline_macd").fit(home(days=7, seed=seed))
        st = d.state_["home"]
        spreads.append(st["day_spread"])
        # In-sample, the fast average's spread is a fraction of what the days really do.
        assert st["fast_spread"] < 0.68 * DAY_SD
    assert 0.15 < np.median(spreads) < 0.6, spreads


def test_a_households_busy_and_quiet_days_are_no_baseline_deviation():
    n = sum(len(_alerts(home(seed=seed))) for seed in range(6))
    assert n <= 1, n  # 6 homes x 3 judged weeks


def test_a_sustained_shift_on_a_noisy_home_still_alerts():
    """A load the size of the home's mean added for five days (an unauthorised heater), and a
    bypass taking 60 % of the load for a week. Found on the homes whose profiled week gave a
    spread near the true one (seeds 0 and 1, both faults, at their onset or within a day); a week
    that happened to be lively (seeds 2 and 3) sets the limit higher and finds neither: one week
    is little evidence of how a household's days vary (the trade-off the README states)."""
    found = 0
    for seed in range(4):
        df = home(seed=seed)
        shift = (df.ts >= "2025-01-16") & (df.ts < "2025-01-21")
        df.loc[shift, "p_kw"] += df.loc[df.ts < "2025-01-13", "p_kw"].mean() * 1.5
        found += any("2025-01-15" <= a.start <= "2025-01-21" for a in _alerts(df))
        df = home(seed=seed)
        theft = (df.ts >= "2025-01-18") & (df.ts < "2025-01-25")
        df.loc[theft, "p_kw"] *= 0.4
        found += any("2025-01-17" <= a.start <= "2025-01-25" for a in _alerts(df))
    assert found >= 4, found


def test_the_sustained_average_is_within_the_declared_reach():
    d = registry.build("baseline_macd")
    assert d.lookback_s(np.array([300.0]))[0] >= 3600 * d.config.fast_memory * d.config.sustained_h
    assert d.lookback_s(np.array([300.0]))[0] >= 3600 * d.config.week_h


def _theft(seed: int, frac: float) -> pd.DataFrame:
    """The home with a bypass leaving ``frac`` of its load on the meter for 12 days."""
    df = home(seed=seed)
    df.loc[(df.ts >= "2025-01-18") & (df.ts < "2025-01-30"), "p_kw"] *= frac
    return df


def _found(alerts) -> bool:
    return any("2025-01-18" <= a.start < "2025-01-30" for a in alerts)


def test_a_persistent_theft_on_a_noisy_home_is_found_by_the_week_window():
    """A bypass taking 60 % of the load for 12 days on a home whose days vary by a third: a day is
    within 3 sigma of normal, a 72-h average about 2.6, the week's energy about 4. Without the
    week window it is found on 3 of the 8 homes (those whose profiled week gave a spread near the
    true one); with it on at least 5, and the evidence says which window fired. (The base-load
    floor is off on both sides: this home's floor scales with its day, and the test is about the
    week window; ``test_macd_floor.py`` judges the floor.)"""
    with_week, without, windows = 0, 0, set()
    for seed in range(8):
        df = _theft(seed, 0.4)
        got = _alerts(df, use_floor=False)
        with_week += _found(got)
        windows |= {a.evidence["window_h"] for a in got if "2025-01-18" <= a.start < "2025-01-30"}
        without += _found(_alerts(df, use_week=False, use_floor=False))
    assert with_week >= 5 and with_week >= without + 2, (with_week, without)
    assert 168.0 in windows, windows


def test_ordinary_busy_and_quiet_weeks_are_no_baseline_deviation():
    """A week 25 % above the home's normal (guests) or 20 % below (away at weekends): about 2 sigma
    of a week's energy on this home. On most homes no alert; one profiled week underestimates the
    spread on some (seed 0: 0.19 against a true 0.28), where the week window then reads an
    ordinary quiet week as a deviation: at most 1 in 4 home-weeks."""
    n = 0
    for seed in range(8):
        for f in (1.25, 0.8):
            df = home(seed=seed)
            df.loc[(df.ts >= "2025-01-20") & (df.ts < "2025-01-27"), "p_kw"] *= f
            n += bool(_alerts(df))
    assert n <= 4, n


def test_hours_without_readings_count_on_neither_side_of_the_week():
    """A 2-day gap inside the window is not a 2/7 drop: the week's energy and the profile's are
    summed over the same hours; under ``week_cover`` of the window's hours read: no value."""
    d = registry.build("baseline_macd", {"week_h": 168.0})
    m = np.ones((1, 400))
    m[0, 200:248] = np.nan
    z = d._week(m, np.ones((1, 400)), np.zeros(1))
    assert np.isnan(z[0, :83]).all() and np.allclose(z[0, 83:], 0.0)
    m[0, 250:400] = np.nan
    assert np.isnan(d._week(m, np.ones((1, 400)), np.zeros(1))[0, 340:]).all()


def test_a_drop_is_judged_against_a_limit_it_can_reach():
    """The day spread is measured in logs (a busy day doubles, a quiet one halves), the averages
    are relative deviations: the limit goes back to one per direction, exp(L) - 1 above and
    1 - exp(-L) below. As one number both ways a noisy home's limit exceeded 100 %, which no drop
    can reach, while an ordinary busy day came close to it."""
    df = home(days=7, seed=2)
    d = registry.build("baseline_macd").fit(df)
    one = df.head(1).assign(_seg=0)  # the limits are per meter: one row of the (one-meter) frame
    up, down = d._limit(one, sign=1.0)[0], d._limit(one, sign=-1.0)[0]
    log_lim = d.config.sigma_k * d._iid_factor(d.config.fast_h) * d.state_["home"]["day_spread"]
    assert np.isclose(up, max(np.expm1(log_lim), d.config.min_rel))
    assert np.isclose(down, max(-np.expm1(-log_lim), d.config.min_rel))
    assert down < up and down < 1.0


def test_a_weekend_day_is_judged_with_the_error_of_its_one_day_profile():
    """From one profiled week the Saturday and Sunday profiles are one day each: a weekend day is
    compared with a profile as noisy as itself, a weekday with a median of five. The fit keeps
    the days per type, and the limit of an average that holds the weekend is wider."""
    df = home(days=7, seed=0)
    d = registry.build("baseline_macd").fit(df)
    assert list(d.state_["home"]["type_days"]) == [5.0, 1.0, 1.0]
    t = (pd.date_range("2025-01-13", periods=14 * 24, freq="h").astype("int64") // 10**9).to_numpy(float)[None, :]
    day, wide = np.array([0.3]), np.array([0.45])  # the weekend's spread is not measured by weekday pairs
    pv = d._profile_var(t, np.array([[5.0, 1.0, 1.0]]), d.config.fast_h, d._windows()[0], day, wide)
    wed_eve, sun_eve = 2 * 24 + 20, 6 * 24 + 20  # hours since Monday 2025-01-13
    # A weekday against a median of five (the average started on Monday holds 94 % of its weight).
    assert np.isclose(pv[0, wed_eve], 0.94 ** 2 * 0.3 ** 2 / 5, rtol=0.02)
    assert pv[0, sun_eve] > 4 * pv[0, wed_eve]  # Sunday evening: mostly one profiled Sunday, wider


def test_a_busy_weekend_day_is_no_baseline_deviation():
    """A Sunday 2.5 times as busy as usual (log 0.92: under 3 sigma of a day on this home), judged
    against a Sunday profile learned from one Sunday: no alert on six homes (two alerted when the
    profile's own error was not counted and the limit was one number both ways)."""
    n = 0
    for seed in range(6):
        df = home(seed=seed)
        df.loc[(df.ts >= "2025-01-19") & (df.ts < "2025-01-20"), "p_kw"] *= 2.5
        n += len(_alerts(df))
    assert n == 0, n


def test_a_busy_profiled_saturday_does_not_make_ordinary_saturdays_deviations():
    """The one Saturday of the profiled week was 2.5 times as busy as the home's usual day (guests):
    with days that vary by a third, one Saturday is little evidence that Saturdays differ from
    weekdays, so the Saturday profile's level is shrunk towards the weekday one by how little
    history it has. The following ordinary Saturdays are no deviation (before: 3 alerts on 6 homes,
    ordinary Saturdays read as drops against the busy one; now none)."""
    n = 0
    for seed in range(6):
        df = home(seed=seed)
        df.loc[(df.ts >= "2025-01-11") & (df.ts < "2025-01-12"), "p_kw"] *= 2.5
        n += len(_alerts(df))
    assert n <= 1, n


def _shop(days: int = 28, seed: int = 0, weekend: float = 0.35) -> pd.DataFrame:
    """A building open on weekdays (days within 5 % of each other) and at ``weekend`` of it on
    Saturdays and Sundays."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2025-01-06", periods=days * 288, freq="5min")
    h = (ts.hour + ts.minute / 60).to_numpy()
    shape = 20 + 60 * ((h >= 7) & (h < 19))
    lvl = np.where(ts.dayofweek >= 5, weekend, 1.0) * np.exp(rng.normal(0, 0.05, days))[np.arange(len(ts)) // 288]
    p = shape * lvl * (1 + 0.03 * rng.standard_normal(len(ts)))
    return pd.DataFrame({"meter_id": "shop", "ts": ts, "p_kw": p})


def test_a_weekend_that_clearly_differs_keeps_its_own_profile():
    """A building whose days vary by 5 % and which draws a third of its weekday load at weekends:
    one Saturday is plenty of evidence there, so its weekend profile keeps (nearly) its own level,
    its ordinary weekends are no deviation, and a week-long bypass taking half the load is found."""
    d = registry.build("baseline_macd").fit(_shop(days=7))
    prof = np.asarray(d.state_["shop"]["profile_kw"])
    assert 0.3 < prof[1].sum() / prof[0].sum() < 0.42 and 0.3 < prof[2].sum() / prof[0].sum() < 0.42
    assert not _alerts(_shop())
    df = _shop()
    df.loc[(df.ts >= "2025-01-20") & (df.ts < "2025-01-27"), "p_kw"] *= 0.5
    assert any("2025-01-20" <= a.start < "2025-01-27" for a in _alerts(df))
