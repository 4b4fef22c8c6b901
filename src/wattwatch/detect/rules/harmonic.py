"""Harmonic noise: current distortion high enough that RMS readings stop being trustworthy.

Current-based rules are blanked on readings above the limit: with distorted, noisy currents a
10 % phase imbalance or a 2 % neutral mismatch is not evidence of anything.

A non-linear load's distortion drifts while it runs: inside a run of THD 35-70 % one reading may
read 27-29 %, its currents as scattered as its neighbours'. A reading with a distorted reading on
each side, the two at most ``bridge_n`` (6) readings and ``bridge_s`` (30 min) apart (or a single
reading between two at its meter's cadence, whatever the cadence: an hourly meter's neighbours two
hours apart, not a reading across hours without data), is scored as the less distorted of the two:
the run is one, and what it explains has no holes. The bridge is counted in readings as well as
time: at 5 minutes both say up to five readings in 30 minutes, at 15 and 60 minutes the time (one
reading, or a single one between neighbours), while at 1 minute it is five readings (5 min) and at
1 s five seconds, not the 1,700-odd readings 30 minutes hold there (cad43: a bridge of a time blanked
the current rules over half an hour of clean 1-s readings between two distorted seconds). Being
counted on the readings themselves, it needs no cadence, learned or other. Seen: a home's phase current 8 % off its neutral reading by reading through a 7.5-hour noise
alert, and the four readings under the limit in it raised two partial earth returns (q22,
docs/quality-log.md). A reading with a distorted one on one side only, at a run's edge or alone,
keeps its own THD's score."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Explains, Finding, PostRule, quiet, rnd
from wattwatch.detect.frame import meter_names, seg_median
from wattwatch.detect.rules._common import max_current


@dataclass(frozen=True)
class HarmonicNoiseConfig(DetectorConfig):
    """``limit_pct``: THD-I above which RMS readings are unreliable; ``min_current_a``: below
    this phase current THD is not meaningful (electronics at idle show huge THD on tiny currents);
    ``bridge_s`` and ``bridge_n``: readings between two distorted readings at most this many
    seconds and this many readings apart (``bridge_n`` 6: at most five readings between them; or a
    single reading between two at its meter's cadence, whatever the cadence) belong to the run
    (either 0: single readings only)."""

    limit_pct: float = 30.0
    min_current_a: float = 0.5
    bridge_s: float = 1800.0
    bridge_n: int = 6
    # The fit learns the typical THD only; a state stored before ``bridge_s`` is the same state.
    scoring_only: ClassVar[tuple[str, ...]] = ("bridge_s", "bridge_n")
    post: PostRule = PostRule(min_duration_s=1800.0, min_readings=3, merge_gap_s=3600.0)

    def __post_init__(self):
        if not (isinstance(self.bridge_s, (int, float)) and not isinstance(self.bridge_s, bool)
                and 0 <= self.bridge_s <= 86400):
            raise ValueError(f"bridge_s must be a number of seconds within [0, 86400], got {self.bridge_s!r}")
        if not (isinstance(self.bridge_n, int) and not isinstance(self.bridge_n, bool) and 0 <= self.bridge_n <= 1000):
            raise ValueError(f"bridge_n must be a whole number of readings within [0, 1000], got {self.bridge_n!r}")


#: A single reading's neighbours are "at its meter's cadence" when at most this many cadences
#: apart (two, with jitter; the post rule's hole, ``PostRule.at``'s 2.5 cadences): further, one
#: side is a gap in the data, and a reading before a gap of hours says nothing of the one after it.
SINGLE_SPAN_CADENCES = 2.5


def bridged(s: np.ndarray, seg: np.ndarray, t: np.ndarray, bridge_s: float, threshold: float,
            cadence: np.ndarray | None = None, bridge_n: int = 6) -> np.ndarray:
    """``s``, where readings lie between two readings of their meter scored at least ``threshold``
    (the distorted readings nearest them either side) that are at most ``bridge_s`` seconds and
    ``bridge_n`` readings apart (``bridge_n - 1`` readings between them),
    or that are a single reading's neighbours at the meter's cadence (at most
    ``SINGLE_SPAN_CADENCES`` cadences apart: no gap in the data on either side), raised to the
    smaller of those two scores (rows sorted by meter and time). ``cadence``: per segment code
    the meter's cadence in seconds (its state's; NaN: unknown, bridge_s only); None: each
    meter's median step in ``t``."""
    s = np.asarray(s, float)
    t = np.asarray(t, float)
    n = len(s)
    if n < 3:
        return s
    if cadence is None:
        n_seg = int(seg.max()) + 1
        dt = np.r_[np.diff(t), 0.0]
        cadence = seg_median(dt, seg, n_seg, np.r_[seg[1:] == seg[:-1], False] & (dt > 0))
    cad = np.asarray(cadence, float)[seg]
    with quiet():
        hot = s >= threshold
    idx = np.arange(n)
    upto = np.maximum.accumulate(np.where(hot, idx, -1))
    prev = np.r_[-1, upto[:-1]]                         # the last distorted reading before
    fromh = np.minimum.accumulate(np.where(hot, idx, n)[::-1])[::-1]
    nxt = np.r_[fromh[1:], n]                           # the first distorted reading after
    ok = (prev >= 0) & (nxt < n) & ~hot
    p, q = np.where(ok, prev, 0), np.where(ok, nxt, 0)
    span = t[q] - t[p]
    with quiet():
        single = (q - p == 2) & (span <= SINGLE_SPAN_CADENCES * cad)
    ok &= (seg[p] == seg) & (seg[q] == seg) & (((span <= bridge_s) & (q - p <= bridge_n)) | single)
    return np.where(ok, np.fmax(s, np.minimum(s[p], s[q])), s)


class HarmonicNoise(Detector):
    name = "harmonic_noise"
    code = "STATUS_SIGNAL_NOISY"
    config_cls = HarmonicNoiseConfig
    requires = ("thd_i_pct",)
    reads_also = (*PHASE_CHANNELS,)  # the largest phase current
    # A distorted reading is not evidence for current-based rules (per reading, not per span).
    explains = (Explains(("current",), span="reading"),)
    # A reading inside a run is told by the readings within ``bridge_s`` and the nearest either side.
    lookback_n = 1
    lookahead_n = 1

    def lookback_s(self, cadence_s):
        return np.full(len(cadence_s), float(self.config.bridge_s))

    def lookahead_s(self, cadence_s):
        return np.full(len(cadence_s), float(self.config.bridge_s))

    def _fit(self, df: pd.DataFrame) -> dict:
        seg = df["_seg"].to_numpy()
        typical = seg_median(df["thd_i_pct"].to_numpy(float), seg, int(seg.max()) + 1)
        return {m: {"typical_thd_pct": v} for m, v in zip(meter_names(df), typical)}

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        thd = df["thd_i_pct"].to_numpy(float)
        imax = max_current(df)
        with quiet():
            s = np.where(imax >= self.config.min_current_a, thd / self.config.limit_pct, np.nan)
        cad = np.array([(self.state_.get(str(m)) or {}).get("cadence_s") for m in meter_names(df)], float)
        return bridged(s, df["_seg"].to_numpy(), df["_t"].to_numpy(float), self.config.bridge_s,
                       self.config.post.threshold, cad, self.config.bridge_n)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        thd = df["thd_i_pct"].to_numpy()[rows]
        med = float(np.nanmedian(thd))
        sev = "warning" if med >= 1.5 * self.config.limit_pct else "info"
        typical = (self.state_.get(str(meter_names(df)[df["_seg"].to_numpy()[rows[0]]]), {}) or {}).get("typical_thd_pct")
        return Finding(sev, f"current THD {med:.0f} % (limit {self.config.limit_pct:.0f} %): RMS readings unreliable",
                       {"thd_i_pct_median": rnd(med, 1), "thd_i_pct_max": rnd(np.nanmax(thd), 1),
                        "limit_pct": self.config.limit_pct, "typical_thd_pct": rnd(typical, 1)},
                       "check for non-linear loads or a failing filter; current-based rules are paused meanwhile")
