"""baseline_macd on a plant that stops: a weekday at the plant's own rest level (what it draws at
night and over its weekend) is a plant stopped, not a fault; a bypass keeps the working day's shape
at a fraction of its level and still alerts (real-shape fleets: the steel plant stopped for 2.5-4
days on weekdays at its idle load, "93 % below its baseline")."""

from __future__ import annotations

import numpy as np
import pandas as pd

from tests.detect.test_macd_building_floor import _alerts, _stretch

START = "2025-01-06"  # a Monday


def plant(days: int = 21, seed: int = 0) -> pd.DataFrame:
    """5-minute readings of a plant: 2 kW at rest (nights 21-07 h and the whole weekend, 4 % from
    hour to hour), working weekdays 07-21 h at 40-60 kW (days vary by 25 %, 10 % reading noise)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(START, periods=days * 288, freq="5min")
    h = (ts.hour + ts.minute / 60).to_numpy()
    day = np.arange(len(ts)) // 288
    work = (ts.dayofweek < 5) & (h >= 7) & (h < 21)
    level = 50 * np.exp(rng.normal(0, 0.25, days))[day]
    rest = 2.0 * np.exp(rng.normal(0, 0.04, len(ts)))
    p = np.where(work, level * (1 + 0.1 * rng.standard_normal(len(ts))), rest)
    return pd.DataFrame({"meter_id": "plant", "ts": ts, "p_kw": p})


def test_a_plant_stopped_for_days_at_its_own_rest_level_is_no_baseline_deviation():
    """Wednesday to Friday of the third week at the plant's rest level (its night and weekend
    load, a fifth lower: the idle drifts from week to week): a stop, not a fault."""
    n = 0
    for seed in range(3):
        df = plant(seed=seed)
        stop = _stretch(df, "2025-01-22", "2025-01-25")
        df.loc[stop, "p_kw"] = 1.6 * np.exp(np.random.default_rng(seed).normal(0, 0.04, stop.sum()))
        n += len(_alerts(df, "2025-01-21", "2025-01-28"))
    assert n == 0, n


def test_a_bypass_or_a_load_added_on_the_plant_still_alerts():
    """A bypass leaving 30 % or 60 % of the load for three weekdays (the working day's shape at a
    fraction of its level, the rest level cut too), and a load of the mean added for two days:
    each alerts."""
    found = []
    for seed in range(3):
        for keep in (0.3, 0.6):
            df = plant(seed=seed)
            df.loc[_stretch(df, "2025-01-22", "2025-01-25"), "p_kw"] *= keep
            found.append(bool(_alerts(df, "2025-01-21", "2025-01-26")))
        df = plant(seed=seed)
        df.loc[_stretch(df, "2025-01-22 10:00", "2025-01-24 10:00"), "p_kw"] += df.p_kw[: 7 * 288].mean()
        found.append(bool(_alerts(df, "2025-01-21", "2025-01-25")))
    assert all(found), found


def test_the_rest_run_is_within_the_reach_a_window_of_readings_needs():
    """An hour is judged against the rest level only after ``rest_h`` hours at rest, so an hour's
    score reads that run before the oldest hour its averages read: the declared reach (and with it
    the hours a stream carries) holds it. Windows of the history starting a few hours into a stop
    give every reading they call exact the whole history's score (recalibration off: the slow
    average then reads the oldest hour directly; fails when lookback_s leaves out the run:
    up to 7 of a window's exact hours differ, by thousandths)."""
    days = 56
    df = plant(days=days, seed=3)
    df = df.groupby(df.ts.dt.floor("60min")).agg(p_kw=("p_kw", "mean")).reset_index().assign(meter_id="plant")
    df["ts"] = df["ts"].dt.tz_localize("UTC")
    stops = []
    for wk in (2, 3):   # Wednesday to Friday after the profiled fortnight
        a = pd.Timestamp(START, tz="UTC") + pd.Timedelta(days=7 * wk + 2)
        stops.append(((df.ts >= a) & (df.ts < a + pd.Timedelta(days=3))).to_numpy())
    stop = np.logical_or.reduce(stops)
    df.loc[stop, "p_kw"] = 1.6 * np.exp(np.random.default_rng(3).normal(0, 0.04, stop.sum()))
    _assert_windows_score_as_the_whole_history(df, stop)


def _assert_windows_score_as_the_whole_history(df: pd.DataFrame, marked: np.ndarray) -> None:
    """baseline_macd (profiled on the first fortnight, no recalibration) on windows starting 5 h before
    every sixth marked reading gives the whole history's scores wherever a window's score is exact
    (and at least 500 are)."""
    from dataclasses import replace

    from wattwatch.detect import core, registry
    from wattwatch.detect.engine import EngineConfig, profile
    from wattwatch.detect.frame import prepare

    dets = registry.build_all(["baseline_macd"])
    dets[0].config = replace(dets[0].config, recal_days=0.0, recal_min_days=0.0)
    profile(prepare(df), dets, EngineConfig(profile_days=14, workers=1))
    whole = core.run(df, dets).judged[0].scores
    t = df.ts.to_numpy()
    exact, bad = 0, []
    for k in np.flatnonzero(marked)[::6]:
        sub = t >= t[k] - np.timedelta64(5, "h")
        j = core.run(df[sub], dets, origin={m: False for m in df.meter_id.unique()}).judged[0]
        ok = j.exact & np.isfinite(whole[sub])
        exact += int(ok.sum())
        diff = np.abs(j.scores[ok] - whole[sub][ok])
        if not np.allclose(j.scores[ok], whole[sub][ok], rtol=1e-9, atol=1e-9, equal_nan=True):
            bad.append((str(t[k]), int((diff > 1e-9).sum()), float(np.nanmax(diff))))
    assert exact > 500, exact
    assert not bad, bad
