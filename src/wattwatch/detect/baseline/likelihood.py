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

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Reach, Scored, quiet, rnd
from wattwatch.detect.frame import meter_names, seg_median


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
    reads_also = ()  # its channel only
    causal: ClassVar[bool] = True

    def channels(self) -> tuple[str, ...]:
        return (self.config.channel,)

    def reach(self, meters) -> Reach:
        n = len(meters)
        c = self.config
        return Reach(np.zeros(n), np.full(n, c.window + c.long + c.short + 1, np.int64), np.zeros(n), np.zeros(n, np.int64))

    def cadence_note(self, cadence_s: float) -> str | None:
        # Its windows are counted in readings (as NAB's files are judged): say what that means in time.
        need = max(3, self.config.window // 10) + max(self.config.short, 50)
        days = need * cadence_s / 86400.0
        if days > 7:
            return (f"{self.name}: its windows are counted in readings ({self.config.window} and {self.config.long}); "
                    f"at {cadence_s:.0f} s cadence a meter needs {days:.0f} days of readings before it is judged")
        return None

    def _fit(self, df: pd.DataFrame) -> dict:
        # Everything is relative to each meter's own recent past; the fit learns the scale under
        # which a flat series' spread counts as zero.
        x = _channel(df, self.config.channel)
        seg = df["_seg"].to_numpy()
        scale = seg_median(np.abs(x), seg, int(seg.max()) + 1)
        return {m: {"scale": float(v) if np.isfinite(v) else 1.0} for m, v in zip(meter_names(df), scale)}

    def _parts(self, df: pd.DataFrame):
        # (imported here: scipy.special costs ~0.3 s of CPU to import, and every command that
        # lists or configures detectors imports this module without scoring anything)
        from scipy.special import log_ndtr

        cfg = self.config
        seg = df["_seg"].to_numpy()
        x = pd.Series(_channel(df, cfg.channel))
        scale = self._param(df, "scale", 1.0)[seg]
        mean = _rolling(x, seg, cfg.window, 1, "mean", max(3, cfg.window // 10))
        std = _rolling(x, seg, cfg.window, 1, "std", max(3, cfg.window // 10))
        floor = cfg.min_std_rel * np.maximum(np.abs(mean), scale)
        with quiet():
            z = np.abs(x.to_numpy() - mean) / np.maximum(np.nan_to_num(std), np.maximum(floor, 1e-12))
            # Surprise in decades of improbability (two-sided), unbounded so that a far-out reading
            # stands out against the series' usual surprise however noisy the series is.
            raw = pd.Series(-(log_ndtr(-z) + np.log(2)) / np.log(10))
        recent = _rolling(raw, seg, cfg.short, 0, "mean", 1)
        mu = _rolling(raw, seg, cfg.long, cfg.short, "mean", max(cfg.short, 50))
        sd = _rolling(raw, seg, cfg.long, cfg.short, "std", max(cfg.short, 50))
        sd = np.maximum(np.nan_to_num(sd), 1e-4)
        with quiet():
            # log10 of the upper tail probability of the recent surprise.
            log_tail = log_ndtr(-(recent - mu) / sd) / np.log(10)
        return -log_tail, mean, std, raw.to_numpy()

    def _score(self, df: pd.DataFrame) -> Scored:
        ctx = self._parts(df)
        return Scored(ctx[0] / self.config.log10_limit, ctx)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        neg_log, mean, std, _ = ctx
        x = _channel(df, self.config.channel)[rows]
        with quiet():
            m = float(np.nanmedian(mean[rows]))
            sd = float(np.nanmedian(std[rows]))
            v = float(np.nanmedian(x))
        return Finding("warning", f"{self.config.channel} {v:.3g} against a recent normal of "
                                  f"{m:.3g} ± {sd:.2g}: unusually persistent surprise "
                                  f"(tail probability 1e-{np.nanmax(neg_log[rows]):.0f})",
                       {"channel": self.config.channel, "value": rnd(v), "recent_mean": rnd(m),
                        "recent_std": rnd(sd), "log10_tail": rnd(-float(np.nanmax(neg_log[rows])), 2)},
                       "compare with site activity: the series left its recent pattern")


def _channel(df: pd.DataFrame, name: str) -> np.ndarray:
    """One channel of a prepared frame (canonical or extra); all-NaN when the frame lacks it."""
    if name in df.columns:
        return df[name].to_numpy(float)
    return np.full(len(df), np.nan)
