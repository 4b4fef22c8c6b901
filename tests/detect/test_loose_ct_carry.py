"""loose_ct keeps a reading's measure, limit and flag from its last scoring while nothing that enters
its window changed (lq, issue 16: a live step's frame is the last one with a reading a meter more).
The carried scoring must be the whole scoring bit for bit: on a step's frame (the front cut, a reading
a meter appended: most results kept), and where the carry must not be used for a reading (a late
reading inserted inside a window, a reading's current lost inside one, a meter's learned values
changed, a meter's last readings lost); a checkpoint does not hold the carry."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from wattwatch.detect.frame import prepare
from wattwatch.detect.registry import build
from wattwatch.detect.rules import loosect
from wattwatch.sim import SimConfig, simulate

from .conftest import HEALTHY, window


@pytest.fixture(scope="module")
def fleet():
    """(fitted loose_ct, frame): 6 meters at 15 min, half commercial (three-phase), every kind of meter
    for the scoring's branches, one clamp loosened on day 2."""
    frame = simulate(SimConfig(meters=6, days=2, seed=11, step="15min", commercial_share=0.5, **HEALTHY))["frame"]
    det = build("loose_ct")
    det.fit(prepare(frame[frame.ts < frame.ts.min() + pd.Timedelta(days=1)]))
    names = sorted(det.state_)
    for k, m in enumerate(names):
        det.state_[m]["erratic_switch"] = 0.0 if k % 3 else np.nan
        det.state_[m]["erratic_normal_any"] = 0.015 if k % 2 else det.state_[m]["erratic_normal"] * 0.5
    w = window(frame, str(frame.ts.min() + pd.Timedelta(days=1, hours=6)), 12) & (frame.meter_id == names[1]).to_numpy()
    frame.loc[w, "i_l1_a"] = frame.loc[w, "i_l1_a"] * (1 - 0.5 * np.random.default_rng(1).random(w.sum()))
    return det, frame.sort_values(["meter_id", "ts"]).reset_index(drop=True)


def _steps(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Each meter's readings from its (k+101)-th to its (k+160)-th: a tail of 60 readings, moved on by k."""
    n = frame.groupby("meter_id", observed=True).cumcount()
    return frame[(n >= 100 + k) & (n < 160 + k)]


def _scored(det, frame: pd.DataFrame, carry_from: pd.DataFrame | None, keep_carry: bool = False):
    """(values, measure, limit, taken, rows scored) of ``det`` on ``frame``: after a scoring of
    ``carry_from`` (its carry then used), or with no carry; ``keep_carry``: ``det`` itself, with the
    carry of its last scoring."""
    if not keep_carry:
        det = pickle.loads(pickle.dumps(det))   # no carry (a checkpoint does not hold one)
        assert "_score_carry" not in det.__dict__
    if carry_from is not None:
        det.scored(prepare(carry_from))
        assert "_score_carry" in det.__dict__
    rows = []
    orig = det._score_on
    det._score_on = lambda df, seg, *a: rows.append(len(seg)) or orig(df, seg, *a)
    try:
        got = det.scored(prepare(frame))
    finally:
        del det._score_on
    return (got.values, *got.ctx[:3], sum(rows))


def _same(a, b) -> None:
    for name, x, y in zip(("values", "measure", "limit", "taken"), a[:4], b[:4]):
        assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=x.dtype.kind == "f"), name


def test_a_steps_frame_keeps_most_results_and_equals_the_whole_scoring(fleet):
    det, frame = fleet
    before, after = _steps(frame, 0), _steps(frame, 1)
    got, want = _scored(det, after, before), _scored(det, after, None)
    _same(got, want)
    # The carry was used: a reading a meter moved on, so a few windows per meter are scored again.
    assert want[4] == len(after) and 0 < got[4] < 0.4 * len(after)
    assert np.isfinite(want[0]).sum() > 0.6 * len(after) and (want[0] >= 1).any(), "a frame with little to judge"


@pytest.mark.parametrize("change", ["late reading", "current lost", "last readings lost", "learned value"])
def test_what_enters_a_window_changed_is_scored_again(fleet, change):
    det, frame = fleet
    before, after = _steps(frame, 0), _steps(frame, 1).copy()
    m = sorted(det.state_)[1]                      # the loose clamp's meter
    rows = np.flatnonzero((after.meter_id == m).to_numpy())
    r = rows[30]
    if change == "late reading":
        # A reading of the meter that the last frame lacked, 7 minutes after one in the middle of it.
        late = after.iloc[[r]].copy()
        late["ts"] = late["ts"] + pd.Timedelta(minutes=7)
        late["i_l1_a"] = late["i_l1_a"] * 0.6
        before = before[~((before.meter_id == m) & (before.ts == late.ts.iloc[0]))]
        after = pd.concat([after, late]).sort_values(["meter_id", "ts"]).reset_index(drop=True)
    elif change == "current lost":
        after.iloc[r, after.columns.get_loc("i_l1_a")] = np.nan
    elif change == "last readings lost":
        # (rlq) The meter's frame ends two readings earlier, the next meter's first rows follow on
        # unchanged: its readings within a window of its new end now reach its last reading.
        after = after.drop(index=after.index[rows[-2:]]).reset_index(drop=True)
    else:
        det_before, det = det, pickle.loads(pickle.dumps(det))
        with_carry = pickle.loads(pickle.dumps(det))
        with_carry.scored(prepare(before))
        det.state_[m] = {**det.state_[m], "erratic_normal": 0.05}   # a limit of 0.2, over ``floor``
        with_carry.state_ = det.state_
        got = with_carry.scored(prepare(after))
        want = _scored(det, after, None)
        assert not np.array_equal(_scored(det_before, after, None)[3], want[3], equal_nan=True)
        _same((got.values, *got.ctx[:3]), want)
        return
    got, want = _scored(det, after, before), _scored(det, after, None)
    # The change moved some result (else the comparison proves nothing) ...
    plain = _scored(det, _steps(frame, 1), None)
    if change == "current lost":
        assert not np.array_equal(plain[1], want[1], equal_nan=True)
    # ... and the carried scoring is the whole one.
    _same(got, want)


def test_the_carry_is_not_pickled_and_a_long_frame_keeps_none(fleet, monkeypatch):
    det, frame = fleet
    det = pickle.loads(pickle.dumps(det))
    det.scored(prepare(_steps(frame, 0)))
    assert "_score_carry" in det.__dict__ and "_score_carry" not in pickle.loads(pickle.dumps(det)).__dict__
    monkeypatch.setattr(loosect, "CARRY_MAX_ROWS", 100)
    det.scored(prepare(_steps(frame, 1)))
    assert "_score_carry" not in det.__dict__



def test_random_step_sequences_equal_the_whole_scoring(fleet, monkeypatch):
    """(rlq) Random sequences of what a live tail meets between two scorings: readings
    appended and cut at the front, a late or duplicate reading, a reading lost, a channel lost or
    corrected, a meter gone or back, a learned value changed, another frame scored on the instance (a
    re-judging): each scoring equal to the whole one, bit for bit, the carry taken wherever it can be."""
    monkeypatch.setattr(loosect, "CARRY_SCORE_MAX", 2.0)   # never the whole frame for want of reuse
    det, frame = fleet
    det = pickle.loads(pickle.dumps(det))
    frame = frame.assign(_k=frame.groupby("meter_id", observed=True).cumcount())
    meters = sorted(det.state_)
    rng = np.random.default_rng(1553)
    lo, hi = dict.fromkeys(meters, 60), dict.fromkeys(meters, 130)
    extra, lost, gone, kept = [], set(), set(), 0

    def change(op: str) -> None:
        nonlocal gone
        m = meters[rng.integers(len(meters))]
        k = int(rng.integers(lo[m], hi[m]))
        at = ((frame.meter_id == m) & (frame._k == k)).to_numpy()
        if op == "advance":
            for x in meters:
                lo[x] += int(rng.integers(0, 3))
                hi[x] += int(rng.integers(0, 3))
        elif op == "late":
            late = frame[at].assign(ts=frame.ts[at] + pd.Timedelta(seconds=int(rng.integers(0, 60))))
            extra.append(late.assign(p_kw=late.p_kw * rng.uniform(0.8, 1.2)))
        elif op == "lost":
            lost.add((m, k))
        elif op == "value":
            col = str(rng.choice(["i_l1_a", "i_l2_a", "p_kw", "v_l1_v", "pf"]))
            frame.loc[at, col] = np.nan if rng.random() < 0.5 else frame.loc[at, col] * 0.97
        elif op == "meter":
            gone ^= {m}
        elif op == "learn":
            key = str(rng.choice(list(loosect._SCORE_READ) + ["res_i", "nominal_v"]))
            v = det.state_[m][key]
            new = {"phases": 4 - v, "erratic_switch": np.nan if v == 0 else 0.0}.get(
                key, np.nan_to_num(v) + rng.uniform(0.005, 0.02))   # (a normal over floor / k_normal)
            det.state_ = {**det.state_, m: {**det.state_[m], key: new}}
        else:
            det.scored(prepare(frame[frame._k < 150].drop(columns="_k")))

    others = rng.permutation(["late", "lost", "value", "meter", "learn", "rejudge"])
    for step in range(24):
        if rng.random() < 0.7:
            change("advance")
        for j in (2 * step, 2 * step + 1):
            change(str(others[j % len(others)]))
        cur = pd.concat([frame, *extra])
        keep = [x not in gone and lo[x] <= j < hi[x] and (x, j) not in lost for x, j in zip(cur.meter_id, cur._k)]
        cur = cur[keep].sort_values(["meter_id", "ts"], kind="stable").drop(columns="_k").reset_index(drop=True)
        got, want = _scored(det, cur, None, keep_carry=True), _scored(det, cur, None)
        _same(got, want)
        kept += len(cur) - got[4]
    assert kept > 0.15 * 24 * 6 * 70, "the carry was seldom used: the sequences test little"
