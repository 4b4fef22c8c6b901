"""A run of harmonic distortion pauses the current-based rules on every reading of the run, not
only on the readings whose THD is above the limit.

The distortion of a non-linear load drifts: in a run of THD 35-70 % some readings fall a little
under the 30 % limit (the simulator's ``harmonic_noise``: uniform 35-70 % plus a 3-point wobble),
while the RMS currents stay just as scattered. Blanked per reading, the current-based rules judged
those readings: on a single-phase home the scattered phase current against the neutral read as a
partial earth return (q22, real-shape fleet seed 131 at 5 and 15 min, M-00081: "neutral 13.38 A
while phase carries 13.0 A", two alerts inside its 7.5-hour noise alert, both on readings at THD
27-29 %)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.detect.conftest import ENGINE, healthy, run, window

T = "2025-01-09T12:00:00Z"


def _noisy(frame, hours: float, seed: int, dips_every: int, pairs: bool = False):
    """``frame`` with ``hours`` of harmonic distortion from ``T``: THD about 35-45 % with every
    ``dips_every``-th reading (and the one after it, ``pairs``) at 27-29.5 %, the phase current scattered 8 % reading by reading
    around the load's, and the power the meter computes with it (the neutral, on its own CT, carries
    the load's current). The load is
    held at 10-16 A so that the single-phase limit is the absolute 0.5 A."""
    f = frame.copy()
    w = window(f, T, hours)
    rows = np.flatnonzero(w)
    rng = np.random.default_rng(seed)
    i_true = 10.0 + 6.0 * rng.random(len(rows))
    i_meas = i_true * (1 + rng.normal(0, 0.08, len(rows)))
    k = i_meas / f.loc[w, "i_l1_a"].to_numpy()  # the meter computes its power from what it measures
    for c in ("p_kw", "q_kvar", "s_kva"):
        f.loc[w, c] *= k
    thd = 35.0 + 10.0 * rng.random(len(rows))
    thd[::dips_every] = 27.0 + 2.5 * rng.random(len(thd[::dips_every]))
    if pairs:   # two readings in a row under the limit
        thd[1::dips_every] = 27.0 + 2.5 * rng.random(len(thd[1::dips_every]))
    f.loc[w, "thd_i_pct"] = thd
    f.loc[w, "i_n_a"] = i_true - 0.02
    f.loc[w, "i_l1_a"] = i_meas
    return f, w


def test_readings_inside_a_harmonic_run_under_the_limit_are_not_a_neutral_fault():
    home = healthy("residential", days=6, seed=5)
    for seed, every, pairs in ((1, 7, False), (2, 5, False), (3, 9, False), (4, 8, True)):
        f, _ = _noisy(home, 8, seed, every, pairs)
        alerts = run(f)
        codes = [a.code for a in alerts]
        assert codes == ["STATUS_SIGNAL_NOISY"], (seed, [(a.code, a.start, a.message) for a in alerts])


def test_a_partial_earth_return_after_the_harmonic_run_is_still_found():
    home = healthy("residential", days=6, seed=5)
    f, w = _noisy(home, 8, 1, 7)
    after = window(f, "2025-01-09T22:00:00Z", 4)
    f.loc[after, "i_l1_a"] = np.maximum(f.loc[after, "i_l1_a"], 4.0)
    f.loc[after, "i_n_a"] = 0.6 * f.loc[after, "i_l1_a"]
    alerts = [a for a in run(f) if a.code == "ERR_IMBAL_LIMIT_EXCEEDED"]
    assert len(alerts) == 1 and alerts[0].evidence["kind"] == "partial_earth_return"
    assert str(alerts[0].start) >= "2025-01-09T21"


def test_a_reading_belongs_to_a_run_only_with_a_distorted_reading_on_each_side():
    from wattwatch.detect.rules.harmonic import HarmonicNoiseConfig, bridged

    s = np.array([0.5, 1.2, 0.9, 1.4, 0.95, 0.96, 1.1] + [0.4] * 6 + [1.3, 0.2, np.nan, 0.2, 1.2, 0.5, 1.4])
    seg = np.array([0] * 16 + [1] * 4)
    t = np.r_[np.arange(16) * 300.0, 0.0, 3600.0, 7200.0, 10800.0]  # meter 1 hourly
    out = bridged(s, seg, t, 1800.0, 1.0)
    # 0.9 between 1.2 and 1.4: the smaller of the two; 0.95 and 0.96 (two in a row) between 1.4
    # and 1.1; not the six readings of 0.4 between 1.1 and 1.3 35 minutes apart, nor the run's
    # edges (0.5 first; 0.2 and the reading without a score, nothing distorted after them on their
    # meter); meter 0 bridges nothing of meter 1, whose hourly 0.5 is bridged by its neighbours.
    assert np.allclose(out, [0.5, 1.2, 1.2, 1.4, 1.1, 1.1, 1.1] + [0.4] * 6 + [1.3, 0.2, np.nan,
                             0.2, 1.2, 1.2, 1.4], equal_nan=True)
    # Five of 0.4 (30 minutes between 1.1 and 1.3) are one run.
    five = np.delete(s, 7)
    got = bridged(five, np.delete(seg, 7), np.delete(t, 7) - np.r_[np.zeros(7), 300.0 * np.ones(8), np.zeros(4)],
                  1800.0, 1.0)
    assert np.allclose(got[7:12], 1.1)
    # bridge_s 0: single readings between two only (0.9), not the pair.
    assert np.allclose(bridged(s, seg, t, 0.0, 1.0)[[2, 4, 5]], [1.2, 0.95, 0.96])
    for bad in (-1, 1e6, True, "x"):
        with pytest.raises(ValueError):
            HarmonicNoiseConfig(bridge_s=bad)


def test_a_state_stored_before_bridge_s_asks_for_no_refit(tmp_path):
    import json

    import duckdb

    from wattwatch.detect import registry
    from wattwatch.detect import state as state_mod
    from wattwatch.detect.frame import prepare

    det = registry.build("harmonic_noise").fit(prepare(healthy("residential", days=4)))
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state_mod.save(con, [det]) == 1
    old = json.loads(con.execute("SELECT settings FROM meter_state").fetchone()[0])
    old.pop("bridge_s")
    con.execute("UPDATE meter_state SET settings = ?", [json.dumps(old, sort_keys=True)])
    for params, refit in (({}, False), ({"bridge_s": 600.0}, False), ({"limit_pct": 25.0}, True)):
        fresh = registry.build("harmonic_noise", params)
        notices = state_mod.load(con, [fresh], list(det.state_))
        assert any("other settings" in n for n in notices) == refit, (params, notices)


def test_a_reading_after_a_gap_in_the_data_is_not_bridged_by_a_reading_before_the_gap():
    """"A single reading between two, at any cadence" is about the meter's cadence (an hourly
    meter's neighbours are two hours apart), not a hole in its data: a 5-minute meter's first
    reading after hours without data, its THD well under the limit, is not part of a run that
    ended before the gap (rev38). Its own THD is its score, and the current rules judge it."""
    from wattwatch.detect import core, registry
    from wattwatch.detect.engine import profile
    from wattwatch.detect.frame import prepare

    home = healthy("residential", days=6, seed=5)
    f, w = _noisy(home, 8, 1, 10**6)            # THD 35-45 % on every reading 12:00-20:00
    gap = window(f, "2025-01-09T14:00:00Z", 4)  # no data 14:00-17:59
    f = f[~gap].reset_index(drop=True)
    at = (f.ts == pd.Timestamp("2025-01-09T18:00:00Z")).to_numpy()
    f.loc[at, "thd_i_pct"] = 10.0
    dets = registry.build_all(["harmonic_noise", "neutral_tamper"])
    profile(prepare(f), dets, ENGINE)
    res = core.run(f, dets)
    j = {x.det.name: x for x in res.judged}
    row = (res.frame.ts == pd.Timestamp("2025-01-09T18:00:00Z")).to_numpy()
    assert np.isclose(j["harmonic_noise"].scores[row][0], 10.0 / 30.0), j["harmonic_noise"].scores[row]
    assert np.isfinite(j["neutral_tamper"].scores[row][0])
    # Without the gap the same reading is one of the run's (its neighbours five minutes away).
    f2, _ = _noisy(home, 8, 1, 10**6)
    f2.loc[(f2.ts == pd.Timestamp("2025-01-09T18:00:00Z")).to_numpy(), "thd_i_pct"] = 10.0
    res2 = core.run(f2, dets)
    row2 = (res2.frame.ts == pd.Timestamp("2025-01-09T18:00:00Z")).to_numpy()
    assert {x.det.name: x for x in res2.judged}["harmonic_noise"].scores[row2][0] >= 1.0


@pytest.mark.parametrize("step", ["5min", "60min"])
def test_pieces_cut_beside_bridged_readings_score_as_the_whole_history(step):
    """The bridge's reach (``bridge_s`` and one reading each way) is declared: a stream cut at
    every reading around the readings it bridges scores them, and the current rules it blanks
    there, as the whole history does, with a gap in the run (rev38: fails with no reach declared
    for ``harmonic_noise``, as before q22; a shorter one is covered by the alert horizon the
    stitcher keeps anyway)."""
    from wattwatch.detect import registry

    home = healthy("residential", days=6, seed=5)
    if step != "5min":
        home = home.iloc[::12].reset_index(drop=True)
    f, _ = _noisy(home, 12, 1, 3)
    earth = window(f, "2025-01-09T20:00:00Z", 8)
    f.loc[earth, "i_n_a"] = 0.6 * f.loc[earth, "i_l1_a"]
    f = f[~window(f, "2025-01-09T17:00:00Z", 2)].reset_index(drop=True)   # and a gap in the run
    for names in (["harmonic_noise"], ["harmonic_noise", "neutral_tamper", "loose_ct"]):
        _cut_beside_bridged(f, registry.build_all(names), 300.0 if step == "5min" else 3600.0)


def _cut_beside_bridged(f, dets, cad):
    from wattwatch.detect import core
    from wattwatch.detect.engine import profile
    from wattwatch.detect.frame import prepare

    from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _stitched

    profile(prepare(f), dets, ENGINE)
    whole = core.run(f, dets)
    h = {j.det.name: j for j in whole.judged}["harmonic_noise"]
    t = _epoch(whole.frame["ts"])
    thd = whole.frame["thd_i_pct"].to_numpy(float)
    at = t[(thd < 30) & (h.scores >= 1)]
    assert len(at) >= 2, "readings under the limit inside the run are bridged"
    cuts = np.unique(np.concatenate([tb + np.arange(-3, 3) * cad - 1.0 for tb in at[:: max(1, len(at) // 4)]]))
    for c in (cuts, cuts[::2] + cad / 2, cuts[1::3]):
        steps = _stitched(f, dets, c)
        problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
        assert not problems, "\n".join(problems[:6])


# (cadence, the longest dip under the limit bridged in readings): five readings where 30 minutes
# hold them (1 s to 5 min), else the time (one reading at 15 min; at 60 min the single reading
# between neighbours at its cadence).
BRIDGES = [("1s", 5), ("1min", 5), ("5min", 5), ("15min", 1), ("60min", 1)]


@pytest.mark.parametrize("step,longest", BRIDGES, ids=[b[0] for b in BRIDGES])
def test_the_bridge_is_counted_in_readings_at_every_cadence(step, longest):
    """A dip under the limit inside a harmonic run is one of the run's readings when it is at most
    five readings long and the two distorted readings around it at most 30 minutes apart: at 1 s
    the bridge was a time, and two distorted seconds 29 minutes apart blanked the current rules
    on the 1,739 clean readings between them (rev38, noticed; cad43)."""
    from wattwatch.detect import core, registry
    from wattwatch.detect.engine import profile
    from wattwatch.detect.frame import prepare

    c = pd.Timedelta(step).total_seconds()
    n = int(max(400, 3 * 86400 / c)) if c >= 300 else int(max(4000, 4 * 3600 / c))
    ts = pd.date_range("2025-01-06", periods=n, freq=step, tz="UTC")
    i = 10.0 + np.sin(np.arange(n) / 20.0)
    thd = np.full(n, 10.0)
    f = pd.DataFrame({"meter_id": "H", "ts": ts, "v_l1_v": 230.0, "i_l1_a": i, "p_kw": 0.23 * i, "thd_i_pct": thd})
    # After the profiled part: a run of THD 40 % holding dips of 1 to 7 readings at 20 %, each
    # dip 20 readings after the last.
    start = n - (2000 if c == 1 else 200)
    f.loc[start:, "thd_i_pct"] = 40.0
    dips, k = {}, start + 10
    for length in range(1, 8):
        dips[length] = np.arange(k, k + length)
        f.loc[dips[length], "thd_i_pct"] = 20.0
        k += length + 20
    det = registry.build("harmonic_noise")
    profile(prepare(f.iloc[:start]), [det], ENGINE)
    s = {x.det.name: x for x in core.run(f, [det]).judged}["harmonic_noise"].scores
    for length, rows in dips.items():
        want = length <= longest
        assert bool((s[rows] >= 1).all()) == want and bool((s[rows] >= 1).any()) == want, (step, length, s[rows])
    if c == 1:
        # Two distorted seconds 29 minutes apart: the clean seconds between them keep their score.
        g = f.copy()
        g.loc[start:, "thd_i_pct"] = 10.0
        g.loc[[start, start + 1740], "thd_i_pct"] = 40.0
        s = {x.det.name: x for x in core.run(g, [det]).judged}["harmonic_noise"].scores
        assert (s[start + 1:start + 1740] < 1).all()
