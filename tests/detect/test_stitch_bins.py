"""The carried grid bins of learned_ensemble (issue 16): a stream keeps, per meter, the grid bins'
series its features, evidence and persistence read (the channel's mean, power factor and reactive
share per 5-minute bin, ~60 hours back) instead of the raw readings they came from, so its tail of
raw readings is bounded by its own bin and its blockers' reach, not by 60 hours of one-minute readings.

A fleet at 1 and 5 minutes streamed in pieces for more than ten days (a day, then random cuts of
minutes to hours, with a checkpoint round trip) must give every reading the score, and every alert
the id, span, score, message and evidence, that the whole history judged at once gives; its raw
tail must stay hours long and its carried bins at the detector's own reach."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect import core, registry
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import prepare
from wattwatch.detect.learned.detectors import GridCarry
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import _alert_mismatches, _epoch, _score_mismatches, _sim
from tests.detect.test_stitch_hours import _resumed

# The ensemble with root-cause rules that blank its consumption but reach back minutes, not days
# (firmware_drift's four-day windows would make the raw tail days long whatever is carried).
DETECTORS = ["supply_outage", "frozen_readings", "learned_ensemble"]
PROFILE_DAYS = 4.0
DAYS = 11.5


def _stream(frame: pd.DataFrame, dets, seed: int):
    """Whole-day pieces for the first days, then pieces of a few minutes to a few hours; a
    checkpoint round trip in the middle. Returns the steps, per piece and meter (raw tail's span
    in hours, bins carried, hours since the earliest clean point of any detector: an open alert's
    start) and the stitcher."""
    t = _epoch(frame["ts"])
    rng = np.random.default_rng(seed)
    t0 = t.min() + PROFILE_DAYS * 86400
    cuts = list(np.arange(t0, t0 + 4 * 86400, 86400.0))
    while cuts[-1] < t.max():
        cuts.append(cuts[-1] + float(rng.choice([300.0, 1800.0, 3 * 3600.0, 7 * 3600.0])) + 17.0)
    edges = [-np.inf, *cuts, np.inf]
    st = Stitcher(dets)
    steps, seen = [], []
    for k, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        if k == len(edges) // 2:
            st = _resumed(st, dets)
        steps.append(st.feed(frame[(t > lo) & (t <= hi)]))
        tt = pd.Series(_epoch(st.tail["ts"])).groupby(st.tail["meter_id"].astype(str).to_numpy())
        first, last = tt.min(), tt.max()
        for m in first.index:
            clean = min(st.since[d.name].get(m, -np.inf) for d in dets)
            c = st.hours["learned_ensemble"].get(m)
            seen.append((m, (last[m] - first[m]) / 3600, 0 if c is None else len(c), (last[m] - clean) / 3600))
    steps.append(st.flush())
    return steps, pd.DataFrame(seen, columns=["meter", "tail_h", "bins", "open_h"]), st


@pytest.mark.parametrize("step", ["1min", "5min"])
def test_the_ensemble_streamed_past_its_reach_keeps_hours_of_tail_and_equal_alerts(step):
    frame = _sim(meters=4, days=DAYS, step=step, seed=2020, fault_share=1.0, outage_share=0.5,
                 profile_days=PROFILE_DAYS, faults=("theft_under_registration", "level_shift", "frozen_register"))
    dets = registry.build_all(DETECTORS, {"learned_ensemble": {"min_fleet_meter_days": 10.0}})
    profile(prepare(frame), dets, EngineConfig(profile_days=PROFILE_DAYS, workers=1))
    ens = dets[-1]
    assert ens.fleets_, "the ensemble was not trained: it would judge nothing"
    whole = core.run(frame, dets)
    assert any(a.detector == "learned_ensemble" for a in whole.alerts), "the fleet should raise learned alerts"
    own_h = float(ens.reach(list(ens.state_)).back_s.max()) / 3600   # ~60 h at a 5-minute grid

    steps, seen, st = _stream(frame, dets, seed=7 if step == "1min" else 8)
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])
    # Once the carry is up (a day past its reach), on a meter with no alert open (its clean points
    # at most the blockers' horizons behind: the wait before a score is final) the bins carried
    # are the detector's own reach (its features' day and the persistence window, ~720 bins of 5
    # minutes) and the raw tail is hours: that wait and the reach in raw readings (its own bin and
    # the blockers' horizons), where it kept its own 60 h of raw readings and that wait before.
    # An open alert keeps both from its start on (the post-rules form it from there), no more.
    m = list(ens.state_)
    lag_h = float(core.reaches(dets, m)["learned_ensemble"].ahead_s.max()) / 3600
    raw_h = float(core.reaches(dets, m, {"learned_ensemble"})["learned_ensemble"].back_s.max()) / 3600
    assert raw_h < 0.2 * own_h, (raw_h, own_h)
    per_h = 3600 / 300.0
    late = seen.iloc[len(seen) // 3:]
    calm = late[late["open_h"] <= lag_h + 0.5]
    assert len(calm) >= 10, seen.to_string()
    assert calm["bins"].between(own_h * per_h * 0.95, (own_h + 1) * per_h).all(), calm.to_string()
    assert (calm["tail_h"] <= lag_h + raw_h + 1).all(), calm.to_string()
    assert (late["bins"] <= (own_h + late["open_h"] + 1) * per_h).all(), late.to_string()
    assert (late["tail_h"] <= late["open_h"] + raw_h + 1).all(), late.to_string()
    carried = st.hours["learned_ensemble"]
    assert carried and all(isinstance(c, GridCarry) and c.step == 300.0 and not c.origin for c in carried.values())


def test_a_checkpoint_of_hours_only_loads_and_the_bins_go_back_to_it():
    """The checkpoint's frame of carried bins (``Stitcher.hour_carry``) holds a column per series
    and the bin width; one written when only baseline_macd's hours were carried (no ``step``, no
    learned series) still loads, as hours, and a frame of both kinds goes back to the same carries."""
    from wattwatch.detect.baseline.macd import HourCarry

    dets = registry.build_all(["baseline_macd", "learned_ensemble"])
    h0 = 1_736_121_600.0
    old = pd.DataFrame({"detector": "baseline_macd", "meter_id": "A", "hour": h0 + 3600.0 * np.arange(3),
                        "m": [1.0, np.nan, 3.0], "hmin": [0.5, np.nan, 2.5], "c1": h0 + 3 * 3600.0, "origin": False})
    st = Stitcher(dets)
    st.load_hour_carry(old)
    c = st.hours["baseline_macd"]["A"]
    assert isinstance(c, HourCarry) and c.step == 3600.0 and c.h0 == h0 and len(c) == 3 and not c.origin
    np.testing.assert_array_equal(c.m, [1.0, np.nan, 3.0])
    assert st.hours["learned_ensemble"] == {}
    st.hours["learned_ensemble"]["B"] = GridCarry(h0, h0 + 600.0, True, 300.0,
                                                  {"p": np.array([2.0, 2.5]), "pf": np.array([0.9, np.nan]),
                                                   "qs": np.array([0.1, 0.2])})
    back = Stitcher(dets)
    back.load_hour_carry(st.hour_carry())
    for name, per in st.hours.items():
        for m, a in per.items():
            b = back.hours[name][m]
            assert type(b) is type(a) and (b.b0, b.c1, b.origin, b.step) == (a.b0, a.c1, a.origin, a.step)
            for k in a.names:
                np.testing.assert_array_equal(b.series[k], a.series[k])
