"""baseline_macd on hourly building load: a livelier season (a school's cooling swinging with the
weather) is no baseline deviation, while a step on a steady meter still is."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch import api
from wattwatch.detect import registry


def school(weeks: int = 24, seed: int = 0, swing: float = 0.0, calm_weeks: int = 10) -> pd.DataFrame:
    """Hourly: 100 kW on weekday school hours, 40 kW otherwise; noise 3 %. After ``calm_weeks``
    (heating season) the daytime load swings with the weather: a daily factor 1 + ``swing`` x an
    AR(1) spell of hot and cool days (a few days each)."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=weeks * 7 * 24, freq="1h")
    h, dow = ts.hour.to_numpy(), ts.dayofweek.to_numpy()
    day_on = (dow < 5) & (h >= 7) & (h < 17)
    base = np.where(day_on, 100.0, 40.0)
    n_days = weeks * 7
    s = np.zeros(n_days)
    e = rng.standard_normal(n_days)
    for d in range(1, n_days):  # the weather of a few hundred days, not one per reading
        s[d] = 0.8 * s[d - 1] + 0.6 * e[d]
    weather = np.clip(1 + swing * s, 0.6, None)
    weather[: calm_weeks * 7] = 1.0
    day = (np.arange(len(ts)) // 24)
    p = base * np.where((h >= 7) & (h < 19), weather[day], 1.0) * (1 + 0.03 * rng.standard_normal(len(ts)))
    return pd.DataFrame({"meter_id": "school", "ts": ts, "p_kw": p})


def _macd_alerts(df):
    fitted = api.fit(df, detectors=["baseline_macd"], normal_end="2024-02-26")  # 8 winter weeks
    return api.detect(df, state=fitted).alerts


def test_a_season_swinging_with_the_weather_is_no_baseline_deviation():
    # Without the trailing recalibration the winter limit reads every hot spell as a deviation.
    for seed in (0, 1):
        alerts = _macd_alerts(school(seed=seed, swing=0.25))
        assert alerts == [], [(a.start, a.message) for a in alerts]


def test_the_sustained_and_week_windows_follow_the_season_too():
    """Livelier spells (swings of 40-50 %) passed the fast average's recalibrated limit but not the
    72-h and week windows', which kept the winter spread (before: an alert on 2024-05-01 and on
    2024-04-18 from the 72-h window; BDG2's schools: a false alert at each cooling spell)."""
    for swing, seed in ((0.4, 0), (0.5, 2)):
        alerts = _macd_alerts(school(seed=seed, swing=swing))
        assert alerts == [], [(a.start, a.evidence.get("window_h"), a.message) for a in alerts]


def test_a_step_on_a_steady_meter_still_alerts_at_its_onset():
    df = school(swing=0.0)
    step = (df.ts >= "2024-05-06 00:00") & (df.ts < "2024-05-09 00:00")  # +70 % for three days
    df.loc[step, "p_kw"] *= 1.7
    alerts = _macd_alerts(df)
    assert len(alerts) == 1, [(a.start, a.message) for a in alerts]
    assert "2024-05-06" <= alerts[0].start <= "2024-05-07T12"


def test_recalibration_needs_its_reach_and_rejects_bad_windows():
    d = registry.build("baseline_macd")
    assert d.lookback_s(np.array([3600.0]))[0] >= (28 + 5) * 86400
    for bad in ({"recal_days": -1.0}, {"recal_days": 5.0, "recal_min_days": 7.0}):
        try:
            registry.build("baseline_macd", bad)
        except ValueError as exc:
            assert "recal" in str(exc)
        else:
            raise AssertionError(f"accepted {bad}")


def test_whole_equals_pieces_with_the_recalibrated_limit():
    """A piece that holds the declared reach scores each reading as the whole series does."""
    df = school(swing=0.4, seed=3)
    d = registry.build("baseline_macd").fit(df[df.ts < "2024-02-26"])
    assert d.state_["school"]["history_days"] == 56
    whole = pd.Series(d.score(df).to_numpy(), index=df.ts)
    start = pd.Timestamp("2024-05-20")
    back = d.reach(["school"]).back_s[0]
    piece = df[df.ts >= start - pd.Timedelta(seconds=back)]
    part = pd.Series(d.score(piece).to_numpy(), index=piece.ts)
    judged = part[part.index >= start]
    assert np.isfinite(judged).all() and (judged > 0).any()
    np.testing.assert_allclose(judged.to_numpy(), whole.loc[judged.index].to_numpy(), rtol=1e-9, atol=1e-12)
    # ... and a piece 20 days short of the reach would not (the recalibration is really used)
    short = df[df.ts >= start - pd.Timedelta(seconds=back) + pd.Timedelta(days=20)]
    cut = pd.Series(d.score(short).to_numpy(), index=short.ts)
    assert not np.allclose(cut[cut.index >= start].to_numpy(), whole.loc[judged.index].to_numpy())
