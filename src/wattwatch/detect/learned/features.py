"""Windowed consumption features, per meter, relative to the meter's own hour-of-week baseline.

The learned detectors judge a meter against itself: every feature is dimensionless (a share of
the meter's mean load, a log ratio, a deviation in the meter's own units of spread), so one model
trained on the normal periods of many meters applies to all of them, from a flat to a data centre.

Readings are averaged on a regular grid per meter (``grid_s``, default 5 min) and every feature is
computed on that grid for all meters at once (numpy over a meters x bins matrix; no loop over
readings). A reading gets the features of its bin. Windows are trailing (a bin sees itself and
the bins before it), so a bin's features never depend on later data.

Features (``FEATURES``), for windows of ``windows_min`` (default 5, 15 and 60 min):

- ``level_<w>``: mean power over the window minus the baseline's, as a share of the meter's load;
- ``ratio_<w>`` (longest window): log of the window's mean power over the baseline's;
- ``ratio_24h``: the same over the last day: a bypass taking half the load is clear here long
  before it is clear in any hour;
- ``slope_<w>``: change of the mean between this window and the one before (shortest window);
- ``shape_60m``: log of the power's spread within the hour over its usual spread at that time of
  week (a frozen register has none, a new cycling load has more);
- ``pf_dev``, ``q_share_dev``: channel ratios (power factor; reactive over apparent power) off the
  meter's usual values, in units of their usual spread (0 where the meter lacks the channels).

Baseline: per meter, day type (weekday pooled, Saturday, Sunday) x hour of day, the mean of the
leave-one-day-out medians of the hourly mean power over the fitting period (the estimator the
training features are judged against, see below). A day type seen on fewer than ``min_days`` days (a week
of profile has one Saturday) is not judged: one day is an anecdote, not a baseline. Features for
*training* use a leave-one-day-out baseline (each day judged against the other days of its type;
a day with none, like the one Saturday of a profiled week, is left out of training), so a model
never learns from residuals its own day made small.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from wattwatch.detect.base import quiet, widen_bins
from wattwatch.detect.frame import day_type, grid, meter_names
from wattwatch.detect.rules._common import binned_power

DAY_S = 86400.0


@dataclass(frozen=True)
class FeatureConfig:
    """``grid_s``: bin width (s); ``windows_min``: trailing windows in minutes (multiples of the
    bin, 2-60 min with a 1-min grid); ``eps_rel``: floor of a log ratio, as a share of the load;
    ``min_days``: a day type profiled from fewer days is not judged; ``channel``: the series the
    level, ratio, slope and shape features are built from (active power by default; any canonical
    or extra channel, e.g. a UPS's ``ups_load_pct``); ``register_interval_s``: for active power on
    a grid of ``register_min_interval_s`` or coarser (meters read every 15 minutes or less often),
    a bin's power is what the energy register counted in it (intervals up to this long), where the
    meter has a register (None: the power readings' mean). A power reading is a snapshot: at
    hourly cadence one that caught a kettle stands for an hour of boiling and the kettles it missed
    are not there at all, while the register counted the hour's energy. Over a few minutes it is
    the other way round: a 1 Wh register step is 12 W over 5 minutes, a home's whole night-time
    wander, while a snapshot every 5 minutes follows a kettle well. ``busy_min_hours``: hours of
    data a profiled day needs to be the busiest of its type; ``busy_lifted_share``: the busiest
    day stops explaining bins once, over the last day, more than this share of the hours it
    rested found the meter above its rest level (a load added lifts them all; a shift starting
    early or ending late only its edges)."""

    grid_s: float = 300.0
    windows_min: tuple[int, ...] = (5, 15, 60)
    eps_rel: float = 0.05
    min_days: int = 2
    channel: str = "p_kw"
    register_interval_s: float | None = 7200.0
    register_min_interval_s: float = 900.0
    busy_min_hours: int = 20
    busy_lifted_share: float = 0.5

    def binned(self, df: pd.DataFrame, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The channel's mean per meter and clock-aligned bin (see :func:`grid`); for active power,
        the register's energy per bin where it counted (see :attr:`register_interval_s`)."""
        if self.uses_register() and "e_kwh" in df.columns:
            # (Power readings as they are elsewhere: the model learned motor starts as normal.)
            return binned_power(df, bin_s, self.register_interval_s, drop_inrush=False)
        return grid(df, self.series(df), bin_s)

    def uses_register(self) -> bool:
        """Whether bins take the register's energy (active power on a coarse enough grid)."""
        return (self.channel == "p_kw" and self.register_interval_s is not None
                and self.grid_s >= self.register_min_interval_s)

    def spill_s(self) -> float:
        """How far outside its bin a reading can move the bin's value (a register interval is
        placed by its midpoint)."""
        return self.register_interval_s / 2 if self.uses_register() else 0.0

    def series(self, df: pd.DataFrame) -> np.ndarray:
        """The channel the features follow (all NaN when the frame lacks it)."""
        return df[self.channel].to_numpy(float) if self.channel in df.columns else np.full(len(df), np.nan)

    def names(self) -> list[str]:
        w = [f"{m}m" for m in self.windows_min]
        return ([f"level_{x}" for x in w] + [f"ratio_{w[-1]}", "ratio_24h", f"slope_{w[0]}", f"shape_{w[-1]}",
                                              "pf_dev", "q_share_dev"])

    def steps(self, minutes: float) -> int:
        return max(1, int(round(minutes * 60 / self.grid_s)))


def _rolling_sum(x: np.ndarray, k: int, col0: np.ndarray | None) -> np.ndarray:
    """Trailing sums over ``k`` bins along axis 1 (``x`` finite).

    Each sum is taken from running sums restarted at absolute bin indices that are multiples of
    ``k`` (``col0``: absolute index of column 0 per row), never from one running sum over the whole
    row: a bin's sum then has the same rounding whether the matrix starts a day or a month before
    it, so scoring a piece that holds the ``2k`` bins before a bin gives the bits the whole gives.
    Rows are processed in groups that share their alignment (slices, no gathers)."""
    n, nb = x.shape
    out = np.empty_like(x)
    if n == 0 or nb == 0:
        return out
    B = max(1, int(k))
    off = (np.zeros(n, np.int64) if col0 is None else np.asarray(col0, np.int64)) % B
    width = int((off.max() + nb + B - 1) // B * B)
    nblk = width // B
    for o in np.unique(off):
        rows = np.flatnonzero(off == o)
        o = int(o)
        P = np.zeros((len(rows), nblk, B))
        flat = P.reshape(len(rows), width)
        flat[:, o:o + nb] = x[rows]
        np.cumsum(P, axis=2, out=P)  # running sums restarted at every block
        # The window (p - B, p] is the rest of the previous block after p's position plus the
        # current block up to p: C[p] + (total of previous block - C[p - B]).
        prev = np.zeros_like(P)
        prev[:, 1:] = P[:, :-1, -1:] - P[:, :-1, :]
        S = P + prev
        S[:, :, B - 1] = P[:, :, B - 1]
        out[rows] = S.reshape(len(rows), width)[:, o:o + nb]
    return out


def _rolling_mean(m: np.ndarray, k: int, min_count: int = 1, col0: np.ndarray | None = None) -> np.ndarray:
    """Trailing mean over ``k`` bins along axis 1, ignoring NaN; NaN where the window holds fewer
    than ``min_count`` values. ``col0``: absolute bin index of column 0 per row (see
    :func:`_rolling_sum`)."""
    ok = np.isfinite(m)
    cs = _rolling_sum(np.where(ok, m, 0.0), k, col0)
    cn = np.cumsum(ok, axis=1)
    if k < m.shape[1]:
        cn[:, k:] = cn[:, k:] - cn[:, :-k].copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(cn >= max(1, min_count), cs / np.maximum(cn, 1), np.nan)


def covered_mean(m: np.ndarray, k: int, col0: np.ndarray | None = None) -> np.ndarray:
    """Trailing mean over ``k`` bins, only where at least half of them hold a value: after bins
    that cannot be judged (a weekend day without a profile, the start of the data, a long gap)
    the window's first bin or two do not stand for the whole window."""
    return _rolling_mean(m, k, (k + 1) // 2, col0)


def _shift(m: np.ndarray, k: int) -> np.ndarray:
    out = np.full_like(m, np.nan)
    if k < m.shape[1]:
        out[:, k:] = m[:, :-k]
    return out


@dataclass
class GridFeatures:
    """Features of every bin (``values``: meters x bins x features, NaN where a bin has no
    reading) and how readings map onto bins (``cell``: flat bin index of each row)."""

    values: np.ndarray
    valid: np.ndarray  # meters x bins: the bin has a power reading
    cell: np.ndarray
    t0: np.ndarray
    power: np.ndarray  # meters x bins: mean power
    expected: np.ndarray  # meters x bins: baseline power
    col0: np.ndarray | None = None  # per meter: absolute grid index of bin 0 (t0 / grid)
    quiet: "GridFeatures | None" = None  # the same bins against a quieter profiled day type (see Baseline)
    # The grid's own series every feature is computed from (``p``, ``pf``, ``qs``: meters x bins,
    # before any baseline mask), kept when scored with carried bins (a stream carries them on).
    series: dict | None = None
    busy: "GridFeatures | None" = None  # the same bins against the busiest profiled day of their type

    def meters(self, keep: np.ndarray) -> "GridFeatures":
        """The features of the meters ``keep`` (segment codes) only (no reading map)."""
        return GridFeatures(values=self.values[keep], valid=self.valid[keep], cell=np.zeros(0, np.int64),
                            t0=self.t0[keep], power=self.power[keep], expected=self.expected[keep],
                            col0=None if self.col0 is None else self.col0[keep])

    def rows(self) -> np.ndarray:
        """Feature rows of the valid bins (float32, C order), in (meter, time) order."""
        return np.ascontiguousarray(self.values[self.valid], dtype=np.float32)


class Baseline:
    """Per-meter hour-of-week profile of power, its usual in-hour spread and channel ratios."""

    def __init__(self, config: FeatureConfig):
        self.config = config

    def fit(self, df: pd.DataFrame) -> "Baseline":
        cfg = self.config
        names = meter_names(df)
        p, _, t0 = cfg.binned(df, 3600.0)
        n_seg, n_h = p.shape
        t_h = t0[:, None] + 3600.0 * np.arange(n_h)[None, :]
        day = np.floor(t_h / DAY_S).astype(np.int64)
        day -= day[:, :1]
        hour = ((t_h % DAY_S) // 3600).astype(int)
        dtype = day_type(t_h)
        n_days = int(day.max()) + 1 if day.size else 0
        # meters x days x 24 hourly means, and each day's type.
        H = np.full((n_seg, max(n_days, 1), 24), np.nan)
        D = np.full((n_seg, max(n_days, 1)), -1)
        rows = np.broadcast_to(np.arange(n_seg)[:, None], p.shape)
        H[rows, day, hour] = p
        D[rows, day] = dtype
        # Days without a single hour of the meter (the padding after its last reading, up to the
        # frame's longest meter) are no day of its: they must not enter its profile.
        D = np.where(np.isfinite(H).any(axis=2), D, -1)
        prof = np.full((n_seg, 3, 24), np.nan)
        loo = np.full_like(H, np.nan)
        with quiet():  # all-NaN slices are expected
            # Days of each type with at least half a day of data (a jittered first reading at
            # 23:59:58 does not make a Sunday profiled).
            full = np.isfinite(H).sum(axis=2) >= 12
            self.days_ = np.stack([((D == k) & full).sum(axis=1) for k in range(3)], axis=1)
            for k in range(3):
                of_k = (D == k)[:, :, None]
                for d in range(n_days):
                    others = of_k & (np.arange(n_days) != d)[None, :, None]
                    med = np.nanmedian(np.where(others, H, np.nan), axis=1)
                    here = D[:, d] == k
                    loo[here, d] = med[here]
                # The baseline a new day is judged against is the mean of the leave-one-day-out
                # medians: the same estimator (a median of n-1 days) the model was trained on. The
                # median of all n days sits lower on skewed loads (of 4 days it is the mean of the
                # middle two, of 5 the middle one), which read as a steady rise of ~10 % in detection.
                loo_mean = np.nanmean(np.where(of_k, loo, np.nan), axis=1)
                prof[:, k] = np.where(np.isfinite(loo_mean), loo_mean,
                                      np.nanmedian(np.where(of_k, H, np.nan), axis=1))
            prof = np.where(np.isfinite(prof), prof, prof[:, :1])  # unseen day type -> weekdays
            hod = np.nanmedian(H.reshape(n_seg, -1, 24), axis=1)
            prof = np.where(np.isfinite(prof), prof, hod[:, None, :])
            # A sequential sum (cumsum), not numpy's pairwise one: the rows are padded to the
            # frame's longest meter, and pairwise blocks over a longer row round differently, so a
            # meter fitted next to a longer one learned a scale one ulp off what it learns alone.
            ok = np.isfinite(p)
            if n_h:
                total = np.cumsum(np.where(ok, p, 0.0), axis=1)[:, -1]
                count = ok.sum(axis=1)
                mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
            else:
                mean = np.zeros(n_seg)
        scale = np.where(np.isfinite(mean) & (np.abs(mean) > 1e-6), np.abs(mean), 1.0)
        self.names_ = names
        self.index_ = {m: i for i, m in enumerate(names)}
        self.profile_ = prof
        self.loo_ = loo
        self.first_day_ = np.floor(t0 / DAY_S).astype(np.int64) if n_seg else np.zeros(0, np.int64)
        self.scale_ = scale
        # In-hour spread, by time of week, and channel ratios (median, robust spread).
        g = self._grid(df)
        std = np.sqrt(np.maximum(_rolling_mean(g["p"] ** 2, g["k60"], col0=g["col0"])
                                 - _rolling_mean(g["p"], g["k60"], col0=g["col0"]) ** 2, 0))
        # Only where the meter has a reading (a trailing window reaches into the padding after it).
        std = np.where(np.isfinite(g["p"]), std, np.nan)
        self.spread_ = self._profile_of(std, g["t"], n_seg)
        self.busy_, self.busy_spread_ = self._busiest_days(H, D, std, g["t"], self.first_day_)
        self.ratio_stats_ = {}
        with quiet():  # a meter without the channel: all NaN
            for key in ("pf", "qs"):
                x = g[key]
                med = np.nanmedian(x, axis=1) if x.size else np.zeros(n_seg)
                mad = 1.4826 * np.nanmedian(np.abs(x - med[:, None]), axis=1) if x.size else np.zeros(n_seg)
                self.ratio_stats_[key] = (med, np.maximum(np.nan_to_num(mad, nan=1.0), 0.01))
        return self

    def _busiest_days(self, H: np.ndarray, D: np.ndarray, std: np.ndarray, t: np.ndarray,
                      first_day: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per meter and day type, the hours of its busiest profiled day (meters x 3 x 24 hourly
        means; the day of the type with the most energy among those with ``busy_min_hours`` of
        data) and that day's own in-hour spread (median per hour of the trailing hour's standard
        deviation). NaN where the type has no such day."""
        n_seg, n_days = D.shape
        busy = np.full((n_seg, 3, 24), np.nan)
        busy_s = np.full((n_seg, 3, 24), np.nan)
        if not n_seg or not n_days:
            return busy, busy_s
        hours = np.isfinite(H).sum(axis=2)
        with quiet():
            energy = np.nanmean(H, axis=2)  # mean kW of the day's hours with data
        # In-hour spread per (meter, day, hour) of the fitting period.
        ok = np.isfinite(std)
        seg = np.broadcast_to(np.arange(n_seg)[:, None], std.shape)[ok]
        day = np.floor(t[ok] / DAY_S).astype(np.int64) - first_day[seg]
        inside = (day >= 0) & (day < n_days)
        key = (seg[inside] * n_days + day[inside]) * 24 + ((t[ok][inside] % DAY_S) // 3600).astype(np.int64)
        S = np.full(n_seg * n_days * 24, np.nan)
        if len(key):
            med = pd.Series(std[ok][inside]).groupby(key).median()
            S[med.index.to_numpy()] = med.to_numpy()
        S = S.reshape(n_seg, n_days, 24)
        rows = np.arange(n_seg)
        for k in range(3):
            e = np.where((D == k) & (hours >= self.config.busy_min_hours) & np.isfinite(energy), energy, -np.inf)
            d = np.argmax(e, axis=1)
            has = np.isfinite(e[rows, d])
            busy[has, k] = H[rows[has], d[has]]
            busy_s[has, k] = S[rows[has], d[has]]
        return busy, busy_s

    # ------------------------------------------------------------------------------ state

    def meter_states(self) -> dict[str, dict]:
        """What detection needs of each meter's baseline, as plain per-meter values (the
        leave-one-day-out table is for training only and is not kept)."""
        out = {}
        pf_med, pf_mad = self.ratio_stats_["pf"]
        qs_med, qs_mad = self.ratio_stats_["qs"]
        for j, m in enumerate(self.names_):
            out[str(m)] = {"profile_kw": self.profile_[j].tolist(), "days": self.days_[j].tolist(),
                           "spread_kw": self.spread_[j].tolist(), "scale_kw": float(self.scale_[j]),
                           "pf": [float(pf_med[j]), float(pf_mad[j])], "qs": [float(qs_med[j]), float(qs_mad[j])],
                           "busy_kw": self.busy_[j].tolist(), "busy_spread_kw": self.busy_spread_[j].tolist(),
                           "grid_s": float(self.config.grid_s)}
        return out

    @classmethod
    def from_states(cls, config: FeatureConfig, states: dict[str, dict]) -> "Baseline":
        """A baseline for detection from per-meter states (:meth:`meter_states`)."""
        b = cls(config)
        names = list(states)
        n = len(names)

        def arr(key, shape):
            out = np.full((n,) + shape, np.nan)
            for j, m in enumerate(names):
                v = states[m].get(key)
                if v is not None:
                    out[j] = np.asarray(v, float).reshape(shape)
            return out

        b.names_ = np.asarray(names, dtype=object)
        b.index_ = {m: j for j, m in enumerate(names)}
        b.profile_ = arr("profile_kw", (3, 24))
        b.days_ = np.nan_to_num(arr("days", (3,))).astype(np.int64)
        b.spread_ = arr("spread_kw", (3, 24))
        b.busy_, b.busy_spread_ = arr("busy_kw", (3, 24)), arr("busy_spread_kw", (3, 24))
        b.scale_ = np.nan_to_num(arr("scale_kw", ()), nan=1.0)
        pf, qs = arr("pf", (2,)), arr("qs", (2,))
        b.ratio_stats_ = {"pf": (pf[:, 0], np.nan_to_num(pf[:, 1], nan=1.0)), "qs": (qs[:, 0], np.nan_to_num(qs[:, 1], nan=1.0))}
        return b

    # ------------------------------------------------------------------------------ helpers

    def _grid(self, df: pd.DataFrame, carry: dict | None = None) -> dict:
        """The frame on the grid: per meter and bin the channel's mean ``p`` (see
        :meth:`FeatureConfig.binned`), the power factor ``pf`` and reactive share ``qs``, each
        reading's ``cell``, each meter's first bin ``t0`` and the bins' times ``t``. ``carry``
        (a stream): per meter its carried bins (:class:`~wattwatch.detect.learned.detectors.GridCarry`),
        which widen the grid before the frame's readings and give those bins' three series: every
        feature of a bin is a function of them (and the meter's state)."""
        cfg = self.config
        p_kw = df["p_kw"].to_numpy(float)
        p, cell, t0 = cfg.binned(df, cfg.grid_s)
        va = np.zeros(len(df))
        have_v = np.zeros(len(df), bool)
        for k in (1, 2, 3):
            v, i = df[f"v_l{k}_v"].to_numpy(float), df[f"i_l{k}_a"].to_numpy(float)
            ok = np.isfinite(v) & np.isfinite(i)
            va += np.where(ok, v * i, 0.0)
            have_v |= ok
        with np.errstate(invalid="ignore", divide="ignore"):
            pf_row = np.where(have_v & (va > 1.0), np.abs(p_kw) * 1000.0 / va, np.nan)
            q, s = df["q_kvar"].to_numpy(float), df["s_kva"].to_numpy(float)
            qs_row = np.where(np.isfinite(q) & (s > 1e-3), q / s, np.nan)
        n_seg, n_b = p.shape

        def on_grid(x):
            ok = np.isfinite(x)
            sums = np.bincount(cell[ok], weights=x[ok], minlength=n_seg * n_b)
            cnt = np.bincount(cell[ok], minlength=n_seg * n_b)
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan).reshape(n_seg, n_b)

        mats = {"p": p, "pf": on_grid(pf_row), "qs": on_grid(qs_row)}
        if carry:
            mats, cell, t0 = widen_bins([carry.get(str(m)) for m in meter_names(df)], mats, cell,
                                        df["_seg"].to_numpy(), t0, cfg.grid_s)
            n_b = mats["p"].shape[1]
        t = t0[:, None] + cfg.grid_s * np.arange(n_b)[None, :]
        return {**mats, "cell": cell, "t0": t0, "t": t,
                "k60": cfg.steps(cfg.windows_min[-1]), "col0": np.round(t0 / cfg.grid_s).astype(np.int64)}

    def _profile_of(self, m: np.ndarray, t: np.ndarray, n_seg: int) -> np.ndarray:
        """Median of a meters x bins matrix per (meter, day type, hour)."""
        ok = np.isfinite(m)
        s = np.broadcast_to(np.arange(n_seg)[:, None], m.shape)[ok]
        key = s * 72 + day_type(t[ok]) * 24 + ((t[ok] % DAY_S) // 3600).astype(int)
        out = np.full(n_seg * 72, np.nan)
        if len(key):
            med = pd.Series(m[ok]).groupby(key).median()
            out[med.index.to_numpy()] = med.to_numpy()
        out = out.reshape(n_seg, 3, 24)
        out = np.where(np.isfinite(out), out, out[:, :1])
        return out

    def _lookup(self, names: np.ndarray, arr: np.ndarray, default: float) -> np.ndarray:
        idx = np.array([self.index_.get(m, -1) for m in names], np.int64)
        out = np.full((len(names),) + arr.shape[1:], default, float)
        known = idx >= 0
        out[known] = arr[idx[known]]
        return out

    # ------------------------------------------------------------------------------ features

    def features(self, df: pd.DataFrame, leave_day_out: bool = False, carry: dict | None = None) -> GridFeatures:
        """Features of every bin of ``df`` (a prepared frame). ``leave_day_out``: judge each day
        against the other days of its type (for training on the frame the baseline was fit on).
        ``carry``: per meter its carried bins (a stream, see :meth:`_grid`); the result then keeps
        the grid's series (``series``)."""
        cfg = self.config
        names = meter_names(df)
        g = self._grid(df, carry)
        P, t = g["p"], g["t"]
        col0 = g["col0"]
        n_seg, n_b = P.shape
        rows = np.broadcast_to(np.arange(n_seg)[:, None], P.shape)
        dtype, hour = day_type(t), ((t % DAY_S) // 3600).astype(int)
        prof = self._lookup(names, self.profile_, np.nan)
        if leave_day_out:
            idx = np.array([self.index_[m] for m in names], np.int64)
            day = np.floor(t / DAY_S).astype(np.int64) - self.first_day_[idx][:, None]
            loo = self.loo_[idx]
            inside = (day >= 0) & (day < loo.shape[1])
            B = np.where(inside, loo[rows, np.clip(day, 0, loo.shape[1] - 1), hour], np.nan)
            # A day with no other day of its type (the one Saturday of a week) has no honest
            # baseline: it is left out of training, unless the meter has no other day at all.
            none = ~np.isfinite(B).any(axis=1)
            B[none] = prof[rows, dtype, hour][none]
        else:
            B = prof[rows, dtype, hour]
        # A day type profiled from fewer than min_days days (the one Saturday of a profiled week) is
        # not a baseline: its bins cannot be judged (weekdays judge the meter meanwhile).
        thin = self._lookup(names, self.days_, 0)[rows, dtype] < cfg.min_days
        B = np.where(thin, np.nan, B)
        spread_all = self._lookup(names, self.spread_, np.nan)
        spread = spread_all[rows, dtype, hour]
        known = np.isfinite(B)
        # Windows compare like with like: power only where there is a baseline, and vice versa.
        P = np.where(known, P, np.nan)
        B = np.where(np.isfinite(P), B, np.nan)
        values, valid = self._stack(names, g, P, B, spread)
        out = GridFeatures(values=values, valid=valid, cell=g["cell"], t0=g["t0"], power=P, expected=B, col0=col0,
                           series=None if carry is None else {k: g[k] for k in ("p", "pf", "qs")})
        if not leave_day_out:
            out.quiet = self._quiet_day(names, g, P, B, spread, prof, spread_all, rows, dtype, hour, valid)
            out.busy = self._busy_day(names, g, P, B, prof, rows, dtype, hour, valid)
        return out

    def _quiet_day(self, names, g, P, B, spread, prof, spread_all, rows, dtype, hour, valid) -> "GridFeatures | None":
        """The same bins judged, hour by hour, against whichever profiled day type of the meter
        that is quieter than the bin's own (a plant's Sunday, an office's weekend) its last hour
        is closer to, where that is closer than its own type's profile: a meter can be in a state
        one of its profiled days showed (a plant stopped, as on its profiled Sunday; a shift cut
        short) without that being a consumption fault. One profiled day of the type is enough to
        show the state exists (it is no baseline to accuse from: thin types are still not
        judged). None when no meter has such a day type."""
        days = self._lookup(names, self.days_, 0)
        energy = np.nansum(prof, axis=2)  # meters x 3: each type's profiled day, kWh
        own = energy[rows, dtype]
        # Closeness in logs: a bypass taking half a plant's load is far nearer its working day
        # than its stopped Sunday; a stop is at the Sunday's level.
        eps = self.config.eps_rel * self._lookup(names, self.scale_, 1.0)[:, None]

        def far(x):
            return np.abs(np.log((np.maximum(P60, 0) + eps) / (np.maximum(x, 0) + eps)))

        P60 = _rolling_mean(P, g["k60"], col0=g["col0"])
        best = far(B)
        alt_B, alt_s = B.copy(), spread.copy()
        used = np.zeros(B.shape, bool)
        for k in (1, 2):
            Bk = prof[rows, k, hour]
            ok = (days[:, k] >= 1)[:, None] & (energy[:, k][:, None] < own) & (dtype != k) & np.isfinite(Bk)
            d = far(Bk)
            take = ok & np.isfinite(d) & (d < best)
            alt_B = np.where(take, Bk, alt_B)
            alt_s = np.where(take, spread_all[rows, k, hour], alt_s)
            best = np.where(take, d, best)
            used |= take
        if not used.any():
            return None
        alt_B = np.where(np.isfinite(P), alt_B, np.nan)
        values, v = self._stack(names, g, P, alt_B, alt_s)
        return GridFeatures(values=values, valid=v & valid, cell=np.zeros(0, np.int64), t0=g["t0"], power=P,
                            expected=alt_B, col0=g["col0"])

    def _busy_day(self, names, g, P, B, prof, rows, dtype, hour, valid) -> "GridFeatures | None":
        """The mirror of :meth:`_quiet_day`: the same bins judged, hour by hour, against the
        busiest profiled day of their own type (its hours and its own in-hour spread, kept in
        the meter's state) where the bin's last hour is closer to that day's hour than to the
        profile, in logs, and the busy day drew more there: a plant working longer or harder, as
        it did on its busiest profiled weekday, is in a state its profile showed. Beyond that
        day's level a bin still counts by how far it exceeds it (a load added on top of a busy
        day). None when no bin is nearer a busier day."""
        busy = getattr(self, "busy_", None)
        if busy is None:
            return None
        Bb = self._lookup(names, busy, np.nan)[rows, dtype, hour]
        Sb = self._lookup(names, self.busy_spread_, np.nan)[rows, dtype, hour]
        energy = np.nansum(prof, axis=2)[rows, dtype]
        with quiet():  # a type without a busy day: all NaN
            busy_energy = np.nanmean(self._lookup(names, busy, np.nan), axis=2)[rows, dtype] * 24
        eps = self.config.eps_rel * self._lookup(names, self.scale_, 1.0)[:, None]
        P60 = np.maximum(_rolling_mean(P, g["k60"], col0=g["col0"]), 0) + eps
        with np.errstate(invalid="ignore", divide="ignore"):
            near = (np.abs(np.log(P60 / (np.maximum(Bb, 0) + eps)))
                    < np.abs(np.log(P60 / (np.maximum(B, 0) + eps))))
        # A busier day explains a bin only while the meter kept its rest level over most of the
        # hours the busy day rested (within 5/3 of the meter's quietest profiled hours, their tenth
        # percentile) in the day before it: a level shift (a load added, a share of the meter
        # moved) lifts every one of those hours, while a plant starting its shift a quarter of an
        # hour early or running an hour late lifts only the hours at the shift's edges (the trailing
        # hour's mean still holds the ramp). Any lifted bin used to withdraw the busy day for a
        # whole day, and a working day's schedule moving by minutes read as a load added.
        with quiet():  # a meter without a profile: all NaN
            rest = (5.0 / 3.0) * np.maximum(np.nanquantile(prof.reshape(len(prof), -1), 0.1, axis=1), 0)[rows] + eps
        # (Counted over the bins with a reading only: a weekend left unjudged is no evidence that
        # the meter rested, and would dilute a level shift's lifted Monday.)
        resting = (np.maximum(Bb, 0) <= rest) & np.isfinite(P60)
        lifted = resting & (P60 > rest)
        k24 = self.config.steps(24 * 60)
        kept = ~(_rolling_mean(lifted.astype(float), k24, col0=g["col0"])
                 > self.config.busy_lifted_share * _rolling_mean(resting.astype(float), k24, col0=g["col0"]))
        take = (np.isfinite(B) & np.isfinite(Bb) & np.isfinite(Sb) & (busy_energy > energy) & (Bb > B) & near
                & kept)
        if not take.any():
            return None
        alt_B = np.where(take, Bb, B)
        alt_s = np.where(take, Sb, self._lookup(names, self.spread_, np.nan)[rows, dtype, hour])
        alt_B = np.where(np.isfinite(P), alt_B, np.nan)
        values, v = self._stack(names, g, P, alt_B, alt_s)
        return GridFeatures(values=values, valid=v & valid, cell=np.zeros(0, np.int64), t0=g["t0"], power=P,
                            expected=alt_B, col0=g["col0"])

    def _stack(self, names, g, P, B, spread) -> tuple[np.ndarray, np.ndarray]:
        """Feature values (meters x bins x features) of power ``P`` against the expected ``B``, and
        which bins are valid."""
        cfg = self.config
        col0 = g["col0"]
        scale = self._lookup(names, self.scale_, 1.0)[:, None]
        eps = cfg.eps_rel * scale
        feats = []
        means = {}
        for w in cfg.windows_min:
            k = cfg.steps(w)
            mp, mb = _rolling_mean(P, k, col0=col0), _rolling_mean(B, k, col0=col0)
            means[w] = (mp, mb)
            feats.append((mp - mb) / scale)
        mp, mb = means[cfg.windows_min[-1]]
        feats.append(np.log((np.maximum(mp, 0) + eps) / (np.maximum(mb, 0) + eps)))
        k24 = cfg.steps(24 * 60)
        feats.append(np.log((np.maximum(_rolling_mean(P, k24, col0=col0), 0) + eps)
                            / (np.maximum(_rolling_mean(B, k24, col0=col0), 0) + eps)))
        k0 = cfg.steps(cfg.windows_min[0])
        m0 = means[cfg.windows_min[0]][0]
        feats.append(np.nan_to_num((m0 - _shift(m0, k0)) / scale))
        k60 = g["k60"]
        std = np.sqrt(np.maximum(_rolling_mean(P ** 2, k60, col0=col0) - _rolling_mean(P, k60, col0=col0) ** 2, 0))
        feats.append(np.nan_to_num(np.log((std + eps) / (np.nan_to_num(spread, nan=0.0) + eps))))
        for key in ("pf", "qs"):
            med, mad = self.ratio_stats_[key]
            med, mad = self._lookup(names, med, np.nan), self._lookup(names, mad, 1.0)
            feats.append(np.nan_to_num(np.clip((g[key] - med[:, None]) / mad[:, None], -50, 50)))
        values = np.stack(feats, axis=2)
        valid = np.isfinite(P) & np.isfinite(B) & np.isfinite(values).all(axis=2)
        return values, valid
