"""Residual likelihood: how unusual the recent surprise of a series is, causally.

For one channel per meter (default ``p_kw``), each reading is compared with the mean and spread of
the ``window`` readings before it: ``z = |x - mean| / std``, raw surprise ``r = -log10 P(|Z| > z)``
(0 = on the mean, growing without bound far outside). A single surprise says little on a noisy series; what
matters is whether the recent surprise (mean of the last ``short`` raw values) is unusual for
this series: its tail probability under a normal fitted to the ``long`` raw values before
(the "anomaly likelihood" idea of Numenta's HTM detector, here on a plain statistical residual).

The score is ``-log10(tail) / log10_limit``: 1 when the tail probability reaches
``10 ** -log10_limit``. Every quantity uses readings up to the scored one only (``causal``), so the
detector runs the same in batch, on NAB and on a stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from scipy.special import log_ndtr

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, rnd


@dataclass(frozen=True)
class ResidualLikelihoodConfig(DetectorConfig):
    channel: str = "p_kw"
    window: int = 6400
    short: int = 1
    long: int = 2000
    min_std_rel: float = 1e-3
    log10_limit: float = 5.0
    post: PostRule = PostRule(min_duration_s=900.0, min_readings=2, merge_gap_s=3600.0)


def _rolling(x: pd.Series, seg: np.ndarray, n: int, shift: int, stat: str, min_periods: int) -> np.ndarray:
    g = x.groupby(seg, sort=False)
    r = getattr(g.rolling(n, min_periods=min_periods), stat)().reset_index(level=0, drop=True).sort_index()
    if shift:
        r = r.groupby(seg, sort=False).shift(shift)
    return r.to_numpy(float)


class ResidualLikelihood(Detector):
    name = "residual_likelihood"
    code = "WARN_BASELINE_DEVIATION"
    config_cls = ResidualLikelihoodConfig
    requires = ("p_kw",)
    causal: ClassVar[bool] = True

    def _fit(self, df: pd.DataFrame) -> None:
        # Everything is relative to each meter's own recent past; the fit only records which
        # meters were seen (nothing to learn that the rolling statistics do not carry).
        x = df[self.config.channel].to_numpy(float)
        self.scale_ = float(np.nanmedian(np.abs(x))) if np.isfinite(x).any() else 1.0

    def _parts(self, df: pd.DataFrame):
        return self._memo(df, "parts", lambda: self._parts_(df))

    def _parts_(self, df: pd.DataFrame):
        cfg = self.config
        seg = df["_seg"].to_numpy()
        x = pd.Series(df[cfg.channel].to_numpy(float))
        mean = _rolling(x, seg, cfg.window, 1, "mean", max(3, cfg.window // 10))
        std = _rolling(x, seg, cfg.window, 1, "std", max(3, cfg.window // 10))
        floor = cfg.min_std_rel * np.maximum(np.abs(mean), self.scale_)
        z = np.abs(x.to_numpy() - mean) / np.maximum(np.nan_to_num(std), np.maximum(floor, 1e-12))
        # Surprise in decades of improbability (two-sided), unbounded so that a far-out reading
        # stands out against the series' usual surprise however noisy the series is.
        raw = pd.Series(-(log_ndtr(-z) + np.log(2)) / np.log(10))
        recent = _rolling(raw, seg, cfg.short, 0, "mean", 1)
        mu = _rolling(raw, seg, cfg.long, cfg.short, "mean", max(cfg.short, 50))
        sd = _rolling(raw, seg, cfg.long, cfg.short, "std", max(cfg.short, 50))
        sd = np.maximum(np.nan_to_num(sd), 1e-4)
        # log10 of the upper tail probability of the recent surprise.
        log_tail = log_ndtr(-(recent - mu) / sd) / np.log(10)
        return -log_tail, mean, std, raw.to_numpy()

    def _score(self, df: pd.DataFrame) -> np.ndarray:
        return self._parts(df)[0] / self.config.log10_limit

    def describe(self, df, rows, scores) -> Finding:
        neg_log, mean, std, _ = self._parts(df)
        x = df[self.config.channel].to_numpy(float)[rows]
        m = float(np.nanmedian(mean[rows]))
        return Finding("warning", f"{self.config.channel} {np.nanmedian(x):.3g} against a recent normal of "
                                  f"{m:.3g} ± {np.nanmedian(std[rows]):.2g}: unusually persistent surprise "
                                  f"(tail probability 1e-{np.nanmax(neg_log[rows]):.0f})",
                       {"channel": self.config.channel, "value": rnd(float(np.nanmedian(x))), "recent_mean": rnd(m),
                        "recent_std": rnd(float(np.nanmedian(std[rows]))),
                        "log10_tail": rnd(-float(np.nanmax(neg_log[rows])), 2)},
                       "compare with site activity: consumption left its recent pattern")
