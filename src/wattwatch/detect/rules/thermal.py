"""Thermal drift: the device runs hotter than its own load-to-temperature model predicts.

Per meter, on a regular grid (default 5 min), temperature is modelled as a first-order thermal
lag of the load heating (I², the most loaded phase; readings that caught a motor start left out) plus a daily ambient cycle:

    T ≈ c0 + c1 · EMA_τ(I² / I_ref²) + c2 · sin(2πh/24) + c3 · cos(2πh/24)

τ is chosen per meter from a few candidates (15 min to 2 h) by least squares on the profiling
period, all meters at once through batched normal equations. A reading is anomalous when the
measured temperature exceeds the prediction by more than max(5 °C, 5 σ of the meter's residual,
40 % of the load-driven rise the model predicts, whose error grows as load leaves the profiled range):
heat the load does not explain (a loose connection, a blocked air path, a failing fan)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, rnd
from wattwatch.detect.frame import ema_rows, ffill_rows, grid, meter_names, seg_median, seg_quantile
from wattwatch.detect.rules._common import inrush, max_current


@dataclass(frozen=True)
class ThermalDriftConfig(DetectorConfig):
    bin_s: float = 300.0
    taus_min: tuple[float, ...] = (15.0, 45.0, 120.0)
    min_excess_c: float = 5.0
    sigma_k: float = 5.0
    rel_rise: float = 0.4
    post: PostRule = PostRule(min_duration_s=3600.0, min_readings=6, merge_gap_s=2 * 3600.0)


class ThermalDrift(Detector):
    name = "thermal_drift"
    code = "WARN_THERM_DRIFT"
    config_cls = ThermalDriftConfig
    requires = ("temp_c", "i_l1_a")

    def _lag(self, df: pd.DataFrame, i_ref: np.ndarray, tau_min: float) -> np.ndarray:
        """EMA_τ of the normalised load heating (I² / I_ref², most loaded phase) at each reading."""

        def gridded():
            # A motor start caught in a reading lasted seconds, not the interval: it did not
            # heat the enclosure (the bin takes its neighbours' heating instead).
            x = (np.where(inrush(df), np.nan, max_current(df)) / i_ref[df["_seg"].to_numpy()]) ** 2
            m, cell, _ = grid(df, x, self.config.bin_s)
            return m, ffill_rows(m), cell

        m, filled, cell = self._memo(df, f"grid{hash(i_ref.tobytes())}", gridded)
        alpha = 1 - np.exp(-self.config.bin_s / (tau_min * 60))
        return ema_rows(m, alpha, filled=filled).ravel()[cell] if m.size else np.zeros(0)

    def _daily(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """sin and cos of the time of day, looked up per minute (1,440 values, not one
        transcendental per reading; a minute is 0.07 % of the daily cycle)."""

        def compute():
            minute = ((df["_t"].to_numpy() % 86400) // 60).astype(np.int32)
            angle = 2 * np.pi * (np.arange(1440) + 0.5) / 1440
            return np.sin(angle)[minute], np.cos(angle)[minute]

        return self._memo(df, "daily", compute)

    def _features(self, df: pd.DataFrame, i_ref: np.ndarray, tau_min: float):
        """Design matrix columns (on rows) for one τ: [1, EMA(I²), sin, cos]."""
        sin, cos = self._daily(df)
        return [np.ones(len(df)), self._lag(df, i_ref, tau_min), sin, cos]

    def _solve(self, X: list, y: np.ndarray, seg: np.ndarray, n_seg: int, ok: np.ndarray) -> np.ndarray:
        """Per-meter least squares through batched normal equations (ridge-stabilised)."""
        k = len(X)
        Xo = [x[ok] for x in X]
        so, yo = seg[ok], y[ok]
        A = np.zeros((n_seg, k, k))
        b = np.zeros((n_seg, k))
        for a in range(k):
            b[:, a] = np.bincount(so, weights=Xo[a] * yo, minlength=n_seg)
            for c in range(a, k):
                A[:, a, c] = A[:, c, a] = np.bincount(so, weights=Xo[a] * Xo[c], minlength=n_seg)
        A += 1e-6 * np.eye(k)[None]
        return np.linalg.solve(A, b[..., None])[..., 0]

    def _fit(self, df: pd.DataFrame) -> None:
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        imax = max_current(df)
        i_ref = seg_quantile(imax, seg, n_seg, 0.95)
        i_ref = np.where(np.isfinite(i_ref) & (i_ref > 0), i_ref, 1.0)
        y = df["temp_c"].to_numpy(float)
        best_sse = np.full(n_seg, np.inf)
        coef = np.full((n_seg, 4), np.nan)
        tau = np.full(n_seg, np.nan)
        lag = np.full(len(df), np.nan)  # the chosen τ's lag, per reading
        for tm in self.config.taus_min:
            X = self._features(df, i_ref, tm)
            ok = np.isfinite(y) & np.isfinite(X[1])
            beta = self._solve(X, y, seg, n_seg, ok)
            r = y - sum(x * beta[seg, j] for j, x in enumerate(X))
            sse = np.bincount(seg[ok], weights=r[ok] ** 2, minlength=n_seg)
            better = sse < best_sse
            best_sse[better] = sse[better]
            coef[better] = beta[better]
            tau[better] = tm
            rows = better[seg]
            lag[rows] = X[1][rows]
        sin, cos = self._daily(df)
        r = y - (coef[seg, 0] + coef[seg, 1] * lag + coef[seg, 2] * sin + coef[seg, 3] * cos)
        ok = np.isfinite(r)
        med = seg_median(r, seg, n_seg, ok)
        sigma = 1.4826 * seg_median(np.abs(r - med[seg]), seg, n_seg, ok)
        has = np.bincount(seg[np.isfinite(y)], minlength=n_seg) > 10
        names = meter_names(df)
        self.model_ = {m: (coef[j], tau[j], sigma[j], i_ref[j]) for j, m in enumerate(names) if has[j]}

    def _excess(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(measured − predicted, predicted, limit) per reading; NaN for meters without a model."""
        return self._memo(df, "excess", lambda: self._excess_(df))

    def _excess_(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seg = df["_seg"].to_numpy()
        names = meter_names(df)
        models = [self.model_.get(m) for m in names]
        i_ref = np.array([mm[3] if mm else 1.0 for mm in models])
        taus = np.array([mm[1] if mm else np.nan for mm in models])
        coef = np.array([mm[0] if mm else np.full(4, np.nan) for mm in models]).reshape(-1, 4)
        sig = np.array([mm[2] if mm else np.nan for mm in models])[seg]
        lag = np.full(len(df), np.nan)
        for tm in np.unique(taus[np.isfinite(taus)]):
            rows = (taus == tm)[seg]  # only the meters whose model uses this τ
            lag[rows] = self._lag(df, i_ref, tm)[rows]
        sin, cos = self._daily(df)
        heat = coef[seg, 1] * lag
        pred = coef[seg, 0] + heat + coef[seg, 2] * sin + coef[seg, 3] * cos
        # The model's error grows with the heating it extrapolates (load beyond what it saw);
        # fmax: an unknown sigma or rise leaves the other limits in force.
        limit = np.fmax(np.fmax(self.config.min_excess_c, self.config.sigma_k * sig), self.config.rel_rise * np.abs(heat))
        return df["temp_c"].to_numpy(float) - pred, pred, limit

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        excess, _, limit = self._excess(df)
        return excess / limit

    def describe(self, df, rows, scores) -> Finding:
        excess, pred, limit = self._excess(df)
        t_meas = df["temp_c"].to_numpy(float)[rows]
        ex = float(np.nanmax(excess[rows]))
        m = self.model_.get(meter_names(df)[df["_seg"].to_numpy()[rows[0]]])
        lim = float(np.nanmedian(limit[rows]))
        return Finding("critical" if ex >= 2 * lim else "warning",
                       f"temperature {np.nanmax(t_meas):.1f} °C, {ex:.1f} °C above what its load explains "
                       f"(limit {lim:.1f} °C)",
                       {"temp_c_max": rnd(float(np.nanmax(t_meas)), 1), "predicted_c": rnd(float(np.nanmedian(pred[rows])), 1),
                        "excess_c": rnd(ex, 2), "limit_c": rnd(lim, 2), "tau_min": rnd(m[1] if m else float("nan"), 0)},
                       "inspect connections for overheating (loose lugs), airflow and cooling fans")
