"""The fleet with real load shapes (``SimConfig(shapes="real")``): load from the real extracts,
physics and faults as in the synthetic fleet."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.evaluate.real_data import find_data, load
from wattwatch.sim import SimConfig, simulate
from wattwatch.sim.shapes import DAY, library

REAL = find_data()
needs_real = pytest.mark.skipif(REAL is None or not REAL.is_dir(),
                                reason="real-data extracts (shared/data/real) absent")


@pytest.fixture(scope="module")
def real_fleet():
    cfg = SimConfig(meters=12, days=9, seed=3, shapes="real", real_dir=str(REAL), commercial_share=0.5,
                    fault_share=0.5, jitter_s=0, duplicate_rate=0, nan_rate=0, disorder_rate=0, background_loss=0,
                    outage_share=0, reset_share=0, motor_starts_per_day=0)
    return cfg, simulate(cfg)


@needs_real
def test_each_meter_takes_its_own_real_shape(real_fleet):
    cfg, res = real_fleet
    meters = res["meters"]
    kinds = {m["kind"] for m in meters}
    assert kinds == {"residential", "commercial"}
    for m in meters:
        src = m["shape"]["source"]
        assert src == "uci_household" if m["kind"] == "residential" else src.split(":")[0] in ("steel", "bdg2")
    starts = [(m["shape"]["source"], m["shape"]["start_day"], m["shape"]["shift_min"]) for m in meters]
    assert len(set(starts)) == len(starts)  # different days / offsets per meter


@needs_real
def test_home_load_follows_the_real_household():
    """A home's true load is the UCI household's (scaled) plus the AMPds2 circuit: its daily
    profile correlates with the source's at the chosen start day, and its scale puts the source's
    99th percentile at the meter's peak."""
    cfg = SimConfig(meters=1, days=3, seed=1, shapes="real", real_dir=str(REAL), commercial_share=0.0,
                    fault_share=0.0, loose_ct_share=0.0, jitter_s=0, duplicate_rate=0, nan_rate=0,
                    disorder_rate=0, background_loss=0, outage_share=0, reset_share=0, motor_starts_per_day=0)
    res = simulate(cfg)
    m = res["meters"][0]
    home = next(s for s in library(str(REAL.resolve()), 5) if s.kind == "residential")
    start = m["shape"]["start_day"] * DAY + int(round(m["shape"]["shift_min"] / 5 + m["utc_offset_h"] * 12))
    idx = (np.arange(len(res["frame"])) + start) % len(home.values)
    src = home.values[idx]
    p = res["frame"]["p_kw"].to_numpy()
    assert np.corrcoef(src, p)[0, 1] > 0.9
    scale = m["peak_kw"] / np.quantile(home.values, 0.99)
    assert 0.9 < np.median(p) / (np.median(src) * scale) < 1.3  # plus a circuit that is mostly idle


@needs_real
def test_commercial_weekends_stay_weekends_and_power_is_consistent(real_fleet):
    cfg, res = real_fleet
    f = res["frame"]
    for m in res["meters"]:
        g = f[f["meter_id"] == m["meter_id"]]
        if m["kind"] != "commercial":
            continue
        # Three phases, p = sum V I pf consistent as the meter computes it (s from V and I).
        s = (g["v_l1_v"] * g["i_l1_a"] + g["v_l2_v"] * g["i_l2_a"] + g["v_l3_v"] * g["i_l3_a"]) / 1000
        ok = g["s_kva"] > 0.5
        assert np.allclose(s[ok], g["s_kva"][ok], rtol=0.01)
        assert (g["p_kw"][ok] <= g["s_kva"][ok] * 1.001).all()
        src = m["shape"]["source"]
        lib = {x.name: x for x in library(str(REAL.resolve()), int(np.ceil(cfg.days)) + 2)}[src]
        assert (lib.dow0 + m["shape"]["start_day"]) % 7 == 0  # the fleet starts on a Monday
        assert m["shape"]["start_day"] in set(lib.clean_days)


@needs_real
def test_same_seed_same_fleet(real_fleet):
    cfg, res = real_fleet
    again = simulate(cfg)
    pd.testing.assert_frame_equal(res["frame"], again["frame"])
    assert res["events"] == again["events"]


@needs_real
def test_unclean_sources_are_not_used():
    """The BDG2 lab metered in steps of 1,000 kWh and the hotel in 20 kWh are no load shapes; no
    window a meter can take holds a zero or a missing hour."""
    lib = library(str(REAL.resolve()), 30)
    names = {s.name for s in lib}
    assert "bdg2:Mouse_science_Micheal" not in names and "bdg2:Mouse_lodging_Vicente" not in names
    assert "steel:steel_daewoo" in names
    for s in lib:
        if s.kind != "commercial":
            continue
        for d in s.clean_days[:: max(1, len(s.clean_days) // 20)]:
            w = s.values[d * DAY:(d + 30) * DAY]
            assert len(w) == 30 * DAY and np.isfinite(w).all() and (w > 0).all()
    bdg2 = load("bdg2", REAL)
    assert (bdg2["p_kw"] == 0).any()  # the data has zero runs: the check above is not vacuous


@needs_real
def test_weeks_copied_into_gaps_are_not_used():
    """BDG2 fills some gaps with a copy of an earlier week (Rat_education_Kristie: a week copied into
    late January 2016, ending where its load doubles): no meter's window holds three hours equal,
    reading for reading, to the same hours a week before."""
    lib = library(str(REAL.resolve()), 30)
    week, k = 7 * DAY, 3 * DAY // 24
    copied = 0
    for s in lib:
        if s.kind != "commercial":
            continue
        same = np.abs(s.values[week:] - s.values[:-week]) < 1e-9
        run = np.convolve(same.astype(int), np.ones(k, int), mode="valid") >= k  # a run starts here
        hit = np.flatnonzero(run) + week  # first reading of each run, in the source's own index
        copied += len(hit)
        for d in s.clean_days:
            lo, hi = d * DAY, (d + 30) * DAY
            assert not ((hit >= lo) & (hit < hi - k)).any(), (s.name, int(d))
    raw = load("bdg2", REAL)
    kr = raw[raw["meter_id"] == "Rat_education_Kristie"].set_index("ts")["p_kw"].asfreq("h")
    assert ((kr - kr.shift(168)).abs() < 1e-9).sum() >= 24 * 5  # the data has copies: not vacuous


def test_missing_real_data_is_a_clear_error(tmp_path):
    from wattwatch.sim.fleet import real_root

    with pytest.raises(ValueError, match="real-data"):
        real_root(SimConfig(shapes="real", real_dir=str(tmp_path / "nowhere")))
    with pytest.raises(ValueError, match="shapes"):
        SimConfig(shapes="fancy")


def test_clean_days_take_a_wall_clock_source_with_a_repeated_autumn_hour():
    from wattwatch.sim.shapes import _clean_days

    utc = pd.date_range("2016-10-20", periods=24 * 20, freq="h", tz="UTC")
    wall = utc.tz_convert("Europe/London").tz_localize(None)   # 30 Oct 2016: 01:00 twice
    src = pd.Series(np.random.default_rng(0).uniform(1, 2, len(utc)), index=wall)
    assert src.index.duplicated().sum() == 1
    days = _clean_days(src, np.repeat(src.to_numpy(), 12), 7, 300.0,
                       pd.DatetimeIndex([pd.Timestamp("2016-10-30 01:00")]))
    # Every 7-day window but those holding the clock change (day 10) is clean.
    assert list(days) == [0, 1, 2, 3] + list(range(11, 20 - 7 + 1))
