"""Grouped time-window rolling in one pass (wattwatch.detect.rolling) equals pandas'
``groupby(key).rolling("7D", closed=...)`` row for row: repeated times, NaN values, sub-second
and whole-second times, one-row groups, every ``closed``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pandas._libs.window.indexers import calculate_variable_window_bounds

from wattwatch.detect import rolling
from wattwatch.detect.rolling import grouped_rolling, time_index, window_bounds


@pytest.mark.parametrize("closed", ["left", "right", "both", "neither"])
def test_bounds_are_pandas_bounds_with_repeated_times(closed):
    ns = np.array([0, 5, 10, 10, 12, 20, 20, 20, 31], np.int64)
    want = calculate_variable_window_bounds(len(ns), 10, 1, False, closed, ns)
    got = window_bounds(np.zeros(len(ns), np.int64), ns, 10, closed)
    assert np.array_equal(want[0], got[0]) and np.array_equal(want[1], got[1])


@pytest.mark.parametrize("seed", range(6))
def test_statistics_equal_pandas_grouped_rolling(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(50, 2000))
    key = np.sort(rng.integers(0, int(rng.integers(1, 30)), n))
    decimals = int(rng.integers(0, 3))  # whole seconds take the fast path, fractions pandas' own
    t = 1.7e9 + np.concatenate([np.sort(np.round(rng.random(int((key == k).sum())) * 2e6, decimals))
                                for k in np.unique(key)])
    v = rng.normal(size=n)
    v[rng.random(n) < 0.1] = np.nan
    for closed in ("left", "right", "both", "neither"):
        for window, minp in (("7D", 3), ("86400s", 1)):
            g = pd.Series(v, index=pd.to_datetime(t, unit="s")).groupby(key, sort=False).rolling(
                window, closed=closed, min_periods=minp)
            r = grouped_rolling(v, key, time_index(t), pd.Timedelta(window).value, closed=closed, min_periods=minp)
            for want, got in ((g.median(), r.median()), (g.count(), r.count()),
                              (g.quantile(0.95), r.quantile(0.95))):
                assert np.array_equal(want.to_numpy(), got.to_numpy(), equal_nan=True), (closed, window)


def test_time_index_is_pandas_conversion():
    t = np.array([0.0, 1.7e9, -5.0, 4e9, 1.7e9 + 0.123456789, 1.7e9 + 1e-9])
    assert np.array_equal(time_index(t), pd.to_datetime(t, unit="s").asi8)
    assert np.array_equal(time_index(t[:4]), pd.to_datetime(t[:4], unit="s").asi8)


def test_time_index_of_fractional_times_is_pandas_conversion_done_in_numpy(monkeypatch):
    """Readings stamped off the whole second (meters' clocks jitter by milliseconds) are converted
    by pandas' arithmetic as array operations, not by pandas' per-element loop, to the same
    nanoseconds: fractions near half a nanosecond, negative times, zero and sub-nanosecond ones."""
    rng = np.random.default_rng(7)
    n = 50_000
    scale = 10.0 ** rng.integers(0, 10, n)  # jitter rounded to 0-9 decimals
    t = 1.7e9 + rng.integers(0, 10**6, n) * 300.0 + np.round(rng.normal(0, 2, n) * scale) / scale
    near_half = np.nextafter(np.floor(t[:500]) + 0.5e-9 * rng.integers(1, 4, 500), 0)
    t = np.r_[t, -t[:500], near_half, rng.uniform(-9e9, 9e9, 500), [0.0, -0.0, 1e-10, -1e-10, 0.9999999995, -0.9999999995]]
    want = pd.to_datetime(t, unit="s").asi8

    def no_pandas(*a, **k):
        raise AssertionError("time_index went through pandas' per-element conversion")

    monkeypatch.setattr(rolling.pd, "to_datetime", no_pandas)
    assert np.array_equal(time_index(t), want)


def _messy(rng, n: int) -> np.ndarray:
    """Random values with NaN holes and long NaN gaps, infinities, ties and zeros."""
    x = np.round(rng.normal(size=n), int(rng.integers(1, 4)))  # rounded: many ties
    x[rng.random(n) < 0.2] = np.nan
    for _ in range(int(rng.integers(0, 4))):  # gaps: runs of missing readings
        a = int(rng.integers(0, max(1, n)))
        x[a:a + int(rng.integers(1, 40))] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    x[rng.random(n) < 0.01] = -np.inf
    x[rng.random(n) < 0.03] = 0.0
    return x


@pytest.mark.parametrize("seed", range(4))
def test_centred_median_equals_pandas(seed):
    from wattwatch.detect.rolling import _BLOCK, centred_median

    rng = np.random.default_rng(seed)
    for n in (0, 1, 2, 7, 300, 2 * _BLOCK + 5):  # across the blocks' edges too
        x = _messy(rng, n)
        for window in (1, 3, 5, 7, 9, 11, 13, 15, 4, 21):  # even or wider: pandas' own
            for minp in (0, 1, window // 2 + 1, window):
                want = pd.Series(x).rolling(window, center=True, min_periods=minp).median().to_numpy()
                got = centred_median(x, window, minp)
                assert np.array_equal(want, got, equal_nan=True), (n, window, minp)


@pytest.mark.parametrize("seed", range(3))
def test_loose_ct_rolling_median_equals_pandas_per_meter(seed):
    """loose_ct's centred median per meter (NaN where the window leaves the meter) equals pandas'
    rolling median of each meter alone."""
    from wattwatch.detect.rules.loosect import _rolling_median

    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 400, int(rng.integers(1, 12)))
    seg = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    x = _messy(rng, len(seg))
    for window in (3, 9, 11):
        h = window // 2
        want = np.concatenate([
            np.where((np.arange(k) >= h) & (np.arange(k)[::-1] >= h),
                     pd.Series(x[seg == j]).rolling(2 * h + 1, center=True, min_periods=h + 1).median().to_numpy(),
                     np.nan) for j, k in enumerate(sizes)])
        assert np.array_equal(want, _rolling_median(x, seg, window), equal_nan=True)


@pytest.mark.parametrize("seed", range(3))
def test_firmware_rolling_quantiles_equal_pandas(seed):
    """firmware_drift's centred rolling quantiles over the bins of each meter: windows of more than
    60 bins equal pandas' rolling median and quantile row by row (an even count's median is
    ``(a + b) / 2``, infinities missing), shorter ones the same order statistics with linear
    interpolation for every quantile."""
    from wattwatch.detect.rules.firmware import _rolling_quantiles

    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(1, 30)), int(rng.integers(1, 400))
    X = np.round(rng.normal(size=(n, m)), int(rng.integers(0, 3))) + 0.0  # ties; no signed zeros (log ratios)
    X[rng.random((n, m)) < 0.3] = np.nan
    if seed % 2:
        X[:, :int(rng.integers(0, m))] = np.nan  # a meter's first bins unknown
    X[rng.random((n, m)) < 0.01] = np.inf
    for h in (48, 61):  # a 97-bin window (four days of hours), and wider
        r = pd.DataFrame(np.where(np.isfinite(X), X, np.nan).T).rolling(2 * h + 1, center=True, min_periods=1)
        want = [r.median().to_numpy().T, r.quantile(0.25).to_numpy().T, r.quantile(0.75).to_numpy().T]
        got = _rolling_quantiles(X, h, (0.5, 0.25, 0.75))
        for q, a, b in zip((0.5, 0.25, 0.75), want, got):
            assert np.array_equal(a, b, equal_nan=True), (h, q)
    # Short windows: every quantile interpolated linearly between the window's order statistics.
    Y = np.where(np.isfinite(X), X, np.nan)
    got = _rolling_quantiles(Y, 3, (0.5,))[0]
    for i in range(n):
        for j in range(0, m, max(1, m // 7)):
            w = Y[i, max(0, j - 3):j + 4]
            w = np.sort(w[np.isfinite(w)])
            if not len(w):
                assert np.isnan(got[i, j])
                continue
            pos = 0.5 * (len(w) - 1)
            lo = int(pos)
            want = w[lo] + (w[lo + 1] - w[lo]) * (pos - lo) if pos > lo else w[lo]
            assert got[i, j] == want
