"""Firmware energy drift: the energy register grows differently from the energy the meter's own
power readings imply, beyond the meter's learned calibration, for hours.

Per interval the register increment is compared with the trapezoid of reported power; both are
summed over a sliding window (default 12 h, judged only with at least 1 kWh in it). The calibration ratio and the natural spread of the
windowed ratio are learned per meter while profiling, so a meter that always reads 1 % high, or
a bursty load that power snapshots sample coarsely, does not alarm. A register that drops is a
reset (firmware update, rollover): that interval is left out. Intervals across a lost reading
and frozen stretches (register and power both unchanged) are left out too: the register counted
the lost reading's energy while a trapezoid across the gap cannot, so one lost reading in a
kettle burst read as 6 % over-registration for the whole window."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Scored, quiet, rnd
from wattwatch.detect.frame import cache, meter_names, seg_median, window_sum


@dataclass(frozen=True)
class FirmwareDriftConfig(DetectorConfig):
    window_s: float = 12 * 3600.0
    rel_limit: float = 0.05
    sigma_k: float = 5.0
    min_energy_kwh: float = 1.0
    max_gap_factor: float = 1.5  # an interval longer than this many cadences spans a lost reading
    post: PostRule = PostRule(min_duration_s=3 * 3600.0, min_readings=6, merge_gap_s=2 * 3600.0)


class FirmwareDrift(Detector):
    name = "firmware_drift"
    code = "WARN_FIRMWARE_DRIFT"
    config_cls = FirmwareDriftConfig
    requires = ("e_kwh", "p_kw")
    judges = ("consumption", "register")
    blank_input = ("p_kw", "e_kwh")
    # An interval needs the reading before it, and a frozen stretch's catch-up the one before that.
    lookback_n = 2

    def lookback_s(self, cadence_s):
        return np.full(len(cadence_s), self.config.window_s / 2)

    def lookahead_s(self, cadence_s):
        return np.full(len(cadence_s), self.config.window_s / 2)

    def _intervals(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        seg, dt = df["_seg"].to_numpy(), df["_dt"].to_numpy()
        e, p = df["e_kwh"].to_numpy(float), df["p_kw"].to_numpy(float)
        cadence = self._param(df, "cadence_s")[seg]
        de = np.full(len(df), np.nan)
        ep = np.full(len(df), np.nan)
        de[1:] = e[1:] - e[:-1]
        ep[1:] = (p[1:] + p[:-1]) / 2 * dt[1:] / 3600
        frozen = np.zeros(len(df), bool)
        frozen[1:] = (de[1:] == 0) & (p[1:] == p[:-1]) & (p[1:] != 0)
        # The first interval after a frozen stretch carries the register's catch-up jump.
        frozen[1:] |= frozen[:-1]
        with quiet():
            bad = ~np.isfinite(dt) | (dt > self.config.max_gap_factor * cadence) | (de < 0) | frozen
        bad |= ~np.isfinite(de) | ~np.isfinite(ep)
        de[bad] = np.nan
        ep[bad] = np.nan
        return de, ep

    def _ratio(self, df: pd.DataFrame) -> tuple[np.ndarray, tuple]:
        de, ep = self._intervals(df)
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        w = self.config.window_s
        memo = cache(df)
        DE, EP = window_sum(de, t, seg, w, centred=True, memo=memo), window_sum(ep, t, seg, w, centred=True, memo=memo)
        with quiet():
            return np.where(EP >= self.config.min_energy_kwh, DE / EP, np.nan), (de, ep)

    def _fit(self, df: pd.DataFrame) -> dict:
        r, _ = self._ratio(df)
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        k = seg_median(r, seg, n_seg)
        with quiet():
            rel = r / k[seg]
        spread = 1.4826 * seg_median(np.abs(rel - 1), seg, n_seg)
        return {m: {"calibration": a, "spread": b} for m, a, b in zip(meter_names(df), k, spread)}

    def _limits(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        k = self._param(df, "calibration")
        sp = self._param(df, "spread")
        lim = np.maximum(self.config.rel_limit, np.where(np.isfinite(sp), self.config.sigma_k * sp, 0.0))
        return k, lim

    def _score(self, df: pd.DataFrame) -> Scored:
        seg = df["_seg"].to_numpy()
        k, lim = self._limits(df)
        r, (de, ep) = self._ratio(df)
        with quiet():
            return Scored(np.abs(r / k[seg] - 1) / lim[seg], (r, de, ep, k, lim))

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        seg = df["_seg"].to_numpy()
        r_all, de, ep, k, lim = ctx
        r = r_all[rows]
        reg, ct = float(np.nansum(de[rows])), float(np.nansum(ep[rows]))
        kk = float(k[seg[rows[0]]])
        with quiet():
            dev = float(np.nanmedian(r)) / kk - 1
        direction = "under" if dev < 0 else "over"
        return Finding("warning" if abs(dev) < 0.2 else "critical",
                       f"energy register {direction}-registers by {abs(dev):.0%} against the meter's own power readings "
                       f"({reg:.1f} kWh registered vs {ct * kk:.1f} kWh expected)",
                       {"register_kwh": rnd(reg, 2), "expected_kwh": rnd(ct * kk, 2), "ratio": rnd(float(np.nanmedian(r)), 4),
                        "calibration": rnd(kk, 4), "deviation": rnd(dev, 4), "limit": rnd(float(lim[seg[rows[0]]]), 4)},
                       "read the meter's firmware version and register on site; compare with a reference meter")
