"""Thermal drift: the device runs hotter than its own load-to-temperature model predicts.

Per meter, on a regular grid (default 5 min), temperature is modelled as a first-order thermal
lag of the load heating (I², the most loaded phase; readings that caught a motor start left out) plus a daily ambient cycle:

    T ≈ c0 + c1 · EMA_τ(I² / I_ref²) + c2 · sin(2πh/24) + c3 · cos(2πh/24)

τ is chosen per meter from candidates 15 min to 4.5 h (steps of about 1.5×) by least squares on the
profiling period, all meters at once through batched normal equations. Transformer rooms, switchgear
and large cabinets have time constants of 2-5 h: with candidates stopping at 2 h, an enclosure of
4-4.5 h stayed 7-14 °C above the prediction for hours after a level shift ended (the device still
hot, the 2-h lag cooled; robustness sweep with enclosure constants x3, q21). The grid must be fine: where
the load falls away at once (closing time, a feeder outage) the prediction cools with the model's
τ and the device with its own; with candidates 15, 45 and 120 min a device of τ 85 min got 45 and
stayed 7-10 °C above the prediction for an hour every evening after a level shift raised its load. A reading is anomalous when the
measured temperature exceeds the prediction by more than max(5 °C, 5 σ of the meter's residual,
40 % of the load-driven rise the model predicts, whose error grows as load leaves the profiled range,
and ``sigma_k`` x the heating coefficient's standard error x how far the load heating is from its
profiled mean): heat the load does not explain (a loose connection, a blocked air path, a failing fan).

**A week whose load hardly varied cannot vouch for twice the load.** Where the profiled load stayed
in a narrow band, and followed the time of day as the ambient does, the heating coefficient and the
lag are poorly determined: on the real-shape fleet (seed 43) a school profiled at 30-40 A got half
its true heating and a 15-min lag for a 75-min enclosure, and when its term doubled the load (I^2
fourfold) it read 5.5 °C as unexplained heat, 3 alerts. The fit keeps the coefficient's standard
error (least squares, widened by (1 + rho) / (1 - rho) for the residuals' one-reading autocorrelation
rho, taken from its value at 15 minutes whatever the cadence (q8): ambient drift makes neighbouring
readings one piece of evidence) and the profiled mean heating;
the limit counts ``sigma_k`` x that error x the distance of the heating from that mean, with the
fitted lag and with the slowest candidate lag (a lag chosen too quick has cooled while the
enclosure still holds the last hours' heat). On the fleet's thermal-drift meters the error is
0.1-0.25 and their heating stays within 1.5 of the profiled mean: their limit is unchanged.

The grid follows the meter's cadence (never finer than its readings); the lag has finite memory
(``memory_taus`` time constants of the slowest candidate, 4.5 by default: 20 h, the 10 time
constants of a 2-h lag it always had; of the 4.5-h lag, e^-4.5 = 1.1 % of the heating of 20 h ago
is forgotten, 0.2 °C of a 20 °C rise)
and a gap in the data is bridged from the last value for as long, so a reading's score depends
only on the readings of that reach. At cadences of 6 h and more a daily cycle cannot be told
from the load's heating and the rule does not judge."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Finding, PostRule, Scored, meter_of, quiet, rnd
from wattwatch.detect.frame import bounded_fill, cache, ema_rows, grid_arrays, meter_names, seg_median, seg_quantile, window_sum
from wattwatch.detect.rules._common import FALLBACK_NOMINAL_V, inrush, max_current, nominal_voltage, open_ct, phase_shares
from wattwatch.detect.rules.outage import COOLING_LAG_S


INRUSH_REACH = 3  # readings per side a motor start is recognised against (``inrush``'s ``reach``)
RHO_LAG_S = 900.0  # the time lag the residuals' autocorrelation is measured at (``_heat_se``)


def _kept(memo: dict | None, key, make):
    """``memo[key]``, made by ``make()`` the first time; without a memo, made every time."""
    if memo is None:
        return make()
    if key not in memo:
        memo[key] = make()
    return memo[key]


@dataclass(frozen=True)
class ThermalDriftConfig(DetectorConfig):
    bin_s: float = 300.0
    taus_min: tuple[float, ...] = (15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 270.0)
    min_excess_c: float = 5.0
    sigma_k: float = 5.0
    rel_rise: float = 0.4
    memory_taus: float = 4.5  # of the slowest candidate: 20 h (10 x 2 h before 180 and 270 were tried)
    max_cadence_s: float = 6 * 3600.0

    def __post_init__(self):
        # A list from JSON or TOML is the same setting (and a config must stay hashable).
        object.__setattr__(self, "taus_min", tuple(float(x) for x in self.taus_min))
        if not self.taus_min or min(self.taus_min) <= 0:
            raise ValueError("taus_min: give at least one time constant > 0 (minutes)")
    post: PostRule = PostRule(min_duration_s=3600.0, min_readings=6, merge_gap_s=2 * 3600.0)


class ThermalDrift(Detector):
    name = "thermal_drift"
    code = "WARN_THERM_DRIFT"
    config_cls = ThermalDriftConfig
    requires = ("temp_c", "i_l1_a")
    reads_also = (*PHASE_CHANNELS, "i_n_a", "pf")  # the largest phase current (the neutral's under an open CT); motor starts
    judges = ("temperature",)
    # Motor starts are recognised against three neighbours either side.
    lookback_n = INRUSH_REACH
    lookahead_n = INRUSH_REACH

    def _bin(self, cadence_s: np.ndarray) -> np.ndarray:
        """Grid step per meter: the configured bin, or the meter's cadence when coarser (rounded
        up to a whole number of bins so bins stay aligned to the clock)."""
        b = self.config.bin_s
        with quiet():
            return np.where(np.isfinite(cadence_s) & (cadence_s > b), np.ceil(cadence_s / b - 0.05) * b, b)

    def _memory_bins(self, bin_s: np.ndarray) -> np.ndarray:
        return np.ceil(self.config.memory_taus * max(self.config.taus_min) * 60 / bin_s).astype(np.int64)

    def lookback_s(self, cadence_s):
        b = self._bin(cadence_s)
        return (2 * self._memory_bins(b) + 1) * b  # the lag's memory plus the gap it may bridge

    def lookahead_s(self, cadence_s):
        return self._bin(cadence_s)  # a bin's mean changes until its last reading is in

    def cadence_note(self, cadence_s: float) -> str | None:
        if cadence_s >= self.config.max_cadence_s:
            return (f"{self.name}: not judged at {cadence_s:.0f} s cadence: with fewer than four readings a day "
                    "the daily ambient cycle cannot be told from the load's heating")
        if cadence_s > 60 * min(self.config.taus_min):
            return (f"{self.name}: at {cadence_s:.0f} s cadence the enclosure's thermal lag (time constants "
                    f"{min(self.config.taus_min):g}-{max(self.config.taus_min):g} min) is not resolved; the "
                    "temperature is judged against its load with the lag the readings allow")
        return None

    @staticmethod
    def _current(df: pd.DataFrame, nominal_v: np.ndarray, share: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(the current that heats the enclosure, the readings where it cannot be known) per
        reading, given each meter's nominal voltage and normal phase shares (per segment code).

        The enclosure is heated by the current that flows, not by the one a broken CT reports. A
        channel reading ~0 A with its voltage present (the open-CT test sensor_fault alerts on,
        :func:`open_ct`): on a single-phase meter the neutral carries the same current as the
        phase, so the neutral is the load (seed 601 M-00011: i_l1 0 A, the neutral 9.6 A, and
        the model fed 0 A read the device's warmth as 7 C of unexplained heat); without a
        neutral reading the load cannot be told from none, and the reported ~0 A is taken
        (as a meter at no load: judged, rq5b). On a three-phase meter a phase that
        normally carries its share reads ~0 while the others carry load (seed 607 M-00002, L3
        open): what it carries is not known (the phases need not be balanced, and a missing
        phase may be the most loaded one). Those readings are not judged, and neither is the
        cooling lag after them (``_score``): the model's heating is bridged over them from the
        last known reading, and the device may hold heat it did not see."""
        seg = df["_seg"].to_numpy()
        nom = np.where(np.isfinite(nominal_v), nominal_v, FALLBACK_NOMINAL_V)[seg]
        ct = open_ct(df, nom, share[seg])
        three = ct["three"]
        single_zero = ct["zero"][:, 0] & ~three
        i_n = ct["load"]   # on a single-phase reading: its neutral current
        # Without a neutral reading the reported ~0 A stands: it cannot be told from no load (a
        # home empty at night, a pump off), and not judging every such reading (and 2 h after)
        # would leave the rule blind on exactly the readings where heat is least explained.
        cur = np.where(single_zero & np.isfinite(i_n), i_n, max_current(df))
        unknown = (ct["dead"] & three[:, None]).any(axis=1)
        return np.where(unknown, np.nan, cur), unknown

    def _lags(self, df: pd.DataFrame, current: np.ndarray, i_ref: np.ndarray, taus: np.ndarray, bin_m: np.ndarray,
              memo: dict | None = None) -> np.ndarray:
        """EMA_τ of the normalised load heating (I² / I_ref², ``current``: the most loaded phase's,
        see :meth:`_current`) at each reading, for each meter's τ (``taus``, minutes, per segment
        code) on its grid ``bin_m``.
        ``memo``: shared by calls on the same frame, ``i_ref`` and ``bin_m`` (``_fit`` trying each
        τ): the heating and each meter set's grid, which do not depend on τ, are made once."""
        seg = df["_seg"].to_numpy()

        def heating():
            # A motor start caught in a reading lasted seconds, not the interval: it did not heat
            # the enclosure (the bin takes its neighbours' heating instead).
            with quiet():
                # Three nearest readings per side: a run of three starts is left out whole (with
                # two, its first and last stayed in; 20 starts a day put one such run in a week's
                # profile, one reading of 4.5x the current and 21x the heating that pulled the
                # fitted heating coefficient to 7 for a true 19).
                return (np.where(inrush(df, reach=INRUSH_REACH), np.nan, current) / i_ref[seg]) ** 2

        x = _kept(memo, "x", heating)
        out = np.full(len(df), np.nan)
        keys = np.stack([bin_m, taus], axis=1)
        for b, tau in np.unique(keys[np.isfinite(keys).all(axis=1)], axis=0):
            meters = (bin_m == b) & (taus == tau)

            def gridded(meters=meters, b=b):
                rows = meters[seg]
                sub_seg = np.searchsorted(np.flatnonzero(meters), seg[rows])
                m, cell, _ = grid_arrays(sub_seg, df["_t"].to_numpy()[rows], x[rows], float(b))
                mem = int(self._memory_bins(np.array([b]))[0])
                return (rows, m, cell, mem, *(bounded_fill(m, mem) if m.size else (None, None)))

            rows, m, cell, mem, filled, near = _kept(memo, (float(b), meters.tobytes()), gridded)
            if not m.size:
                continue
            alpha = 1 - np.exp(-b / (tau * 60))
            lag = ema_rows(m, alpha, filled=filled, window=mem)
            lag[~near] = np.nan  # no load known within the memory: cannot say what heats it
            out[rows] = lag.ravel()[cell]
        return out

    def _daily(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """sin and cos of the time of day, looked up per minute (1,440 values, not one
        transcendental per reading; a minute is 0.07 % of the daily cycle)."""
        minute = ((df["_t"].to_numpy() % 86400) // 60).astype(np.int32)
        angle = 2 * np.pi * (np.arange(1440) + 0.5) / 1440
        return np.sin(angle)[minute], np.cos(angle)[minute]

    def _solve(self, X: list, y: np.ndarray, seg: np.ndarray, n_seg: int, ok: np.ndarray,
               memo: dict | None = None, fixed: tuple[int, ...] = ()) -> np.ndarray:
        """Per-meter least squares through batched normal equations (ridge-stabilised).

        ``fixed``: the columns of ``X`` that are the same array in every call sharing ``memo``;
        their sums with each other and with ``y`` are kept in ``memo`` and reused while ``ok`` is
        the same mask (the same bincounts, so the same numbers: only the τ column changes
        between the time constants ``_fit`` tries)."""
        k = len(X)
        if memo is not None and not (memo.get("ok") is not None and np.array_equal(memo["ok"], ok)):
            memo.clear()
            memo["ok"] = ok
        so = seg[ok]

        Xo = {a: _kept(memo, ("x", a), lambda: X[a][ok]) if a in fixed else X[a][ok] for a in range(k)}
        yo = _kept(memo, "y", lambda: y[ok])

        def sums(key, make):
            total = lambda: np.bincount(so, weights=make(), minlength=n_seg)
            return _kept(memo, key, total) if all(j in fixed for j in key) else total()

        A = np.zeros((n_seg, k, k))
        b = np.zeros((n_seg, k))
        for a in range(k):
            b[:, a] = sums((a,), lambda: Xo[a] * yo)
            for c in range(a, k):
                A[:, a, c] = A[:, c, a] = sums((a, c), lambda: Xo[a] * Xo[c])
        A += 1e-6 * np.eye(k)[None]
        return np.linalg.solve(A, b[..., None])[..., 0]

    def _fit(self, df: pd.DataFrame) -> dict:
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        cad = self._param(df, "cadence_s")
        bin_m = self._bin(cad)
        nom, share = nominal_voltage(df, n_seg), phase_shares(df, n_seg)
        imax, _ = self._current(df, nom, share)
        i_ref = seg_quantile(imax, seg, n_seg, 0.95)
        i_ref = np.where(np.isfinite(i_ref) & (i_ref > 0), i_ref, 1.0)
        y = df["temp_c"].to_numpy(float)
        sin, cos = self._daily(df)
        best_sse = np.full(n_seg, np.inf)
        coef = np.full((n_seg, 4), np.nan)
        tau = np.full(n_seg, np.nan)
        lag = np.full(len(df), np.nan)  # the chosen τ's lag, per reading
        ones, memo, grids = np.ones(len(df)), {}, {}
        kept: dict = {}  # the fitted rows of what does not depend on τ, while they are the same rows
        for tm in self.config.taus_min:
            X = [ones, self._lags(df, imax, i_ref, np.full(n_seg, tm), bin_m, grids), sin, cos]
            ok = np.isfinite(y) & np.isfinite(X[1])
            beta = self._solve(X, y, seg, n_seg, ok, memo, fixed=(0, 2, 3))
            if not (kept and np.array_equal(kept["ok"], ok)):
                so = seg[ok]
                # Rows in meter order (a prepared frame): a meter's coefficient is repeated over
                # its rows, the values fancy indexing by ``so`` gives, at a fraction of its cost.
                counts = np.bincount(so, minlength=n_seg) if len(so) and (np.diff(so) >= 0).all() else None
                kept = {"ok": ok, "seg": so, "y": y[ok], "x": {j: X[j][ok] for j in (0, 2, 3)}, "counts": counts}
            so, counts = kept["seg"], kept["counts"]
            # The residuals of the fitted rows only (the others are not summed), each term's
            # coefficient taken per row from its column: the numbers of y - sum(x * beta[seg, j]).
            xo = [kept["x"][0], X[1][ok], kept["x"][2], kept["x"][3]]
            per_row = (lambda c: c[so]) if counts is None else (lambda c: np.repeat(c, counts))  # noqa: E731
            r = kept["y"] - sum(x * per_row(beta[:, j]) for j, x in enumerate(xo))
            sse = np.bincount(so, weights=r ** 2, minlength=n_seg)
            better = sse < best_sse
            best_sse[better] = sse[better]
            coef[better] = beta[better]
            tau[better] = tm
            if better.any():
                rows = better[seg]
                lag[rows] = X[1][rows]
        r = y - (coef[seg, 0] + coef[seg, 1] * lag + coef[seg, 2] * sin + coef[seg, 3] * cos)
        ok = np.isfinite(r)
        med = seg_median(r, seg, n_seg, ok)
        sigma = 1.4826 * seg_median(np.abs(r - med[seg]), seg, n_seg, ok)
        has = (np.bincount(seg[np.isfinite(y)], minlength=n_seg) > 10) & (cad < self.config.max_cadence_s)
        heat_se, lag_mean = self._heat_se(seg, n_seg, ok, r, sigma, [ones, lag, sin, cos], cad)
        slow = self._lags(df, imax, i_ref, np.full(n_seg, max(self.config.taus_min)), bin_m, grids)
        oks = ok & np.isfinite(slow)
        with quiet():
            slow_mean = np.bincount(seg[oks], weights=slow[oks], minlength=n_seg) / np.bincount(seg[oks], minlength=n_seg)
        return {m: ({"coef": coef[j], "tau_min": tau[j], "sigma_c": sigma[j], "i_ref_a": i_ref[j], "bin_s": bin_m[j],
                     "heat_se": heat_se[j], "lag_mean": lag_mean[j], "slow_lag_mean": slow_mean[j],
                     "nominal_v": float(nom[j]), "share": [float(x) for x in share[j]]}
                    if has[j] else {"coef": None})
                for j, m in enumerate(meter_names(df))}

    @staticmethod
    def _heat_se(seg: np.ndarray, n_seg: int, ok: np.ndarray, r: np.ndarray, sigma: np.ndarray,
                 X: list, cad: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Per meter: the standard error of the heating coefficient (``X[1]``'s) and the mean lag
        of the profiling period. The error is what least squares says (residual spread x the
        coefficient's element of the inverse normal matrix), widened for the residuals' lag-1
        autocorrelation rho by (1 + rho) / (1 - rho) (ambient drift makes neighbouring readings
        one piece of evidence, not two). Large where the profiled load hardly varied, or varied
        only with the time of day, which the daily terms also explain.

        With ``cad`` (per meter, s) the correlation is measured at about :data:`RHO_LAG_S` (the
        readings ``k`` apart nearest to it, at least 1) and taken back to one reading as
        ``rho_k ** (1 / k)``: the same week says as much about the heating read every 5 minutes as
        every 15. Measured at one reading, the sensor's own noise (uncorrelated) takes the same
        share off rho at every cadence while the drift's correlation nears 1 as readings come
        closer, so a 5-minute meter's error came out ~0.6 of the same week's at 15 minutes (q8:
        seed 811's school, heat_se 0.376 against 0.642; now 0.614) and its limit too tight once its
        load doubled: six false alerts at 5 minutes, none at 15. At 15 minutes and coarser ``k`` is
        1: as before."""
        k = len(X)
        so = seg[ok]
        A = np.zeros((n_seg, k, k))
        xo = [x[ok] for x in X]  # each column's fitted rows taken once (not once per pair)
        for a in range(k):
            for c in range(a, k):
                A[:, a, c] = A[:, c, a] = np.bincount(so, weights=xo[a] * xo[c], minlength=n_seg)
        A += 1e-6 * np.eye(k)[None]
        with quiet():
            inv11 = np.linalg.inv(A)[:, 1, 1]
            rr = np.where(ok, r, 0.0)
            den = np.bincount(so, weights=rr[ok] ** 2, minlength=n_seg)
            # The autocorrelation at ``k`` readings, ``k`` per meter: about RHO_LAG_S of time (an
            # unknown, zero or infinite cadence: one reading).
            c_ok = np.isfinite(cad) & (cad > 0) if cad is not None else np.zeros(n_seg, bool)
            kk = np.ones(n_seg, np.int64)
            if c_ok.any():
                kk[c_ok] = np.maximum(1, np.round(RHO_LAG_S / cad[c_ok])).astype(np.int64)

            def autocorr(j: int, on: np.ndarray) -> np.ndarray:
                pair = ok[j:] & ok[:-j] & (seg[j:] == seg[:-j]) & on[seg[j:]]
                num = np.bincount(seg[j:][pair], weights=rr[j:][pair] * rr[:-j][pair], minlength=n_seg)
                return np.clip(np.nan_to_num(num / den), 0.0, 0.99)

            rho_1 = autocorr(1, np.ones(n_seg, bool))
            rho_k = rho_1.copy()
            for j in np.unique(kk[kk > 1]):  # one pass per cadence in the frame, all its meters at once
                rho_k = np.where(kk == j, autocorr(int(j), kk == j), rho_k)
            # One reading's correlation, as a lag-1 process with that correlation at ``k`` gives.
            # Clipped at the lag it was measured at (0.99 there, as at one reading of 15 minutes),
            # so the widening keeps growing with ``k``: clipped at 0.99 at one reading, a 1-second
            # meter's drift of 2 hours' correlation time (0.88 at 15 minutes, 0.99986 a second)
            # had its error cut to ~0.12 of the same week's at 15 minutes, a 1-minute meter's at
            # 0.95 to 0.58. Never under the one-reading correlation itself: a fit too short for
            # pairs ``k`` apart, or residuals whose correlation has died (or turned) by 15
            # minutes, keep the widening measured at one reading, as before q8 (rq8).
            rho = np.fmax(rho_1, rho_k ** (1.0 / kk))
            se = sigma * np.sqrt(np.clip(inv11, 0, None) * (1 + rho) / (1 - rho))
            n = np.bincount(so, minlength=n_seg)
            lag_mean = np.bincount(so, weights=xo[1], minlength=n_seg) / np.where(n > 0, n, np.nan)
        return se, lag_mean

    def _excess(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(measured − predicted, predicted, limit) per reading; NaN for meters without a model."""
        seg = df["_seg"].to_numpy()
        coef = self._param_array(df, "coef", (4,))
        taus = self._param(df, "tau_min")
        i_ref = self._param(df, "i_ref_a", 1.0)
        sig = self._param(df, "sigma_c")[seg]
        bin_m = self._param(df, "bin_s")
        memo: dict = {}
        i_ref = np.where(np.isfinite(i_ref), i_ref, 1.0)
        current, unknown = self._current(df, self._param(df, "nominal_v"), self._param_array(df, "share", (3,)))
        lag = self._lags(df, current, i_ref, taus, bin_m, memo)
        sin, cos = self._daily(df)
        c = [coef[:, k][seg] for k in range(4)]  # each coefficient per reading (as coef[seg, k])
        heat = c[1] * lag
        pred = c[0] + heat + c[2] * sin + c[3] * cos
        # The model's error grows with the heating it extrapolates (load beyond what it saw);
        # fmax: an unknown sigma or rise leaves the other limits in force.
        limit = np.fmax(np.fmax(self.config.min_excess_c, self.config.sigma_k * sig), self.config.rel_rise * np.abs(heat))
        # And with how well the profiling period determined the heating: ``sigma_k`` times the
        # coefficient's standard error times how far the load heating is from its profiled mean,
        # with the fitted lag and with the slowest candidate's (a lag chosen from a week whose
        # load hardly varied can be far too quick: the enclosure still holds the heat of the
        # last hours when the fitted lag has cooled).
        se = self._param(df, "heat_se")
        if np.isfinite(se).any():
            limit = np.fmax(limit, self.config.sigma_k * se[seg] * np.abs(lag - self._param(df, "lag_mean")[seg]))
            # The slow lag stays within the heating's range: only meters where it could raise
            # the limit above its least (``min_excess_c``) need it.
            slow_mean = self._param(df, "slow_lag_mean")
            with quiet():
                x_max = pd.Series(memo["x"]).groupby(seg).max().reindex(range(len(se))).to_numpy() \
                    if "x" in memo else np.full(len(se), np.inf)
                reach = self.config.sigma_k * se * np.fmax(x_max - slow_mean, slow_mean)
            need = np.isfinite(slow_mean) & (reach > self.config.min_excess_c)
            if need.any():
                slow = self._lags(df, current, i_ref, np.where(need, max(self.config.taus_min), np.nan), bin_m, memo)
                limit = np.fmax(limit, self.config.sigma_k * se[seg] * np.abs(slow - slow_mean[seg]))
        excess = df["temp_c"].to_numpy(float) - pred
        if unknown.any():
            # A current that cannot be known, and the cooling lag after it: cannot judge.
            seen = window_sum(unknown.astype(float), df["_t"].to_numpy(), seg, COOLING_LAG_S, memo=cache(df)) > 0
            excess = np.where(seen, np.nan, excess)
        return excess, pred, limit

    def _score(self, df: pd.DataFrame) -> Scored:
        excess, pred, limit = self._excess(df)
        with quiet():
            return Scored(excess / limit, (excess, pred, limit))

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        excess, pred, limit = ctx
        t_meas = df["temp_c"].to_numpy(float)[rows]
        ex = float(np.nanmax(excess[rows]))
        tau = (self.state_.get(meter_of(df, rows[0])) or {}).get("tau_min")
        lim = float(np.nanmedian(limit[rows]))
        return Finding("critical" if ex >= 2 * lim else "warning",
                       f"temperature {np.nanmax(t_meas):.1f} °C, {ex:.1f} °C above what its load explains "
                       f"(limit {lim:.1f} °C)",
                       {"temp_c_max": rnd(float(np.nanmax(t_meas)), 1), "predicted_c": rnd(float(np.nanmedian(pred[rows])), 1),
                        "excess_c": rnd(ex, 2), "limit_c": rnd(lim, 2), "tau_min": rnd(tau if tau is not None else float("nan"), 0)},
                       "inspect connections for overheating (loose lugs), airflow and cooling fans")
