"""From per-reading scores to alert spans: threshold, persistence, suppression, merging.

Readings whose score is NaN ("cannot judge": no load, no supply, distorted signal, suppressed by a
root cause) are neither anomalous nor normal: they do not count towards an alert and do not end
one. Runs of anomalous readings of one meter are merged when closer than ``merge_gap_s``; a merged
run becomes an alert when it spans at least ``min_duration_s`` and holds at least
``min_readings`` anomalous readings. With ``min_readings >= 2`` a run of one anomalous reading is
dropped before merging, so one-reading blips never alert, alone or together. Everything is vectorised
over all meters at once.
"""

from __future__ import annotations

import numpy as np

from wattwatch.detect.base import PostRule


def alert_groups(seg: np.ndarray, t: np.ndarray, score: np.ndarray, post: PostRule) -> list[np.ndarray]:
    """Row indices (anomalous readings) of each alert, for rows sorted by (seg, t)."""
    with np.errstate(invalid="ignore"):
        hot = score >= post.threshold
    if not hot.any():
        return []
    # Only meters with an anomalous reading can alert: the run logic needs their rows alone.
    alerting = np.zeros(int(seg.max()) + 1, bool)
    alerting[seg[hot]] = True
    known = np.isfinite(score) & alerting[seg]
    k_idx = np.flatnonzero(known)  # not empty: the hot readings are in it
    above = score[k_idx] >= post.threshold
    ks, kt = seg[k_idx], t[k_idx]
    # A new "meter" for run purposes also where known readings are too far apart to bridge.
    new_meter = np.concatenate([[True], (ks[1:] != ks[:-1]) | (np.diff(kt) > post.max_bridge_s)])
    prev_above = np.concatenate([[False], above[:-1]])
    run_start = above & (~prev_above | new_meter)
    # A run of a single anomalous reading is a blip (a motor start, a glitch): it neither alerts
    # nor joins other blips into an alert.
    run_id = np.cumsum(run_start) - 1
    run_len = np.bincount(run_id[above], minlength=int(run_id.max()) + 1 if len(run_id) else 0)
    if post.min_readings >= 2 and above.any():
        above = above & (run_len[np.maximum(run_id, 0)] >= 2)
        run_start = run_start & above
    a_idx = np.flatnonzero(above)
    if len(a_idx) == 0:
        return []
    # Anomalous readings only, in order; a new group starts at a run start that is on another
    # meter or further than merge_gap from the previous anomalous reading.
    rows = k_idx[a_idx]
    rs, rt = ks[a_idx], kt[a_idx]
    starts_run = run_start[a_idx]
    gap = np.concatenate([[np.inf], np.diff(rt)])
    other_meter = np.concatenate([[True], rs[1:] != rs[:-1]])
    new_group = other_meter | (starts_run & (gap >= post.merge_gap_s))
    bounds = np.append(np.flatnonzero(new_group), len(rows))
    first, last = bounds[:-1], bounds[1:] - 1
    duration = rt[last] - rt[first]
    count = last - first + 1
    keep = (duration >= post.min_duration_s) & (count >= post.min_readings)
    return [rows[a:b + 1] for a, b, k in zip(first, last, keep) if k]


def span_mask(seg: np.ndarray, t: np.ndarray, groups: list[np.ndarray], pad_s: float = 0.0) -> np.ndarray:
    """Rows that fall inside any group's [first, last] time span (same meter), padded."""
    mask = np.zeros(len(seg), bool)
    if not groups:
        return mask
    key = seg.astype(np.float64) * 1e12 + (t - t.min())
    for rows in groups:
        s = seg[rows[0]] * 1e12
        lo = np.searchsorted(key, s + t[rows[0]] - t.min() - pad_s, side="left")
        hi = np.searchsorted(key, s + t[rows[-1]] - t.min() + pad_s, side="right")
        mask[lo:hi] = True
    return mask


def calibrated(score: float) -> float:
    """Map a limit ratio (1 = at the limit) to (0, 1): 0.5 at the limit, 0.75 at twice it."""
    return float(calibrated_array(np.array([score], dtype=float))[0])


def calibrated_array(score: np.ndarray) -> np.ndarray:
    """:func:`calibrated` over an array (NaN and infinities -> 0)."""
    s = np.asarray(score, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(s), 1 - 0.5 ** np.maximum(np.nan_to_num(s, nan=0.0), 0.0), 0.0)
