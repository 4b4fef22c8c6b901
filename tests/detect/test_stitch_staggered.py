"""Stitching when pieces hold some meters only (issue 16): a live engine judges only the meters that
received readings; the others keep their carry and open alerts untouched. Meters delivered on
staggered schedules must still score and alert as the whole history judged at once. And the
per-meter reach search, done for all meters in one call, answers as a search per meter does."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect import core, registry
from wattwatch.detect.base import Reach
from wattwatch.detect.engine import profile
from wattwatch.detect.frame import prepare, seg_bounds
from wattwatch.detect.stitch import Stitcher

from tests.detect.test_core import ENGINE, PROFILE_DAYS, _alert_mismatches, _score_mismatches, _sim


def _reach_rows_per_meter(t, starts, ends, r: Reach, origin, flush):
    """The reference: one np.searchsorted per meter (how the core did it before)."""
    exact = np.zeros(len(t), bool)
    final = np.zeros(len(t), bool)
    for k, (a, b) in enumerate(zip(starts, ends)):
        tm = t[a:b]
        if origin[k]:
            exact[a:b] = True
        elif np.isfinite(r.back_s[k]):
            lo = tm - r.back_s[k]
            exact[a:b] = (np.searchsorted(tm, lo, side="left") >= r.back_n[k]) & (lo >= tm[0])
        if flush[k]:
            final[a:b] = True
        else:
            after = (b - a) - np.searchsorted(tm, tm + r.ahead_s[k], side="right")
            final[a:b] = after >= (r.ahead_n[k] if r.ahead_s[k] == 0 else max(int(r.ahead_n[k]), 1))
    return exact, final


def test_reach_search_for_all_meters_at_once_equals_a_search_per_meter():
    rng = np.random.default_rng(16)
    for trial in range(30):
        n_seg = int(rng.integers(1, 12))
        sizes = rng.integers(1, 40, n_seg)
        cad = rng.choice([1, 60, 900, 86400], n_seg)
        t = np.concatenate([1.7e9 + float(rng.integers(0, 10**6)) + np.cumsum(rng.integers(1, 4, s) * c)
                            for s, c in zip(sizes, cad)]).astype(float)
        seg = np.repeat(np.arange(n_seg), sizes).astype(np.int32)
        starts, ends = seg_bounds(seg)
        # Reaches of whole cadences (they land exactly on readings), zero, and unbounded.
        pick = lambda: np.where(rng.random(n_seg) < 0.15, np.inf, rng.integers(0, 6, n_seg) * cad.astype(float))
        r = Reach(pick(), rng.integers(0, 3, n_seg), pick(), rng.integers(0, 3, n_seg))
        origin, flush = rng.random(n_seg) < 0.3, rng.random(n_seg) < 0.3
        got = core._reach_rows(t, seg, starts, ends, r, origin, flush)
        want = _reach_rows_per_meter(t, starts, ends, r, origin, flush)
        assert np.array_equal(got[0], want[0]), f"trial {trial}: exact differs"
        assert np.array_equal(got[1], want[1]), f"trial {trial}: final differs"


def _staggered(frame: pd.DataFrame, seed: int) -> list[pd.DataFrame]:
    """Pieces where each meter delivers on its own period (1 to 4 hours, its own phase): most
    pieces hold some meters only, and a meter may be silent across many pieces."""
    rng = np.random.default_rng(seed)
    t = frame["ts"].astype("datetime64[ns, UTC]")
    t0 = t.min().floor("1D")
    mid = frame["meter_id"].astype(str)
    due = pd.Series(pd.NaT, index=frame.index, dtype="datetime64[ns, UTC]")
    for m in mid.unique():
        period = pd.Timedelta(hours=int(rng.integers(1, 5)))
        phase = pd.Timedelta(minutes=int(rng.integers(0, 60)))
        rows = mid == m
        due[rows] = ((t[rows] - t0 - phase) // period + 1) * period + t0 + phase  # delivered at its period's end
    back = t < t0 + pd.Timedelta(days=PROFILE_DAYS)   # the profiling days as one backfill piece
    due[back] = t0
    return [frame[due == d] for d in sorted(due.unique())]


def test_meters_delivered_on_staggered_schedules_stitch_as_the_whole_history():
    frame = _sim(meters=6, days=PROFILE_DAYS + 1.5, step="15min", seed=161, fault_share=0.9, outage_share=0.5,
                 profile_days=PROFILE_DAYS)
    dets = registry.build_all(["supply_outage", "packet_loss", "frozen_readings", "loose_ct", "phase_imbalance"])
    profile(prepare(frame), dets, ENGINE)
    whole = core.run(frame, dets)
    assert whole.alerts, "the fleet should raise alerts"
    pieces = _staggered(frame, 161)
    n_meters = frame["meter_id"].nunique()
    partial = sum(p["meter_id"].nunique() < n_meters for p in pieces)
    assert partial > len(pieces) // 2, "most pieces should hold some meters only"
    st = Stitcher(dets)
    steps = []
    meter_of = {a.id: a.meter_id for a in whole.alerts}
    for p in pieces:
        before = steps[-1].open_ids if steps else set()
        steps.append(st.feed(p))
        meter_of.update({a.id: a.meter_id for a in steps[-1].alerts})
        # A meter without readings in the piece: its open alerts are what they were (none ended).
        absent = lambda ids: {i for i in ids if meter_of[i] not in set(p["meter_id"].astype(str))}
        assert absent(steps[-1].open_ids) == absent(before), "a meter without readings changed its open alerts"
    steps.append(st.flush())
    problems = _score_mismatches(whole, steps) + _alert_mismatches(whole, steps)
    assert not problems, "\n".join(problems[:12])
