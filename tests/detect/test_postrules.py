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


def test_hold_keeps_one_alert_while_the_deviation_has_not_returned_to_normal():
    """A lasting change is one alert: with ``hold``, two alerts of a meter are one when no judged
    reading between them scored under ``hold`` x the threshold (the deviation dipped under the
    limit but never returned to normal), however long the dip or a stretch that could not be
    judged; a real return to normal (one reading under it) still splits them."""
    post = PostRule(min_duration_s=0, min_readings=2, merge_gap_s=0, max_bridge_s=600)
    held = PostRule(min_duration_s=0, min_readings=2, merge_gap_s=0, max_bridge_s=600, hold=0.5)
    dip = [2, 2] + [0.7] * 30 + [2, 2]
    assert groups(dip, post) == [[0, 1], [32, 33]]
    assert groups(dip, held) == [[0, 1, 32, 33]]
    unjudged = [2, 2, 0.7] + [np.nan] * 30 + [0.6, 2, 2]  # an outage inside: no return either
    assert groups(unjudged, held) == [[0, 1, 34, 35]]
    back = [2, 2] + [0.7] * 10 + [0.4] + [0.7] * 10 + [2, 2]
    assert groups(back, held) == [[0, 1], [23, 24]]
    # Fragments too short to alert on their own do not make an alert together; one that alerts
    # takes a short one in.
    slow = PostRule(min_duration_s=1200, min_readings=2, merge_gap_s=0, max_bridge_s=600, hold=0.5)
    assert groups([2, 2] + [0.7] * 10 + [2, 2], slow) == []
    assert groups([2] * 5 + [0.7] * 10 + [2, 2], slow) == [[0, 1, 2, 3, 4, 15, 16]]
    # Off the other way is no longer the same change: a side change ends the hold.
    t = np.arange(len(dip)) * STEP
    up = np.ones(len(dip))
    assert [list(g) for g in alert_groups(np.zeros(len(dip), int), t, np.asarray(dip, float), held,
                                          side=up)] == [[0, 1, 32, 33]]
    flip = np.r_[np.ones(20), -np.ones(len(dip) - 20)]
    assert [list(g) for g in alert_groups(np.zeros(len(dip), int), t, np.asarray(dip, float), held,
                                          side=flip)] == [[0, 1], [32, 33]]
    # Blips still never alert, and another meter's readings never hold a meter's alert.
    assert groups([2, 0.7, 0.7, 2, 0.7, 0.7, 2], held) == []
    assert groups([2, 2, 0.7, 0.7, 2, 2], held, seg=[0, 0, 0, 1, 1, 1]) == [[0, 1], [4, 5]]


def test_hold_must_be_a_share_of_the_threshold():
    import pytest

    for bad in (-0.1, 1.0, float("nan"), "0.5"):
        with pytest.raises(ValueError, match="hold"):
            PostRule(hold=bad)
