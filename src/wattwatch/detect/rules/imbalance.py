"""Phase imbalance on three-phase meters: max deviation of a phase current from the phase mean,
over the mean (SPEC: > 10 % with mean >= 1 A for >= 15 min), and the change of one phase's share of
the current from the meter's own normal share (SPEC §3, updated).

Two scores, the worse one counts:

- The level: the imbalance over its limit. A meter that was already imbalanced while it was
  profiled alerts on the level only when it gets worse than its own normal (median + 3 × (p90 −
  median) of its profiled imbalance, plus a margin), not for ever; a meter without learned state
  is judged on the SPEC's fixed limit. The factor is the share allowance's (below): with 2, a
  meter whose phases wander 5 % (two-hour swings) crossed a week's limit for 20-105 minutes at a
  time in the weeks after it, while a step of a quarter of one phase's current is the change
  score's to find.
- The change: on commercial sites some phase often carries much more than the others for good (a
  kitchen or a lift on L1), and their imbalance runs at 10-15 % on a healthy day. On such a meter a
  limit above its own normal hides a phase whose current rose by a quarter (a step of the
  imbalance of ~14 %). What gives the fault away is each phase's *share* of the total current
  (I_k / ΣI) stepping away from that meter's own normal share: learned at fit time as the median
  share per phase, with its spread (the 90th percentile of the distance from it; both robust to a
  fault that covers part of the profiling period). The step counts when it exceeds
  ``max(min_step, spread_k × spread)``.

A lasting step near its allowance scores around 1 as the phases wander: the alert is held open
(``hold``) until the score falls under half the threshold, so one fault is one alert, not five
pieces of it an hour or two apart.

Readings where one phase reads zero while the others carry load are left to the sensor-fault rule
(an open CT is not an imbalanced load). A reading that caught a motor's starting current on one
phase (see :func:`~wattwatch.detect.rules._common.inrush`) is not judged either: that snapshot
stands for a few seconds of the interval, not for how the load is spread over the phases. At
5-minute cadence the persistence (3 readings) kept such snapshots out; at hourly cadence it asks
for 2 readings, and two motor starts in consecutive hours read as a 100 % imbalance for an hour."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.base import PHASE_CHANNELS, Detector, DetectorConfig, Finding, PostRule, Scored, quiet, rnd
from wattwatch.detect.frame import meter_names, seg_quantile
from wattwatch.detect.rules._common import inrush, phases


# A reading points at one phase (the hold's side) when that phase's share moved at least this
# many times as far as any other's (a change of one phase alone: 2 on balanced phases).
SIDE_RATIO = 1.5


@dataclass(frozen=True)
class PhaseImbalanceConfig(DetectorConfig):
    limit: float = 0.10
    min_mean_a: float = 1.0
    adaptive: bool = True
    margin: float = 0.05
    level_k: float = 3.0  # the learned level limit: median + level_k x (p90 - median) + margin
    zero_a: float = 0.05
    # The change of a phase's share of the current from the meter's own normal share.
    share_step: bool = True
    min_step: float = 0.03
    spread_k: float = 3.0
    post: PostRule = PostRule(min_duration_s=900.0, min_readings=3, merge_gap_s=3600.0, hold=0.5)
    # The learned state is the profiled imbalance's median and p90 and the normal shares with their
    # spread (at min_mean_a and zero_a); the limits and allowances are drawn from it when scoring.
    scoring_only: ClassVar[tuple[str, ...]] = ("limit", "adaptive", "margin", "level_k", "share_step", "min_step",
                                               "spread_k")


def imbalance(df: pd.DataFrame, cfg: PhaseImbalanceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(imbalance ratio or NaN, mean phase current) per reading; NaN where it cannot be judged
    (not three-phase, light load, an open CT, a motor start caught in the reading). Each phase's
    share of the current is ``shares(i, mean)`` where the ratio is finite."""
    _, i = phases(df)
    three = np.isfinite(i).all(axis=1)
    mean = i.mean(axis=1)
    dev = np.abs(i - mean[:, None]).max(axis=1)
    open_ct = (i.min(axis=1) < cfg.zero_a) & (i.max(axis=1) >= cfg.min_mean_a)
    with quiet():
        imb = np.where(three & (mean >= cfg.min_mean_a) & ~open_ct & ~inrush(df), dev / mean, np.nan)
    return imb, mean


def shares(df: pd.DataFrame, imb: np.ndarray) -> np.ndarray:
    """(n, 3) share of the total current per phase, NaN where the imbalance cannot be judged."""
    _, i = phases(df)
    with quiet():
        return np.where(np.isfinite(imb)[:, None], i / i.sum(axis=1, keepdims=True), np.nan)


class PhaseImbalance(Detector):
    name = "phase_imbalance"
    code = "ERR_PHASE_IMBALANCE_01"
    config_cls = PhaseImbalanceConfig
    requires = ("i_l1_a", "i_l2_a", "i_l3_a")
    reads_also = (*PHASE_CHANNELS, "pf")  # phases; motor starts (inrush) read the power factor
    judges = ("current", "current_level")  # current_level: the level a reading holds (frozen_readings)
    # Motor starts are recognised against two neighbours either side.
    lookback_n = 2
    lookahead_n = 2
    state_version = 2  # + each phase's normal share of the current and its spread

    def _fit(self, df: pd.DataFrame) -> dict:
        imb, _ = imbalance(df, self.config)
        seg = df["_seg"].to_numpy()
        n_seg = int(seg.max()) + 1
        # Median and upper spread, not a high quantile: a fault that covers part of the
        # profiling period must not become the meter's "normal".
        med = seg_quantile(imb, seg, n_seg, 0.5)
        p90 = seg_quantile(imb, seg, n_seg, 0.9)
        sh = shares(df, imb)
        share_med = np.stack([seg_quantile(sh[:, k], seg, n_seg, 0.5) for k in range(3)], axis=1)
        dist = np.abs(sh - share_med[seg])
        spread = np.stack([seg_quantile(dist[:, k], seg, n_seg, 0.9) for k in range(3)], axis=1)
        return {m: {"imbalance_median": a, "imbalance_p90": b,
                    "share_median": list(sm) if np.isfinite(sm).all() else None,
                    "share_spread": list(sp) if np.isfinite(sp).all() else None}
                for m, a, b, sm, sp in zip(meter_names(df), med, p90, share_med, spread)}

    def limits(self, df: pd.DataFrame) -> np.ndarray:
        """Effective limit per meter code."""
        cfg = self.config
        med, p90 = self._param(df, "imbalance_median"), self._param(df, "imbalance_p90")
        normal = med + cfg.level_k * (p90 - med)
        if not cfg.adaptive:
            return np.full(len(normal), cfg.limit)
        return np.maximum(cfg.limit, np.where(np.isfinite(normal), normal + cfg.margin, cfg.limit))

    def normal_shares(self, df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """(normal share, allowed step) per meter code and phase, (n_seg, 3); NaN for meters
        without learned shares (or with the change score switched off)."""
        cfg = self.config
        med = self._param_array(df, "share_median", (3,))
        spread = self._param_array(df, "share_spread", (3,))
        allow = np.fmax(cfg.min_step, cfg.spread_k * spread)
        if not cfg.share_step:
            med = np.full_like(med, np.nan)
        return med, np.where(np.isfinite(med), allow, np.nan)

    def _score(self, df: pd.DataFrame) -> Scored:
        imb, mean = imbalance(df, self.config)
        seg = df["_seg"].to_numpy()
        level = imb / self.limits(df)[seg]
        normal, allow = self.normal_shares(df)
        step = shares(df, imb) - normal[seg]
        with quiet():
            change = np.nanmax(np.abs(step) / allow[seg], axis=1)  # NaN where no share is known
        return Scored(np.fmax(level, change), (imb, mean, step))

    def side(self, df: pd.DataFrame, ctx=None) -> np.ndarray | None:
        """Per reading whose share step is over its allowance and points at one phase: which
        phase moved and which way (±1, ±2, ±3: L1..L3 up or down; NaN elsewhere), for the hold.
        A phase whose current rose by b moves its own share by ``b·s_k(1 - s_k)`` and each other
        phase's by ``-b·s_k·s_j``: twice as far on balanced phases. A reading points at a phase
        when its share moved at least ``SIDE_RATIO`` times as far as any other's; one where two
        phases moved about as far (L2 up and L1 down as the phases wander at night) has no side,
        or a lasting step would flip between them and be cut. Friday's L2 fault and Monday's L3
        fault across a closed weekend are two alerts, not one about L2 whose evidence mixes both."""
        if ctx is None:
            return None
        step = ctx[2]
        if not len(step):
            return np.full(len(df), np.nan)
        seg = df["_seg"].to_numpy()
        _, allow = self.normal_shares(df)
        with quiet():
            change = np.nanmax(np.abs(step) / allow[seg], axis=1)
            over = change >= self.config.post.threshold  # NaN (no shares known): no side
        a = np.nan_to_num(np.abs(step), nan=0.0)
        k = np.argmax(a, axis=1)
        top2 = np.sort(a, axis=1)[:, -2:]
        first, second = top2[:, 1], top2[:, 0]
        moved = step[np.arange(len(step)), k]
        return np.where(over & (first >= SIDE_RATIO * second), np.sign(moved) * (k + 1), np.nan)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        imb, mean, step = ctx
        _, i = phases(df)
        cur = np.nanmedian(i[rows], axis=0)
        med = float(np.nanmedian(imb[rows]))
        j = df["_seg"].to_numpy()[rows[0]]
        limit = float(self.limits(df)[j])
        normal, allow = self.normal_shares(df)
        normal, allow = normal[j], allow[j]
        ev = {"imbalance": rnd(med), "imbalance_max": rnd(np.nanmax(imb[rows])), "limit": rnd(limit),
              "i_l1_a": rnd(cur[0], 2), "i_l2_a": rnd(cur[1], 2), "i_l3_a": rnd(cur[2], 2)}
        with quiet():
            st = np.nanmedian(step[rows], axis=0)
        if np.isfinite(st).any() and np.isfinite(normal).all():
            # The phase whose share moved furthest from its own normal, for as long as the alert.
            k = int(np.nanargmax(np.abs(st) / allow))
            share = normal[k] + st[k]
            sev = "critical" if (med >= 2 * limit or abs(st[k]) >= 2 * allow[k]) else "warning"
            ev.update({"phase": f"L{k + 1}", "share": rnd(share), "normal_share": rnd(normal[k]),
                       "step": rnd(st[k]), "allowed_step": rnd(allow[k])})
            msg = (f"L{k + 1} carries {share:.0%} of the current (normally {normal[k]:.0%}, a step of "
                   f"{st[k] * 100:+.1f} points, allowed ±{allow[k] * 100:.1f}); imbalance {med:.0%} (limit {limit:.0%}) "
                   f"({cur[0]:.1f} / {cur[1]:.1f} / {cur[2]:.1f} A)")
        else:
            k = int(np.nanargmax(np.abs(cur - np.nanmean(cur))))
            sev = "critical" if med >= 2 * limit else "warning"
            ev["phase"] = f"L{k + 1}"
            msg = (f"phase imbalance {med:.0%} (limit {limit:.0%}), L{k + 1} deviates most "
                   f"({cur[0]:.1f} / {cur[1]:.1f} / {cur[2]:.1f} A)")
        return Finding(sev, msg, ev,
                       "rebalance single-phase loads across phases; check for a failed capacitor bank or a lost phase load")
