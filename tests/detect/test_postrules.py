"""Post-rules by hand and as properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwatch.detect.base import PostRule
from wattwatch.detect.postrules import alert_groups, calibrated

STEP = 300.0


def groups(scores, post=PostRule(min_duration_s=600, min_readings=2, merge_gap_s=1800), seg=None):
    s = np.asarray(scores, float)
    seg = np.zeros(len(s), int) if seg is None else np.asarray(seg)
    t = np.arange(len(s)) * STEP
    return [list(g) for g in alert_groups(seg, t, s, post)]


def test_persistence_blips_nan_and_merging():
    assert groups([0, 2, 0, 0]) == []  # one-reading blip
    assert groups([0, 2, 2, 0]) == []  # too short (5 min < 10 min)
    assert groups([0, 2, 2, 2, 0]) == [[1, 2, 3]]
    assert groups([2, 2, np.nan, 2, 0]) == [[0, 1, 3]]  # NaN neither counts nor breaks
    assert groups([2, 2, 2, 0, 0, 2, 2, 2]) == [[0, 1, 2, 5, 6, 7]]  # 15 min apart < merge gap
    assert groups([2, 2, 2] + [0] * 8 + [2, 2, 2]) == [[0, 1, 2], [11, 12, 13]]
    assert groups([2, 0, 2, 0, 2, 0, 2]) == []  # blips never join into an alert
    # Two meters never merge.
    assert groups([2, 2, 2, 2, 2, 2], seg=[0, 0, 0, 1, 1, 1]) == [[0, 1, 2], [3, 4, 5]]


def test_unjudgeable_stretches_bridge_only_so_far():
    long_gap = [2, 2] + [np.nan] * 12 + [2, 2]  # an hour of NaN between pairs: separate runs
    post = PostRule(min_duration_s=0, min_readings=2, merge_gap_s=0)
    assert groups(long_gap, post) == [[0, 1], [14, 15]]


def test_calibrated_score_is_monotone_in_zero_one():
    xs = np.linspace(0, 20, 50)
    ys = [calibrated(x) for x in xs]
    assert all(0 <= y < 1 for y in ys) and all(b >= a for a, b in zip(ys, ys[1:]))
    assert calibrated(1.0) == 0.5


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 3), st.just(float("nan"))), min_size=1, max_size=80),
       st.floats(0.5, 2.0), st.floats(0.0, 1.0), st.integers(1, 4), st.floats(0, 3600))
def test_raising_the_threshold_never_adds_alerts(scores, thr, bump, min_readings, merge_gap):
    low = PostRule(threshold=thr, min_duration_s=600, min_readings=min_readings, merge_gap_s=merge_gap)
    high = PostRule(threshold=thr + bump, min_duration_s=600, min_readings=min_readings, merge_gap_s=merge_gap)
    s = np.asarray(scores, float)
    t = np.arange(len(s)) * STEP
    seg = np.zeros(len(s), int)
    lo_spans = [(t[g[0]], t[g[-1]]) for g in alert_groups(seg, t, s, low)]
    for g in alert_groups(seg, t, s, high):
        assert any(a <= t[g[0]] and t[g[-1]] <= b for a, b in lo_spans)
