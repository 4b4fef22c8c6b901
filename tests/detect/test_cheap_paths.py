"""Cheaper computations of the detection core give the numbers the plain ones give, to the bit
(issue 15: the per-meter cost of fleet scoring): each against the formula it replaced."""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.detect.baseline.macd import BaselineMACD
from wattwatch.detect.frame import seg_quantile
from wattwatch.detect.rules.packets import _around


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b))


def test_least_value_per_meter_is_the_partial_sorts_with_zero_signs():
    rng = np.random.default_rng(5)
    for trial in range(60):
        lens = rng.integers(0, 40, int(rng.integers(1, 12)))
        seg = np.repeat(np.arange(len(lens)), lens)
        x = rng.choice(np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 2.5]), size=len(seg))
        x = np.where(rng.random(len(seg)) < 0.5, rng.normal(size=len(seg)), x)
        for mask in (None, x > 0, rng.random(len(seg)) < 0.6):
            ok = np.isfinite(x) if mask is None else mask & np.isfinite(x)
            want = np.full(len(lens), np.nan)
            for k in range(len(lens)):
                v = x[ok & (seg == k)]
                if len(v):
                    want[k] = np.partition(v, 0)[0]
            assert _same(seg_quantile(x, seg, len(lens), 0.0, mask), want), trial


def test_recalibrated_limits_only_of_mature_meters_equal_the_whole_fleets():
    d = BaselineMACD()
    rng = np.random.default_rng(9)
    fast = rng.normal(size=(6, 24 * 50))
    fast[1, 300:700] = np.nan
    hist = np.array([40.0, 35.0, 3.0, np.nan, 28.0, 0.0])  # mature: >= recal_min_profile_days (28)
    c = d.config
    roll = pd.DataFrame(fast.T).rolling(d._recal_h(), min_periods=int(np.ceil(24 * c.recal_min_days)))
    iqr = (roll.quantile(0.75) - roll.quantile(0.25)).shift(1).to_numpy().T / 1.349
    mature = np.nan_to_num(hist) >= c.recal_min_profile_days
    for limit in (np.full(6, 0.2), rng.random((6, fast.shape[1])) * 0.5):
        out = np.broadcast_to(limit if limit.ndim == 2 else limit[:, None], fast.shape)
        want = np.where(mature[:, None], np.fmax(out, c.recal_k * iqr), out)
        got = d._recalibrated(limit, fast, hist)
        assert _same(got, want)
        assert (got[mature] > out[mature]).any()  # the recalibration did raise some limits
    # No mature meter: the fitted limits, unchanged.
    assert _same(d._recalibrated(np.full(6, 0.2), fast, np.zeros(6)), np.full(fast.shape, 0.2))


def test_loss_around_each_reading_skips_meters_that_lost_nothing():
    rng = np.random.default_rng(2)
    lens = [50, 80, 30, 60]
    seg = np.repeat(np.arange(4), lens)
    t = np.concatenate([np.cumsum(rng.choice([300.0, 300.0, 600.0, 1500.0], n)) for n in lens])
    x = np.where(rng.random(len(seg)) < 0.1, rng.integers(1, 4, len(seg)).astype(float), 0.0)
    x[seg == 1] = 0.0  # a meter that lost nothing
    x[seg == 3] = np.where(x[seg == 3] > 0, 1.0, 0.0)  # one that lost single readings only
    half = np.full(4, 3600.0)
    before, after = _around(x, t, seg, half)
    for i in range(len(x)):  # brute force, reading by reading
        same = seg == seg[i]
        b = x[same & (t >= t[i] - 3600.0) & (np.arange(len(x)) <= i)].sum()
        nxt = same & (np.arange(len(x)) > i)
        a = x[nxt & ((t <= t[i] + 3600.0) | (np.arange(len(x)) == i + 1))].sum()
        assert (before[i], after[i]) == (b, a), i
    assert not before[seg == 1].any() and not after[seg == 1].any()


def test_a_quantile_per_key_does_not_depend_on_the_rows_order():
    """seg_quantile / seg_median per key of rows in any order (a meter's load levels, say) equal
    the quantile of each key's rows: read in runs, a key's answer was its last run's (q19's first
    per-level median, rev34), and differed between the per-meter loop and the many-meters sort."""
    from wattwatch.detect.frame import seg_median

    rng = np.random.default_rng(11)
    for n, size in ((7, 400), (30_000, 120_000)):
        key = rng.integers(0, n, size)
        x = rng.normal(size=size) + key % 5
        x[rng.random(size) < 0.05] = np.nan
        mask = rng.random(size) < 0.8
        order = np.argsort(key, kind="stable")
        for q in (0.0, 0.5, 0.9):
            want = seg_quantile(x[order], key[order], n, q, mask[order])
            assert _same(seg_quantile(x, key, n, q, mask), want), (n, q)
        assert _same(seg_median(x, key, n), seg_quantile(x[order], key[order], n, 0.5))
        # a check of the sorted answer itself, on a few keys
        for k in range(0, n, max(1, n // 5)):
            v = np.sort(x[(key == k) & mask & np.isfinite(x)])
            got = seg_quantile(x, key, n, 0.5, mask)[k]
            assert (len(v) == 0 and np.isnan(got)) or got == v[int(0.5 * (len(v) - 1))]
