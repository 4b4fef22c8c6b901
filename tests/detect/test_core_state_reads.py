"""What ``core.run`` reads of each meter's learned state (lat61): each meter's state looked up once
per detector (no state, ``lacks``, ``judge_from``), the cadence once per run, and a
detector's ``state_note`` asked per meter only where the detector says something (a class that
overrides it). Also ``loose_ct``'s description medians taken in one call over its series."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

from wattwatch.detect import core, registry
from wattwatch.detect.base import Detector
from wattwatch.detect.engine import EngineConfig, profile
from wattwatch.detect.frame import meter_names, prepare
from wattwatch.detect.rules.loosect import _rolling_median
from wattwatch.sim import SimConfig, simulate


def _fleet(seed: int = 5, meters: int = 4) -> pd.DataFrame:
    f = simulate(SimConfig(meters=meters, days=4, step="15min", seed=seed))["frame"]
    return f.drop_duplicates(["meter_id", "ts"]).reset_index(drop=True)


def _fitted(names, frame):
    dets = [registry.build(n) for n in names]
    profile(prepare(frame), dets, EngineConfig(profile_days=3.0, workers=1))
    return dets


def test_a_detector_with_the_default_state_note_is_not_asked_per_meter():
    frame = _fleet()
    dets = _fitted(["frozen_readings", "supply_outage"], frame)
    asked = []

    # Both detectors keep the default (they do not override it): its code is never entered.
    default = Detector.state_note.__code__

    def seen(frame_, event, arg):
        if event == "call" and frame_.f_code is default:
            asked.append(frame_.f_locals.get("meter"))

    sys.setprofile(seen)
    try:
        core.run(frame, dets)
    finally:
        sys.setprofile(None)
    assert asked == []


def test_a_state_note_patched_onto_the_base_class_is_said_for_every_detector(monkeypatch):
    # (rev61) The default is skipped only where it is the default itself, which says nothing: a
    # note put on Detector (a plugin, a test) is asked as before lat61.
    frame = _fleet()
    dets = _fitted(["frozen_readings", "supply_outage"], frame)
    monkeypatch.setattr(Detector, "state_note", lambda self, meter, st: f"base {self.name} {meter}")
    res = core.run(frame, dets)
    meters = sorted(frame["meter_id"].astype(str).unique())
    assert sorted(n for n in res.notices if n.startswith("base ")) == \
        sorted(f"base {d} {m}" for d in ("frozen_readings", "supply_outage") for m in meters)


def test_an_overriding_state_note_is_still_said_once_per_meter():
    frame = _fleet()
    base = type(registry.build("frozen_readings"))

    class Noting(base):
        def state_note(self, meter, st):
            return f"noted {meter}"

    det = Noting()
    profile(prepare(frame), [det], EngineConfig(profile_days=3.0, workers=1))
    res = core.run(frame, [det])
    meters = sorted(frame["meter_id"].astype(str).unique())
    assert sorted(n for n in res.notices if n.startswith("noted ")) == [f"noted {m}" for m in meters]


def test_missing_lacking_and_judge_from_states_read_as_before():
    frame = _fleet(seed=9)
    meters = sorted(frame["meter_id"].astype(str).unique())
    det = _fitted(["frozen_readings"], frame)[0]
    whole = core.run(frame, [det])
    s_whole = whole.judged[0].scores
    seg = whole.frame["_seg"].to_numpy()
    t = whole.frame["_t"].to_numpy()
    names = [str(m) for m in meter_names(whole.frame)]
    gone, lacking, late = meters[:3]
    del det.state_[gone]                         # never fitted: skipped, "state (never fitted)"
    det.state_[lacking] = {**det.state_[lacking], "lacks": ["v_l1_v"]}
    t0 = float(np.median(t[seg == names.index(late)]))
    det.state_[late] = {**det.state_[late], "judge_from": t0}
    res = core.run(frame, [det])
    s = res.judged[0].scores
    assert res.skipped == {"frozen_readings": {gone: ["state"], lacking: ["v_l1_v"]}}
    for m in (gone, lacking):
        assert np.isnan(s[seg == names.index(m)]).all()
    rows = seg == names.index(late)
    assert np.isnan(s[rows & (t < t0)]).all()
    np.testing.assert_array_equal(s[rows & (t >= t0)], s_whole[rows & (t >= t0)])
    assert not res.judged[0].skipped[names.index(late)]


def test_rolling_medians_in_one_call_equal_one_call_per_series():
    rng = np.random.default_rng(61)
    from wattwatch.detect.rules.loosect import _rolling_medians

    for _ in range(400):
        n = int(rng.integers(0, 50))
        seg = np.sort(rng.integers(0, 3, n))
        if n:
            seg = np.concatenate([[0], np.cumsum(seg[1:] != seg[:-1])])
        window = int(rng.choice([1, 3, 9, 15, 17]))
        xs = []
        for _ in range(int(rng.integers(1, 6))):
            x = rng.normal(size=n)
            x[rng.random(n) < 0.3] = np.nan
            x[rng.random(n) < 0.05] = np.inf
            xs.append(np.round(x, 1) if rng.random() < 0.3 else x)
        for x, got in zip(xs, _rolling_medians(xs, seg, window), strict=True):
            np.testing.assert_array_equal(got, _rolling_median(x, seg, window))


def test_a_state_note_set_on_the_instance_is_said_too():
    frame = _fleet()
    det = _fitted(["frozen_readings"], frame)[0]
    det.state_note = lambda meter, st: f"instance {meter}"
    res = core.run(frame, [det])
    meters = sorted(frame["meter_id"].astype(str).unique())
    assert sorted(n for n in res.notices if n.startswith("instance ")) == [f"instance {m}" for m in meters]


def test_rolling_medians_in_one_call_whatever_the_segment_codes():
    # (rev61) Codes below zero or not from zero (the copies' codes must not run into each other
    # where one copy ends and the next begins): still the values of a call per series.
    from wattwatch.detect.rules.loosect import _rolling_medians

    for seg in (np.full(5, -1), np.array([-1, -1, 0, 0, 0]), np.array([-3, -3, -2, -2, -2, -1]),
                np.array([5, 5, 5, 7, 7]), np.array([2, 2, 1, 1, 1, 0]), np.array([0])):
        xs = [np.arange(len(seg), dtype=float) + 10.0 * k for k in range(3)]
        for x, got in zip(xs, _rolling_medians(xs, seg, 3), strict=True):
            np.testing.assert_array_equal(got, _rolling_median(x, seg, 3))
