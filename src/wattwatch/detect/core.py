"""The detection core: readings of a group of meters + fitted detectors -> scores and alerts.

A pure function of its inputs (DESIGN §2): no store, no processes, no globals. Runners call it on
whole files (batch), on meter groups (a process pool, Spark) and on small pieces with a carried
tail (a stream); :mod:`wattwatch.detect.stitch` is that carry.

1. **Order and suppression as data.** Detectors are ordered so that one whose findings explain a
   kind of evidence (``explains``) runs before the detectors that judge it (``judges``); where it
   explains a reading, they do not judge it (and where they ``blank_input``, they do not even see
   its consumption). The core knows no detector by name.
2. **Reach.** Each detector declares how far its scores reach back and ahead (``reach``); through a
   blocking detector the reaches add up (a reading's blanking depends on the blocker's alert
   spans around it). A reading's score is *exact* when the frame holds that reach before it (or
   starts at the meter's first reading) and *final* when it holds the reach after it (or no
   readings will follow).
3. **Post-rules from a clean point.** Alerts are formed from exact, final scores from a point in
   time per meter and detector (``since``) from which no earlier reading can change them; the
   result says which alerts are still open and where the next clean point is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from wattwatch.alerts.model import Alert
from wattwatch.codes import severity
from wattwatch.detect.base import Detector, Reach, _num, quiet
from wattwatch.detect.cadence import gaps_per_side, stretch_cadence
from wattwatch.detect.frame import (AUX, TIMES_KEY, cache, extra_channels, meter_names, prepare, reassemble, seg_bounds,
                                   times_cache)
from wattwatch.detect.postrules import Groups, calibrated, cold, group, span_mask
from wattwatch.schema import CHANNEL_NAMES


class CoreError(ValueError):
    """The detectors cannot be run together (a cycle in what explains what, say)."""


def order(detectors: list[Detector]) -> list[Detector]:
    """Detectors in an order where every detector runs after those that explain what it judges
    (stable otherwise). Raises CoreError on a cycle."""
    n = len(detectors)
    after = {i: set() for i in range(n)}
    for i, b in enumerate(detectors):
        kinds = {k for e in b.explains for k in e.kinds}
        for j, d in enumerate(detectors):
            if i != j and kinds & set(d.judges):
                after[j].add(i)
    done: list[int] = []
    left = list(range(n))
    while left:
        ready = [j for j in left if after[j] <= set(done)]
        if not ready:
            names = ", ".join(detectors[j].name for j in left)
            raise CoreError(f"detectors explain each other in a cycle: {names}")
        done.append(ready[0])
        left.remove(ready[0])
    return [detectors[j] for j in done]


@dataclass
class Judged:
    """One detector's judgement of a frame."""

    det: Detector
    scores: np.ndarray          # blanked; NaN where it cannot judge
    ctx: object
    input: pd.DataFrame         # the frame it saw (blanked input where it blanks input)
    eff: dict                   # post-rule settings per segment code
    exact: np.ndarray           # per row: the frame held the reading's reach before it
    final: np.ndarray           # per row: ... and after it
    skipped: np.ndarray         # per segment code: not judged (lacks channels, no state)
    groups: Groups | None = None  # its groups over every reading of the frame, when computed
    share: float = 1.0          # of the frame's rows, the share it scored (less with known scores)
    side: np.ndarray | None = None  # per row, which way it is off (post-rule ``hold`` only)
    exact_raw: np.ndarray | None = None  # per row, exact in raw readings alone (``run``'s ``hours``)
    single: np.ndarray | None = None  # per row, one reading alone may alert there (:func:`single_rows`)
    # per row, final but for the decisions of its long blockers (``run``'s ``provisional``); None:
    # not asked, or no row differs from ``final``
    pfinal: np.ndarray | None = None
    # those long blockers: name -> per segment code, its blanking horizon where it is long (s; NaN
    # where it is not)
    waits: dict = field(default_factory=dict)


@dataclass
class Result:
    """What the core returns for one frame."""

    frame: pd.DataFrame
    judged: list[Judged] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    open_ids: set[str] = field(default_factory=set)
    # Alerts formed where a detector's scores are final but for its long blockers' decisions
    # (``run``'s ``provisional``), none with the id of one of ``alerts``: a stream writes them
    # marked provisional and withdraws those the final judgement does not find.
    provisional: list[Alert] = field(default_factory=list)
    # Of those, the ids of alerts near a long blocker's alert (within its horizon): such an alert is
    # not written provisional, but one written before stays provisional until its readings stop
    # making it (the blocker blanks them) or the final judgement confirms it: withdrawn only then
    # (else the blocker's final verdict may not blank it and it comes back final: open, ended, open)
    provisional_near: set[str] = field(default_factory=set)
    # (pv) Of those, the ids of alerts that may still grow (as ``open_ids``, from the last reading
    # final or final but for the long blockers): the watch console lists them with the open ones
    provisional_open: set[str] = field(default_factory=set)
    notices: list[str] = field(default_factory=list)
    # per detector name: per segment code, where its post-rules may restart next time (epoch s)
    clean: dict[str, np.ndarray] = field(default_factory=dict)
    # per detector name: per segment code, time of the last final reading (-inf: none)
    final_t: dict[str, np.ndarray] = field(default_factory=dict)
    # per detector name: meters it did not judge -> what they lack ("state": never fitted)
    skipped: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    # meters where an alert may have begun before ``since`` (an anomalous reading soon after it)
    unclean: set[str] = field(default_factory=set)
    # per detector name: per segment code, the earliest start of an alert formed on a meter judged
    # from its compaction cut (``run``'s ``cut``; +inf: none yet), -inf elsewhere
    from_t: dict[str, np.ndarray] = field(default_factory=dict)
    # per detector name: meters it failed on -> the error (that meter alone); see failed_notices
    failed: dict[str, dict[str, str]] = field(default_factory=dict)
    # (fs) the meters of ``frame`` in segment order, and of its detectors on them :func:`reaches`
    # and :func:`blockers` as the run found them (None: a whole history, not computed); the
    # stitcher's cut of the tail reads them rather than computing them again
    names: list[str] | None = None
    reach: dict[str, Reach] | None = None
    blockers: dict[str, list[tuple[str, np.ndarray]]] | None = None


def skipped_notices(skipped: dict[str, dict[str, list[str]]]) -> list[str]:
    """One notice per detector for the meters it could not judge."""
    out = []
    for name, meters in skipped.items():
        ms = sorted(meters)
        what = sorted({c for v in meters.values() for c in v})
        lack = "state (never fitted)" if what == ["state"] else ", ".join(what)
        out.append(f"{name}: skipped {len(ms)} meter(s) that lack {lack} (e.g. {', '.join(ms[:3])})")
    return out


def failed_notices(failed: dict[str, dict[str, str]]) -> list[str]:
    """One notice per detector for the meters it failed on. Built from every group's failures
    merged, so it reads the same whatever the grouping (chunks, Spark groups, stream pieces)."""
    out = []
    for name, meters in failed.items():
        ms = sorted(meters)
        out.append(f"{name}: failed on {len(ms)} meter(s) ({', '.join(ms[:3])}{', ...' if len(ms) > 3 else ''}); "
                   f"they are not judged by it: {meters[ms[0]]}")
    return out


class SegTimes:
    """Times of a frame sorted by meter then time, searchable per meter in one call: each query
    is answered within its own meter's readings (``np.searchsorted`` on that meter's times) for
    all meters at once. Times are compared in whole microseconds (the store's resolution), so a
    reach of exactly k cadences lands on a reading, not a rounding error beside it."""

    def __init__(self, t: np.ndarray, seg: np.ndarray, starts: np.ndarray, ends: np.ndarray):
        self.us = np.round(np.asarray(t, float) * 1e6).astype(np.int64)
        self.seg = np.asarray(seg, np.int64)
        self.starts, self.ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
        n = len(self.us)
        self.t0 = int(self.us.min()) if n else 0
        self.span = (int(self.us.max()) - self.t0 + 2) if n else 1
        # One increasing key: meter code times a span longer than all times, plus the time.
        self.key = self.seg * self.span + (self.us - self.t0)
        self.first = self.us[self.starts] if n else np.zeros(0, np.int64)
        self.last = self.us[self.ends - 1] if n else np.zeros(0, np.int64)
        # Per meter code: the code itself (as search's ``k`` for all meters) and its reading count.
        self.ks = np.arange(len(self.starts), dtype=np.int64)
        self.lens = self.ends - self.starts

    def within(self) -> np.ndarray:
        """Each row's index within its meter's readings (computed once)."""
        w = self.__dict__.get("_within")
        if w is None:
            w = self._within = np.arange(len(self.us)) - self.starts[self.seg]
        return w

    @staticmethod
    def to_us(x_s: np.ndarray) -> np.ndarray:
        """Seconds (finite, or +-inf meaning beyond any reading) to clipped integer microseconds."""
        x = np.clip(np.asarray(x_s, float), -4e12, 4e12)
        return np.round(x * 1e6).astype(np.int64)

    def search(self, k: np.ndarray, q_us: np.ndarray, side: str) -> np.ndarray:
        """Per query: its meter ``k``'s count of readings before ``q_us`` (``side="left"``: times
        < q; ``"right"``: times <= q), as ``np.searchsorted`` on that meter's times."""
        k = np.asarray(k, np.int64)
        if side == "left":
            q = np.clip(q_us, self.first[k], self.last[k] + 1)
        else:
            q = np.clip(q_us, self.first[k] - 1, self.last[k])
        return np.searchsorted(self.key, k * self.span + (q - self.t0), side=side) - self.starts[k]


def _reach_rows(t: np.ndarray, seg: np.ndarray, starts: np.ndarray, ends: np.ndarray, r: Reach,
                origin: np.ndarray, flush: np.ndarray, st: SegTimes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(exact, final) per row for a reach per segment code (all meters at once).

    A meter's times are sorted, so its exact readings are a suffix (from the first whose reach
    back lies in the frame) and its final ones a prefix (up to the last with its reach ahead in
    the frame): one boundary per meter is searched, not one per row (the per-row searches this
    replaced cost ~40 ms a detector on a 300,000-row tail)."""
    if origin.all() and flush.all():  # a whole history: every reading is as exact as it gets
        return np.ones(len(t), bool), np.ones(len(t), bool)
    st = st or SegTimes(t, seg, starts, ends)
    seg, us, ks, lens = st.seg, st.us, st.ks, st.lens
    back_s, ahead_s = np.asarray(r.back_s, float), np.asarray(r.ahead_s, float)
    # Exact: the reach back starts at or after the meter's first reading in the frame (time >=
    # first + back) and at least back_n readings precede it (the back_n-th reading is before
    # time - back), or the frame starts at the meter's first reading.
    back_us = SegTimes.to_us(np.where(np.isfinite(back_s), back_s, 0.0))
    back_n = np.asarray(r.back_n).astype(np.int64)
    nth = us[st.starts + np.clip(back_n - 1, 0, lens - 1)] + back_us + 1
    lo_us = np.maximum(st.first + back_us, np.where(back_n > 0, nth, st.first))
    first_exact = np.where(np.isfinite(back_s) & (back_n <= lens), st.search(ks, lo_us, "left"), lens)
    first_exact[origin] = 0
    # Final: the frame holds the reach ahead and ahead_n readings after it, at least one when the
    # reach is a time (the need-th last reading is after time + ahead).
    ahead_n = np.asarray(r.ahead_n).astype(np.int64)
    need = np.where(ahead_s == 0, ahead_n, np.maximum(ahead_n, 1))
    hi_us = us[st.ends - np.clip(need, 1, lens)] - SegTimes.to_us(ahead_s)
    n_final = np.where(need <= 0, lens, np.where(need <= lens, st.search(ks, hi_us, "left"), 0))
    n_final[flush] = lens[flush]
    within = st.within()
    return within >= first_exact[seg], within < n_final[seg]


def _chain(own: Reach, extra: list[tuple[Reach, np.ndarray]]) -> Reach:
    """``own`` extended by each blocker's reach plus its blanking horizon (seconds)."""
    back_s, back_n = own.back_s.copy(), own.back_n.copy()
    ahead_s, ahead_n = own.ahead_s.copy(), own.ahead_n.copy()
    for r, h in extra:
        back_s = np.maximum(back_s, own.back_s + r.back_s + h)
        back_n = np.maximum(back_n, own.back_n + r.back_n)
        ahead_s = np.maximum(ahead_s, own.ahead_s + r.ahead_s + h)
        ahead_n = np.maximum(ahead_n, own.ahead_n + r.ahead_n)
    return Reach(back_s, back_n, ahead_s, ahead_n)


def blockers(detectors: list[Detector], meters, cad: np.ndarray | None = None) -> dict[str, list[tuple[str, np.ndarray]]]:
    """Per detector (in blocking order, :func:`order`): the detectors that run before it and whose
    findings explain what it judges (they blank its scores, and its input where it ``blank_input``),
    each with its blanking horizon per meter of ``meters`` in seconds: how far from a reading the
    blocker's scores decide whether it is blanked (its alert horizon plus the explanation's pad and
    reach; 0 where it explains single readings). Shared by :func:`reaches` and the stitcher's known
    scores (:mod:`wattwatch.detect.stitch`). ``cad``: each meter's cadence as :func:`_cadences`
    gives it for ``detectors``, when the caller has it already (looked up here otherwise)."""
    dets = order(detectors)
    out: dict[str, list[tuple[str, np.ndarray]]] = {}
    for d in dets:
        found = []
        for b in dets:
            if b is d or b.name not in out:
                continue
            h = np.zeros(len(meters))
            hit = False
            for e in b.explains:
                if set(e.kinds) & set(d.judges):
                    hit = True
                    if e.span != "reading":
                        if cad is None:   # looked up only where a horizon needs it (not for a lone detector)
                            cad = _cadences(dets, meters)
                        h = np.maximum(h, b.config.post.horizon_s(cad) + e.pad(cad) + e.within(cad))
            if hit:
                found.append((b.name, h))
        out[d.name] = found
    return out


def reaches(detectors: list[Detector], meters, carried=(), cad: np.ndarray | None = None,
            blk: dict | None = None) -> dict[str, Reach]:
    """Effective reach of each detector (own reach plus its blockers'), per meter of ``meters``.
    ``carried``: names of detectors whose closed bins are carried (a stream): their own reach is
    then their reach in raw readings (``carried_reach``). Through a blocker the chain takes the
    blocker's whole effective reach, carried or not: its scores near a reading are exact only
    where its own carry holds its reach, which a reach per meter cannot say (no detector that
    explains others carries bins today). ``cad``: as :func:`blockers` takes it; ``blk``:
    :func:`blockers` of the same detectors and meters, when the caller has it already (fs)."""
    dets = order(detectors)
    blk = blockers(dets, meters, cad) if blk is None else blk
    eff: dict[str, Reach] = {}
    full: dict[str, Reach] = {}   # without any carry: what a blocker's chain takes
    for d in dets:
        chain = [(full[b], h) for b, h in blk[d.name]]
        full[d.name] = _unless_idle(d, _chain(d.reach(list(meters)), chain), meters)
        eff[d.name] = _unless_idle(d, _chain(d.carried_reach(list(meters)), chain), meters) \
            if d.name in carried else full[d.name]
    return eff


def provisional_reaches(detectors: list[Detector], meters, over_s: float, cad: np.ndarray | None = None,
                        blk: dict | None = None) -> tuple[dict[str, Reach], dict[str, dict[str, np.ndarray]]]:
    """The reach chain of :func:`reaches` without the *long* blockers: per meter, a blocker whose
    blanking horizon there exceeds ``over_s`` is left out of the chain of every detector it blocks
    (loose_ct's 23-83 h at 1-60 min; issue 16, docs/live-log.md lat1). A reading final within this
    reach is final but for those blockers' decisions: an alert formed there is *provisional*.
    Returns the reaches and, per detector, its long blockers (name -> per meter: the blanking
    horizon where it is left out, NaN elsewhere).
    Blockers left out are also left out of the chains through them (a blocker's own reach is its
    provisional one), never carried reaches (a stream's provisional alerts come from raw readings
    or known scores as its final ones do). ``blk``: as :func:`reaches` takes it."""
    dets = order(detectors)
    blk = blockers(dets, meters, cad) if blk is None else blk
    full: dict[str, Reach] = {}
    longs: dict[str, dict[str, np.ndarray]] = {}
    for d in dets:
        chain, mine = [], {}
        for b, h in blk[d.name]:
            long = np.asarray(h, float) > over_s
            r = full[b]
            if long.any():
                mine[b] = np.where(long, np.asarray(h, float), np.nan)
                r = Reach(np.where(long, 0.0, r.back_s), np.where(long, 0, r.back_n).astype(np.int64),
                          np.where(long, 0.0, r.ahead_s), np.where(long, 0, r.ahead_n).astype(np.int64))
                h = np.where(long, 0.0, h)
            chain.append((r, h))
        full[d.name] = _unless_idle(d, _chain(d.reach(list(meters)), chain), meters)
        longs[d.name] = mine
    return full, longs


def idle_on(d: Detector, meters) -> np.ndarray:
    """Per meter of ``meters``: ``d`` gives it no score at all (``idle``: NaN on every reading
    whatever the readings around it or its blockers' findings)."""
    if type(d).idle is Detector.idle:   # idle on no meter (the default): no look-up per meter
        return np.zeros(len(meters), bool)
    st = getattr(d, "state_", {})
    return np.array([m in st and d.idle(st[m]) for m in meters], bool)


def _unless_idle(d: Detector, r: Reach, meters) -> Reach:
    """``r`` with no reach on the meters ``d`` gives no score at all (:func:`idle_on`). Else
    seasonal_profile, idle at 1 and 5 minutes, would keep three months of such a meter in a
    stream's carry."""
    idle = idle_on(d, meters)
    if not idle.any():
        return r
    def no(x, zero):
        return np.where(idle, zero, np.asarray(x))

    return Reach(no(r.back_s, 0.0).astype(float), no(r.back_n, 0).astype(np.int64),
                 no(r.ahead_s, 0.0).astype(float), no(r.ahead_n, 0).astype(np.int64))


def _cadences(dets: list[Detector], meters) -> np.ndarray:
    """Per meter of ``meters``: its cadence (:func:`_cadence`) as float array. Detector by detector
    over the meters still without one (the first detector learned it for most: one look-up per
    meter, not a call per meter), each detector's values converted at once where they are plain
    numbers or None (else meter by meter, as :func:`_cadence` reads them)."""
    meters = list(meters)
    out = np.full(len(meters), np.nan)
    left = np.arange(len(meters))
    none: dict = {}
    for d in dets:
        if not len(left):
            break
        st = getattr(d, "state_", {})
        vals = [(st.get(meters[k]) or none).get("cadence_s") for k in left.tolist()]
        if all(v is None or type(v) in (float, int) for v in vals):
            v = np.array([np.nan if x is None else x for x in vals], float)
        else:
            v = np.array([float(x) if x is not None and np.isfinite(x) else np.nan for x in vals], float)
        ok = np.isfinite(v)
        out[left[ok]] = v[ok]
        left = left[~ok]
    return out


def _cadence(dets: list[Detector], m: str) -> float:
    for d in dets:
        v = (getattr(d, "state_", {}).get(m) or {}).get("cadence_s")
        if v is not None and np.isfinite(v):
            return float(v)
    return float("nan")


_NO_STATE = object()   # (run: a meter without state, told apart from one whose state is None)
#: ``Detector``'s own ``state_note`` (says nothing): :func:`run` skips the per-meter call where it is
#: what the detector would call (compared with this, not with the base's attribute at the time of
#: the call, so that a note patched onto the base is still asked).
_SILENT_STATE_NOTE = Detector.state_note
_SILENT_CADENCE_NOTE = Detector.cadence_note   # (likewise ``cadence_note``: no cadence bands worked out)


def _iso(t: float) -> str:
    """Epoch seconds -> ISO-8601 UTC, to the millisecond (float seconds carry sub-µs noise)."""
    return pd.Timestamp(round(t * 1000), unit="ms", tz="UTC").isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _blanked(df: pd.DataFrame, blank: np.ndarray, channels: tuple[str, ...]) -> pd.DataFrame:
    """``df`` (columns shared, not copied) with ``channels`` set to NaN on the ``blank`` rows. What
    ``df``'s scratch space holds of other channels (phase arrays, motor starts, window bounds) is
    handed on: it does not depend on the blanked ones."""
    cols = {c: df[c] for c in df.columns}
    for c in channels:
        if c in cols:
            cols[c] = np.where(blank, np.nan, df[c].to_numpy(float))
    out = pd.DataFrame(cols, copy=False)
    times_cache(df)   # made here if not yet: what either frame adds to it, the other finds
    cache(out).update({k: v for k, v in cache(df).items() if _independent_of(k, channels)})
    return out


def _independent_of(key, channels: tuple[str, ...]) -> bool:
    """Whether a scratch entry is computed without ``channels`` (the channels a detector may have
    blanked). Of the times alone (any ``channels``): :func:`~wattwatch.detect.frame.times_cache`'s
    dict, handed on as the same object (what a blanked frame adds to it, its parent and siblings
    find: a stretch's cadence, keyed by the arrays of gaps and segment codes it read, which a
    blanked frame shares, and by the learned cadences and settings). Of no consumption channel:
    phase voltages and currents, their extremes, motor starts (currents and power factor) and
    window bounds (times)."""
    name = key[0] if isinstance(key, tuple) else key
    if name in _OF_TIMES:
        return True
    return name in ("phases", "imax", "vmax", "inrush", "window_bounds") and not set(channels) - {"p_kw", "e_kwh"}


#: Scratch entries computed from a frame's times alone (``_seg``, ``_t``, ``_dt``): no blanked
#: channel changes them.
_OF_TIMES = (TIMES_KEY,)


def _near(seg: np.ndarray, t: np.ndarray, groups: list[np.ndarray], within_s) -> np.ndarray:
    return span_mask(seg, t, groups, pad_s=within_s)


def run(frame: pd.DataFrame, detectors: list[Detector], *, origin=True, flush=True, since=None,
        positions: dict | None = None, alerts: bool = True, known: dict | None = None,
        hours: dict | None = None, cut: dict | None = None, provisional: float | None = None) -> Result:
    """Judge one group of meters.

    Parameters
    ----------
    frame : DataFrame
        Canonical readings (any order); prepared here.
    detectors : list of Detector
        Fitted: state for every meter of ``frame`` (a meter without state for a detector is not
        judged by it and gets a notice).
    origin, flush : bool or dict meter -> bool
        The frame starts at each meter's first reading / no readings will follow its last.
    since : dict (detector name -> dict meter -> epoch s), optional
        Where each detector's post-rules start per meter (a clean point; default: the frame's
        start). Alerts are formed from exact, final scores at or after it.
    positions : dict meter -> int, optional
        How many readings of the meter precede the frame (for detectors aligned on positions).
    alerts : bool
        Form alerts (False: scores only).
    known : dict (detector name -> (scores, ok)), optional
        Per row of the prepared frame, scores already final (exact and final in an earlier frame:
        no reading added since can change them; a stitched stream's carry). A detector then scores
        only, per meter, its readings from its clean point or first unknown reading on (with its
        own reach before them) and takes the known scores for the rest.
    hours : dict (detector name -> dict meter -> carried bins), optional
        For detectors that carry their closed bins (``carry_cls``, ``carried_reach``; a stream's
        carry): per meter, the bins carried in place of the raw readings they came from (a
        :class:`~wattwatch.detect.base.BinCarry` of the detector's own type, e.g.
        :class:`~wattwatch.detect.baseline.macd.HourCarry`), handed to its scoring
        (``scored(df, carry=...)``). Such a detector's reading is exact when its reach is in the
        frame, or when its reach in raw readings is and the carry holds the bins before it; the
        judgement keeps each row's exactness in raw readings alone (``Judged.exact_raw``) for the
        carry's next bins.
    cut : dict meter -> epoch s, optional
        Meters whose readings before this time are gone (a store's compacted hours, kept only as
        hourly aggregates): the frame does not start at their first reading (``origin`` is false
        for them), and each detector forms their alerts from its first exact reading plus its
        post-rule horizon on (with a ``hold``, from its first reading back to normal on): an alert
        beginning earlier may be the rest of one that began before the cut, which no frame can
        judge again, so it is not formed (rather than formed with a start that is only the cut).
    provisional : float, optional
        Also form *provisional* alerts (``Result.provisional``): of each detector with blockers
        whose blanking horizon exceeds this many seconds on a meter (:func:`provisional_reaches`),
        the alerts of its readings final but for those blockers' decisions, where no alert of
        those blockers on the meter ends within that horizon before them. Nothing of the final
        judgement changes (alerts, open ids, clean and final points). None: none (``detect``).
    """
    df = prepare(frame)
    res = Result(frame=df)
    if len(df) == 0:
        return res
    names = [str(m) for m in meter_names(df)]
    seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
    starts, ends = seg_bounds(seg)
    n_seg = len(names)

    def per_meter(v, default):
        if isinstance(v, dict):
            return np.array([bool(v.get(m, default)) for m in names])
        return np.full(n_seg, bool(default if v is None else v))

    origin_m, flush_m = per_meter(origin, True), per_meter(flush, True)
    cut_m = np.array([float((cut or {}).get(m, np.nan)) for m in names], float)
    origin_m &= ~np.isfinite(cut_m)
    dets = order(detectors)
    if any(getattr(d, "uses_position", False) for d in dets):
        pos0 = np.array([int((positions or {}).get(m, 0)) for m in names], np.int64)
        within = np.arange(len(df)) - np.repeat(starts, ends - starts)
        df = _with_column(df, "_n", pos0[seg] + within)
        res.frame = df
    whole = origin_m.all() and flush_m.all()
    # Each meter's cadence, looked up once for the run (the reaches' blanking horizons read it too).
    cad = _cadences(dets, names)
    # The blockers and their horizons, found once for the run's reaches (each took them afresh; fs)
    # and handed on with the reaches (``Result.reach``) to the stitcher's cut of the tail.
    blk = None if whole else blockers(dets, names, cad)
    eff_reach = None if whole else reaches(dets, names, cad=cad, blk=blk)  # a whole history needs no reach bookkeeping
    res.names, res.reach, res.blockers = names, eff_reach, blk
    carried = {d.name for d in dets if hours is not None and d.name in hours}
    raw_reach = None if whole or not carried else reaches(dets, names, carried, cad=cad, blk=blk)
    prov_reach, prov_long = (None, {}) if whole or provisional is None or not alerts else \
        provisional_reaches(dets, names, float(provisional), cad=cad, blk=blk)
    masks: dict[str, np.ndarray] = {}
    said_cadence: set = set()
    seg_times = None if whole else SegTimes(t, seg, starts, ends)
    for d in dets:
        st = getattr(d, "state_", {})
        # Each meter's state, looked up once for what the run reads of it (no state: _NO_STATE).
        sts = [st.get(m, _NO_STATE) for m in names]
        no_state = np.array([x is _NO_STATE for x in sts], bool)
        sts = [{} if x is _NO_STATE else (x or {}) for x in sts]   # (as ``st.get(m) or {}`` read them)
        lacks = np.array([bool(x.get("lacks")) for x in sts], bool)
        skipped = no_state | lacks
        blank = np.zeros(len(df), bool)
        for k in d.judges:
            if k in masks:
                blank |= masks[k]
        any_blank = bool(blank.any())
        src = _blanked(df, blank, d.blank_input) if (d.blank_input and any_blank) else df
        s = None
        ctx = None
        # Meters whose state says the detector gives them no score are not computed (not skipped:
        # no notice; their scores are the NaN they would have been).
        idle = idle_on(d, names)
        left_out = skipped | idle
        # Per-reading masks only where some meter is left out (whole-frame passes cost as much as
        # a small detector's scoring when every meter is judged, the usual case).
        ok_rows = None if not left_out.any() else ~left_out[seg]
        have, share = None, 1.0
        if known is not None and d.name in known and not whole:
            have, fresh = _fresh_rows(d, known[d.name][1], names, t, seg_times, (since or {}).get(d.name) or {})
            if fresh is not None:
                ok_rows = fresh if ok_rows is None else ok_rows & fresh
                share = float(fresh.mean())
        carry = hours[d.name] if d.name in carried else None
        if ok_rows is None or ok_rows.any():
            try:
                if ok_rows is None:
                    scored = _scored(d, src, carry)
                    s, ctx = np.asarray(scored.values, float).copy(), scored.ctx
                else:
                    s, ctx = _score_rows(d, src, ok_rows, carry)
            except Exception:  # noqa: BLE001 - one failing meter must not stop the run
                s, ctx, failed, errors = _isolate(d, src, np.ones(len(df), bool) if ok_rows is None else ok_rows,
                                                  names, seg, carry)
                skipped = skipped | failed
                if errors:   # (none: every meter judged alone, then together again; no meter failed)
                    res.failed.setdefault(d.name, {}).update(errors)
        if s is None:
            s = np.full(len(df), np.nan)
        if have is not None:
            s = np.where(have, known[d.name][0], s)
        if skipped.any():
            s[skipped[seg]] = np.nan
        if any_blank:
            s[blank] = np.nan
        judge_from = np.array([float(x.get("judge_from") or -np.inf) for x in sts])
        if (judge_from > -np.inf).any():
            s[t < judge_from[seg]] = np.nan
        exact_raw = pfinal = None
        if whole:
            exact = final = np.ones(len(df), bool)
        else:
            # A detector that judges a compacted meter's raw readings as its first
            # (``Detector.compacted_origin``): its own origin there.
            org = origin_m | np.isfinite(cut_m) if d.compacted_origin else origin_m
            exact, final = _reach_rows(t, seg, starts, ends, eff_reach[d.name], org, flush_m, seg_times)
            if d.name in carried:
                exact_raw, _ = _reach_rows(t, seg, starts, ends, raw_reach[d.name], origin_m, flush_m, seg_times)
                exact = exact | (exact_raw & _covered(hours[d.name], names, d.reach(names).back_s)(seg, t))
            if prov_long.get(d.name):
                # (xr) against ``exact`` as the post-rules use it: with carried hours included (a
                # stream's baseline_macd is exact only through them after its first piece: checked
                # before them, it had no provisional alert after the first piece, and the one
                # written then was withdrawn at the next and written again final a day later)
                _, pf = _reach_rows(t, seg, starts, ends, prov_reach[d.name], org, flush_m, seg_times)
                if (pf & exact & ~final).any():
                    pfinal = pf
        eff = d.post_settings(names, cad)
        judged = Judged(d, s, ctx, src, eff, exact, final, skipped, share=share,
                        side=_side(d, src, ctx) if d.config.post.hold > 0 else None, exact_raw=exact_raw,
                        single=single_rows(d, src, names, sts, s), pfinal=pfinal,
                        waits=prov_long.get(d.name, {}) if pfinal is not None else {})
        res.judged.append(judged)
        # What this detector explains, for those that run after it.
        if d.explains:
            groups = None
            for e in d.explains:
                if e.span == "reading":
                    with quiet():
                        m = s >= d.config.post.threshold
                    if e.extra:   # (further single readings, wherever they lie: no horizon)
                        m = m | getattr(d, e.extra)(src, ctx)
                else:
                    if groups is None:
                        judged.groups = group(seg, t, s, d.config.post, eff, judged.side, judged.single)
                        groups = judged.groups.alerts()
                    m = span_mask(seg, t, groups, e.pad(cad))
                    if e.span == "hot":
                        with quiet():
                            m &= s >= d.config.post.threshold
                    if e.extra and groups:
                        m |= getattr(d, e.extra)(src, ctx) & _near(seg, t, groups, e.within(cad))
                for k in e.kinds:
                    masks[k] = masks[k] | m if k in masks else m
        # Notices said once: meters it cannot judge, cadences it cannot judge as designed.
        for k in np.flatnonzero(lacks | no_state):
            res.skipped.setdefault(d.name, {})[names[k]] = list(sts[k].get("lacks") or ["state"])
        # Cadences in bands (two significant figures: 86,398 s and 86,401 s are one daily cadence),
        # each said as its meters' median cadence to the second: the band's own value (86,000 s for
        # a daily meter, 3,600 for 3,640) is not a cadence any meter has.
        # (fc: not worked out where the detector says nothing of any cadence: the base's, as
        # ``state_note`` below)
        if getattr(type(d), "cadence_note", None) is not _SILENT_CADENCE_NOTE or "cadence_note" in getattr(d, "__dict__", {}):
            judged_cad = cad[~skipped & np.isfinite(cad)]   # (not ``known``: the known scores, read above)
            bands = _band(judged_cad)
            for b in np.unique(bands):
                c = float(np.round(np.median(judged_cad[bands == b])))
                note = d.cadence_note(c)
                if note and (d.name, note) not in said_cadence:
                    said_cadence.add((d.name, note))
                    res.notices.append(note)
        # (the default says nothing: no call per meter unless its class, the instance or a patch of
        # the base replaces it)
        if getattr(type(d), "state_note", None) is not _SILENT_STATE_NOTE or "state_note" in getattr(d, "__dict__", {}):
            for m in names:
                if m in st:
                    note = d.state_note(m, st[m])
                    if note:
                        res.notices.append(note)
    if alerts:
        _post(res, names, seg, t, starts, ends, since or {}, cut_m)
    return res


def single_rows(d: Detector, df: pd.DataFrame, names: list[str], sts: list[dict], s: np.ndarray) -> np.ndarray | None:
    """Per reading of ``df`` (prepared; ``names`` per segment code, ``sts`` each meter's state of
    ``d``, ``s`` its scores): one reading alone is an alert there (:attr:`PostRule.single_s`) as
    far as the cadence goes: at or above :attr:`PostRule.strong`, on a meter the detector lets
    (:meth:`Detector.post_settings` at a cadence that allows it), in a stretch whose cadence
    (:func:`~wattwatch.detect.cadence.stretch_cadence`, the verdict the frame's other detectors
    share) is at least ``single_s``: a meter learned hourly and read every 5 minutes since asks for
    two readings there, as any 5-minute meter (rev63), and one learned at 5 minutes and read
    hourly since lets one reading alone there. None where the post-rule has no ``single_s``.

    A reading's stretch cadence depends on ``gaps_per_side`` readings either way, which
    neutral_tamper (the detector with ``single_s`` by default) declares in its reach: it is exact and
    final where the score is, in a stitched frame as in the whole history. On a meter where a
    detector's reach does not hold them (``single_s`` configured on another detector), the learned
    cadence decides, as before q67: a stream judges it as the whole history would."""
    post = d.config.post
    strong = post.strong
    if strong is None:
        return None
    out = np.zeros(len(s), bool)
    with quiet():
        cand = s >= strong
    if not cand.any():
        return out
    seg = df["_seg"].to_numpy()
    # The meters it lets, as at a cadence that allows it (the detector's narrowing: neutral_tamper's
    # single-phase meters); the cadence is the reading's stretch's, below.
    may = np.asarray(d.post_settings(names, np.full(len(names), float(post.single_s)))["single"], bool)
    cand &= may[seg]
    if not cand.any():
        return out
    cad_m = np.array([_num(x.get("cadence_s"), np.nan) for x in sts], float)
    c_row, _ = stretch_cadence(seg, df["_dt"].to_numpy(float), cad_m, memo=times_cache(df))
    r = d.reach(names)
    n = gaps_per_side(cad_m)
    follows = (np.asarray(r.back_n) >= n) & (np.asarray(r.ahead_n) >= n)
    if not follows.all():
        c_row = np.where(follows[seg], c_row, cad_m[seg])
    with quiet():
        out[cand] = c_row[cand] >= post.single_s
    return out


def _covered(carry: dict, names: list[str], back_s: np.ndarray):
    """Per row (a function of segment codes and times): the carry holds the bins its own reach
    needs: it starts at the meter's first bin, or ``back_s`` before the reading."""
    h0 = np.array([(-np.inf if c.origin else c.b0) if c is not None else np.inf
                   for c in (carry.get(m) for m in names)], float)
    back = np.where(np.isfinite(back_s), np.asarray(back_s, float), np.inf)
    return lambda seg, t: t - back[seg] >= h0[seg]


FRESH_WHOLE = 0.6   # share of a frame above which a detector scores it whole (see _fresh_rows)


def _fresh_rows(d: Detector, ok: np.ndarray, names: list[str], t: np.ndarray, st: SegTimes,
                since: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """(rows with a known score, rows ``d`` must score) for :func:`run`'s ``known``.

    Per meter, ``d`` scores from the earlier of its clean point (the alerts it forms, and their
    descriptions, start there) and its first reading without a known score, with its own reach
    before that (and one reading more); every reading before is known (None: score every row)."""
    ok = np.asarray(ok, bool)
    seg, ks, lens, within = st.seg, st.ks, st.lens, st.within()
    first_unknown = np.minimum.reduceat(np.where(ok, lens[seg], within), st.starts) if len(seg) else lens
    t_pend = np.where(first_unknown < lens, t[st.starts + np.minimum(first_unknown, lens - 1)], np.inf)
    clean = np.array([since.get(m, -np.inf) for m in names], float)
    ref = np.minimum(clean, t_pend)
    r = d.reach(names)
    back = np.asarray(r.back_s, float)
    use = np.isfinite(back) & np.isfinite(ref)
    j = np.where(use, st.search(ks, SegTimes.to_us(np.where(use, ref - back, 0.0)), "left"), 0)
    start = np.where(use, np.maximum(0, j - np.asarray(r.back_n).astype(np.int64) - 1), 0)
    start = np.where(ref == np.inf, lens, start)   # all known, no clean point: nothing to score
    start = np.minimum(start, first_unknown)
    fresh = within >= start[seg]
    # Most of the frame to score anyway (a reach of days): the whole frame, without a subset copy.
    if fresh.mean() > FRESH_WHOLE:
        return ok, None
    return ok, fresh


def _band(cadence_s: np.ndarray) -> np.ndarray:
    """Cadences rounded to two significant figures (jitter does not make another cadence)."""
    c = np.asarray(cadence_s, float)
    with quiet():
        mag = 10.0 ** (np.floor(np.log10(np.where(c > 0, c, 1.0))) - 1)
    return np.round(c / mag) * mag


def _with_column(df: pd.DataFrame, name: str, values: np.ndarray) -> pd.DataFrame:
    cols = {c: df[c] for c in df.columns}
    cols[name] = values
    return pd.DataFrame(cols, copy=False)


def _rows_read(d: Detector, src: pd.DataFrame, rows: np.ndarray) -> pd.DataFrame:
    """``src``'s ``rows`` (whole meters), prepared, with only the channels ``d`` reads
    (:meth:`Detector.reads`) taken: the canonical channels it does not read are one shared
    read-only all-NaN array, the extra ones it does not read are left out (``d`` gives the same
    scores and alerts on them: ``tests/detect/test_reads.py``). A detector that does not declare
    what it reads gets every column."""
    reads = d.reads() if hasattr(d, "reads") else None
    if reads is None:
        return prepare(src[rows])
    idx = np.flatnonzero(rows)
    keep = set(reads)
    nan = np.full(len(idx), np.nan)
    nan.setflags(write=False)
    cols: dict = {"meter_id": src["meter_id"].array.take(idx), "ts": src["ts"].array.take(idx)}
    for c in CHANNEL_NAMES:
        cols[c] = src[c].to_numpy()[idx] if c in keep and c in src.columns else nan
    for c in extra_channels(src):
        if c in keep:
            cols[c] = src[c].to_numpy()[idx]
    for c in (*AUX, "_n"):
        if c in src.columns:
            cols[c] = src[c].to_numpy()[idx]
    if not len(idx) or idx[-1] == len(idx) - 1 or not all(c in cols for c in AUX):
        # The frame's first rows (prepare takes such a frame as it is) or an unprepared one.
        return prepare(pd.DataFrame(cols, index=idx, copy=False))
    # As prepare rebuilds that frame, without the frame first (frame.reassemble).
    return reassemble(cols.pop("meter_id"), cols.pop("ts"), {c: v for c, v in cols.items() if c not in (*AUX, "_n")},
                      cols["_seg"], cols["_t"], cols.get("_n"))


def _scored(d: Detector, df: pd.DataFrame, carry: dict | None):
    """``d.scored(df)``, with its carried bins when it has some (``carry`` None: the plain call, as
    a detector without a carry, or a wrapper of ``scored``, takes it)."""
    return d.scored(df) if carry is None else d.scored(df, carry=carry)


def _score_rows(d: Detector, src: pd.DataFrame, rows: np.ndarray, carry: dict | None = None):
    """Scores of the meters ``rows`` selects only (the others cannot be judged by ``d``), on those
    meters' rows of the channels it reads (:func:`_rows_read`); ``carry``: its carried bins."""
    sub = _rows_read(d, src, rows)
    scored = _scored(d, sub, carry)
    s = np.full(len(src), np.nan)
    s[rows] = scored.values
    return s, _Sub(np.flatnonzero(rows), sub, scored.ctx)


@dataclass
class _Sub:
    """Context of a detector that judged a subset of the frame's meters."""

    rows: np.ndarray
    frame: pd.DataFrame
    ctx: object


def _isolate(d: Detector, src: pd.DataFrame, ok_rows: np.ndarray, names: list[str], seg: np.ndarray,
             carry: dict | None = None):
    """After a failure on the whole group: each meter alone; those that fail again are dropped."""
    failed = np.zeros(len(names), bool)
    errors: dict[str, str] = {}
    starts, ends = seg_bounds(seg)
    for k, (a, b) in enumerate(zip(starts, ends)):
        if not ok_rows[a]:
            continue
        try:
            rows = np.zeros(len(src), bool)
            rows[a:b] = True
            _score_rows(d, src, rows, carry)
        except Exception as exc:  # noqa: BLE001
            failed[k] = True
            errors[names[k]] = f"{type(exc).__name__}: {exc}"
    rows = ok_rows & ~failed[seg]
    if not rows.any():
        return np.full(len(src), np.nan), None, failed, errors
    s, ctx = _score_rows(d, src, rows, carry)
    return s, ctx, failed, errors


def _post(res: Result, names: list[str], seg: np.ndarray, t: np.ndarray, starts: np.ndarray, ends: np.ndarray,
          since: dict, cut: np.ndarray | None = None) -> None:
    """Alerts of every detector from its exact, final scores at or after its clean point. ``cut``:
    per meter, where its readings before were compacted (NaN: none; see :func:`run`)."""
    n_seg = len(names)
    has_cut = np.zeros(n_seg, bool) if cut is None else np.isfinite(cut)
    last_t = t[ends - 1] if n_seg else np.zeros(0)
    for j in res.judged:
        d = j.det
        own = since.get(d.name) or {}
        if own:
            got = own.get
            start_t = np.array([-np.inf if v is None else v for v in map(got, names)], float)
        else:
            start_t = np.full(n_seg, -np.inf)
        whole = j.exact.all() and j.final.all() and not np.isfinite(start_t).any() and not has_cut.any()
        if whole:  # a whole history: every reading counts, nothing is pending or carried
            use = np.ones(len(t), bool)
            idx = None  # every row, in order
            final_t = last_t.copy()
        else:
            use = j.exact & j.final & (t >= start_t[seg])
            # Rows it may not use are not NaN ("cannot judge", which bridges) but absent.
            idx = np.flatnonzero(use)
            final_t = _seg_time(n_seg, seg, t, np.flatnonzero(j.final), last=True)
        res.final_t[d.name] = final_t
        # Rows that end a hold (back to normal, crossed over, or after hold_gap_s unjudged), once.
        cold_rows = _cold_rows(j, seg, use, t) if d.config.post.hold > 0 else None
        # Meters with compacted hours: alerts from its first exact reading plus the horizon within
        # which a group merges with one before (and, with a hold, from the first reading it uses
        # back to normal) on; -inf elsewhere.
        from_t = np.full(n_seg, -np.inf)
        if has_cut.any():
            first_exact = _seg_time(n_seg, seg, t, np.flatnonzero(j.exact), last=False)
            from_t = first_exact + np.maximum(j.eff["merge_gap_s"], j.eff["max_bridge_s"])
            if cold_rows is not None:
                from_t = np.maximum(from_t, _seg_time(n_seg, seg, t, cold_rows, last=False))
            from_t = np.where(has_cut, from_t, -np.inf)
        res.from_t[d.name] = from_t
        if np.isfinite(start_t).any():
            # A clean start: no anomalous reading within a merge gap or bridge after ``since``
            # (else it may belong to an alert that began before; the caller looks further back).
            with quiet():
                hot_used = (j.scores >= d.config.post.threshold) & use
            horizon_row = np.maximum(j.eff["merge_gap_s"], j.eff["max_bridge_s"])[seg]
            early = hot_used & np.isfinite(start_t[seg]) & (t < start_t[seg] + horizon_row)
            if cold_rows is not None:
                # With a hold, so may any anomalous reading before the first one back to normal.
                first_cold = _seg_time(n_seg, seg, t, cold_rows, last=False)
                early |= hot_used & np.isfinite(start_t[seg]) & (t < first_cold[seg])
            for k in np.unique(seg[early]):
                res.unclean.add(names[k])
        if whole and j.groups is not None:
            g = j.groups  # the same readings: formed already for what it explains
        elif idx is None:
            g = group(seg, t, j.scores, d.config.post, j.eff, j.side, j.single) if len(t) else None
        else:
            g = group(seg[idx], t[idx], j.scores[idx], d.config.post, j.eff,
                      None if j.side is None else j.side[idx], None if j.single is None else j.single[idx]) \
                if len(idx) else None
        clean = final_t.copy()  # nothing open: the next piece starts fresh after the last final reading
        clean[~np.isfinite(clean)] = start_t[~np.isfinite(clean)]
        if g is not None and len(g.rows):
            rows_all = g.rows if idx is None else idx[g.rows]
            gseg = seg[rows_all[g.first]]
            t_first, t_last = t[rows_all[g.first]], t[rows_all[g.last]]
            horizon = np.maximum(j.eff["merge_gap_s"], j.eff["max_bridge_s"])
            is_open = t_last > final_t[gseg] - horizon[gseg]
            if cold_rows is not None:
                # Held open while no reading since its last anomalous one is back to normal.
                # A change of side on the group's own last reading is inside it (postrules._held
                # counts cold readings after it); a meter not judged for ``hold_gap_s`` up to its
                # last final reading is not held: the next judged reading will end the hold.
                last_cold = _seg_time(n_seg, seg, t, cold_rows, last=True)
                last_judged = _seg_time(n_seg, seg, t, np.flatnonzero(use & np.isfinite(j.scores)), last=True)
                is_open |= (last_cold[gseg] <= t_last) & \
                    (final_t[gseg] - np.maximum(last_judged[gseg], t_last) <= d.config.post.hold_gap_s)
            for gi in np.flatnonzero(is_open):
                clean[gseg[gi]] = min(clean[gseg[gi]], t_first[gi])
            # What every alert of this judgement reads alike (see _alert), and, but for a whole
            # history (each alert formed once), the detector's memory of the alerts it formed.
            per_judged: dict = {} if whole else {"alerts": _alerts_memo(d)}
            for gi in np.flatnonzero(g.kept & (t_first >= from_t[gseg])):
                rows = rows_all[g.first[gi]:g.last[gi] + 1]
                a = _alert(d, j, rows, per_judged)
                res.alerts.append(a)
                if is_open[gi]:
                    res.open_ids.add(a.id)
        if j.pfinal is not None:
            _provisional(res, j, names, seg, t, start_t, from_t, {a.id for a in res.alerts if a.detector == d.name})
        # A trailing run of anomalous readings that is not (yet) a group (a single reading, say) may
        # still grow while the next known reading can bridge to it: its start stays open too. The
        # run is walked back as the post-rules see it: known readings, broken by a cold one or by a
        # gap longer than the bridge (a run that ended longer than the horizon ago is closed).
        res.clean[d.name] = clean
        if j.final.all():
            continue  # nothing will follow: no clean point to carry
        with quiet():
            hot = j.scores >= d.config.post.threshold
        known = np.isfinite(j.scores) & use
        first = _trailing_runs(n_seg, seg, t, hot, known, final_t, j.eff["merge_gap_s"], j.eff["max_bridge_s"],
                               d.config.post.bridge_gaps)
        res.clean[d.name] = np.minimum(clean, first)


def _provisional(res: Result, j: Judged, names: list[str], seg: np.ndarray, t: np.ndarray, start_t: np.ndarray,
                 from_t: np.ndarray, final_ids: set[str]) -> None:
    """``j``'s provisional alerts (:func:`run`'s ``provisional``) into ``res.provisional``: its
    post-rules once more over its exact readings that are final or final but for its long blockers
    (``j.pfinal``), from the same clean point; the alerts not among the final ones. One whose span
    comes within a long blocker's blanking horizon of an alert of that blocker on the meter (open
    or ended, final or not: what the frame holds of it) is *near* (``res.provisional_near``): that
    blocker's final verdict is likely to blank it, so it is not written provisional (it waits for
    that verdict as every alert did before), but one written before it was near is kept."""
    d = j.det
    use = j.exact & (j.final | j.pfinal) & (t >= start_t[seg])
    # Only meters with an anomalous reading beyond the final ones: elsewhere every group is one of
    # the final alerts (a group needs anomalous readings), so grouping them again is cost for
    # nothing (at 1 min, 200 meters: the slow step's whole tail since the clean points).
    with quiet():
        hot = use & ~j.final & (j.scores >= d.config.post.threshold)
    if not hot.any():
        return
    use &= np.isin(seg, np.unique(seg[hot]))
    idx = np.flatnonzero(use)
    if not len(idx):
        return
    g = group(seg[idx], t[idx], j.scores[idx], d.config.post, j.eff,
              None if j.side is None else j.side[idx], None if j.single is None else j.single[idx])
    if not len(g.rows):
        return
    rows_all = idx[g.rows]
    gseg = seg[rows_all[g.first]]
    t0, t1 = t[rows_all[g.first]], t[rows_all[g.last]]
    keep = g.kept & (t0 >= from_t[gseg])
    if not keep.any():
        return
    # (pv) May still grow: as ``_post``'s open rule, from the last reading final but for the long blockers.
    n_seg = len(names)
    horizon = np.maximum(j.eff["merge_gap_s"], j.eff["max_bridge_s"])
    pfinal_t = _seg_time(n_seg, seg, t, idx, last=True)
    is_open = t1 > pfinal_t[gseg] - horizon[gseg]
    if d.config.post.hold > 0:
        # (prov) ... and its hold (phase_imbalance, channel_invalid), as ``_post`` holds a final alert
        # open: no reading since its last anomalous one back to normal, the meter judged within
        # ``hold_gap_s`` of its last reading used. Without it a held provisional alert was "not open"
        # (the console) while the judgement without the long blockers held it open.
        last_cold = _seg_time(n_seg, seg, t, _cold_rows(j, seg, use, t), last=True)
        last_judged = _seg_time(n_seg, seg, t, np.flatnonzero(use & np.isfinite(j.scores)), last=True)
        is_open |= (last_cold[gseg] <= t1) & \
            (pfinal_t[gseg] - np.maximum(last_judged[gseg], t1) <= d.config.post.hold_gap_s)
    # Near a long blocker's alert: its alerts' spans widened by its horizon on their meter.
    near = np.zeros(len(keep), bool)
    by_name = {x.det.name: x for x in res.judged}
    for b in j.waits:
        jb = by_name.get(b)
        if jb is None or jb.groups is None:
            continue
        bg = jb.groups
        ok = np.flatnonzero(bg.kept)
        if not len(ok):
            continue
        bseg = seg[bg.rows[bg.first[ok]]]
        h = j.waits[b]
        for s_, b0, b1 in zip(bseg.tolist(), t[bg.rows[bg.first[ok]]].tolist(), t[bg.rows[bg.last[ok]]].tolist()):
            hs = h[s_]
            if np.isfinite(hs):
                near |= (gseg == s_) & (t1 >= b0 - hs) & (t0 <= b1 + hs)
    per_judged: dict = {"alerts": _alerts_memo(d)}
    for gi in np.flatnonzero(keep):
        a = _alert(d, j, rows_all[g.first[gi]:g.last[gi] + 1], per_judged)
        if a.id in final_ids:
            continue
        k = int(gseg[gi])
        waits = sorted(b for b, h in j.waits.items() if np.isfinite(h[k]))
        hz = max(float(j.waits[b][k]) for b in waits) / 3600.0
        a.evidence = {**a.evidence, "provisional": True, "waits_for": waits,
                      "provisional_note": f"provisional: written before {', '.join(waits)} gave its final verdict on "
                                          f"these readings (its horizon here: {hz:.0f} h); withdrawn if it explains them"}
        res.provisional.append(a)
        if near[gi]:
            res.provisional_near.add(a.id)
        if is_open[gi]:
            res.provisional_open.add(a.id)


def _trailing_runs(n_seg: int, seg: np.ndarray, t: np.ndarray, hot: np.ndarray, known: np.ndarray,
                   final_t: np.ndarray, merge_gap: np.ndarray, bridge: np.ndarray, bridge_gaps: bool) -> np.ndarray:
    """Per meter (segment code): the time of the first reading of its trailing run of anomalous
    ``known`` readings, as the post-rules see it (broken by a cold known reading, or by a gap
    between known readings longer than ``bridge``, and with ``bridge_gaps`` only where readings
    lie between them), when its last known reading is anomalous and within the larger of
    ``merge_gap`` and ``bridge`` of the meter's last final reading ``final_t``; +inf otherwise.
    All meters at once (``seg`` sorted; a Python loop per meter cost ~10 ms a stream step at 200
    meters and five detectors)."""
    out = np.full(n_seg, np.inf)
    kr = np.flatnonzero(known)
    if not len(kr):
        return out
    ks = seg[kr]
    new_meter = np.concatenate([[True], ks[1:] != ks[:-1]])
    first_pos = np.flatnonzero(new_meter)
    last_pos = np.append(first_pos[1:], len(kr)) - 1
    metre = ks[first_pos]
    last_row = kr[last_pos]
    mg, br = np.asarray(merge_gap, float)[metre], np.asarray(bridge, float)[metre]
    horizon = np.where(br > mg, br, mg)   # Python's max(merge_gap, bridge), NaN and all
    ok = hot[last_row] & ~(t[last_row] <= final_t[metre] - horizon)
    # A run starts at a meter's first known reading and after every break between two known ones.
    far = np.diff(t[kr]) > bridge[ks[1:]]
    if bridge_gaps:
        far &= np.diff(kr) > 1   # as the post-rules: consecutive readings are never split
    brk = ~hot[kr[:-1]] | far
    starts = np.flatnonzero(new_meter | np.concatenate([[False], brk]))
    run0 = starts[np.searchsorted(starts, last_pos, "right") - 1]
    out[metre[ok]] = t[kr[run0[ok]]]
    return out


def _side(d: Detector, src: pd.DataFrame, ctx) -> np.ndarray | None:
    """Per row of ``src``: the detector's side (:meth:`Detector.side`), NaN where it did not score."""
    if isinstance(ctx, _Sub):
        sub = d.side(ctx.frame, ctx.ctx)
        if sub is None:
            return None
        out = np.full(len(src), np.nan)
        out[ctx.rows] = sub
        return out
    return d.side(src, ctx)


def _seg_time(n_seg: int, seg: np.ndarray, t: np.ndarray, rows: np.ndarray, *, last: bool) -> np.ndarray:
    """Per meter, the time of its latest (``last``) or earliest of ``rows`` (indices); -inf or
    +inf for a meter with none. ``rows`` increasing and ``seg`` sorted (a prepared frame): one
    reduction per meter's block of them (``ufunc.at`` otherwise)."""
    out = np.full(n_seg, -np.inf if last else np.inf)
    op = np.maximum if last else np.minimum
    rows = np.asarray(rows)
    if not len(rows):
        return out
    s, v = seg[rows], t[rows]
    if np.all(s[1:] >= s[:-1]):
        b = np.flatnonzero(np.concatenate([[True], s[1:] != s[:-1]]))
        out[s[b]] = op(out[s[b]], op.reduceat(v, b))
    else:
        op.at(out, s, v)
    return out


def _cold_rows(j: Judged, seg: np.ndarray, use: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Rows the post-rules use that end a hold (:func:`postrules.cold` over the used rows)."""
    idx = np.flatnonzero(use)
    c = cold(j.scores[idx], j.det.config.post, seg[idx], None if j.side is None else j.side[idx], t[idx])
    return idx[c]


def _alert(d: Detector, j: Judged, rows: np.ndarray, per_judged: dict | None = None) -> Alert:
    """The alert of ``j``'s ``rows``. ``per_judged``: a dict kept across the alerts of one
    judgement, where what they all read alike (the scores of a subset's rows, the times, the meter
    column) is taken once, not once an alert (a stream forms every open alert again each step);
    with ``"alerts"`` (:func:`_alerts_memo`), an alert whose description's digest
    (:meth:`Detector.describe_key`), meter, first and last time and peak score were seen before is
    that alert again, not described again."""
    memo = {} if per_judged is None else per_judged
    df, ctx, local = j.input, j.ctx, rows
    if isinstance(ctx, _Sub):
        df, local, ctx = ctx.frame, np.searchsorted(ctx.rows, rows), ctx.ctx
    if df is j.input:
        scores = j.scores
    else:
        scores = memo.get("sub_scores")
        if scores is None:
            scores = memo["sub_scores"] = j.scores[ctx_rows(j)]
    if "t" not in memo:
        memo["t"], memo["meter_id"] = j.input["_t"].to_numpy(), j.input["meter_id"]
    t = memo["t"]
    peak = float(np.nanmax(j.scores[rows]))
    known, key = memo.get("alerts"), None
    if known is not None:
        k = d.describe_key(df, local, scores, ctx)
        if k is not None:
            key = (k, str(memo["meter_id"].iat[rows[0]]), float(t[rows[0]]), float(t[rows[-1]]), peak)
            hit = known.get(key)
            if hit is not None:
                return replace(hit, evidence=copy.deepcopy(hit.evidence))
    f = d.describe(df, local, scores, ctx)
    score = round(calibrated(peak), 4)
    # The alert starts where its evidence began when the detector says that was earlier than its
    # first anomalous reading (Finding.start_t: a window's start, a function of the readings up to
    # that reading, so the id stays as the alert grows); it ends at its last anomalous reading.
    # The first anomalous reading is then kept in the evidence (``anomalous_from``): when the
    # detector could tell, what an evaluation's detection delay is measured to (evaluate.events).
    t0, ev = float(t[rows[0]]), f.evidence
    if f.start_t is not None and np.isfinite(f.start_t) and f.start_t < t0:
        ev = {**ev, "anomalous_from": _iso(t0)}
        t0 = float(f.start_t)
    # Severity from the code's consequence and the calibrated score (codes.SEVERITY_POLICY).
    a = Alert(meter_id=str(memo["meter_id"].iat[rows[0]]), start=_iso(t0), end=_iso(t[rows[-1]]),
              code=d.code, severity=severity(d.code, score, f.severity), score=score,
              detector=d.name, message=f.message, evidence=ev, action=f.action)
    if key is not None:
        if len(known) >= ALERTS_MEMO:
            known.clear()
        known[key] = replace(a, evidence=copy.deepcopy(a.evidence))
    return a


#: Alerts a detector's memory (:func:`_alerts_memo`) holds at most (then it starts afresh).
ALERTS_MEMO = 4096


def _alerts_memo(d: Detector) -> dict | None:
    """``d``'s memory of the alerts it formed (:func:`_alert`), kept on the instance for as long as
    its config is the same object; None where ``d`` gives no description digests, or where its
    ``describe`` is not the one its digest was written for (a subclass or a patch that replaces
    ``describe`` alone: the inherited digest need not cover what the new one reads)."""
    own = getattr(d, "__dict__", None)
    if own is None:
        return None
    if "describe" in own or "describe_key" in own:
        if not ("describe" in own and "describe_key" in own):
            return None
    else:
        key_by, describe_by = _defined_by(type(d), "describe_key"), _defined_by(type(d), "describe")
        if key_by is Detector or not issubclass(key_by, describe_by):   # (a digest written after the describe)
            return None
    got = own.get("_alerts_memo")
    if got is None or got[0] is not d.config:
        got = own["_alerts_memo"] = (d.config, {})
    return got[1]


def _defined_by(cls: type, name: str) -> type | None:
    """The class of ``cls``'s MRO that defines ``name``."""
    return next((k for k in cls.__mro__ if name in k.__dict__), None)


def ctx_rows(j: Judged) -> np.ndarray:
    return j.ctx.rows if isinstance(j.ctx, _Sub) else np.arange(len(j.scores))

