"""Sensor (CT) fault: a current channel reads ~0 while voltage is present and the load is
evidently there — the neutral still carries it (single phase) or the other phases do and this
phase normally carries its share (three phase): open CT, broken secondary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, Scored, quiet, rnd
from wattwatch.detect.frame import meter_names
from wattwatch.detect.rules._common import (OPEN_CT_MIN_LOAD_A, OPEN_CT_MIN_SHARE, OPEN_CT_VOLTAGE_FRACTION,
                                            OPEN_CT_ZERO_A, nominal_voltage, open_ct, phase_shares, phases)


@dataclass(frozen=True)
class SensorFaultConfig(DetectorConfig):
    zero_a: float = OPEN_CT_ZERO_A
    min_load_a: float = OPEN_CT_MIN_LOAD_A
    min_share: float = OPEN_CT_MIN_SHARE
    voltage_fraction: float = OPEN_CT_VOLTAGE_FRACTION
    post: PostRule = PostRule(min_duration_s=900.0, min_readings=3, merge_gap_s=3600.0)


class SensorFault(Detector):
    name = "sensor_fault"
    code = "SENSOR_FAULT"
    config_cls = SensorFaultConfig
    requires = ("i_l1_a",)
    reads_also = (*PHASE_CHANNELS, "i_n_a")  # phases and the neutral current
    judges = ("current", "current_level")  # current_level: the level a reading holds (frozen_readings)
    # An open CT under-registers: the consumption "drop" over its span is this fault. At night the
    # dead channel reads zero with no load to prove it: those readings are explained too, within
    # a day of one of its alerts.
    explains = (Explains(("consumption",), extra="dead_channel", within_s=86400.0),)

    def _fit(self, df: pd.DataFrame) -> dict:
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        shares = phase_shares(df, n_seg)
        nom = nominal_voltage(df, n_seg)
        return {m: {"share": [float(x) for x in shares[j]], "nominal_v": float(nom[j])}
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
        nom, share = self._context(df)
        ct = open_ct(df, nom, share, cfg.zero_a, cfg.min_load_a, cfg.min_share, cfg.voltage_fraction)
        dead, unknown = ct["dead"], ct["unknown"]
        idx = np.where(dead.any(axis=1), np.argmax(dead, axis=1), -1)
        with quiet():
            score = np.where(idx >= 0, ct["load"] / cfg.min_load_a, 0.0)
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
