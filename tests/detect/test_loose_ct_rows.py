"""loose_ct works out its below-level measure (three-phase meters) and its measure over every change
(meters whose current and power agreed across load switches while learned) on those meters' rows
only (fc, issue 16: at 200 meters the whole-frame arrays were most of its scoring in a stream's fast
step). A meter's measures read its own readings alone, so the scores and the context the
descriptions read (measure, limit, which measure was taken) must be those of the whole-frame
formulation, bit for bit, on a fleet mixing every kind of meter."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect.base import quiet
from wattwatch.detect.frame import prepare
from wattwatch.detect.registry import build
from wattwatch.sim import SimConfig, simulate

from .conftest import HEALTHY, window


def _whole_frame(det, df):
    """``LooseCT._score`` as written before fc: every measure and limit over every row of the frame."""
    cfg = det.config
    seg = df["_seg"].to_numpy()
    d, ok, q, v, i, p = det._judgeable(det._base(df))
    e, qr = det._measure(d, q, p, seg)
    rows, d_low = det._below_level(df, d, seg)

    def limit(key, one_phase=False):
        normal = det._param(df, key)
        div = np.where(one_phase & (det._param(df, "phases", 1.0) == 3), 3.0, 1.0)
        base = np.maximum(cfg.floor / div, np.where(np.isfinite(normal), cfg.k_normal * normal, 0.0))
        return base[seg] + cfg.k_resolution * np.nan_to_num(qr)

    def one_phase(e, lim, steady, key):
        e_low = np.full(len(e), np.nan)
        e_low[rows] = det._erratic(d_low, p[rows], seg[rows], steady)
        lim_low = limit(key, one_phase=True)
        with quiet():
            take = np.nan_to_num(e_low / lim_low, nan=-np.inf) > np.nan_to_num(e / lim, nan=-np.inf)
        return np.where(take, e_low, e), np.where(take, lim_low, lim), take

    e, lim, low_steady = one_phase(e, limit("erratic_normal"), True, "erratic_normal")
    switch = det._param(df, "erratic_switch", np.nan)
    quiet_any = (np.isfinite(switch) & (cfg.k_normal * switch <= cfg.floor))[seg]
    e_any, lim_any, low_any = one_phase(det._erratic(d, p, seg, steady=False), limit("erratic_normal_any"),
                                        False, "erratic_normal_any")
    with quiet():
        take = quiet_any & (np.nan_to_num(e_any / lim_any, nan=-np.inf) > np.nan_to_num(e / lim, nan=-np.inf))
    e, lim = np.where(take, e_any, e), np.where(take, lim_any, lim)
    return e / lim, e, lim, take, low_steady, low_any & take


def test_the_measures_on_their_meters_rows_are_the_whole_frames_bit_for_bit():
    frame = simulate(SimConfig(meters=8, days=3, seed=7, step="5min", commercial_share=0.5, **HEALTHY))["frame"]
    det = build("loose_ct")
    det.fit(prepare(frame[frame.ts < frame.ts.min() + pd.Timedelta(days=2)]))
    names = sorted(det.state_)
    # Every kind of meter: three-phase or not, each with and without the measure over every change
    # (a learned switch at or under floor / k_normal, or none), and two clamps loosened.
    for k, m in enumerate(names):
        det.state_[m]["erratic_switch"] = 0.0 if k % 3 else np.nan
        # (an every-change normal whose limit is over ``floor`` on some of them: a limit taken
        # with the steady normal in its place differs there)
        det.state_[m]["erratic_normal_any"] = det.state_[m]["erratic_normal"] * 0.5 if k % 2 else 0.015
    for k, ch in ((1, "i_l1_a"), (4, "i_l2_a")):
        w = window(frame, str(frame.ts.min() + pd.Timedelta(days=2, hours=2)), 10) & (frame.meter_id == names[k])
        g = 1 - 0.5 * np.random.default_rng(k).random(w.sum())
        frame.loc[w, ch] = frame.loc[w, ch] * g
    df = prepare(frame)
    three = np.array([det.state_[m]["phases"] == 3 for m in names])
    quiet_any = np.array([k % 3 != 0 for k in range(len(names))])
    assert (three & quiet_any).any() and (three & ~quiet_any).any() and (~three & quiet_any).any() \
        and (~three & ~quiet_any).any(), "the fleet lacks a kind of meter"

    got = det.scored(df)
    want, e, lim, take, low_steady, low_any = _whole_frame(det, df)
    # Each branch decided some reading (else the comparison proves little).
    assert take.any() and low_steady.any() and low_any.any() and (take & ~low_any).any()
    np.testing.assert_array_equal(got.values, want)
    for name, a, b in zip(("measure", "limit", "taken"), got.ctx[:3], (e, lim, take)):
        assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), name
