"""Review of seasonal_profile's *point* evidence (a reading standing off both its neighbours,
``_isolation`` and its "yield" rule, the per-meter ``limit_iso``, the rolling 28-day limit taken on
the meters with a candidate only, the busiest-hours gate for meters whose hours stand off each
other): streamed in pieces cut right at the glitches it judges, a meter's scores whatever other
meters are scored with it, a state stored before ``limit_iso``, and the meters at the edges (one
reading, no reading, zeros, export, a constant normal period, two cadences in one frame)."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.detect import core
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _stitched
from tests.detect.test_seasonal import building
from tests.detect.test_stitch_hours import _resumed

NORMAL_END = "2024-02-26"


def _office(step: str, seed: int = 5) -> pd.DataFrame:
    """The office of ``test_seasonal`` whose normal weeks held scattered 6-hour events at half and
    1.6x load (its reading limit raised to ~18 spreads, so that a one-hour glitch is found by the
    point evidence only), at ``step``."""
    df = building(seed=seed, step=step)
    rng = np.random.default_rng(1)
    per_h = int(pd.Timedelta("1h") / pd.Timedelta(step))
    for k in rng.choice(df.index[df.ts < pd.Timestamp(NORMAL_END)], 40, replace=False):
        df.loc[k:k + 6 * per_h - 1, "p_kw"] *= rng.choice([0.5, 1.6])
    return df


# The glitches, each one reading of the meter's cadence: (time, factor, readings dropped around it).
GLITCHES = (
    ("2024-03-13 11:00", {0: 0.5}, ()),                   # a dip to half
    ("2024-03-20 14:00", {0: 2.5}, ()),                   # a spike
    ("2024-03-27 10:00", {0: 2.5, 1: 0.4}, ()),           # a spike next to a dip
    ("2024-04-03 11:00", {0: 2.5, 2: 2.5}, ()),           # two spikes two readings apart
    ("2024-04-09 12:00", {0: 0.6, 1: 2.5}, ()),           # a dip that yields to the spike after it
    ("2024-04-10 03:00", {0: 2.5}, ()),                   # a night spike under the busiest hours
    ("2024-04-17 15:00", {0: 0.4}, (1,)),                 # a dip whose next reading is missing
    ("2024-04-24 12:00", {0: 2.5}, (-1,)),                # a spike whose previous reading is missing
    ("2024-05-01 09:00", {0: 0.5}, (2,)),                 # a dip, the reading two ahead missing
)


def _glitched(step: str) -> tuple[pd.DataFrame, pd.Timedelta]:
    df, h = _office(step), pd.Timedelta(step)
    drop = []
    for at, factors, gone in GLITCHES:
        t0 = pd.Timestamp(at)
        for k, f in factors.items():
            df.loc[df.ts == t0 + k * h, "p_kw"] *= f
        drop += [t0 + k * h for k in gone]
    df = df[~df.ts.isin(drop)]
    # A home beside it: its appliance hours stand off their neighbours (its own limit_iso).
    rng = np.random.default_rng(2)
    ts = df.ts.to_numpy()
    home = 0.3 * (1 + 0.05 * rng.standard_normal(len(ts)))
    home = np.where(rng.random(len(ts)) < 0.125, rng.uniform(1.5, 3.0, len(ts)), home)
    out = pd.concat([df, pd.DataFrame({"meter_id": "home", "ts": ts, "p_kw": home})], ignore_index=True)
    return out, h


@pytest.mark.parametrize("step", ["60min", "15min"])
def test_point_glitches_at_piece_boundaries_stream_as_the_whole_history(step):
    """Each glitch at the edge of a piece (cut two readings before it to three after it, so that
    the readings it is judged by and the reading two ahead that the yield rule reads fall in the
    next piece), with a checkpoint round trip on the way: every score and alert is the whole
    history's. The point evidence reads two readings ahead (``_isolation``: a reading yields to
    the next one standing further off), which the declared reach must cover."""
    df, h = _glitched(step)
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end=NORMAL_END)
    dets = fitted.detectors
    st = dets[0].get_state()
    assert st["office"]["limit_z"] > 12 and st["office"]["limit_iso"] < 0.5 and st["home"]["limit_iso"] > 1.0
    frame = df[df.ts >= "2024-03-01"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC"))
    whole = core.run(frame, dets)
    found = {a.start[:16] for a in whole.alerts if a.meter_id == "office"}
    # The point evidence finds what the raised reading limit hid (at 60 min; at 15 min the readings
    # are steadier and the reading limit finds them too).
    assert {"2024-03-13T11:00", "2024-03-20T14:00", "2024-04-10T03:00"} <= found, sorted(found)
    glitch_t = _epoch(pd.Series(pd.to_datetime([g[0] for g in GLITCHES])).dt.tz_localize("UTC"))
    hs = h.total_seconds()
    for off in (-2, -1, 0, 1, 2, 3):
        cuts = np.sort(glitch_t + off * hs - 1.0)     # the reading at glitch + off opens a piece
        steps = _stitched(frame, dets, cuts)
        problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
        assert not problems, f"cut {off} reading(s) from each glitch:\n" + "\n".join(problems[:8])
    # ... and resumed from a checkpoint between the pieces.
    t = _epoch(frame["ts"])
    cuts = np.sort(glitch_t + 1 * hs - 1.0)
    edges = [-np.inf, *cuts, np.inf]
    s = Stitcher(dets)
    steps = []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if k % 2:
            s = _resumed(s, dets, bins=False)
        steps.append(s.feed(frame[(t > lo) & (t <= hi)]))
    steps.append(s.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:8])


def _edge_fleet() -> pd.DataFrame:
    """Meters of every awkward shape in one frame, each with a one-reading glitch after its
    normal period where it has readings: the glitched office (hourly) and one at 15 min, a home,
    a meter constant while normal, an export meter (negative at noon), a site off every night
    (zeros its normal), a meter with one reading and one with no valid reading."""
    a, _ = _glitched("60min")
    a = a[a.meter_id == "office"]
    b = building(seed=6, step="15min").assign(meter_id="office15")
    b.loc[b.ts == pd.Timestamp("2024-03-13 11:00"), "p_kw"] *= 0.5
    b.loc[b.ts == pd.Timestamp("2024-03-20 03:15"), "p_kw"] *= 2.5
    rng = np.random.default_rng(3)
    ts = building(seed=0).ts
    hour = ts.dt.hour.to_numpy()
    home = 0.3 * (1 + 0.05 * rng.standard_normal(len(ts)))
    home = np.where(rng.random(len(ts)) < 0.125, rng.uniform(1.5, 3.0, len(ts)), home)
    const = np.full(len(ts), 5.0)
    const[(ts == pd.Timestamp("2024-03-20 03:00")).to_numpy()] = 12.5
    export = 1.0 + 0.05 * rng.standard_normal(len(ts)) - np.where((hour >= 10) & (hour < 15), 3.0, 0.0)
    export[(ts == pd.Timestamp("2024-03-20 03:00")).to_numpy()] = 3.0
    off = np.where((hour >= 7) & (hour < 19), 20.0 * (1 + 0.03 * rng.standard_normal(len(ts))), 0.0)
    off[(ts == pd.Timestamp("2024-03-20 12:00")).to_numpy()] = 50.0
    parts = [a, b] + [pd.DataFrame({"meter_id": m, "ts": ts, "p_kw": v})
                      for m, v in (("home", home), ("const", const), ("export", export), ("night_off", off))]
    parts += [pd.DataFrame({"meter_id": "one", "ts": ts[:1], "p_kw": [3.0]}),
              pd.DataFrame({"meter_id": "blank", "ts": ts[:2000], "p_kw": np.nan})]
    return pd.concat(parts, ignore_index=True)


def test_a_meters_point_scores_do_not_depend_on_the_meters_scored_with_it_and_edge_meters_are_judged_quietly():
    """Every meter scored alone equals its scores in the whole fleet, twice the same (the rolling
    isolation limit is taken on the meters with a candidate only: per meter the same values); no
    RuntimeWarning on one-reading, blank, zero, negative or constant meters, and each glitch on
    a meter with a profile is found where the meter's own spread says it should be."""
    df = _edge_fleet()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        fitted = api.fit(df, detectors=["seasonal_profile"], normal_end=NORMAL_END)
        dets = fitted.detectors
        st = dets[0].get_state()
        iso_min = dets[0].config.iso_min
        for m in ("office", "office15", "const", "export", "night_off"):   # their hours do not jump
            assert st[m]["limit_iso"] == pytest.approx(iso_min), m
        assert st["home"]["limit_iso"] > 1.0
        frame = df[df.ts >= "2024-02-20"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC"))
        whole = core.run(frame, dets)
        got = {(a.meter_id, a.start[:16]) for a in whole.alerts}
        for m, at in (("office", "2024-03-13T11:00"), ("office", "2024-03-20T14:00"), ("office", "2024-04-10T03:00"),
                      ("office15", "2024-03-13T11:00"), ("office15", "2024-03-20T03:15"),
                      ("export", "2024-03-20T03:00"), ("night_off", "2024-03-20T12:00")):
            assert (m, at) in got, (m, at, sorted(got))
        assert not [a for a in whole.alerts if a.meter_id == "home"]
        w = whole.frame
        scores = whole.judged[-1].scores
        for m in frame.meter_id.unique():
            alone = [core.run(frame[frame.meter_id == m], dets) for _ in range(2)]
            mine = (w.meter_id.astype(str) == m).to_numpy()
            for r in alone:
                s = r.judged[-1].scores if r.judged else np.full(int(mine.sum()), np.nan)
                np.testing.assert_array_equal(s, scores[mine], err_msg=m)


def test_the_rolling_isolation_limit_on_the_meters_with_a_candidate_is_their_limit_in_the_whole_frame():
    """``_rolling_limit`` over some meters' rows gives those rows exactly what it gives them over
    every meter's rows (the score takes it on the meters with a point candidate only)."""
    df = _edge_fleet()
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end=NORMAL_END)
    det = fitted.detectors[0]
    from wattwatch.detect.baseline.seasonal import _isolation, _log_load
    from wattwatch.detect.frame import prepare

    p = prepare(df[df.meter_id != "blank"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC")))
    seg, t = p["_seg"].to_numpy(), p["_t"].to_numpy(float)
    x = p["p_kw"].to_numpy(float)
    cad = det._param(p, "cadence_s")
    eps = np.nan_to_num(det._param(p, "eps", 0.1), nan=0.1)
    iso = _isolation(_log_load(x, eps[seg]), seg, t, cad[seg])
    full = det._rolling_limit(iso, seg, t, cad)
    assert np.isfinite(full).sum() > 1000 and (full > 0.1).any()
    for some in ([0], [1, 3], [0, 2, 4], list(range(int(seg.max()) + 1))[1::2]):
        rows = np.isin(seg, some)
        np.testing.assert_array_equal(det._rolling_limit(iso[rows], seg[rows], t[rows], cad), full[rows])


def test_a_state_stored_before_the_isolation_limit_scores_as_before_no_new_alert_no_crash():
    """A seasonal_profile state written before ``limit_iso`` existed (same ``state_version``: the
    store and a model folder load it, with a notice that its settings differ): it scores as the
    detector without the point evidence (``iso_z`` out of reach), raising no new alert, where the
    refitted state finds the glitches the point evidence finds."""
    df, _ = _glitched("60min")
    fitted = api.fit(df, detectors=["seasonal_profile"], normal_end=NORMAL_END)
    new = fitted.detectors[0]
    old = new.clone()
    for st in old.state_.values():
        st.pop("limit_iso", None)
    off = new.clone()
    off.config = dataclasses.replace(new.config, iso_z=np.inf)
    frame = df[df.ts >= "2024-03-01"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC"))
    r_old, r_off, r_new = (core.run(frame, [d]) for d in (old, off, new))
    np.testing.assert_array_equal(r_old.judged[-1].scores, r_off.judged[-1].scores)
    alerts = lambda r: sorted((a.meter_id, a.start, a.evidence.get("kind")) for a in r.alerts)  # noqa: E731
    assert alerts(r_old) == alerts(r_off)
    # the refitted state finds more (the test would not tell anything if the evidence found nothing)
    assert len(alerts(r_new)) > len(alerts(r_old))


@pytest.mark.parametrize("seed", [4, 5, 6, 7, 8, 9])
def test_two_spikes_two_readings_apart_are_both_points_the_normal_hour_between_them_is_none(seed):
    """Two hours at 2.5x with one ordinary hour between them, on the office whose normal weeks
    raised its reading limit (the point evidence alone finds a one-hour spike there). The ordinary
    hour stands below both its neighbours as far as they stand above it; it is on its profile, so
    it is no point and the spikes must not yield to it (before: the spike whose own isolation was
    the smaller, by the noise of the hours around it, yielded, scored under the limit and was left
    out of the alert). One alert from the first spike to the second; the same with a spike and a
    dip to 40 % two hours apart."""
    for second in (2.5, 0.4):
        df = _office("60min", seed=seed)
        for at, f in (("2024-04-03 11:00", 2.5), ("2024-04-03 13:00", second)):
            df.loc[df.ts == pd.Timestamp(at), "p_kw"] *= f
        fitted = api.fit(df, detectors=["seasonal_profile"], normal_end=NORMAL_END)
        assert fitted.detectors[0].get_state()["office"]["limit_z"] > 12
        frame = df[df.ts >= "2024-03-01"].assign(ts=lambda f: f.ts.dt.tz_localize("UTC"))
        whole = core.run(frame, fitted.detectors)
        got = [(a.start[:16], a.end[:16]) for a in whole.alerts]
        assert got == [("2024-04-03T11:00", "2024-04-03T13:00")], (second, got)
