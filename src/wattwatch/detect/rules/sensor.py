"""Sensor (CT) fault: a current channel reads ~0 while voltage is present and the load is
evidently there — the neutral still carries it (single phase) or the other phases do and this
phase normally carries its share (three phase): open CT, broken secondary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, Scored, quiet, rnd
from wattwatch.detect.frame import meter_names, seg_median
from wattwatch.detect.rules._common import max_current, nominal_voltage, phases
from wattwatch.detect.rules.outage import COOLING_LAG_S


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
    reads_also = (*PHASE_CHANNELS, "i_n_a")  # phases and the neutral current
    judges = ("current",)
    # An open CT under-registers: the consumption "drop" over its span is this fault. At night the
    # dead channel reads zero with no load to prove it: those readings are explained too, within
    # a day of one of its alerts.
    explains = (Explains(("consumption",), extra="dead_channel", within_s=86400.0),
                # The enclosure is heated by the current that flows, not by the one a broken CT
                # reports: with a channel reading zero the thermal model's load is gone while the
                # device stays as warm as its real load keeps it, and the difference reads as heat
                # the load does not explain. Its spans explain the temperature, padded by the
                # cooling lag (as an outage's): once the CT reads again the model's lagged heating
                # needs that long to catch up with the heat the device already holds.
                Explains(("temperature",), span="span", pad_s=COOLING_LAG_S))

    def _fit(self, df: pd.DataFrame) -> dict:
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        _, i = phases(df)
        total = np.nansum(i, axis=1)
        with quiet():
            shares = [seg_median(i[:, k] / total, seg, n_seg, total > 1.0) for k in range(3)]
        nom = nominal_voltage(df, n_seg)
        return {m: {"share": [float(sh[j]) for sh in shares], "nominal_v": float(nom[j])}
                for j, m in enumerate(meter_names(df))}

    def _context(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per reading: the meter's learned nominal voltage and normal phase shares."""
        seg = df["_seg"].to_numpy()
        nom = self._param(df, "nominal_v")
        nom = np.where(np.isfinite(nom), nom, 230.0)[seg]
        share = self._param_array(df, "share", (3,))[seg]
        return nom, share

    def _score(self, df: pd.DataFrame) -> Scored:
        cfg = self.config
        v, i = phases(df)
        i_n = df["i_n_a"].to_numpy(float)
        nom, share = self._context(df)
        three = np.isfinite(i).all(axis=1)
        with quiet():
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
        return Scored(np.where(unknown & (idx < 0), np.nan, score), idx)

    def dead_channel(self, df: pd.DataFrame, ctx=None) -> np.ndarray:
        """Readings where a current channel the meter normally uses reads ~0 with voltage present,
        load or not: what an open CT looks like at night too (used to explain consumption drops)."""
        cfg = self.config
        v, i = phases(df)
        nom, share = self._context(df)
        with quiet():
            used = np.isfinite(i) & ((share >= cfg.min_share) | ~np.isfinite(i[:, 1:2]))
            return ((i < cfg.zero_a) & (v >= cfg.voltage_fraction * nom[:, None]) & used).any(axis=1)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        idx = ctx
        v, i = phases(df)
        k = int(np.bincount(idx[rows][idx[rows] >= 0], minlength=3).argmax()) if (idx[rows] >= 0).any() else 0
        ch = f"i_l{k + 1}_a"
        i_n = df["i_n_a"].to_numpy(float)[rows]
        with quiet():
            ev = {"kind": "open_ct", "channel": ch, ch: rnd(float(np.nanmedian(i[rows, k])), 3), "v": rnd(float(np.nanmedian(v[rows, k])), 1),
                  "i_n_a": rnd(float(np.nanmedian(i_n)), 2) if np.isfinite(i_n).any() else None,
                  "other_phases_a": [rnd(float(np.nanmedian(i[rows, j])), 2) for j in range(3)
                                     if j != k and np.isfinite(i[rows, j]).any()]}
        others = [x for x in ev["other_phases_a"] if x is not None]
        load = ev["i_n_a"] if not others else max(others)
        return Finding("critical", f"{ch} reads ~0 A with {ev['v']} V present while the load is there "
                                   f"({load} A elsewhere): open or broken CT", ev,
                       "check the CT on site (closed clamp, secondary circuit); energy is under-registered meanwhile")
