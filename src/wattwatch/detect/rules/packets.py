"""Packet loss: more than 5 % of the expected readings missing in a window (default 6 h).

The cadence is inferred per meter (median gap), so 1-minute and 15-minute meters are judged on
their own terms; timestamp jitter does not matter (readings are counted, not aligned to a grid)
and duplicates are merged before detection. The window is centred and truncated at the meter's
first and last reading, so the start and end of the data are not mistaken for loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, rnd
from wattwatch.detect.frame import meter_names, seg_bounds, seg_median, window_sum


@dataclass(frozen=True)
class PacketLossConfig(DetectorConfig):
    limit: float = 0.05
    window_s: float = 6 * 3600.0
    min_expected: int = 20
    post: PostRule = PostRule(min_duration_s=1800.0, min_readings=3, merge_gap_s=3 * 3600.0)


class PacketLoss(Detector):
    name = "packet_loss"
    code = "ALRM_PKT_LOSS_CRIT"
    config_cls = PacketLossConfig

    def _fit(self, df: pd.DataFrame) -> None:
        seg, dt = df["_seg"].to_numpy(), df["_dt"].to_numpy()
        self.cadence_s_ = dict(zip(meter_names(df), seg_median(dt, seg, int(seg.max()) + 1, dt > 0)))

    def _cadence(self, df: pd.DataFrame) -> np.ndarray:
        return self._memo(df, "cadence", lambda: self._cadence_(df))

    def _cadence_(self, df: pd.DataFrame) -> np.ndarray:
        seg, dt = df["_seg"].to_numpy(), df["_dt"].to_numpy()
        names = meter_names(df)
        fitted = self._per_meter(self.cadence_s_, names)
        here = seg_median(dt, seg, len(names), dt > 0)
        return np.where(np.isfinite(fitted), fitted, here)

    def _lost(self, df: pd.DataFrame) -> np.ndarray:
        """Readings lost in the gap before each reading: round(gap / cadence) - 1 (jitter-proof)."""

        def compute():
            cad = self._cadence(df)[df["_seg"].to_numpy()]
            return np.clip(np.round(df["_dt"].to_numpy() / cad) - 1, 0, None)

        return self._memo(df, "lost", compute)

    def _missing(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(missing share of the expected readings in the centred window, expected count)."""
        return self._memo(df, "missing", lambda: self._missing_(df))

    def _missing_(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        cad = self._cadence(df)[seg]
        w = float(np.nanmax(np.maximum(self.config.window_s, self.config.min_expected * cad))) if len(t) else 0.0
        starts, ends = seg_bounds(seg)
        first, last = t[starts][seg], t[ends - 1][seg]
        expected = (np.minimum(t + w / 2, last) - np.maximum(t - w / 2, first)) / cad
        lost = window_sum(self._lost(df), t, seg, w, centred=True)
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.clip(lost / expected, 0, 1)
        return np.where(expected >= self.config.min_expected, frac, np.nan), expected

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        return self._missing(df)[0] / self.config.limit

    def describe(self, df, rows, scores) -> Finding:
        frac, _ = self._missing(df)
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        cad = float(self._cadence(df)[seg[rows[0]]])
        # One meter's rows are contiguous and sorted: the span is a row range.
        # nansum: a meter's first reading has no gap before it (NaN).
        lost = float(np.nansum(self._lost(df)[rows[0]:rows[-1] + 1]))
        expected = (t[rows[-1]] - t[rows[0]]) / cad + 1
        share = lost / expected if expected > 0 else float("nan")
        worst = float(np.nanmax(frac[rows]))
        return Finding("critical", f"{lost:.0f} of {expected:.0f} expected readings missing ({share:.0%}; worst "
                                   f"{self.config.window_s / 3600:g} h window {worst:.0%}, cadence {cad:.0f} s)",
                       {"missing_readings": int(lost), "expected_readings": int(round(expected)),
                        "missing_share": rnd(share, 4), "worst_window_share": rnd(worst, 4), "cadence_s": rnd(cad, 1)},
                       "check the meter's communication path (gateway, signal, Ethernet errors)")
