"""The post-rules' minimum duration on a jittered clock (issue 14, docs/quality-log.md dur).

A run of n readings at cadence c spans (n - 1) c on the meter's grid; its stamps' clock jitter moves
that by seconds either way. A run of exactly the minimum must alert whatever the jitter, one reading
shorter never (hourly: a 4-reading 3-hour firmware run spanning 2 h 59 min 59.4 s was dropped)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wattwatch.detect.base import PostRule
from wattwatch.detect.postrules import alert_groups

FIRMWARE = PostRule(min_duration_s=3 * 3600.0, min_readings=6, merge_gap_s=2 * 3600.0)
NEUTRAL_1S = PostRule(min_duration_s=30.0, min_readings=2, merge_gap_s=3600.0)
METERS = 40


def _fleet(n_hot: int, cad: float, shift: np.ndarray):
    """``METERS`` meters, each 3 calm readings, ``n_hot`` anomalous ones, 3 calm; each stamp
    moved by ``shift`` (seconds, one per row)."""
    per = n_hot + 6
    seg = np.repeat(np.arange(METERS), per)
    t = np.tile(np.arange(per) * cad, METERS) + 1.7e9 + shift
    score = np.tile(np.r_[np.zeros(3), np.full(n_hot, 2.0), np.zeros(3)], METERS)
    return seg, t, score


def _alerts(post, cad, n_hot, shift):
    seg, t, score = _fleet(n_hot, cad, shift)
    eff = post.at(np.full(METERS, cad))
    return alert_groups(seg, t, score, post, eff)


@pytest.mark.parametrize("post,cad", [(FIRMWARE, 3600.0), (FIRMWARE, 60.0), (NEUTRAL_1S, 1.0)],
                         ids=["3h-at-60min", "3h-at-1min", "30s-at-1s"])
def test_a_run_of_exactly_the_minimum_alerts_whatever_the_jitter(post, cad):
    n = int(round(post.min_duration_s / cad)) + 1  # readings that span the minimum on the grid
    per = n + 6
    # The hr case: the first anomalous stamp 0.6 s late (hourly: 2 h 59 min 59.4 s; at finer
    # cadences the same share of a cadence), every other stamp on time.
    late = np.zeros(per)
    late[3] = 0.6 * cad / 3600.0 if cad < 3600 else 0.6
    assert len(_alerts(post, cad, n, np.tile(late, METERS))) == METERS
    # The worst the simulator's clocks do (a fifth of the step each way): first late, last early.
    worst = np.zeros(per)
    worst[3], worst[3 + n - 1] = 0.2 * cad, -0.2 * cad
    assert len(_alerts(post, cad, n, np.tile(worst, METERS))) == METERS
    # Every stamp jittered at random, each meter its own clock: every one alerts.
    rng = np.random.default_rng(12)
    assert len(_alerts(post, cad, n, rng.uniform(-0.2, 0.2, METERS * per) * cad)) == METERS
    # One reading shorter: never, however the jitter stretches it.
    short = np.zeros(per - 1)
    short[3], short[3 + n - 2] = -0.2 * cad, 0.2 * cad
    assert _alerts(post, cad, n - 1, np.tile(short, METERS)) == []
    assert _alerts(post, cad, n - 1, rng.uniform(-0.2, 0.2, METERS * (per - 1)) * cad) == []


def test_the_bar_is_the_minimum_less_at_most_half_a_cadence():
    """``min_span_s`` sits between the grid's spans either side of the minimum, never above it;
    the minimum itself where the cadence is unknown."""
    cad = np.array([1.0, 60, 300, 900, 3600, 5400, 7200, np.nan, 0.0])
    for d in (0.0, 30.0, 900.0, 1800.0, 3600.0, 10800.0, 43200.0):
        bar = PostRule(min_duration_s=d).at(cad)["min_span_s"]
        assert np.all(bar <= d) and np.all(bar >= 0)
        known = np.isfinite(cad) & (cad > 0)
        c = cad[known]
        need = np.ceil(d / c)  # cadences a run must span on the grid
        assert np.all(need * c >= bar[known]) and np.all(((need - 1) * c < bar[known]) | (need == 0))
        assert np.all(bar[known] >= d - c / 2)
        assert np.all(bar[~known] == d)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 2.0, 2.0, np.nan]), st.integers(1, 7)), min_size=1, max_size=12),
       st.sampled_from([1.0, 60.0, 300.0, 900.0, 3600.0]),
       st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.0, 4.75, 5.0]),
       st.integers(1, 6), st.integers(0, 2**31 - 1))
def test_jitter_under_a_quarter_cadence_changes_no_alert(runs, cad, dur_n, min_n, seed):
    """Alerts on a jittered clock are those on the exact grid, for minimum durations a whole number
    of cadences (every default at 1 s to 60 min) or at least half a cadence past one (4.75: the bar
    is the midpoint). (Under half a cadence past one, 4.25 say, the bar stays the minimum, as before:
    a run one reading short is a quarter cadence under it, so jitter of more than that passes it.)
    Merge and bridge at 2.5 cadences here, off the grid, so that only the duration is at stake."""
    post = PostRule(min_duration_s=dur_n * cad, min_readings=min_n, merge_gap_s=0.0, max_bridge_s=0.0)
    s = np.concatenate([np.full(k, v) for v, k in runs])
    seg = np.zeros(len(s), int)
    t = np.arange(len(s)) * cad
    eff = post.at(np.array([cad]))
    jit = np.random.default_rng(seed).uniform(-0.24, 0.24, len(s)) * cad
    exact = [list(g) for g in alert_groups(seg, t, s, post, eff)]
    assert [list(g) for g in alert_groups(seg, t + jit, s, post, eff)] == exact
