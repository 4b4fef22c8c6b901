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


def _scored(det, frame: pd.DataFrame, carry_from: pd.DataFrame | None):
    """(values, measure, limit, taken, rows scored) of ``det`` on ``frame``: after a scoring of
    ``carry_from`` (its carry then used), or with no carry."""
    det = pickle.loads(pickle.dumps(det))   # no carry (a checkpoint does not hold one)
    assert "_score_carry" not in det.__dict__
    if carry_from is not None:
        det.scored(prepare(carry_from))
        assert "_score_carry" in det.__dict__
    rows = []
    orig = det._score_on
    det._score_on = lambda df, seg, *a: rows.append(len(seg)) or orig(df, seg, *a)
    got = det.scored(prepare(frame))
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
