"""Packet loss: more than 5 % of the expected readings missing in a window (default 6 h).

The cadence is inferred per meter (median gap), so 1-minute and 15-minute meters are judged on
their own terms; timestamp jitter does not matter (readings are counted, not aligned to a grid)
and duplicates are merged before detection. The window is centred and truncated at the meter's
first and last reading, so the start and end of the data are not mistaken for loss.

A share is only evidence when it counts enough readings: 5 % of a 6-hour window of hourly
readings is one reading, and one or two random losses (a meter loses a reading every few days)
are not a failing link. The window is therefore at least long enough that the limit stands for
``min_lost`` readings (``min_lost / limit`` expected readings: 80 with the defaults, i.e. 6.7 h at
5 minutes, 20 h at 15 minutes, 80 h at hourly cadence), and a window alerts only when it has lost
at least ``min_lost`` readings. With a background loss of 0.2 % per reading, four losses among 80
readings happen by chance about once in 40,000 windows; with the 6-hour window at 5-minute cadence
the 5 % limit already meant four readings (3.6, rounded up).

The window says whether readings are being lost; where, is said by the losses themselves: a
reading is in the loss when it borders a gap, or lies between lost readings no further than
``window_s`` either side, and more than one reading was lost that near it (a lone lost reading
near a loss is not part of it), so an alert spans the lossy stretch, not half a window (40 hours
at hourly cadence) either side of it. A gap has two readings at its edges: two are enough for an
alert (``min_readings``), the duration being the gap's; a gap of up to a day does not split the
stretch (``max_bridge_s``: there are no readings in it to say otherwise), nor does a pause in the
loss shorter than the window (``merge_gap_s``)."""

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
    min_lost: int = 4
    post: PostRule = PostRule(min_duration_s=1800.0, min_readings=2, merge_gap_s=6 * 3600.0, max_bridge_s=86400.0)


class PacketLoss(Detector):
    name = "packet_loss"
    code = "ALRM_PKT_LOSS_CRIT"
    config_cls = PacketLossConfig
    lookback_n = 1  # a reading's loss is the gap before it
    lookahead_n = 1  # ... and a reading borders the gap after it, however long

    def _window(self, cadence_s: np.ndarray) -> np.ndarray:
        """Window per meter: the configured span, long enough to expect ``min_expected`` readings
        and for the limit to stand for ``min_lost`` of them."""
        c = self.config
        with quiet():
            need = max(c.min_expected, c.min_lost / c.limit if c.limit > 0 else 0.0)
            return np.fmax(c.window_s, need * cadence_s)

    def lookback_s(self, cadence_s):
        # The share's window, and where a reading is in the loss (lost readings window_s around it).
        return np.fmax(self._window(cadence_s) / 2, self.config.window_s)

    def lookahead_s(self, cadence_s):
        return np.fmax(self._window(cadence_s) / 2, self.config.window_s)

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
        # One pass, each meter with its own window (its cadence's).
        in_window = window_sum(lost, t, seg, np.where(np.isfinite(w_m), w_m, 0.0), centred=True, memo=cache(df))
        in_window = np.where(np.isfinite(w), in_window, np.nan)
        with quiet():
            frac = np.clip(in_window / expected, 0, 1)
        frac = np.where(expected >= self.config.min_expected, frac, np.nan)
        score = frac / self.config.limit
        # In the loss: at a gap's edge, or between lost readings at most window_s away.
        # Elsewhere the window's share still counts the loss, but the reading is not in it.
        gap = np.nan_to_num(lost) >= 1
        edge = gap.copy()
        edge[:-1] |= gap[1:] & (seg[1:] == seg[:-1])
        half = np.full(len(w_m), self.config.window_s)
        before, after = _around(np.nan_to_num(lost), t, seg, half)
        inside = (edge | ((before >= 1) & (after >= 1))) & (before + after >= 2)
        score = np.where(inside | ~np.isfinite(score), score, np.minimum(score, 0.0))
        if self.config.min_lost > 0:
            # Fewer than min_lost readings lost is not evidence, whatever share of a short
            # (truncated) window they are.
            score = np.minimum(score, in_window / self.config.min_lost)  # NaN stays NaN
        return Scored(score, (frac, lost, cad))

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


def _around(x: np.ndarray, t: np.ndarray, seg: np.ndarray, half_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: sum of ``x`` over its meter's rows in ``[t - half, t]`` and in ``(t, t + half]``
    (``half_s`` per segment code), the latter always with the next row (the loss of the gap right
    after a reading borders it, however long the gap)."""
    before = np.zeros(len(x))
    after = np.zeros(len(x))
    starts, ends = seg_bounds(seg)
    for k, (a, b) in enumerate(zip(starts, ends)):  # a loop over meters, each step vectorised
        h = half_s[k]
        if not np.isfinite(h):
            continue
        tm = t[a:b]
        c = np.concatenate([[0.0], np.cumsum(x[a:b])])
        i = np.arange(b - a)
        lo = np.searchsorted(tm, tm - h, side="left")
        hi = np.maximum(np.searchsorted(tm, tm + h, side="right"), np.minimum(i + 2, b - a))
        before[a:b] = c[i + 1] - c[lo]
        after[a:b] = c[hi] - c[i + 1]
    return before, after
