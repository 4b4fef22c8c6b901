"""thermal_drift's fit keeps what its time constants share (the heating's grid, the sums of the
intercept, the daily terms and the temperature) instead of making it again per τ: the state is the
one the per-τ work gives, to the bit, on a fleet with faults and gaps (NaN temperatures)."""

from __future__ import annotations

import json

import numpy as np

from wattwatch.detect.frame import prepare
from wattwatch.detect.registry import build_all
from wattwatch.sim import SimConfig, simulate


def test_shared_sums_give_the_state_of_counting_each_tau_anew():
    frame = simulate(SimConfig(meters=8, days=4, seed=3, fault_share=0.6, profile_days=2.0))["frame"].copy()
    frame.loc[frame.index[::7], "temp_c"] = np.nan  # a mask that is not all rows
    full = prepare(frame)
    shared, = build_all(["thermal_drift"])
    anew, = build_all(["thermal_drift"])
    solve, lags = type(anew)._solve, type(anew)._lags
    calls = []

    def count_each_time(self, X, y, seg, n_seg, ok, memo=None, fixed=()):
        calls.append(memo)
        return solve(self, X, y, seg, n_seg, ok)  # no memo: every sum counted again

    def grid_each_time(self, df, current, i_ref, taus, bin_m, memo=None):
        return lags(self, df, current, i_ref, taus, bin_m)  # no memo: every grid made again

    anew._solve = count_each_time.__get__(anew)
    anew._lags = grid_each_time.__get__(anew)
    shared.fit(full)
    anew.fit(full)
    assert len(calls) == len(anew.config.taus_min) > 1
    a, b = shared.get_state(), anew.get_state()
    assert any(v.get("coef") is not None for v in a.values())
    assert json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    sa, sb = shared.score(full).to_numpy(), anew.score(full).to_numpy()
    assert np.isfinite(sa).any() and np.array_equal(sa, sb, equal_nan=True)
