"""From per-reading scores to alert spans: threshold, persistence, suppression, merging.

Readings whose score is NaN ("cannot judge": no load, no supply, distorted signal, suppressed by a
root cause) are neither anomalous nor normal: they do not count towards an alert and do not end
one. Runs of anomalous readings of one meter are merged when closer than ``merge_gap_s`` (or, with
``hold``, when no reading between them returned to normal); a merged run becomes an alert when it
spans at least ``min_duration_s`` (on the meter's cadence grid, whatever its clock jitter:
:meth:`PostRule.at`'s ``min_span_s``) and holds at least ``min_readings`` anomalous readings. With
``min_readings >= 2`` a run of one anomalous reading is dropped before merging, so one-reading
blips never alert, alone or together, except, with ``single_s``, a reading far over the threshold
(``single_score``) where the cadence of the reading's stretch makes one reading that long: it is an
alert alone. The settings are per meter (:meth:`PostRule.at` adapts them to each meter's cadence),
that one per reading (:func:`wattwatch.detect.core.single_rows`). Everything is
vectorised over all meters at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from wattwatch.detect.base import PostRule


@dataclass
class Groups:
    """Anomalous readings grouped into would-be alerts.

    ``rows``: the anomalous readings (blips dropped), in (meter, time) order; group ``g`` holds
    ``rows[first[g]:last[g] + 1]``; ``kept[g]``: it passes duration and count."""

    rows: np.ndarray
    first: np.ndarray
    last: np.ndarray
    kept: np.ndarray

    def alerts(self) -> list[np.ndarray]:
        return [self.rows[a:b + 1] for a, b, k in zip(self.first, self.last, self.kept) if k]


def _per_row(eff: dict | None, post: PostRule, key: str, seg: np.ndarray):
    if eff is None:
        return getattr(post, key)
    return eff[key][seg]


def group(seg: np.ndarray, t: np.ndarray, score: np.ndarray, post: PostRule, eff: dict | None = None,
          side: np.ndarray | None = None, single: np.ndarray | None = None) -> Groups:
    """Every group of anomalous readings (kept or not), for rows sorted by (seg, t).

    ``eff``: per-meter settings (``post.at(cadence)``, arrays indexed by segment code); None:
    ``post`` as it is for every meter. ``side``: per reading, which way it is off (for ``hold``).
    ``single``: per reading, whether the cadence of its stretch lets one reading alone be an alert
    (``single_s``; :func:`wattwatch.detect.core.single_rows`); None: its meter's ``eff["single"]``."""
    empty = Groups(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, bool))
    with np.errstate(invalid="ignore"):
        hot = score >= post.threshold
    if not hot.any():
        return empty
    # Only meters with an anomalous reading can alert: the run logic needs their rows alone.
    alerting = np.zeros(int(seg.max()) + 1, bool)
    alerting[seg[hot]] = True
    known = np.isfinite(score) & alerting[seg]
    k_idx = np.flatnonzero(known)  # not empty: the hot readings are in it
    above = score[k_idx] >= post.threshold
    ks, kt = seg[k_idx], t[k_idx]
    bridge = _per_row(eff, post, "max_bridge_s", ks)
    # A new "meter" for run purposes also where known readings are too far apart to bridge.
    far = np.diff(kt) > (bridge[1:] if eff else bridge)
    if post.bridge_gaps:
        far &= np.diff(k_idx) > 1  # consecutive readings: nothing between them to break the run
    new_meter = np.concatenate([[True], (ks[1:] != ks[:-1]) | far])
    prev_above = np.concatenate([[False], above[:-1]])
    run_start = above & (~prev_above | new_meter)
    # A run of a single anomalous reading is a blip (a motor start, a glitch): it neither alerts
    # nor joins other blips into an alert (where the meter asks for at least two readings).
    run_id = np.cumsum(run_start) - 1
    run_len = np.bincount(run_id[above], minlength=int(run_id.max()) + 1 if len(run_id) else 0)
    min_n = _per_row(eff, post, "min_readings", ks)
    blip_rule = (min_n >= 2) if eff else np.full(len(ks), post.min_readings >= 2)
    # ... unless it alone is the evidence (``single_s``): far over the threshold on a meter whose
    # one reading stands for that long.
    single = _single(score[k_idx], ks, post, eff, None if single is None else single[k_idx])
    above = above & ~(blip_rule & (run_len[np.maximum(run_id, 0)] < 2) & ~single)
    run_start = run_start & above
    a_idx = np.flatnonzero(above)
    if len(a_idx) == 0:
        return empty
    # Anomalous readings only, in order; a new group starts at a run start that is on another
    # meter or further than merge_gap from the previous anomalous reading.
    rows = k_idx[a_idx]
    rs, rt = ks[a_idx], kt[a_idx]
    starts_run = run_start[a_idx]
    gap = np.concatenate([[np.inf], np.diff(rt)])
    other_meter = np.concatenate([[True], rs[1:] != rs[:-1]])
    merge = _per_row(eff, post, "merge_gap_s", rs)
    new_group = other_meter | (starts_run & (gap >= merge))

    def bounded(new_group):
        bounds = np.append(np.flatnonzero(new_group), len(rows))
        first, last = bounds[:-1], bounds[1:] - 1
        gs = rs[first]
        # On the meter's cadence grid (PostRule.at's min_span_s; a plugin's own settings without it:
        # the minimum as it is).
        min_dur = eff.get("min_span_s", eff["min_duration_s"])[gs] if eff else post.min_duration_s
        min_cnt = eff["min_readings"][gs] if eff else post.min_readings
        ok = (rt[last] - rt[first] >= min_dur) & (last - first + 1 >= min_cnt)
        if single_rows is not None:
            ok |= np.add.reduceat(single_rows, first) > 0  # a reading that is the evidence alone
        return first, last, ok

    single_rows = single[a_idx].astype(np.int64) if single.any() else None

    first, last, kept = bounded(new_group)
    if post.hold > 0 and len(first) > 1:
        # Held together where the deviation never returned to normal between consecutive groups,
        # as a chain (an alert, two fragments, an alert: one), when some group of the chain is an
        # alert on its own (fragments too short to alert do not make one together).
        link = _held(score, rows, new_group, rs, post, seg, side, t)[first[1:]]
        chain = np.cumsum(np.concatenate([[True], ~link])) - 1
        held = link & (np.bincount(chain, weights=kept, minlength=chain[-1] + 1) > 0)[chain[1:]]
        if held.any():
            new_group[first[1:][held]] = False
            first, last, kept = bounded(new_group)
    return Groups(rows, first, last, kept)


def _single(score: np.ndarray, ks: np.ndarray, post: PostRule, eff: dict | None,
            rows: np.ndarray | None = None) -> np.ndarray:
    """Per reading (``ks`` its segment code): it is an alert on its own (:attr:`PostRule.single_s`):
    at or above :attr:`PostRule.strong` where the cadence allows it: ``rows`` per reading (its
    stretch's cadence), else its meter's (``eff["single"]``; without ``eff``, ``single_s`` alone,
    the cadence unknown, allows nothing)."""
    strong = post.strong
    if strong is None:
        return np.zeros(len(score), bool)
    if rows is not None:
        allow = np.asarray(rows, bool)
    elif eff is None or "single" not in eff:
        return np.zeros(len(score), bool)
    else:
        allow = np.asarray(eff["single"], bool)[ks]
    with np.errstate(invalid="ignore"):
        return (score >= strong) & allow


def cold(score: np.ndarray, post: PostRule, seg: np.ndarray | None = None, side: np.ndarray | None = None,
         t: np.ndarray | None = None) -> np.ndarray:
    """Readings that end a hold (``post.hold``), for rows sorted by (seg, t): judged and under
    ``hold`` x the threshold, or (with ``side``) off the other way than the meter's previous
    judged reading that was off one way or the other (crossing over is a return to normal), or
    (with ``t``) judged more than ``post.hold_gap_s`` after the meter's previous judged reading
    (whether it returned meanwhile is unknown)."""
    with np.errstate(invalid="ignore"):
        out = np.isfinite(score) & (score < post.hold * post.threshold)
    if side is not None and seg is not None and len(score):
        sd = np.asarray(side, float)
        k = np.flatnonzero(np.isfinite(score) & np.isfinite(sd) & (sd != 0))
        if len(k) > 1:
            flip = (sd[k[1:]] != sd[k[:-1]]) & (seg[k[1:]] == seg[k[:-1]])
            out[k[1:][flip]] = True
    if t is not None and seg is not None and len(score):
        k = np.flatnonzero(np.isfinite(score))
        if len(k) > 1:
            far = (np.diff(t[k]) > post.hold_gap_s) & (seg[k[1:]] == seg[k[:-1]])
            out[k[1:][far]] = True
    return out


def _held(score: np.ndarray, rows: np.ndarray, new_group: np.ndarray, rs: np.ndarray, post: PostRule,
          seg: np.ndarray, side: np.ndarray | None, t: np.ndarray) -> np.ndarray:
    """Per anomalous reading: it starts a group that is held together with the previous group of
    its meter (no judged reading between them back to normal, ``post.hold``)."""
    out = np.zeros(len(rows), bool)
    starts = np.flatnonzero(new_group)[1:]
    if not len(starts):
        return out
    cc = np.cumsum(cold(score, post, seg, side, t))
    a, b = rows[starts - 1], rows[starts]  # the previous group's last reading, this one's first
    out[starts] = (rs[starts] == rs[starts - 1]) & (cc[b] - cc[a] == 0)
    return out


def alert_groups(seg: np.ndarray, t: np.ndarray, score: np.ndarray, post: PostRule,
                 eff: dict | None = None, side: np.ndarray | None = None,
                 single: np.ndarray | None = None) -> list[np.ndarray]:
    """Row indices (anomalous readings) of each alert, for rows sorted by (seg, t)."""
    return group(seg, t, score, post, eff, side, single).alerts()


def span_mask(seg: np.ndarray, t: np.ndarray, groups: list[np.ndarray], pad_s=0.0) -> np.ndarray:
    """Rows that fall inside any group's [first, last] time span (same meter), padded by ``pad_s``
    (seconds; one number, or an array indexed by segment code: each meter its own).

    Searched in each meter's own times (a key mixing meter codes and times in one float rounds
    at the millisecond, which moved span edges by a reading depending on the frame)."""
    mask = np.zeros(len(seg), bool)
    if not groups:
        return mask
    from wattwatch.detect.frame import seg_bounds

    starts, ends = seg_bounds(seg)
    per_meter = np.ndim(pad_s) > 0
    for rows in groups:
        k = seg[rows[0]]
        a, b = starts[k], ends[k]
        tm = t[a:b]
        pad = float(pad_s[k]) if per_meter else pad_s
        lo = np.searchsorted(tm, t[rows[0]] - pad, side="left")
        hi = np.searchsorted(tm, t[rows[-1]] + pad, side="right")
        mask[a + lo:a + hi] = True
    return mask


def calibrated(score: float) -> float:
    """Map a limit ratio (1 = at the limit) to (0, 1): 0.5 at the limit, 0.75 at twice it."""
    return float(calibrated_array(np.array([score], dtype=float))[0])


def calibrated_array(score: np.ndarray) -> np.ndarray:
    """:func:`calibrated` over an array (NaN and infinities -> 0)."""
    s = np.asarray(score, dtype=float)
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(s), 1 - 0.5 ** np.maximum(np.nan_to_num(s, nan=0.0), 0.0), 0.0)
