"""Packet loss: more than 5 % of the expected readings missing in a window (default 6 h).

The cadence is inferred per meter (median gap), so 1-minute and 15-minute meters are judged on
their own terms; timestamp jitter does not matter (readings are counted, not aligned to a grid)
and duplicates are merged before detection. The window is centred and truncated at the meter's
first and last reading, so the start and end of the data are not mistaken for loss."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Scored, quiet, rnd
from wattwatch.detect.frame import cache, seg_bounds, window_sum


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
    lookback_n = 1  # a reading's loss is the gap before it

    def _window(self, cadence_s: np.ndarray) -> np.ndarray:
        """Window per meter: the configured span, long enough to expect ``min_expected`` readings."""
        with quiet():
            return np.fmax(self.config.window_s, self.config.min_expected * cadence_s)

    def lookback_s(self, cadence_s):
        return self._window(cadence_s) / 2

    def lookahead_s(self, cadence_s):
        return self._window(cadence_s) / 2

    def _fit(self, df: pd.DataFrame) -> dict:
        return {}  # the meter's cadence (kept with every state) is all this rule learns

    def _score(self, df: pd.DataFrame) -> Scored:
        seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
        cad_m = self._param(df, "cadence_s")
        cad = cad_m[seg]
        # Readings lost in the gap before each reading: round(gap / cadence) - 1 (jitter-proof).
        with quiet():
            lost = np.clip(np.round(df["_dt"].to_numpy() / cad) - 1, 0, None)
        w_m = self._window(cad_m)
        w = w_m[seg]
        starts, ends = seg_bounds(seg)
        # Truncated at the meter's first and last reading here: the start and end of the data are
        # not loss. (Within half a window of the piece's ends, i.e. inside its reach.)
        first, last = t[starts][seg], t[ends - 1][seg]
        with quiet():
            expected = (np.minimum(t + w / 2, last) - np.maximum(t - w / 2, first)) / cad
        in_window = np.full(len(df), np.nan)
        memo = cache(df)
        for wv in np.unique(w_m[np.isfinite(w_m)]):  # one pass per window length (per cadence)
            rows = w == wv
            in_window[rows] = window_sum(lost, t, seg, float(wv), centred=True, memo=memo)[rows]
        with quiet():
            frac = np.clip(in_window / expected, 0, 1)
        frac = np.where(expected >= self.config.min_expected, frac, np.nan)
        return Scored(frac / self.config.limit, (frac, lost, cad))

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        frac, lost_all, cad_all = ctx
        t = df["_t"].to_numpy()
        cad = float(cad_all[rows[0]])
        # One meter's rows are contiguous and sorted: the span is a row range.
        # nansum: a meter's first reading has no gap before it (NaN).
        lost = float(np.nansum(lost_all[rows[0]:rows[-1] + 1]))
        expected = (t[rows[-1]] - t[rows[0]]) / cad + 1
        share = lost / expected if expected > 0 else float("nan")
        worst = float(np.nanmax(frac[rows]))
        w = float(self._window(np.array([cad]))[0])
        return Finding("critical", f"{lost:.0f} of {expected:.0f} expected readings missing ({share:.0%}; worst "
                                   f"{w / 3600:g} h window {worst:.0%}, cadence {cad:.0f} s)",
                       {"missing_readings": int(lost), "expected_readings": int(round(expected)),
                        "missing_share": rnd(share, 4), "worst_window_share": rnd(worst, 4), "cadence_s": rnd(cad, 1)},
                       "check the meter's communication path (gateway, signal, Ethernet errors)")
