"""Window novelty: has the series ever looked like this before? Causal, for one channel per meter.

Two kinds of evidence, each judged against the meter's own past only:

1. **Shape/level novelty.** The series is cut into blocks of ``s`` readings, ``s`` chosen so the
   profiling period holds ``blocks_per_profile`` feature windows of ``window`` blocks (the time
   scale follows how much normal data the meter has, as on NAB where files differ 30-fold in
   length). A block is represented by its extreme reading (the one farther from the running
   block mean, so a short spike is not averaged away; the block mean when the extreme is within
   10 % of it), scaled by the profiling period's range. Each window of ``window`` blocks is
   compared with every earlier window (up to ``memory`` of them); its novelty is the distance
   to the nearest one. ``log(novelty + eps)`` is turned into a tail probability against the
   ``history`` novelties before it: a window far from everything seen, when windows are usually
   close to something seen, is surprising. The tail beyond their mean is read as exponential
   with their standard deviation as scale (``z / ln 10`` decades): real novelty scores are
   heavier-tailed than the normal, whose tail made z = 5 on healthy hourly load 6.5 decades.
2. **Range break.** A reading beyond the range of everything before it (the last ``memory``
   blocks, by more than ``range_tol`` of that range) is weighed, not just flagged: the evidence
   is how unlikely it is that the meter sets such a record at all (``log10`` of the readings since
   its last record on that side) plus how far past the old extreme it goes in units of the
   history's own tail (the top or bottom ``tail`` share, read as exponential). A season that
   moves the load a per cent past last week's peak earns ~0-3 decades; a blackout to zero or a
   day 80 % above every peak, tens. Or: beyond the range of the last ``recent_share`` x profile
   readings by more than ``recent_tol`` (``2 + 20 * excess``).

The evidence is the largest of the three (decades); only *onsets*
are kept: a reading scores when its evidence exceeds everything of the ``onset`` blocks before it,
so a lasting anomaly is reported where it starts and not again at every reading (an operator, and
NAB, want the first detection). The profiling period itself scores 0 (it is what is learned).
Score = ``log2(1 + evidence / limit)``: 1 at the limit; through :func:`calibrated` it is
``evidence / (evidence + limit)``.

The defaults were chosen on the NAB corpus (see the README for the score and its neighbourhood);
every step uses readings up to the scored one only, so batch, NAB and a stream agree. Blocks are
aligned on the reading's position in the meter's series (``_n``, which the core supplies when a
piece does not start at the series' first reading), and "everything before" means the last
``memory`` blocks' readings, so a reading's score depends on a bounded reach (``reach``): scoring
a piece that holds it gives the score the whole series gives.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd

from wattwatch.detect.base import Detector, DetectorConfig, Finding, PostRule, Reach, Scored, meter_of, quiet, rnd
from wattwatch.detect.baseline.likelihood import _channel
from wattwatch.detect.frame import meter_names, seg_bounds


@dataclass(frozen=True)
class WindowNoveltyConfig(DetectorConfig):
    channel: str = "p_kw"
    window: int = 8
    blocks_per_profile: int = 160
    memory: int = 6000
    history: int = 500
    eps: float = 0.03
    range_tol: float = 0.01
    range_weight: float = 1.0
    tail: float = 0.05
    recent_share: float = 0.5
    recent_tol: float = 0.2
    recent_weight: float = 1.0
    onset: int = 50
    limit: float = 3.0
    post: PostRule = PostRule(min_duration_s=0.0, min_readings=1, merge_gap_s=3600.0)

    def __post_init__(self):
        if self.window < 2 or self.blocks_per_profile < self.window or self.memory < 1 or self.history < 10:
            raise ValueError("window >= 2, blocks_per_profile >= window, memory >= 1 and history >= 10 required")
        if self.eps <= 0 or self.limit <= 0:
            raise ValueError("eps and limit must be > 0")
        if not 0.0 < self.tail < 0.5:
            raise ValueError("tail must be in (0, 0.5)")


def _blocks(x: np.ndarray, s: int) -> np.ndarray:
    """One value per block of ``s`` readings: the extreme reading unless within 10 % of the mean."""
    nb = len(x) // s
    B = x[: nb * s].reshape(nb, s)
    with quiet():  # all-NaN blocks stay NaN
        mean = np.nanmean(B, axis=1)
        if s == 1:
            return mean
        hi, lo = np.nanmax(B, axis=1), np.nanmin(B, axis=1)
    run = pd.Series(mean).ewm(alpha=0.5, adjust=False, ignore_na=True).mean().to_numpy()
    v = np.where(np.abs(hi - run) >= np.abs(lo - run), hi, lo)
    return np.where(np.abs(v - mean) < 0.1 * np.abs(mean), mean, v)


def left_nearest(F: np.ndarray, valid: np.ndarray, memory: int, chunk: int = 1024) -> np.ndarray:
    """Distance (RMS over features) from each row of ``F`` to its nearest earlier valid row among
    the ``memory`` before it; NaN where the row is invalid or has no earlier valid row."""
    m, d = F.shape
    out = np.full(m, np.nan)
    G = np.where(valid[:, None], F, 0.0)
    sq = np.einsum("ij,ij->i", G, G)
    for a in range(1, m, chunk):
        b = min(m, a + chunk)
        lo = max(0, a - memory)
        D = sq[a:b, None] + sq[None, lo:b] - 2.0 * G[a:b] @ G[lo:b].T
        i = np.arange(a, b)[:, None]
        j = np.arange(lo, b)[None, :]
        ok = (j < i) & (j >= i - memory) & valid[None, lo:b]
        D = np.where(ok, D, np.inf).min(axis=1)
        out[a:b] = np.where(np.isfinite(D), np.sqrt(np.maximum(D, 0.0) / d), np.nan)
    out[~valid] = np.nan
    return out


class WindowNovelty(Detector):
    name = "window_novelty"
    code = "WARN_BASELINE_DEVIATION"
    config_cls = WindowNoveltyConfig
    requires = ("p_kw",)
    reads_also = ()  # its channel only
    causal: ClassVar[bool] = True
    uses_position: ClassVar[bool] = True  # blocks are aligned on the reading's index in its series

    def channels(self) -> tuple[str, ...]:
        return (self.config.channel,)

    def _horizon_readings(self, st: dict) -> int:
        c = self.config
        s = int(st.get("block") or 1)
        range_n = c.memory * s
        recent_n = max(2, int(c.recent_share * int(st.get("rows") or 0)))
        # range_n twice: a record is judged against the last range_n readings, and the last record
        # is looked for among the range_n readings before it
        return s * (64 + c.window + c.memory + c.history + c.onset + 2) + 2 * range_n + recent_n

    def reach(self, meters) -> Reach:
        n = len(meters)
        back = np.array([self._horizon_readings(self.state_.get(m) or {}) for m in meters], np.int64)
        return Reach(np.zeros(n), back, np.zeros(n), np.zeros(n, np.int64))

    def cadence_note(self, cadence_s: float) -> str | None:
        if cadence_s >= 86400.0 * 0.95:
            return (f"{self.name}: at {cadence_s:.0f} s cadence its blocks of readings span days: it judges the "
                    f"shape of weeks, not of days ({self.config.blocks_per_profile} blocks per profiling period)")
        return None

    def _fit(self, df: pd.DataFrame) -> dict:
        cfg = self.config
        x = _channel(df, cfg.channel)
        t = df["_t"].to_numpy(float)
        starts, ends = seg_bounds(df["_seg"].to_numpy())
        out = {}
        for m, a, b in zip(meter_names(df), starts, ends):
            xm = x[a:b]
            fin = xm[np.isfinite(xm)]
            if len(fin) < 2 * cfg.window:
                out[m] = {"block": None}  # too little to learn from: this meter is not judged
                continue
            out[m] = dict(block=max(1, int(round((b - a) / cfg.blocks_per_profile))), rows=int(b - a),
                          lo=float(fin.min()), hi=float(fin.max()), t_end=float(t[b - 1]))
        return out

    def score(self, frame: pd.DataFrame) -> pd.Series:
        out = super().score(frame)
        if len(out) and not np.isfinite(out.to_numpy()).any():
            warnings.warn(f"{self.name}: no reading was judged: the readings given all lie in the period each "
                          "meter was fitted on (that period is learned, not judged); score readings after it",
                          stacklevel=2)
        return out

    def _parts(self, df: pd.DataFrame):
        cfg = self.config
        x, t = _channel(df, cfg.channel), df["_t"].to_numpy(float)
        pos = df["_n"].to_numpy() if "_n" in df.columns else None
        starts, ends = seg_bounds(df["_seg"].to_numpy())
        evidence = np.full(len(df), np.nan)
        kind = np.zeros(len(df), np.int8)  # 1 novelty, 2 new extreme, 3 recent extreme
        for m, a, b in zip(meter_names(df), starts, ends):
            st = self.state_.get(str(m)) or {}
            if st.get("block"):
                n0 = int(pos[a]) if pos is not None else 0
                evidence[a:b], kind[a:b] = self._meter(x[a:b], t[a:b], st, n0)
        return evidence, kind

    def _meter(self, x: np.ndarray, t: np.ndarray, st: dict, n0: int) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.config
        s, w = int(st["block"]), cfg.window
        # Blocks start at multiples of s in the series: pad a piece that starts mid-block.
        pad = n0 % s
        xp = np.concatenate([np.full(pad, np.nan), x]) if pad else x
        n = len(xp)
        # 1. Novelty of each window of w blocks against the windows before it.
        with quiet():
            v = (_blocks(xp, s) - st["lo"]) / ((st["hi"] - st["lo"]) or 1.0)
        nov_rows = np.zeros(n)
        if len(v) >= w + 1:
            W = np.lib.stride_tricks.sliding_window_view(v, w)
            valid = np.isfinite(W).all(axis=1)
            lg = pd.Series(np.log(left_nearest(W, valid, cfg.memory) + cfg.eps))
            roll = lg.rolling(cfg.history, min_periods=10)
            mu, sd = roll.mean().shift(1).to_numpy(), roll.std().shift(1).to_numpy()
            with quiet():
                z = (lg.to_numpy() - mu) / np.maximum(np.nan_to_num(sd, nan=1.0), 1e-3)
                neg = np.nan_to_num(np.maximum(z, 0.0) / np.log(10))
            nov_rows[(np.arange(len(W)) + w) * s - 1] = neg  # a window is known at its last reading
        # 2. Range breaks: beyond everything of the last `memory` blocks by more than that history's
        # own tail makes plausible, or beyond the recent range by more.
        xs = pd.Series(xp)
        span = max(2, cfg.memory * s)
        hist = xs.rolling(span, min_periods=1)
        hi, lo = hist.max().shift(1).to_numpy(), hist.min().shift(1).to_numpy()
        rng = np.maximum(np.nan_to_num(hi - lo), 1e-12)
        with quiet():
            brk = self._tail_evidence(xs, span, hi, lo, rng)
            out_all = np.nan_to_num(np.maximum(xp - hi, lo - xp) / rng)
            L = max(2, int(cfg.recent_share * st["rows"]))
            r = xs.rolling(L, min_periods=2)
            rhi, rlo = r.max().shift(1).to_numpy(), r.min().shift(1).to_numpy()
            out_recent = np.nan_to_num(np.maximum(xp - rhi, rlo - xp) / rng)
        brk = np.where(out_all > cfg.range_tol, brk, 0.0)
        rec = np.where(out_recent > cfg.recent_tol, cfg.recent_weight * (2 + 20 * out_recent), 0.0)
        ev = np.maximum(np.maximum(nov_rows, brk), rec)
        kind = np.select([ev <= 0, ev == brk, ev == rec], [0, 2, 3], 1).astype(np.int8)
        tp = np.concatenate([np.full(pad, -np.inf), t]) if pad else t
        learned = tp <= st["t_end"]
        ev[learned] = 0.0  # the fitting period is learned, not judged
        # 3. Onsets only: above everything of the `onset` blocks before.
        prev = pd.Series(ev).rolling(cfg.onset * s, min_periods=1).max().shift(1).fillna(0.0).to_numpy()
        ev = np.where(ev > prev, ev, 0.0)
        ev[~np.isfinite(xp) | learned] = np.nan
        return ev[pad:], kind[pad:]

    def _tail_evidence(self, xs: pd.Series, span: int, hi: np.ndarray, lo: np.ndarray,
                       rng: np.ndarray) -> np.ndarray:
        """Evidence (decades) that a reading beyond the history's maximum (minimum) is not just the
        next record of that history: the history's top (bottom) ``tail`` share is read as an
        exponential tail whose scale is its width over the log of how many readings it holds (the
        largest of k exponential draws sits ~scale x ln k above the tail's start), and a reading
        ``e`` beyond the extreme has conditional probability ``exp(-e / scale)`` of being that far.
        A seasonal drift that moves the record by a fraction of the tail's width is ~0 decades; a
        blackout to zero or a day 80 % above every peak is tens. The scale is at least
        ``range_tol`` of the range over ln k (a flat history does not make every wiggle a record)."""
        cfg = self.config
        q = xs.rolling(span, min_periods=1)
        qh = q.quantile(1.0 - cfg.tail).shift(1).to_numpy()
        ql = q.quantile(cfg.tail).shift(1).to_numpy()
        lnk = np.log(np.maximum(cfg.tail * q.count().shift(1).to_numpy(), 2.0))
        floor = cfg.range_tol * rng
        sc_hi = np.maximum(np.nan_to_num(hi - qh), floor) / lnk
        sc_lo = np.maximum(np.nan_to_num(ql - lo), floor) / lnk
        x = xs.to_numpy()
        z_hi, z_lo = np.nan_to_num((x - hi) / sc_hi), np.nan_to_num((lo - x) / sc_lo)
        # A record counts when it is one by more than range_tol of the range (the same gate as the
        # evidence): creeping a hair past the old extreme does not make the next jump look routine.
        ev_hi = cfg.range_weight * np.maximum(z_hi, 0.0) / np.log(10.0) + self._record_rarity(x - hi > floor, span)
        ev_lo = cfg.range_weight * np.maximum(z_lo, 0.0) / np.log(10.0) + self._record_rarity(lo - x > floor, span)
        return np.where(z_hi > 0, ev_hi, np.where(z_lo > 0, ev_lo, 0.0))

    @staticmethod
    def _record_rarity(rec: np.ndarray, span: int) -> np.ndarray:
        """``log10`` of how many readings have passed since this side's last record (at most
        ``span``): under exchangeable readings, the chance that a reading is a record of the
        ``n`` before it is ``1/n``. A meter whose season sets a record every few days earns
        little for one more; a meter that has kept within its range for months earns ~3-4
        decades for leaving it."""
        i = np.arange(len(rec), dtype=float)
        last = pd.Series(np.where(rec, i, np.nan)).ffill().shift(1).to_numpy()
        since = np.where(np.isfinite(last), i - last, i + 1.0)
        return np.log10(np.clip(since, 1.0, float(span)))

    def _score(self, df: pd.DataFrame) -> Scored:
        ctx = self._parts(df)
        with quiet():
            return Scored(np.log2(1.0 + ctx[0] / self.config.limit), ctx)

    def describe(self, df, rows, scores, ctx=None) -> Finding:
        ev, kind = ctx
        k = rows[int(np.nanargmax(ev[rows]))]
        x = float(_channel(df, self.config.channel)[k])
        st = self.state_.get(meter_of(df, k)) or {}
        what = {1: "a pattern unlike any window seen before", 2: "a value beyond everything seen before",
                3: "a value far beyond the recent range"}.get(int(kind[k]), "a novel pattern")
        return Finding("warning", f"{self.config.channel} {x:.4g}: {what} (evidence {ev[k]:.1f} decades; "
                                  f"profile range {st.get('lo', float('nan')):.4g}..{st.get('hi', float('nan')):.4g})",
                       {"channel": self.config.channel, "value": rnd(x), "evidence": rnd(float(ev[k]), 2),
                        "kind": {1: "novel_window", 2: "new_extreme", 3: "recent_extreme"}.get(int(kind[k]), "novel"),
                        "profile_lo": rnd(st.get("lo")), "profile_hi": rnd(st.get("hi"))},
                       "compare with site activity: the series left every pattern it had shown")
