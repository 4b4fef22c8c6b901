"""Harmonic noise: current distortion high enough that RMS readings stop being trustworthy.

Current-based rules are blanked on readings above the limit: with distorted, noisy currents a
10 % phase imbalance or a 2 % neutral mismatch is not evidence of anything."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, quiet, rnd
from wattwatch.detect.frame import meter_names, seg_median
from wattwatch.detect.rules._common import max_current


@dataclass(frozen=True)
class HarmonicNoiseConfig(DetectorConfig):
    """``limit_pct``: THD-I above which RMS readings are unreliable; ``min_current_a``: below
    this phase current THD is not meaningful (electronics at idle show huge THD on tiny currents)."""

    limit_pct: float = 30.0
    min_current_a: float = 0.5
    post: PostRule = PostRule(min_duration_s=1800.0, min_readings=3, merge_gap_s=3600.0)


class HarmonicNoise(Detector):
    name = "harmonic_noise"
    code = "STATUS_SIGNAL_NOISY"
    config_cls = HarmonicNoiseConfig
    requires = ("thd_i_pct",)
    reads_also = (*PHASE_CHANNELS,)  # the largest phase current
    # A distorted reading is not evidence for current-based rules (per reading, not per span).
    explains = (Explains(("current",), span="reading"),)

    def _fit(self, df: pd.DataFrame) -> dict:
        seg = df["_seg"].to_numpy()
        typical = seg_median(df["thd_i_pct"].to_numpy(float), seg, int(seg.max()) + 1)
        return {m: {"typical_thd_pct": v} for m, v in zip(meter_names(df), typical)}

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        thd = df["thd_i_pct"].to_numpy(float)
        imax = max_current(df)
        with quiet():
            return np.where(imax >= self.config.min_current_a, thd / self.config.limit_pct, np.nan)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        thd = df["thd_i_pct"].to_numpy()[rows]
        med = float(np.nanmedian(thd))
        sev = "warning" if med >= 1.5 * self.config.limit_pct else "info"
        typical = (self.state_.get(str(meter_names(df)[df["_seg"].to_numpy()[rows[0]]]), {}) or {}).get("typical_thd_pct")
        return Finding(sev, f"current THD {med:.0f} % (limit {self.config.limit_pct:.0f} %): RMS readings unreliable",
                       {"thd_i_pct_median": rnd(med, 1), "thd_i_pct_max": rnd(np.nanmax(thd), 1),
                        "limit_pct": self.config.limit_pct, "typical_thd_pct": rnd(typical, 1)},
                       "check for non-linear loads or a failing filter; current-based rules are paused meanwhile")
