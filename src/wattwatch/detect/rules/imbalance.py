"""Phase imbalance on three-phase meters: max deviation of a phase current from the phase mean,
over the mean (SPEC: > 10 % with mean >= 1 A for >= 15 min).

A meter that was already imbalanced while it was profiled alerts only when it gets worse than
its own normal (median + 2 × (p90 − median) of its profiled imbalance, plus a margin), not for
ever; readings where one phase reads
zero while the others carry load are left to the sensor-fault rule (an open CT is not an
imbalanced load). A reading that caught a motor's starting current on one phase (see
:func:`~wattwatch.detect.rules._common.inrush`) is not judged either: that snapshot stands for a
few seconds of the interval, not for how the load is spread over the phases. At 5-minute cadence
the persistence (3 readings) kept such snapshots out; at hourly cadence it asks for 2 readings, and
two motor starts in consecutive hours read as a 100 % imbalance for an hour."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Scored, quiet, rnd
from wattwatch.detect.frame import meter_names, seg_quantile
from wattwatch.detect.rules._common import inrush, phases


@dataclass(frozen=True)
class PhaseImbalanceConfig(DetectorConfig):
    limit: float = 0.10
    min_mean_a: float = 1.0
    adaptive: bool = True
    margin: float = 0.05
    zero_a: float = 0.05
    post: PostRule = PostRule(min_duration_s=900.0, min_readings=3, merge_gap_s=3600.0)


def imbalance(df: pd.DataFrame, cfg: PhaseImbalanceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(imbalance ratio or NaN, mean phase current) per reading; NaN where it cannot be judged
    (not three-phase, light load, an open CT, a motor start caught in the reading)."""
    _, i = phases(df)
    three = np.isfinite(i).all(axis=1)
    mean = i.mean(axis=1)
    dev = np.abs(i - mean[:, None]).max(axis=1)
    open_ct = (i.min(axis=1) < cfg.zero_a) & (i.max(axis=1) >= cfg.min_mean_a)
    with quiet():
        imb = np.where(three & (mean >= cfg.min_mean_a) & ~open_ct & ~inrush(df), dev / mean, np.nan)
    return imb, mean


class PhaseImbalance(Detector):
    name = "phase_imbalance"
    code = "ERR_PHASE_IMBALANCE_01"
    config_cls = PhaseImbalanceConfig
    requires = ("i_l1_a", "i_l2_a", "i_l3_a")
    judges = ("current",)
    # Motor starts are recognised against two neighbours either side.
    lookback_n = 2
    lookahead_n = 2

    def _fit(self, df: pd.DataFrame) -> dict:
        imb, _ = imbalance(df, self.config)
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        # Median and upper spread, not a high quantile: a fault that covers part of the
        # profiling period must not become the meter's "normal".
        med = seg_quantile(imb, seg, n_seg, 0.5)
        p90 = seg_quantile(imb, seg, n_seg, 0.9)
        return {m: {"imbalance_median": a, "imbalance_p90": b} for m, a, b in zip(meter_names(df), med, p90)}

    def limits(self, df: pd.DataFrame) -> np.ndarray:
        """Effective limit per meter code."""
        cfg = self.config
        med, p90 = self._param(df, "imbalance_median"), self._param(df, "imbalance_p90")
        normal = med + 2 * (p90 - med)
        if not cfg.adaptive:
            return np.full(len(normal), cfg.limit)
        return np.maximum(cfg.limit, np.where(np.isfinite(normal), normal + cfg.margin, cfg.limit))

    def _score(self, df: pd.DataFrame) -> Scored:
        imb, mean = imbalance(df, self.config)
        return Scored(imb / self.limits(df)[df["_seg"].to_numpy()], (imb, mean))

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        imb, mean = ctx
        _, i = phases(df)
        cur = np.nanmedian(i[rows], axis=0)
        heavy = int(np.nanargmax(np.abs(cur - np.nanmean(cur)))) + 1
        med = float(np.nanmedian(imb[rows]))
        limit = float(self.limits(df)[df["_seg"].to_numpy()[rows[0]]])
        sev = "critical" if med >= 2 * limit else "warning"
        return Finding(sev, f"phase imbalance {med:.0%} (limit {limit:.0%}), L{heavy} deviates most "
                            f"({cur[0]:.1f} / {cur[1]:.1f} / {cur[2]:.1f} A)",
                       {"imbalance": rnd(med), "imbalance_max": rnd(np.nanmax(imb[rows])), "limit": rnd(limit),
                        "i_l1_a": rnd(cur[0], 2), "i_l2_a": rnd(cur[1], 2), "i_l3_a": rnd(cur[2], 2),
                        "phase": f"L{heavy}"},
                       "rebalance single-phase loads across phases; check for a failed capacitor bank or a lost phase load")
