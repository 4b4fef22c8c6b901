"""baseline_macd's alert text and evidence say one comparison: the share, the direction and the two
numbers quoted are those of the window that set the alert's highest hour. Before, every alert
quoted the energy of its own hours with the direction of the window that scored it, and a floor
drop still judged on a theft's last nights while the household was back and busy read "60 %
below its baseline (40.0 kWh vs 25.0 kWh expected)" (q22, seed 131, M-00009)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from wattwatch import api
from wattwatch.detect import registry
from wattwatch.detect.frame import prepare

from tests.detect.test_macd_floor import home

THEFT = ("2025-01-15", "2025-01-19T06:00")


def _after_a_theft(seed: int) -> pd.DataFrame:
    """A home whose meter saw 40 % of the load for four days (a bypass), then a busy stretch (the
    household's activity x3, its standby as before)."""
    df = home(days=24, seed=seed, activity=3.0, busy=(THEFT[1], "2025-01-23"))
    df.loc[(df.ts >= THEFT[0]) & (df.ts < THEFT[1]), "p_kw"] *= 0.4
    return df


def _agrees(msg: str, ev: dict) -> None:
    """The text's share and direction are the quoted numbers' (observed / expected - 1), and so is
    the evidence's deviation."""
    got = re.search(r"(\d+)% (above|below) its baseline \(([\d.]+) (kWh|kW) vs ([\d.]+) (kWh|kW) expected", msg)
    assert got, msg
    share, direction, obs, exp = int(got[1]), got[2], float(got[3]), float(got[5])
    unit = got[4]
    o, e = (ev["actual_kw"], ev["expected_kw"]) if unit == "kW" else (ev["actual_kwh"], ev["expected_kwh"])
    assert np.isclose(o, obs, rtol=0.01, atol=0.05) and np.isclose(e, exp, rtol=0.01, atol=0.05), (msg, ev)
    assert (o > e) == (direction == "above") and (ev["deviation"] > 0) == (direction == "above"), (msg, ev)
    assert abs(abs(ev["deviation"]) - share / 100) <= 0.006 and np.isclose(o / e - 1, ev["deviation"], atol=2e-3), (msg, ev)
    assert (ev["basis"] == "floor") == (unit == "kW"), (msg, ev)


def test_a_floor_drop_judged_after_the_theft_quotes_the_floor_not_the_busy_hours():
    """The hours just after the bypass ended, where the two-day floor still held its last nights:
    the household is back and busy (the hours' energy above the profile), the floor below. Their
    alert text is the floor's: below, with the floor under the profiled one."""
    checked = 0
    for seed in range(3):
        df = _after_a_theft(seed)
        d = registry.build("baseline_macd").fit(prepare(df[df.ts < "2025-01-13"]))
        x = prepare(df)
        sc = d.scored(x)
        dev, limit, expected, m, which, *_, cell = sc.ctx
        t = x["_t"].to_numpy(float)
        tail = (t >= pd.Timestamp(THEFT[1]).timestamp()) & (t < pd.Timestamp(THEFT[1]).timestamp() + 86400)
        hot = cell >= 0
        hot[hot] = (which.ravel()[cell[hot]] == 3) & (dev.ravel()[cell[hot]] < 0)
        rows = np.flatnonzero(tail & hot)
        if not len(rows):
            continue
        c = np.unique(cell[rows])
        if np.nansum(m.ravel()[c]) <= np.nansum(expected.ravel()[c]):
            continue    # the hours' energy below too: no contradiction to make
        f = d.describe(x, rows, sc.values, sc.ctx)
        assert " below its baseline" in f.message and f.evidence["basis"] == "floor", f.message
        _agrees(f.message, f.evidence)
        assert f.evidence["actual_kw"] < f.evidence["expected_kw"] and f.evidence["span_kwh"] > f.evidence["span_expected_kwh"]
        checked += 1
    assert checked >= 1, "no floor hour after the theft with the hours' energy above the profile"


def test_every_alert_text_agrees_with_its_evidence():
    """Whatever window set an alert (fast, sustained, week, floor), its text and evidence agree."""
    n = 0
    for seed in range(3):
        df = _after_a_theft(seed)
        fitted = api.fit(df, detectors=["baseline_macd"], days=7)
        for a in api.detect(df, state=fitted).alerts:
            _agrees(a.message, a.evidence)
            n += 1
    assert n >= 3, n


def test_an_alert_held_open_across_windows_quotes_the_hours_of_its_own_side():
    """An alert the fast average set below (three hours of a plant idle where its profile works)
    and held open through a day the floor judged below too, while that day's energy was well above
    its profile (the plant worked on a Sunday its profile rests: real-shape fleet seed 251, the
    steel plant M-00021, "63 % below its baseline (104.1 kWh vs 63.9 kWh expected)", q65). The
    text quotes the hours the average judged, below, and the whole span stays in the evidence."""
    d = registry.build("baseline_macd")
    n = 25
    which = np.r_[np.zeros(3), np.full(n - 3, 3)].astype(np.int8)[None, :]
    limit = np.full((1, n), 0.37)
    macd = np.r_[[-0.45, -0.44, -0.40], np.full(n - 3, -0.38)][None, :]
    m = np.r_[[0.7, 0.7, 0.7], np.full(n - 3, 6.5)][None, :]
    expected = np.r_[[19.0, 4.4, 1.4], np.full(n - 3, 1.7)][None, :]
    q_obs = np.where(which == 3, 0.7, np.nan)
    q_exp = np.where(which == 3, 0.9, np.nan)
    cell = np.repeat(np.arange(n), 12)          # twelve 5-minute readings an hour
    ctx = (macd, limit, expected, m, which, q_obs, q_exp, cell)
    rows = np.arange(len(cell))
    x = pd.DataFrame({"p_kw": np.ones(len(cell))})
    f = d.describe(x, rows, np.abs(macd / limit).ravel()[cell], ctx)
    _agrees(f.message, f.evidence)
    assert " below its baseline" in f.message and f.evidence["hours"] == 3, f.message
    assert np.isclose(f.evidence["actual_kwh"], 2.1) and np.isclose(f.evidence["expected_kwh"], 24.8)
    assert f.evidence["span_hours"] == n and f.evidence["span_kwh"] > f.evidence["span_expected_kwh"]


def _described(macd, which, m, expected, rows_h=None):
    """baseline_macd's text and evidence of an alert over the hours ``rows_h`` (all by default) of
    one meter whose context is given hour by hour (twelve 5-minute readings an hour)."""
    d = registry.build("baseline_macd")
    macd, m, expected = (np.asarray(v, float)[None, :] for v in (macd, m, expected))
    n = macd.shape[1]
    which = np.asarray(which, np.int8)[None, :]
    limit = np.full((1, n), 0.37)
    nan = np.full((1, n), np.nan)
    cell = np.repeat(np.arange(n), 12)
    hours = np.arange(n) if rows_h is None else np.asarray(rows_h)
    rows = np.flatnonzero(np.isin(cell, hours))
    ctx = (macd, limit, expected, m, which, nan, nan, cell)
    return d.describe(pd.DataFrame({"p_kw": np.ones(len(cell))}), rows, np.abs(macd / limit).ravel()[cell], ctx)


def test_hours_without_an_energy_or_a_profile_count_on_neither_side():
    """An hour whose energy the engine blanked (NaN energy, its average NaN) and an hour the profile
    never saw (its expected energy NaN, its average still carried): summed alone, the first's
    expected energy read as part of a drop in the span's evidence, the second's energy as part of
    a rise in the text ("50 % below (2.0 kWh vs 4.0 kWh expected over 4 h)" where the two hours
    with both say 1.0 against 4.0; rev65). Only hours with both count, in the text and the span."""
    f = _described([-0.40, -0.41, -0.42, -0.41], [0] * 4, [0.5, 0.5, 0.5, 0.5], [2.0, np.nan, np.nan, 2.0])
    _agrees(f.message, f.evidence)
    assert f.evidence["actual_kwh"] == 1.0 and f.evidence["expected_kwh"] == 4.0 and f.evidence["hours"] == 2, f.evidence
    f = _described([-0.40, np.nan, np.nan, -0.41], [0] * 4, [0.5, np.nan, np.nan, 0.5], [2.0] * 4)
    _agrees(f.message, f.evidence)
    assert (f.evidence["span_kwh"], f.evidence["span_expected_kwh"], f.evidence["span_hours"]) == (1.0, 4.0, 4), f.evidence


def test_an_alert_whose_hours_all_went_the_other_way_quotes_the_hours_its_average_weighed():
    """The fast average below (a day at half its profile) crossing its limit on three hours whose
    own energy was a little above the profile (the limit narrows at a change of day type): the
    alert's hours say a rise, and every one of them quoted with "below" read "7 % below (6.0 kWh
    vs 5.6 kWh expected)" (rev65). The text quotes the hours the average weighed, the window to
    the highest hour, where the energy went the alert's way; the alert's own hours stay in the
    evidence."""
    n = 24
    macd = np.r_[np.linspace(-0.05, -0.30, n - 3), [-0.40, -0.42, -0.41]]
    m = np.r_[np.full(n - 3, 1.0), [2.0, 2.0, 2.0]]
    expected = np.r_[np.full(n - 3, 2.0), [1.8, 1.9, 1.9]]
    f = _described(macd, [0] * n, m, expected, rows_h=[n - 3, n - 2, n - 1])
    _agrees(f.message, f.evidence)
    assert " below its baseline" in f.message and "h to its highest hour" in f.message, f.message
    assert f.evidence["hours"] == n - 1 and f.evidence["span_hours"] == 3, f.evidence
    assert f.evidence["span_kwh"] > f.evidence["span_expected_kwh"], f.evidence
