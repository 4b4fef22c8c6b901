"""Sensor (CT) fault: a current channel reads ~0 while voltage is present and the load is
evidently there — the neutral still carries it (single phase) or the other phases do and this
phase normally carries its share (three phase): open CT, broken secondary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, rnd
from wattwatch.detect.frame import meter_names, seg_median
from wattwatch.detect.rules._common import max_current, nominal_voltage, phases


@dataclass(frozen=True)
class SensorFaultConfig(DetectorConfig):
    zero_a: float = 0.05
    min_load_a: float = 0.5
    min_share: float = 0.05
    voltage_fraction: float = 0.5
    post: PostRule = PostRule(min_duration_s=900.0, min_readings=3, merge_gap_s=3600.0)


class SensorFault(Detector):
    name = "sensor_fault"
    code = "SENSOR_FAULT"
    config_cls = SensorFaultConfig
    requires = ("i_l1_a",)
    current_based = True

    def _fit(self, df: pd.DataFrame) -> None:
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        _, i = phases(df)
        total = np.nansum(i, axis=1)
        names = meter_names(df)
        with np.errstate(invalid="ignore", divide="ignore"):
            shares = [seg_median(i[:, k] / total, seg, n_seg, total > 1.0) for k in range(3)]
        self.share_ = {m: tuple(float(s[j]) for s in shares) for j, m in enumerate(names)}
        self.nominal_v_ = dict(zip(names, nominal_voltage(df, n_seg)))

    def _channel_dead(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(score, dead phase index or -1) per reading."""
        return self._memo(df, "dead", lambda: self._channel_dead_(df))

    def _context(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per reading: the meter's learned nominal voltage and normal phase shares."""

        def compute():
            names = meter_names(df)
            seg = df["_seg"].to_numpy()
            nom = self._per_meter(self.nominal_v_, names)
            nom = np.where(np.isfinite(nom), nom, 230.0)[seg]
            share = np.array([self.share_.get(m, (np.nan,) * 3) for m in names], float).reshape(-1, 3)[seg]
            return nom, share

        return self._memo(df, "context", compute)

    def _channel_dead_(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        v, i = phases(df)
        i_n = df["i_n_a"].to_numpy(float)
        nom, share = self._context(df)
        three = np.isfinite(i).all(axis=1)
        v_ok = v >= cfg.voltage_fraction * nom[:, None]
        zero = (i < cfg.zero_a) & v_ok
        imax = max_current(df)
        # Evidence of load: the neutral (one phase) or the other phases (three phase).
        load_1 = np.where(np.isfinite(i_n), i_n, np.nan)
        others = np.where(three[:, None], imax[:, None], np.nan)
        normally_loaded = share >= cfg.min_share
        dead3 = zero & three[:, None] & (others >= cfg.min_load_a) & normally_loaded
        dead1 = zero[:, 0] & ~three & (load_1 >= cfg.min_load_a)
        idx = np.where(dead3.any(axis=1), np.argmax(dead3, axis=1), np.where(dead1, 0, -1))
        evidence_load = np.where(three, imax, load_1)
        score = np.where(idx >= 0, evidence_load / cfg.min_load_a, 0.0)
        # No load in sight: a zero current is not evidence of anything.
        unknown = ~three & ~(load_1 >= cfg.min_load_a) | three & (imax < cfg.min_load_a)
        unknown |= ~v_ok.any(axis=1)
        score = np.where(unknown & (idx < 0), np.nan, score)
        return score, idx

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        return self._channel_dead(df)[0]

    def dead_channel(self, df: pd.DataFrame) -> np.ndarray:
        """Readings where a current channel the meter normally uses reads ~0 with voltage present,
        load or not: what an open CT looks like at night too (used to explain consumption drops)."""
        cfg = self.config
        v, i = phases(df)
        nom, share = self._context(df)
        used = np.isfinite(i) & ((share >= cfg.min_share) | ~np.isfinite(i[:, 1:2]))
        return ((i < cfg.zero_a) & (v >= cfg.voltage_fraction * nom[:, None]) & used).any(axis=1)

    def describe(self, df, rows, scores) -> Finding:
        _, idx = self._channel_dead(df)
        v, i = phases(df)
        k = int(np.bincount(idx[rows][idx[rows] >= 0], minlength=3).argmax()) if (idx[rows] >= 0).any() else 0
        ch = f"i_l{k + 1}_a"
        i_n = df["i_n_a"].to_numpy(float)[rows]
        ev = {"channel": ch, ch: rnd(float(np.nanmedian(i[rows, k])), 3), "v": rnd(float(np.nanmedian(v[rows, k])), 1),
              "i_n_a": rnd(float(np.nanmedian(i_n)), 2) if np.isfinite(i_n).any() else None,
              "other_phases_a": [rnd(float(np.nanmedian(i[rows, j])), 2) for j in range(3) if j != k and np.isfinite(i[rows, j]).any()]}
        load = ev["i_n_a"] if not ev["other_phases_a"] else max(x for x in ev["other_phases_a"] if x is not None)
        return Finding("critical", f"{ch} reads ~0 A with {ev['v']} V present while the load is there "
                                   f"({load} A elsewhere): open or broken CT", ev,
                       "check the CT on site (closed clamp, secondary circuit); energy is under-registered meanwhile")
