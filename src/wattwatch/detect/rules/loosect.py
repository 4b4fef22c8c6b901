"""Loose or partly closed CT clamp: one phase's reported current jumps about erratically while the
power the meter reports, the voltage and the other phases stay steady (the seeds' "most common
cause of false positives": a clamp not fully closed attenuates the signal by an amount that
changes from reading to reading).

What gives it away is the *consistency* between current and power, not the current alone. Per
reading the rule compares the apparent power the currents imply, Σ V_k·I_k, with the apparent power
the meter reports through its active power and power factor (P / pf; pf 1 when the meter reports
none):

    d = ln(Σ V_k·I_k / 1000) − ln(P / pf)

For a healthy meter ``d`` is a constant (the meter's own calibration and wiring) plus its own small
noise, whatever the load does: a welder, an arc furnace or a variable-speed drive makes the current
*and* the power jump together, a real imbalance step moves one phase's current and the power with
it, an open CT (current → 0) is one step of ``d`` and then steady again. A loose clamp makes ``d``
erratic. The erratic measure is the rolling median (``window`` readings, centred) of the absolute
reading-to-reading change of ``d``: a median needs most of the window to move, so one step (an open
CT, a load switching, a motor start caught in one reading) never raises it. Changes between readings
whose power itself moved by more than ``max_power_step`` (in ln P) are not counted: when a load
switches within an interval, the interval's averages of current and power disagree for that reading
(a real 1-minute home meter with a cycling heater does, by up to 40 %), which says nothing about the
clamp. On a meter whose current and power agreed across such switches while learned (snapshot
readings do; the fit measures it), every change counts as well: at hourly cadence most of a home's
changes are switches, and the steady ones alone are too few for a median. The measure is compared
with a limit per reading:

    score = measure / (max(floor, k_normal × normal) + k_resolution × resolution allowance)

``floor`` is one phase's current's: a clamp on one phase of three moves ``d`` by that phase's share
(about a third) of its loss. A clamp only loses current, so it moves ``d`` below the meter's level;
on a three-phase meter the measure of ``d`` held at most at its level is also judged, against
``floor`` / 3 in place of ``floor``, whichever score is higher (the meter-wide causes that move ``d``
by as little, a reported pf that is cos φ under varying distortion or P / |S| with one phase's pf
varying, raise it: they keep the single-phase floor). ``normal`` is the meter's own: the 90th
percentile over the fit period of the measure beyond what resolution explains. The resolution
allowance is the change of ``d`` the channels' reporting steps alone can make at that load
(n_phases × ΔI / I + ΔP / P, with ΔI and ΔP the smallest steps the meter's readings take, learned
in the fit: 0.2 A on a meter that reports to 0.2 A).

The phase named is the one whose own current moves most erratically (the same rolling median of
|Δ log I_k|); the evidence reports that phase's erratic measure and those of the power, the voltage
and the other phases, so a reader sees what stayed steady.

While it lasts the loose clamp explains the readings of the current- and consumption-based rules
(phase imbalance, neutral balance, open-CT and the consumption detectors): a wrong current is not
an imbalanced load, a neutral bypass or a consumption anomaly. Beyond its alert spans it also
explains, within 6 h or 24 readings of them (whichever is longer), the readings whose current power
cannot account for (``d`` away from the meter's normal level), where the rolling measure has not yet
risen or has already fallen; its spans are padded by 30 min or half its window of readings, and its
fragments are merged within 3 h or two windows of readings: at hourly cadence a loose clamp is seen
in fragments hours apart, and the rules it keeps off must stay off between them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import (PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, Scored, quiet, rnd,
                                   state_nums)
from wattwatch.detect.frame import cache, meter_names, prepare, seg_bounds, seg_median, seg_quantile
from wattwatch.detect.rolling import centred_median
from wattwatch.detect.rules._common import n_phases, nominal_voltage, phases


@dataclass(frozen=True)
class LooseCTConfig(DetectorConfig):
    """``window``: readings in the centred rolling window (odd; an even value is taken one up);
    ``floor``: the least erratic measure (median |Δd|, natural-log units ≈ relative change) that
    counts, whatever the meter's normal, as one phase's current's (on a three-phase meter ``d``
    moves by a third of it: ``floor`` / 3 for ``d`` below its level); ``k_normal``: times the meter's own normal measure;
    ``k_resolution``: times the change the channels' reporting resolution alone can make
    (n_phases × resolution of I / I + resolution of P / P), added to the limit;
    ``min_load_a``: summed phase current below which the readings are not judged (quantisation of
    small currents is not a loose clamp); ``min_kw``: least active power judged;
    ``voltage_fraction``: of the meter's nominal voltage, for a phase to count as supplied;
    ``max_power_step``: |Δ ln P| between two readings above which their change of ``d`` is not
    counted (the load switched between or within them); ``off_level``: |d − the meter's normal
    level| above which a reading's current is not what its power implies (used to extend the
    suppression of other rules around an alert)."""

    window: int = 9
    floor: float = 0.04
    k_normal: float = 4.0
    k_resolution: float = 2.0
    min_load_a: float = 0.5
    min_kw: float = 0.05
    voltage_fraction: float = 0.5
    off_level: float = 0.05
    max_power_step: float = 0.25
    # Long bridges: a home's evenings (power too unsteady to judge) and nights (too light) must not
    # split one loose spell into an alert a day. The measure needs most of a window of readings to
    # move, so after such a stretch a spell shows again only a window later: fragments within two
    # windows of readings are one spell too (18 h at hourly cadence; 3 h rules at 5 and 15 minutes).
    post: PostRule = PostRule(min_duration_s=1800.0, min_readings=3, merge_gap_s=3 * 3600.0, max_bridge_s=4 * 3600.0,
                              merge_gap_n=18.0)


def _lagged_diff(x: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """x[t] − x[t−1] within a meter (NaN on its first reading or where either is NaN)."""
    out = np.full(len(x), np.nan)
    if len(x) > 1:
        out[1:] = x[1:] - x[:-1]
        out[1:][seg[1:] != seg[:-1]] = np.nan
    return out


def _resolution(x: np.ndarray, seg: np.ndarray, n_seg: int) -> np.ndarray:
    """Per meter: the smallest step between two different consecutive values of ``x`` (the
    channel's reporting resolution, e.g. 0.2 A or 0.001 A); NaN when it never changes."""
    dx = np.abs(np.round(_lagged_diff(x, seg), 6))
    return seg_quantile(dx, seg, n_seg, 0.0, dx > 0)


def _rolling_median(x: np.ndarray, seg: np.ndarray, window: int) -> np.ndarray:
    """Centred rolling median over ``window`` readings of each meter (at least half of them known);
    NaN where the window would reach past the meter's first or last reading in the frame."""
    h = window // 2
    # pandas' centred rolling median, value for value, by a sorting network over all rows
    # (detect/rolling.py; 2-3x faster: these medians were most of loose_ct's time)
    with quiet():
        r = centred_median(x, 2 * h + 1, h + 1)
    starts, ends = seg_bounds(seg)
    pos = np.arange(len(x)) - np.repeat(starts, ends - starts)
    left = np.repeat(ends - starts, ends - starts) - pos - 1
    r[(pos < h) | (left < h)] = np.nan
    return r


def _rolling_medians(xs: list[np.ndarray], seg: np.ndarray, window: int) -> list[np.ndarray]:
    """:func:`_rolling_median` of each of ``xs`` (same length, over the same ``seg``), by one call
    over them end to end: the k-th copy's segment codes are offset past the (k-1)-th's, so each
    meter of each series is its own segment and the values are those of a call per series."""
    n = len(seg)
    if n == 0 or len(xs) < 2:
        return [_rolling_median(x, seg, window) for x in xs]
    seg = np.asarray(seg, np.int64)
    seg = seg - seg.min()   # codes from 0: a copy's last code then never equals the next copy's first
    step = int(seg.max()) + 1
    r = _rolling_median(np.concatenate(xs), np.concatenate([seg + k * step for k in range(len(xs))]), window)
    return [r[k * n:(k + 1) * n] for k in range(len(xs))]


class LooseCT(Detector):
    name = "loose_ct"
    code = "SENSOR_FAULT"
    config_cls = LooseCTConfig
    requires = ("i_l1_a", "p_kw")
    reads_also = (*PHASE_CHANNELS, "pf")  # phases; power factor of the reported apparent power
    # Its own judgement rests on the currents: an outage or distorted readings blank it.
    judges = ("current",)
    # A wrong current explains what current- and consumption-based rules would read in it: the
    # alert spans padded by 30 min or the window's half (the rolling median sees a spell's onset and
    # end up to that many readings late or early), and readings whose current the power does not
    # account for within 6 h or 24 readings (a day at hourly cadence, where a spell is seen in
    # fragments hours apart) of an alert.
    @property
    def explains(self) -> tuple[Explains, ...]:  # type: ignore[override]
        return (Explains(("current", "consumption"), pad_s=1800.0, pad_n=float(self._h()), extra="unexplained",
                         within_s=6 * 3600.0, within_n=24.0),)
    state_version = 1

    def __getstate__(self) -> dict:
        """As the base's, without the scoring's carry (:func:`_carried_score`): a checkpoint or a
        copy does not hold it; the next scoring is whole and makes it again."""
        state = super().__getstate__()
        state.pop("_score_carry", None)
        return state

    def _h(self) -> int:
        return max(1, int(self.config.window) // 2)

    @property
    def lookback_n(self) -> int:  # type: ignore[override]
        return self._h() + 1  # the window's half, plus the reading before it for the change

    @property
    def lookahead_n(self) -> int:  # type: ignore[override]
        return self._h()

    # ------------------------------------------------------------------ the consistency measure

    def _parts(self, df: pd.DataFrame, learned: dict | None = None, any_load: bool = False):
        """(d, ok, q, v, i, p) per reading: the log ratio of current-implied to reported apparent
        power where it can be judged (``any_load``: at any load the power shows, not only from
        ``min_load_a``), and the part of a change of it that the channels' resolution alone can
        make (relative). ``learned``: per-meter arrays (phases, nominal_v, res_i, res_p) when
        fitting; else from the state."""
        return self._judgeable(self._base(df, learned), any_load)

    def _base(self, df: pd.DataFrame, learned: dict | None = None, names: np.ndarray | None = None) -> dict:
        """What :meth:`_parts` computes before it picks the readings it judges (which depends on
        ``any_load`` only): ``_score`` hands it on to :meth:`unexplained` through its context.
        ``names``: ``meter_names(df)``, when the caller has it (lx: :meth:`Detector._param` takes it
        out of the frame again at each call)."""
        cfg = self.config
        seg = df["_seg"].to_numpy()
        v, i = phases(df)
        if learned is None:
            names = meter_names(df) if names is None else names
        get = ((lambda k, dflt: learned[k]) if learned is not None
               else (lambda k, dflt: state_nums(self.state_, names, k, dflt)))   # (= self._param(df, k, dflt))
        three = (get("phases", 1.0) == 3)[seg]
        nominal = get("nominal_v", np.nan)
        nom = np.where(np.isfinite(nominal), nominal, 230.0)[seg]
        res_i = np.nan_to_num(get("res_i", 0.0))[seg]
        res_p = np.nan_to_num(get("res_p", 0.0))[seg]
        p = df["p_kw"].to_numpy(float)
        pf = np.abs(df["pf"].to_numpy(float))
        with quiet():
            pf = np.where(np.isfinite(pf) & (pf >= 0.05) & (pf <= 1.0), pf, 1.0)
            vi = v * i
            s_i = np.where(three, vi.sum(axis=1), vi[:, 0]) / 1000.0
            s_p = p / pf
            # The load is judged by what the power implies, not by the current under suspicion.
            n_ph = np.where(three, 3, 1)
            v_mean = np.where(three, v.mean(axis=1), v[:, 0])
            i_implied = s_p * 1000.0 / v_mean  # summed over the phases
            v_ok = np.where(three, (v >= cfg.voltage_fraction * nom[:, None]).all(axis=1),
                            v[:, 0] >= cfg.voltage_fraction * nom)
            # A reading that dropped to zero is a large change, not an infinite one.
            ratio = np.log(np.maximum(s_i, 0.05 * s_p)) - np.log(s_p)
            # Resolution: a current reported to 0.2 A moves d by up to 0.1 A / I on its own.
            q = n_ph * res_i / i_implied + res_p / p
        return {"frame": df, "seg": seg, "v": v, "i": i, "p": p, "known": v_ok & np.isfinite(s_i),
                "i_implied": i_implied, "ratio": ratio, "q": q}

    def _judgeable(self, b: dict, any_load: bool = False):
        """:meth:`_parts` from :meth:`_base`."""
        cfg = self.config
        p, i_implied = b["p"], b["i_implied"]
        with quiet():
            loaded = ((i_implied >= cfg.min_load_a) & (p >= cfg.min_kw)) if not any_load else p > 0
            ok = b["known"] & loaded
            d = np.where(ok, b["ratio"], np.nan)
            q = np.where(ok, b["q"], np.nan)
        return d, ok, q, b["v"], b["i"], p

    def _measure(self, d: np.ndarray, q: np.ndarray, p: np.ndarray, seg: np.ndarray, steady: bool = True
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(rolling median of |Δd|, rolling median of the resolution allowance) per reading. With
        ``steady``, a change is counted only between readings whose power is steady (|Δ ln P| at
        most ``max_power_step``): a load that switches within an interval makes the interval's
        averages of current and power disagree for that reading (a thermostat cycling a heater
        does), which says nothing about the clamp. Without it every change counts (see
        :meth:`_score`)."""
        return self._erratic(d, p, seg, steady), _rolling_median(q, seg, 2 * self._h() + 1)

    def _erratic(self, d: np.ndarray, p: np.ndarray, seg: np.ndarray, steady: bool = True) -> np.ndarray:
        """The first half of :meth:`_measure` (the rolling median of |Δd|): its second half, the
        resolution allowance's median, does not depend on ``steady`` and is taken once."""
        with quiet():
            dd = np.abs(_lagged_diff(d, seg))
            if steady:
                dd[~(np.abs(_lagged_diff(np.log(p), seg)) <= self.config.max_power_step)] = np.nan
        return _rolling_median(dd, seg, 2 * self._h() + 1)

    def _fit(self, df: pd.DataFrame) -> dict:
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        _, i = phases(df)
        learned = {"phases": n_phases(df, n_seg).astype(float), "nominal_v": nominal_voltage(df, n_seg),
                   "res_i": np.fmin(np.fmin(*[_resolution(i[:, k], seg, n_seg) for k in range(2)]),
                                    _resolution(i[:, 2], seg, n_seg)),
                   "res_p": _resolution(df["p_kw"].to_numpy(float), seg, n_seg)}
        d, ok, q, *_ = self._parts(df, learned)
        p = df["p_kw"].to_numpy(float)
        # The meter's own inconsistency beyond what resolution explains; median-based measures
        # and a 90th percentile, so that a loose spell inside the fit period does not become normal.
        # Learned for both measures: between steady readings, and between any two readings.
        normals = []
        qr = None
        for steady in (True, False):
            if qr is None:
                e, qr = self._measure(d, q, p, seg, steady)
            else:
                e = self._erratic(d, p, seg, steady)
            with quiet():
                excess = np.maximum(e - self.config.k_resolution * qr, 0.0)
            normals.append(seg_quantile(excess, seg, n_seg, 0.9))
        normal, normal_any = normals
        # Whether current and power disagree when the load switches between two readings: the
        # median change of ``d`` over the changes whose power moved by more than ``max_power_step``,
        # less the median over the steady ones (resolution and noise move both alike); NaN with
        # fewer than 10 of either. A real 1-minute home with a cycling heater: 0.075 (its readings
        # average a switching minute differently); snapshot readings: 0.
        with quiet():
            dd = np.abs(_lagged_diff(d, seg))
            dlp = np.abs(_lagged_diff(np.log(p), seg))
        known = np.isfinite(dd) & np.isfinite(dlp)
        sw, st = known & (dlp > self.config.max_power_step), known & (dlp <= self.config.max_power_step)
        enough = (np.bincount(seg[sw], minlength=n_seg) >= 10) & (np.bincount(seg[st], minlength=n_seg) >= 10)
        switch = np.where(enough, seg_quantile(dd, seg, n_seg, 0.5, sw) - seg_quantile(dd, seg, n_seg, 0.5, st), np.nan)
        level = seg_median(d, seg, n_seg)
        return {m: {"phases": int(learned["phases"][j]), "nominal_v": float(learned["nominal_v"][j]),
                    "res_i": float(learned["res_i"][j]), "res_p": float(learned["res_p"][j]),
                    "level": float(level[j]), "erratic_normal": float(normal[j]),
                    "erratic_normal_any": float(normal_any[j]), "erratic_switch": float(switch[j])}
                for j, m in enumerate(meter_names(df))}

    def _limit(self, df: pd.DataFrame, qr: np.ndarray, key: str = "erratic_normal", one_phase: bool = False,
               rows: np.ndarray | None = None, prm: dict | None = None, seg: np.ndarray | None = None) -> np.ndarray:
        """Per reading (of ``rows``, indices of ``df``; None: every reading): what the erratic
        measure may reach on this meter (``key``: the normal of the measure judged). With
        ``one_phase``, the floor is one phase's: a clamp on one phase of three moves ``d`` by that
        phase's share (about a third) of its own attenuation, so on a three-phase meter the floor
        of ``d`` is ``floor`` / 3 (for the measure of ``d`` below its level: see
        :meth:`_one_phase`). ``prm``, ``seg``: :meth:`_score_on`'s (the learned values per segment
        code, and the codes; default: the state's, per meter of ``df``, and ``df``'s codes)."""
        cfg = self.config
        prm = _Params(self, df) if prm is None else prm
        normal = prm[key]
        # (without one_phase every meter's floor is ``floor`` itself: its phases are not looked up)
        floor = np.where(prm["phases"] == 3, cfg.floor / 3.0, cfg.floor) if one_phase else cfg.floor
        base = np.maximum(floor, np.where(np.isfinite(normal), cfg.k_normal * normal, 0.0))
        seg = df["_seg"].to_numpy() if seg is None else seg
        if rows is None:
            return base[seg] + cfg.k_resolution * np.nan_to_num(qr)
        return base[seg[rows]] + cfg.k_resolution * np.nan_to_num(qr[rows])

    def _below_level(self, df: pd.DataFrame, d: np.ndarray, seg: np.ndarray, prm: dict | None = None
                     ) -> tuple[np.ndarray, np.ndarray] | None:
        """(rows, ``d`` there no higher than the meter's normal level): the rows of the three-phase
        meters; None when the frame has none. A clamp only loses current, so on its phase ``d``
        only falls below the level; the meter-wide causes that move ``d`` a third as much, reading
        to reading, raise it: a meter that reports the displacement pf (cos φ) while a drive's
        current distortion varies, or its pf as P / |S| (vector) while one phase's pf varies (its
        currents then imply more apparent power than P / pf)."""
        prm = _Params(self, df) if prm is None else prm
        rows = np.flatnonzero((prm["phases"] == 3)[seg])
        if not len(rows):
            return None
        level = prm["level"][seg[rows]]
        with quiet():
            return rows, np.where(np.isfinite(level), np.minimum(d[rows], level), d[rows])

    def _one_phase(self, df: pd.DataFrame, low: tuple[np.ndarray, np.ndarray] | None, p: np.ndarray,
                   seg: np.ndarray, e: np.ndarray, limit: np.ndarray, qr: np.ndarray, steady: bool, key: str,
                   at: np.ndarray | None = None, prm: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(measure, limit) per reading: ``e`` against ``limit``, or the measure of ``d`` below its
        level (``low``: :meth:`_below_level`, its rows only: a meter's rows are contiguous) against
        one phase's floor, whichever is further over. (With ``floor`` alone, a clamp attenuating
        L3 by up to 30 % read hourly moved ``d`` by a median 0.03 a reading against 0.04 and was
        never found: the 60-min fleet 1109's M-00101. With ``floor`` / 3 on ``d`` itself, a meter
        reporting cos φ with its drive's distortion varying 5-30 % a reading, ``d`` within
        0.005-0.04 above its level, was a loose clamp for days.)

        ``at``: the rows ``e`` and ``limit`` are of (whole meters' rows of the frame, increasing;
        None: every row). ``e`` and ``limit`` are the caller's own arrays: the readings where the
        measure below the level is further over are written into them (fc: only ``low``'s rows
        are worked on; ``np.where`` over every reading cost more than the measure itself there)."""
        if low is None:
            return e, limit
        rows, d_low = low
        local = rows
        if at is not None:
            # ``low``'s rows among ``at``'s (both whole meters' rows, increasing), and where in ``at``.
            local = np.minimum(np.searchsorted(at, rows), max(len(at) - 1, 0))
            inside = at[local] == rows if len(at) else np.zeros(len(rows), bool)
            rows, d_low, local = rows[inside], d_low[inside], local[inside]
            if not len(rows):
                return e, limit
        e_low = self._erratic(d_low, p[rows], seg[rows], steady)
        lim_low = self._limit(df, qr, key, one_phase=True, rows=rows, prm=prm, seg=seg)
        with quiet():
            take = np.nan_to_num(e_low / lim_low, nan=-np.inf) > np.nan_to_num(e[local] / limit[local], nan=-np.inf)
        e[local[take]], limit[local[take]] = e_low[take], lim_low[take]
        return e, limit

    def _score(self, df: pd.DataFrame) -> Scored:
        """The steady-power measure against its limit; on meters whose current and power agreed
        across load switches while learned (the median change of ``d`` across a switch at most
        ``floor`` / ``k_normal`` above that between steady readings), also the measure over every
        change against its own learned normal, whichever is further over. At hourly cadence a
        home's power moves by more than ``max_power_step`` between most readings (a loose spell
        on a real-shape home: 23 % of its changes steady), so the steady measure, a median needing
        half a window of them, sees almost nothing; snapshot readings of current and power agree
        at any load, and on such a meter every change of ``d`` is the clamp's. A meter whose
        readings disagree when its load switches (a real 1-minute home with a cycling heater:
        0.075) is judged by the steady measure alone."""
        # (lx) The meters' names by segment code taken once: for the learned values' look-ups, and the
        # descriptions and their keys (``_of_frame``)
        names = meter_names(df)
        base = self._base(df, names=names)
        seg = base["seg"]
        base["names"] = names
        d, ok, q, v, i, p = self._judgeable(base)
        prm = _Params(self, df, names)
        e, limit, take = _carried_score(self, df, seg, d, q, p, prm)
        return Scored(e / limit, (e, limit, take, base))

    def _score_on(self, df: pd.DataFrame, seg: np.ndarray, d: np.ndarray, q: np.ndarray, p: np.ndarray,
                  prm: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(measure, limit, every-change taken) per reading of :meth:`_score` from its pieces: ``d``,
        ``q``, ``p`` per reading, ``seg`` their segment codes (a window never reaches across two),
        ``prm`` the learned values per code (:class:`_Params`, or those of the meters of blocks of
        rows: :func:`_carried_score`); ``df`` is not read beyond them."""
        e, qr = self._measure(d, q, p, seg)
        low = self._below_level(df, d, seg, prm)
        e, limit = self._one_phase(df, low, p, seg, e, self._limit(df, qr, prm=prm, seg=seg), qr, True,
                                   "erratic_normal", prm=prm)
        # Meters whose current and power agreed across load switches while learned (a state stored
        # before this was learned: the steady measure alone).
        switch = prm["erratic_switch"]
        quiet_any = (np.isfinite(switch) & (self.config.k_normal * switch <= self.config.floor))[seg]
        take = np.zeros(len(seg), bool)
        if quiet_any.any():
            # The measure over every change on those meters' rows alone (fc: a meter's measure reads
            # its own readings only, so it is the same there as over the whole frame).
            at = np.flatnonzero(quiet_any)
            e_any, lim_any = self._one_phase(df, low, p, seg, self._erratic(d[at], p[at], seg[at], steady=False),
                                             self._limit(df, qr, "erratic_normal_any", rows=at, prm=prm, seg=seg),
                                             qr, False, "erratic_normal_any", at=at, prm=prm)
            with quiet():
                over = np.nan_to_num(e_any / lim_any, nan=-np.inf) > np.nan_to_num(e[at] / limit[at], nan=-np.inf)
            take[at[over]] = True
            e[at[over]], limit[at[over]] = e_any[over], lim_any[over]
        return e, limit, take

    def unexplained(self, df: pd.DataFrame, ctx=None) -> np.ndarray:
        """Readings whose current the reported power does not account for (``d`` more than
        ``off_level`` from the meter's normal level): what a loose clamp's spell looks like
        reading by reading, before and after the rolling measure sees it."""
        seg = df["_seg"].to_numpy()
        # The scoring's pieces when they are this frame's (the core hands the context of the
        # frame it scored), else computed again.
        base = ctx[3] if isinstance(ctx, tuple) and len(ctx) > 3 and ctx[3]["frame"] is df else self._base(df)
        d, *_ = self._judgeable(base, any_load=True)
        level = self._param(df, "level")[seg]
        with quiet():
            return np.abs(d - np.where(np.isfinite(level), level, 0.0)) > self.config.off_level

    # ---------------------------------------------------------------------------- the finding

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        seg, names = _of_frame(df, ctx)
        return self._describe(df, rows, ctx, seg, *_meter_rows(seg, rows), names=names)

    def describe_key(self, df, rows, scores, ctx=None) -> bytes | None:
        """:meth:`_describe_key` of the alert's meter. (A live engine forms every open alert again
        at every step that brings its meter readings; the core describes one from memory while
        this digest is the same: ``core._alert``.)"""
        seg, names = _of_frame(df, ctx)
        return self._describe_key(df, rows, ctx, *_meter_rows(seg, rows), seg=seg, names=names)

    def _describe_key(self, df, rows, ctx, a: int, b: int, seg: np.ndarray | None = None,
                      names: np.ndarray | None = None) -> bytes:
        """A digest of everything :meth:`_describe` reads for ``rows``: the readings from the
        rolling windows' reach before the first to their reach after the last (and how far each
        edge is from the meter's first and last reading, where the medians turn NaN), the rows'
        erratic measure, limit and change flags, and the meter's learned state (its normals; the
        phases, nominal voltage and resolutions the scoring's pieces it slices come from)."""
        e, limit, any_change = ctx[:3]
        h = self._h()
        lo, hi = max(a, int(rows[0]) - h - 1), min(b, int(rows[-1]) + h + 1)
        cols, arrays, ts = _key_columns(df)
        d = hashlib.blake2b(digest_size=20)
        # Each column's slice as it is (contiguous: no copy; a block of them copied ~25 columns
        # of every alert's reach at every step)
        for x in arrays:
            d.update(x[lo:hi])
        d.update(np.ascontiguousarray(ts[lo:hi]).tobytes())
        d.update((np.asarray(rows, np.int64) - lo).tobytes())
        d.update(np.array([hi - lo, min(lo - a, h + 2), min(b - hi, h + 2)], np.int64).tobytes())
        for x in (e, limit, any_change):
            d.update(np.ascontiguousarray(np.asarray(x)[rows]).tobytes())
        seg, names = _of_frame(df, ctx) if seg is None or names is None else (seg, names)
        m = str(names[seg[int(rows[0])]])
        st = self.state_.get(m) or {}
        d.update(repr((m, tuple(st.get(k) for k in _STATE_READ), tuple(cols))).encode())
        return d.digest()

    def _describe(self, df, rows, ctx, seg, a: int, b: int, names: np.ndarray | None = None) -> Finding:
        e, limit, any_change = ctx[:3]
        half = self._h()
        h = 2 * half + 1
        # Everything here is per reading or per meter, and the rolling medians read at ``rows`` reach
        # their window's half either side plus the reading before for the change (they turn NaN only
        # where that reaches past the meter's first or last reading): computed on the alert's meter
        # alone, from that reach before its first reading to that after its last (the rows
        # _describe_key hashes), the same values at a fraction of the cost (a live engine describes
        # an open alert again whenever its meter's newest readings change its key).
        lo, hi = max(a, int(rows[0]) - half - 1), min(b, int(rows[-1]) + half + 1)
        base = ctx[3] if len(ctx) > 3 and isinstance(ctx[3], dict) and ctx[3].get("frame") is df else None
        if base is not None:
            # The scoring's per-reading pieces of this frame (its context), sliced: what _base gives
            # on those rows (per reading, from the meter's learned values), without preparing them.
            d, ok, q, v, i, p = self._judgeable({k: base[k][lo:hi] for k in _BASE_ROWS})
            sg = np.zeros(hi - lo, np.int32)   # one meter
        else:
            one = df if (lo, hi) == (0, len(df)) else prepare(df.iloc[lo:hi])
            d, ok, q, v, i, p = self._parts(one)
            sg = one["_seg"].to_numpy()
        r = rows - lo
        with quiet():
            # The five rolling medians (voltage L1, the three phase currents, power) in one call over
            # the five series end to end, each its own segment: a window never reaches across two
            # (the ends within ``half`` of a segment's edge are NaN, as alone), so every value is the
            # one a call per series gives, for one pass of the comparator network instead of five.
            lv, *per_phase, lp = _rolling_medians(
                [np.abs(_lagged_diff(np.log(np.where(x > 0, x, np.nan)), sg))
                 for x in (v[:, 0], i[:, 0], i[:, 1], i[:, 2], p)], sg, h)
            # (lq) The medians the evidence reads, all at once (one sort of their stack, not ten
            # ``nanmedian`` calls: ~0.1 ms an alert, which a live step pays for each open alert):
            # rows per phase current (3), power, voltage, measure, limit, power, each phase's current.
            med = _nanmedians(np.vstack([*(x[r] for x in per_phase), lp[r], lv[r], e[rows], limit[rows], p[r],
                                         i[r].T]))
            phase_e = [float(med[j]) if np.isfinite(per_phase[j][r]).any() else np.nan for j in range(3)]
        k = int(np.nanargmax(np.where(np.isfinite(phase_e), phase_e, -np.inf))) if np.isfinite(phase_e).any() else 0
        m = str((meter_names(df) if names is None else names)[seg[rows[0]]])
        # The measure that set most of the alert's readings: over steady changes, or over all.
        every = bool(np.mean(any_change[rows]) > 0.5)
        normal = (self.state_.get(m) or {}).get("erratic_normal_any" if every else "erratic_normal")
        med_e, med_limit = float(med[5]), float(med[6])
        others = {f"L{j + 1}": rnd(phase_e[j], 4) for j in range(3) if j != k and np.isfinite(phase_e[j])}
        ch = f"i_l{k + 1}_a"
        with quiet():
            cur = i[r, k]
            ev = {"kind": "loose_ct", "phase": f"L{k + 1}", "channel": ch,
                  "erratic": rnd(med_e, 4), "erratic_max": rnd(float(np.nanmax(e[rows])), 4),
                  "erratic_normal": rnd(normal, 4) if normal is not None else None,
                  "limit": rnd(med_limit, 4),
                  "changes": "all" if every else "steady_power",
                  "phase_current_erratic": rnd(phase_e[k], 4),
                  "power_erratic": rnd(float(med[3]), 4),
                  "voltage_erratic": rnd(float(med[4]), 4),
                  "other_phases_erratic": others,
                  f"{ch}_median": rnd(float(med[8 + k]), 2),
                  f"{ch}_p10": rnd(float(np.nanpercentile(cur, 10)), 2),
                  f"{ch}_p90": rnd(float(np.nanpercentile(cur, 90)), 2),
                  "p_kw_median": rnd(float(med[7]), 3)}
        steady = (f"the power ({ev['power_erratic']:.1%} per reading)" if ev["power_erratic"] is not None
                  else "the power")
        sev = "critical" if med_e >= 3 * med_limit else "warning"
        return Finding(sev, f"{ch} jumps erratically ({med_e:.1%} per reading against what the power implies; "
                            f"normal {(normal or 0):.1%}) while {steady} and the voltage stay steady: loose or "
                            "partly closed CT clamp", ev,
                       "close and seat the CT clamp on site; current-based findings on this meter are paused meanwhile")


#: What :meth:`LooseCT._score` reads of a meter's state (through :class:`_Params`), each with its value
#: for a meter without it.
_SCORE_READ = {"phases": 1.0, "level": np.nan, "erratic_normal": np.nan, "erratic_normal_any": np.nan,
               "erratic_switch": np.nan}


class _Params(dict):
    """The learned values :meth:`LooseCT._score` reads, per segment code of ``df``, each looked up
    once a scoring (``_param``; was once per use: ~10 state look-ups over every meter)."""

    def __init__(self, det: "LooseCT", df: pd.DataFrame, names: np.ndarray | None = None):
        super().__init__()
        self._det, self._df = det, df
        self.names = meter_names(df) if names is None else names   # (lx: taken once, not at each look-up)

    def __missing__(self, key: str) -> np.ndarray:
        # (= ``self._det._param(self._df, key, ...)``, whose names are ``meter_names(df)``)
        v = self[key] = state_nums(self._det.state_, self.names, key, _SCORE_READ.get(key, np.nan))
        return v


#: Rows of a frame above which no carry is kept (:func:`_carried_score`: a batch judgement of a long
#: history would hold ~65 B a row of it on the detector for nothing; ~2 MB for a 200-meter fast tail).
CARRY_MAX_ROWS = 250_000
#: Share of a frame's rows to score above which it is scored whole (the carry's bookkeeping then costs
#: more than it saves).
CARRY_SCORE_MAX = 0.5


def _carried_score(det: LooseCT, df: pd.DataFrame, seg: np.ndarray, d: np.ndarray, q: np.ndarray, p: np.ndarray,
                   prm: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`LooseCT._score_on` over the frame, keeping the readings' results of the detector's last
    scoring where nothing that enters them changed (lq, issue 16: a live step's frame is the last
    one with a reading a meter more, and its whole-frame scoring was ~8 ms of a 200-meter fast step).

    A reading's measure, limit and flag are a function of ``d``, ``q``, ``p`` over its window (its
    meter's readings from ``h`` + 1 before to ``h`` after it), of whether that window reaches the
    meter's first or last reading in the frame (its place clamped to ``h`` + 1 from the start and
    ``h`` from the end), and of the meter's learned values (:data:`_SCORE_READ`) and the config. A
    reading of the last frame is matched by meter and time; its result is kept when every reading of
    its window is matched, follows the one before it as in the last frame (no reading inserted or
    lost), has the same ``d``, ``q`` and ``p`` bit for bit and the same learned values, and its
    clamped places are the same. The others are scored: each run of their windows' readings on one
    meter as its own segment (:meth:`LooseCT._score_on` on those rows alone; a window inside the run
    gives the values it gives in the whole frame, and a run ends at its meter's edge only where the
    meter does). The carry is the detector's (``_score_carry``), not checkpointed (``__getstate__``):
    a restored engine's first scoring is whole and makes it again."""
    h = det._h()
    n = len(seg)
    names = [str(m) for m in (prm.names if isinstance(prm, _Params) else meter_names(df))]
    pm = np.stack([np.asarray(prm[k], float) for k in _SCORE_READ]) if names else np.zeros((len(_SCORE_READ), 0))
    t = np.ascontiguousarray(df["_t"].to_numpy(float))
    seg = np.asarray(seg, np.int64)
    starts, ends = seg_bounds(seg)
    lens = ends - starts
    pos = np.arange(n) - np.repeat(starts, lens)
    pos_c = np.minimum(pos, h + 1).astype(np.int32)
    left_c = np.minimum(np.repeat(lens, lens) - pos - 1, h).astype(np.int32)
    with quiet():
        tus = np.round(t * 1e6).astype(np.int64) if n else np.zeros(0, np.int64)
    d, q, p = (np.ascontiguousarray(x, float) for x in (d, q, p))
    carry = det.__dict__.get("_score_carry")
    need = j = None
    if carry is not None and carry["config"] is det.config and n:
        need, j = _changed(carry, names, seg, starts, pos, tus, d, q, p, pm, pos_c, left_c, h)
    if need is None or need.mean() > CARRY_SCORE_MAX:
        e, limit, take = det._score_on(df, seg, d, q, p, prm)
    else:
        e, limit, take = carry["e"][j], carry["limit"][j], carry["take"][j]
        if need.any():
            # The rows the readings to score read: h + 1 before each to h after it, in runs on one meter.
            cn = np.concatenate([[0], np.cumsum(need)])
            x = np.arange(n)
            use = cn[np.minimum(x + h + 2, n)] - cn[np.maximum(x - h, 0)] > 0
            idx = np.flatnonzero(use)
            new_run = np.ones(len(idx), bool)
            new_run[1:] = (np.diff(idx) != 1) | (seg[idx[1:]] != seg[idx[:-1]])
            run = np.cumsum(new_run) - 1
            of = seg[idx[new_run]]
            e_r, lim_r, take_r = det._score_on(df, run, d[idx], q[idx], p[idx],
                                               {k: pm[c][of] for c, k in enumerate(_SCORE_READ)})
            w = need[idx]
            e[idx[w]], limit[idx[w]], take[idx[w]] = e_r[w], lim_r[w], take_r[w]
    lo = int(tus.min()) if n else 0
    span = int(tus.max()) - lo + 1 if n else 1
    if 0 < n <= CARRY_MAX_ROWS and (len(names) + 1) * span < 2 ** 62:
        det.__dict__["_score_carry"] = {
            "config": det.config, "code_of": {m: k for k, m in enumerate(names)}, "seg": seg,
            "key": (seg * span + (tus - lo), lo, span), "d": d, "q": q, "p": p.copy(),
            "pm": pm, "pos_c": pos_c, "left_c": left_c, "e": e.copy(), "limit": limit.copy(), "take": take.copy()}
        # (``d`` and ``q`` are this scoring's own arrays, read by nothing after it; the frame's power
        # and the results the caller is handed are copied: a write into them must not change what
        # the next scoring compares with or keeps)
    else:
        det.__dict__.pop("_score_carry", None)
    return e, limit, take


def _changed(carry: dict, names: list[str], seg: np.ndarray, starts: np.ndarray, pos: np.ndarray,
             tus: np.ndarray, d: np.ndarray, q: np.ndarray, p: np.ndarray, pm: np.ndarray, pos_c: np.ndarray,
             left_c: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(rows to score, each row's row in the carry's frame) for :func:`_carried_score`. A meter's
    readings are taken to follow on from the last frame's in order: its first reading is looked up
    there (meter code, then time in µs: the carry's ``key``) and the rest are the rows after it. The
    results read no time: a row is kept by its values, its window's and its places (a reading
    inserted or lost before it shifts the rows compared, whose values then differ)."""
    n = len(seg)
    oc = np.array([carry["code_of"].get(m, -1) for m in names], np.int64)
    # Meters of the last frame whose learned values are the same, bit for bit.
    same_m = oc >= 0
    if same_m.any():
        a, b = pm[:, same_m], carry["pm"][:, oc[same_m]]
        same_m[same_m] = (a.view(np.int64) == b.view(np.int64)).all(axis=0)
    key, lo, span = carry["key"]
    first = seg[starts]
    want = oc[first] * span + np.clip(tus[starts] - lo, 0, span - 1)
    j0 = np.where(oc[first] >= 0, np.searchsorted(key, want), 0)
    j = np.minimum(j0[np.repeat(np.arange(len(starts)), np.diff(np.append(starts, n)))] + pos, len(key) - 1)
    ok = (carry["seg"][j] == oc[seg]) & same_m[seg]   # (no time: the results read none; the key only aligns)
    for x, y in ((d, carry["d"]), (q, carry["q"]), (p, carry["p"])):
        ok &= x.view(np.int64) == y.view(np.int64)[j]
    cs = np.concatenate([[0], np.cumsum(~ok)])
    x = np.arange(n)
    window_bad = cs[np.minimum(x + h + 1, n)] - cs[np.maximum(x - h - 1, 0)] > 0
    return window_bad | (pos_c != carry["pos_c"][j]) | (left_c != carry["left_c"][j]), j


def _nanmedians(m: np.ndarray) -> np.ndarray:
    """Per row of the 2-D ``m``: ``np.nanmedian`` of it, the same floats (lq): its numbers sorted,
    the middle one, or the two middle ones added as ``np.mean`` adds two (``lo + (0.0 + hi)``: the
    reduction starts from the first and adds the rest to 0.0) and halved. The values at the middle
    places of a sort are those of NumPy's partition but for the sign of a zero (-0.0 and 0.0 compare
    equal, and the two algorithms may leave them in another order): with a -0.0 in ``m``, a
    ``nanmedian`` per row. NaN (of either sign: ``rnd`` and the message read none) for a row
    without a number."""
    z = m == 0
    if z.any() and np.signbit(m[z]).any():
        with quiet():
            return np.array([np.nanmedian(x) for x in m])
    n = np.count_nonzero(~np.isnan(m), axis=1)
    if not m.shape[1]:
        return np.full(len(m), np.nan)
    s = np.sort(m, axis=1)
    j = np.arange(len(m))
    lo, hi = s[j, np.maximum(n - 1, 0) // 2], s[j, np.minimum(n // 2, m.shape[1] - 1)]
    with quiet():
        out = np.where(n % 2 == 1, lo, (lo + (0.0 + hi)) / 2)
    out[n == 0] = np.nan
    return out


#: The per-reading arrays of :meth:`LooseCT._base` (what :meth:`LooseCT._judgeable` reads).
_BASE_ROWS = ("v", "i", "p", "known", "i_implied", "ratio", "q")


def _of_frame(df: pd.DataFrame, ctx) -> tuple[np.ndarray, np.ndarray]:
    """(segment codes, meter names by code) of ``df``: from the scoring's context when it is this
    frame's (its ``_base``, which :meth:`LooseCT._score` gives both; lx, issue 16: taking the column
    and the names out of the frame again, ~5 pandas look-ups, was ~60 us of each of the ~11 alerts
    a 200-meter fast step describes or keys), else from the frame."""
    base = ctx[3] if isinstance(ctx, tuple) and len(ctx) > 3 and isinstance(ctx[3], dict) else None
    if base is not None and base.get("frame") is df and "names" in base:
        return base["seg"], base["names"]
    return df["_seg"].to_numpy(), meter_names(df)


def _meter_rows(seg: np.ndarray, rows: np.ndarray) -> tuple[int, int]:
    """The row range of ``rows``' meter in a prepared frame (sorted by meter: two searches, not
    the frame's every bound)."""
    k = seg[rows[0]]
    return int(np.searchsorted(seg, k, side="left")), int(np.searchsorted(seg, k, side="right"))


#: What :meth:`LooseCT._describe` reads of a meter's state (its normals, and through :meth:`LooseCT._base`
#: the phases, nominal voltage and resolutions).
_STATE_READ = ("erratic_normal", "erratic_normal_any", "phases", "nominal_v", "res_i", "res_p")


def _key_columns(df: pd.DataFrame) -> tuple[list, list[np.ndarray], np.ndarray]:
    """The columns :meth:`LooseCT._describe_key` hashes (every numeric one :meth:`LooseCT._describe`
    may read: the channels of :meth:`LooseCT.reads`, and ``_t`` and ``_dt``; as float64) and the
    times (datetime64[us]), taken once per frame (its :func:`cache`): a live engine describes
    several open alerts of one frame at every step, and taking ~25 columns out of the frame again
    for each cost ~0.5 ms an alert. (fc: was every numeric column but ``_seg`` and ``_n``, 16 in the
    stream's loose-CT group, whose other channels no reading of the description reads; hashing
    every open alert's reach of them was ~1 ms of a fast step at 200 meters.)"""
    memo = cache(df)
    got = memo.get("loose_ct_key_columns")
    if got is None:
        read = {*LooseCT.requires, *LooseCT.reads_also, "_t", "_dt"}
        cols = [c for c in df.columns if c in read and pd.api.types.is_numeric_dtype(df[c].dtype)]
        got = memo["loose_ct_key_columns"] = (cols, [np.ascontiguousarray(df[c].to_numpy(float)) for c in cols],
                                              df["ts"].to_numpy("datetime64[us]"))
    return got
