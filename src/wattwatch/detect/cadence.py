"""The cadence a stretch of a meter's readings runs at: the one its state learned, unless the
meter was reconfigured since (issue 14).

AMI meters are reconfigured mid-history (1 -> 5 or 15 minutes, 5 or 15 -> 1 or 5, 60 -> 15). A
detector judging such a meter at the cadence learned on its first days misreads every stretch
since: ``packet_loss`` read a meter gone from 1 to 5 minutes as 80 % of its readings lost (cad39),
``firmware_drift`` left out every interval longer than 1.5 learned cadences, i.e. all of them, and
found no drift (cad43). One implementation says the cadence per reading, for the detectors that
follow it (``packet_loss``, ``firmware_drift``, ``neutral_tamper``) and for the batch's notice
(``api._cadence_change_notices``); its windows' verdict is worked out once per judged frame and
kept in the frame's scratch space for its times (``frame.times_cache``, cad49).

The ``n`` gaps (``CADENCE_GAPS``, 24; fewer where they would span more than ``CADENCE_SPAN_S``, 2 h,
at the learned cadence: 8 at 15 minutes, 6 at hourly, at least ``MIN_GAPS``) that end at a reading,
and those that begin at it, each say a cadence: where at least ``CADENCE_SHARE`` of them lie within
15 % of their median and that median is not the learned cadence's (outside 0.75-1.5 of it), the
stretch runs at the median; else at the learned cadence. Random loss cannot make such a cluster: a
reading lost with probability p leaves gaps of k cadences with probability (1 - p) p^(k - 1), at
most 1/4 for any k >= 2 whatever p (and at most 1/4 for any two neighbouring k >= 4, which the 15 %
may join), so a meter losing even 80 % of its readings is judged at its own cadence, while a
reconfiguration puts nearly every gap at the new value. Where the gaps centred on a reading (both
sides together) say a new cadence, the reading runs at it (one side alone can miss a cluster the
new stretch's own loss thins); else a gap whose two sides say different cadences (the
reconfiguration itself) runs at the one that loses fewer readings in it: readings the meter was not
asked for are not lost (on a tie the finer). A reading's cadence thus depends on the ``2 n - 1`` gaps
centred on it, i.e. on the ``n`` readings before it and the ``n - 1`` after it (no others:
tests/detect/test_neutral_single_rev67.py): a detector that follows it declares ``n`` readings of reach
either way."""

from __future__ import annotations

import numpy as np

from wattwatch.detect.base import quiet

CADENCE_GAPS = 24
CADENCE_SPAN_S = 7200.0
CADENCE_SHARE = 0.6
# The fewest gaps either side that say a reading's cadence (more only where they span at most
# CADENCE_SPAN_S, so that a 15-minute meter's packet_loss reach, 10 h of window and these, stays
# within the stream's fast tier of 12 h). 4 of 6 within 15 % of one value happen by chance on a
# meter losing readings at random about 4 % of the time at the worst loss rate (a half), where
# packet_loss alerts anyway (a gap so judged counts fewer lost readings, never more); 0.1 % at a
# loss of 10 %. A learned cadence this coarse meets only finer new ones (15 -> 5, 60 -> 15 min),
# where a side that misses the cluster undercounts, never alerts.
MIN_GAPS = 6


def gaps_per_side(cadence_s, most: int = CADENCE_GAPS, span_s: float = CADENCE_SPAN_S) -> np.ndarray:
    """Gaps per side that say a reading's cadence, per meter of learned cadence ``cadence_s``:
    ``most``, fewer where they would span more than ``span_s`` (at least ``MIN_GAPS``): 24 at 1
    and 5 minutes, 8 at 15 minutes (7 just above), 6 at hourly."""
    with quiet():
        n = np.floor(span_s / np.asarray(cadence_s, float))
    n = np.where(np.isfinite(n), n, most)
    return np.clip(n, min(MIN_GAPS, most), most).astype(np.int64)


def lost_at(dt: np.ndarray, c, thr) -> np.ndarray:
    """Readings lost in gaps ``dt`` at cadence ``c``: round(dt / c) - 1 where the gap is at least
    ``thr`` cadences, else 0; NaN where the gap is (a meter's first reading)."""
    with quiet():
        ratio = dt / c
        return np.where(ratio >= thr, np.clip(np.round(ratio) - 1, 0, None), np.where(np.isnan(ratio), np.nan, 0.0))


def off_cadence(dt: np.ndarray, cad: np.ndarray, tol: float = 0.15,
                near: tuple[float, float] = (0.75, 1.5)) -> np.ndarray:
    """Per gap: it may belong to a run that says a cadence other than ``cad`` (:func:`run_cadence`):
    within ``tol`` of a median outside ``near`` times ``cad``, i.e. outside (near[0] (1 + tol),
    near[1] (1 - tol)) times it. NaN gaps are not."""
    with quiet():
        ratio = dt / cad
        return np.isfinite(dt) & ~((ratio > near[0] * (1 + tol)) & (ratio < near[1] * (1 - tol)))


def need(share: float, n) -> int | np.ndarray:
    """Gaps of a run of ``n`` that must agree for it to say a cadence (:func:`run_cadence`)."""
    if np.ndim(n):
        return np.ceil(share * np.asarray(n, float) - 1e-9).astype(np.int64)
    return int(np.ceil(share * n - 1e-9))


def stretch_cadence(seg: np.ndarray, dt: np.ndarray, cad_m: np.ndarray, n_m: np.ndarray | None = None,
                    share: float = CADENCE_SHARE, thr_m: np.ndarray | None = None,
                    memo: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per reading (rows sorted by meter and time, ``seg`` their meter's code, ``dt`` the gap
    before each, NaN at a meter's first): the cadence its stretch runs at (the module docstring;
    ``cad_m`` the learned cadence per meter, ``n_m`` the gaps per side, :func:`gaps_per_side` by
    default) and the readings lost in its gap at that cadence (:func:`lost_at`: at least ``thr_m``
    cadences at the learned cadence, the meter's jitter, 1.5 by default; 1.5 at another). A meter whose gaps nowhere say
    another cadence gets the learned one on every reading (the usual case, at the cost of a
    prefilter). ``memo``: a prepared frame's scratch space for its times
    (:func:`wattwatch.detect.frame.times_cache`), where the windows' verdict is kept for the other
    detectors judging the same frame (it depends on the times, the learned cadences, ``n_m`` and
    ``share`` only, each part of its key)."""
    seg = np.asarray(seg)
    dt = np.asarray(dt, float)
    cad_m = np.asarray(cad_m, float)
    cad = cad_m[seg] if len(seg) else np.zeros(0)
    thr = (np.full(len(cad_m), 1.5) if thr_m is None else np.asarray(thr_m, float))[seg] if len(seg) else np.zeros(0)
    if n_m is None:
        n_m = gaps_per_side(cad_m)
    n = np.asarray(n_m)[seg] if len(seg) else np.zeros(0, np.int64)
    said = _run_cadence_kept(seg, dt, cad_m, cad, n_m, n, share, memo)

    def at(c):
        return lost_at(dt, c, thr if c is cad else np.where(c == cad, thr, 1.5))

    if said is None:
        return cad, at(cad)   # the learned cadence throughout (the usual case)
    left, both = said
    m = len(dt)
    j = np.arange(m) + n - 1
    k = np.minimum(j, m - 1)
    ahead = (j < m) & (seg[k] == seg)
    right = np.where(ahead, left[k], np.nan)   # the n gaps beginning at a reading
    mid = np.where(ahead, both[k], np.nan)     # the 2n - 1 centred on it
    left = np.where(np.isnan(left), np.where(np.isnan(right), cad, right), left)
    right = np.where(np.isnan(right), left, right)
    lost_l, lost_r = at(left), at(right)
    # Where the two sides differ (a reconfiguration), the gap counts at the one that loses
    # fewer readings (readings the meter was not asked for are not lost); the finer on a tie.
    # Where the 2n - 1 gaps around it say a cadence other than the learned, that one: in a
    # stretch at a new cadence whose loss thins the cluster, one side may miss it.
    with quiet():
        pick = (lost_r < lost_l) | ((lost_r == lost_l) & (right < left))
        mid_ok = np.isfinite(mid) & (mid != cad)
    c = np.where(mid_ok, mid, np.where(pick, right, left))
    lost = np.where(mid_ok, at(np.where(mid_ok, mid, cad)), np.where(pick, lost_r, lost_l))
    return c, lost


def _ptr(a: np.ndarray) -> tuple:
    """Which array ``a`` is, while it lives: its address, length, strides and type (a view at the
    same address and length reading every other element holds other values, rev49)."""
    return a.__array_interface__["data"][0], len(a), a.strides, a.dtype.str


def _run_cadence_kept(seg, dt, cad_m, cad, n_m, n, share, memo):
    """:func:`run_cadence` of the ``n`` and ``2 n - 1`` gaps, kept in ``memo`` under
    ``("stretch_cadence", ...)``: which arrays ``seg`` and ``dt`` are (address, length, strides,
    type; kept alive with the entry, so that no other array can take their memory while it lives:
    their values are taken not to change, as a prepared frame's times do not) and the values of
    every other input."""
    if memo is None:
        return run_cadence(dt, cad, (n, 2 * n - 1), share)
    key = ("stretch_cadence", _ptr(seg), _ptr(dt), np.asarray(cad_m, float).tobytes(),
           np.asarray(n_m, np.int64).tobytes(), float(share))
    hit = memo.get(key)
    if hit is None:
        said = run_cadence(dt, cad, (n, 2 * n - 1), share)
        for a in said or ():
            a.setflags(write=False)   # shared by the detectors that follow the cadence
        hit = memo[key] = (said, seg, dt)
    return hit[0]


def run_cadence(dt: np.ndarray, cad: np.ndarray, ns: tuple, share: float, tol: float = 0.15,
                 near: tuple[float, float] = (0.75, 1.5), chunk: int = 100_000) -> list[np.ndarray] | None:
    """Per number of gaps ``n`` of ``ns`` (one value per row, the same on a meter's rows), per row
    j: the cadence the ``n[j]`` gaps ending at it (``dt[j - n + 1 .. j]``) say. Where at least
    ``share`` of them lie within ``tol`` of their median and the median is not near the learned
    cadence ``cad`` (per row; outside ``near`` times it), the median; else ``cad``; NaN where the
    meter has fewer than ``n`` gaps up to j (a meter's first gap is NaN, so no window holds two
    meters' gaps). Only windows with enough gaps far from ``cad`` to hold such a cluster are
    looked into (on a steady meter: those with ``share`` of their gaps lost readings). None where
    no window says another cadence (the usual case)."""
    m = len(dt)
    outs = [np.full(m, np.nan) for _ in ns]
    if not m:
        return outs
    fin = np.isfinite(dt)
    off = off_cadence(dt, cad, tol, near)
    cf = np.concatenate([[0], np.cumsum(fin)])
    co = np.concatenate([[0], np.cumsum(off)])
    hits = []
    for n in ns:   # first the windows that say another cadence (none on a steady meter)
        found = []
        for nv in np.unique(n):   # one pass per number of gaps (one per cadence band of the frame)
            nv = int(nv)
            if nv <= 0:
                continue
            k_need = need(share, nv)
            if nv > m:
                continue
            cand = np.flatnonzero(co[nv:] - co[:m + 1 - nv] >= k_need) + nv - 1   # rows nv - 1 on
            cand = cand[(n[cand] == nv) & (cf[cand + 1] - cf[cand + 1 - nv] == nv)]
            k = np.arange(-nv + 1, 1)
            for a in range(0, len(cand), chunk):  # chunks of rows: nv gaps each
                rows = cand[a:a + chunk]
                g = dt[rows[:, None] + k]
                med = np.median(g, axis=1)
                inband = (np.abs(g - med[:, None]) <= tol * med[:, None]).sum(axis=1)
                with quiet():
                    r = med / cad[rows]
                hit = (inband >= k_need) & (med > 0) & np.isfinite(r) & ~((r >= near[0]) & (r <= near[1]))
                found.append((rows[hit], med[hit]))
        hits.append(found)
    if not any(len(r) for found in hits for r, _ in found):
        return None
    j = np.arange(m)
    for n, out, found in zip(ns, outs, hits):
        lo = np.clip(j + 1 - n, 0, None)
        valid = (j + 1 >= n) & (cf[j + 1] - cf[lo] == n)
        out[valid] = cad[valid]
        for rows, med in found:
            out[rows] = med
    return outs
