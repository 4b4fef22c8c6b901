"""Time-window rolling statistics over many groups (meters, meter x slot) in one pass.

``pd.Series.groupby(key).rolling("7D")`` validates and indexes every group in Python: with a
group per meter and 15-minute slot (96 per meter) that per-group work, not the statistic, was
most of ``seasonal_profile``'s time (the 23,000 ``take`` calls of a 120-meter fleet). Here the
window bounds of every row of every group are computed at once with ``np.searchsorted`` and
handed to pandas as a :class:`pandas.api.indexers.BaseIndexer`, so the statistic (median,
quantile, count: pandas' own skip-list code) runs once over all rows.

The bounds are pandas' own for a time window on a monotonic index
(``calculate_variable_window_bounds``): the window of row ``i`` starts at the first row of its
group whose time is ``>= t_i - W`` (``closed`` "left" or "both") or ``> t_i - W`` ("right",
"neither"), and ends just after row ``i`` ("right", "both": by position, so a row whose time repeats the
previous row's sees that row) or before the first row at ``t_i`` ("left", "neither"), as in
pandas. The results equal the grouped pandas ones exactly (tests/detect/test_rolling.py).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer


class _Bounds(BaseIndexer):
    """Precomputed window bounds (pandas asks for them with the number of rows)."""

    def __init__(self, start: np.ndarray, end: np.ndarray):
        super().__init__()
        self.start, self.end = start, end

    def get_window_bounds(self, num_values=0, min_periods=None, center=None, closed=None, step=None):
        return self.start, self.end


def time_index(t_seconds: np.ndarray) -> np.ndarray:
    """Times in seconds (float) as the int64 nanoseconds pandas' ``to_datetime(unit="s")`` gives,
    by pandas' own arithmetic (``cast_from_unit_vectorized``: the whole seconds truncated toward
    zero, times 10^9, plus the fraction rounded to 9 digits, times 10^9, truncated) done as numpy
    array operations: pandas runs it one element at a time, 0.1 s on a 120-meter fleet's 480k
    jittered readings (whole seconds were already direct). Missing or out-of-range times (pandas
    gives NaT or raises) still go through pandas."""
    t = np.asarray(t_seconds, float)
    if not len(t) or not np.all(np.abs(t) < 9.2e9):  # NaN fails the comparison too
        return pd.to_datetime(t, unit="s").asi8
    whole = t.astype(np.int64)
    frac = np.round(t - whole, 9)
    return whole * np.int64(1_000_000_000) + (frac * 1e9).astype(np.int64)


def window_bounds(key: np.ndarray, ns: np.ndarray, window_ns, closed: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each row's time window within its group.

    ``key`` (int) must be sorted, and ``ns`` (int64 nanoseconds) sorted within each key.
    ``window_ns``: one window for every row, or one per row (e.g. each meter's own, from its
    cadence: the rows of every window in one pass, not one pass per distinct window)."""
    n = len(ns)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = np.asarray(key, np.int64)
    ns = np.asarray(ns, np.int64)
    u = np.sort(ns)  # the distinct times, sorted (np.unique's hashing took 100x as long here)
    u = u[np.r_[True, u[1:] != u[:-1]]]
    rank = np.searchsorted(u, ns)  # dense rank of each time among all times
    left_closed = closed in ("left", "both")
    lo = ns - np.asarray(window_ns, np.int64) + (0 if left_closed else 1)  # first time inside the window
    lo_rank = np.searchsorted(u, lo, side="left")
    base = key * np.int64(len(u) + 1)  # (key, rank) as one sortable integer
    code = base + rank
    start = np.searchsorted(code, base + lo_rank, side="left").astype(np.int64)
    if closed in ("right", "both"):
        end = np.arange(1, n + 1, dtype=np.int64)
    else:  # open on the right: before the first row of the group at the row's own time
        end = np.searchsorted(code, code, side="left").astype(np.int64)
    return start, end


def grouped_rolling(values: np.ndarray, key: np.ndarray, ns: np.ndarray, window_ns, *,
                    closed: str = "right", min_periods: int = 1):
    """A pandas Rolling over ``values`` whose windows are the time windows of each row within its
    group (``key`` sorted, ``ns`` sorted within a key); call ``.median()``, ``.quantile(q)``,
    ``.count()`` on it. Equal to ``Series(values, index=ns).groupby(key, sort=False)
    .rolling(window, closed=closed, min_periods=min_periods)`` row for row; ``window_ns`` per row
    (constant within a group), to each group's own rolling with its window."""
    start, end = window_bounds(key, ns, window_ns, closed)
    return pd.Series(np.asarray(values, float)).rolling(_Bounds(start, end), min_periods=min_periods)


# Above this window the sorting network (window² / 2 comparators) is no longer cheaper than pandas'
# skip list (measured: 9 readings 2-3x faster; the cost grows with the square of the window).
NETWORK_MAX_WINDOW = 15
_BLOCK = 1 << 12  # rows per block: the window's arrays stay in cache (4096: 2.2x pandas; 65536: 1.4x)
# Floyd's 25-comparator sorting network for 9 inputs (Knuth, TAOCP 5.3.4), 11 fewer than odd-even
# transposition: loose_ct's default window. Checked by the 0-1 principle in _network.
_NETWORKS: dict[int, tuple[tuple[int, int], ...]] = {
    9: ((0, 3), (1, 7), (2, 5), (4, 8), (0, 7), (2, 4), (3, 8), (5, 6), (0, 2), (1, 3), (4, 5), (7, 8), (1, 4),
        (3, 6), (5, 7), (0, 1), (2, 4), (3, 5), (6, 8), (2, 3), (4, 5), (6, 7), (1, 2), (3, 4), (5, 6))}


def _batcher(size: int) -> tuple[tuple[int, int], ...]:
    """Batcher's odd-even merge sort network for ``size`` inputs (any size; 19 comparators for 8)."""
    pairs = []
    p = 1
    while p < size:
        k = p
        while k >= 1:
            for j in range(k % p, size - k, 2 * k):
                for i in range(min(k, size - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return tuple(pairs)


@functools.lru_cache(maxsize=64)
def _pruned(size: int, ranks: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
    """The comparators of a sorting network over ``size`` inputs (:data:`_NETWORKS`, else
    Batcher's) that put the order statistics ``ranks`` in place: the network less every
    comparator whose outputs nothing needed reads; checked on every 0/1 input, which proves it for
    all inputs (the 0-1 principle)."""
    full = _NETWORKS.get(size) or _batcher(size)
    need, kept = set(ranks), []
    for i, j in reversed(full):
        if i in need or j in need:
            kept.append((i, j))
            need |= {i, j}
    net = tuple(reversed(kept))
    bits = ((np.arange(2 ** size)[:, None] >> np.arange(size)) & 1).astype(np.int8)
    cols = [bits[:, k] for k in range(size)]
    for i, j in net:
        cols[i], cols[j] = np.minimum(cols[i], cols[j]), np.maximum(cols[i], cols[j])
    want = np.sort(bits, axis=1)
    if not all(np.array_equal(cols[r], want[:, r]) for r in ranks):  # pragma: no cover - a wrong table
        raise AssertionError(f"the comparator network for {size} inputs does not sort")
    return net


def _median_ranks(window: int, min_periods: int) -> tuple[int, ...]:
    """The ranks a median of ``c`` known values among ``window`` needs (``(c - 1) // 2`` and
    ``c // 2`` for ``c`` from ``min_periods`` to ``window``)."""
    return tuple(sorted({r for c in range(max(min_periods, 1), window + 1) for r in ((c - 1) // 2, c // 2)}))


@functools.lru_cache(maxsize=64)
def _network(window: int, min_periods: int) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """The comparators that put, for a window of ``window`` values, the ranks a median of ``c``
    known values needs in place (:func:`_pruned`), and those ranks."""
    ranks = _median_ranks(window, min_periods)
    return _pruned(window, ranks), ranks


def centred_median(x: np.ndarray, window: int, min_periods: int) -> np.ndarray:
    """``pd.Series(x).rolling(window, center=True, min_periods=min_periods).median()``, equal to
    it value for value, for an odd ``window`` of at most :data:`NETWORK_MAX_WINDOW` computed by a
    comparator network over all rows at once (pandas otherwise).

    As pandas: infinities count as missing, a window with fewer than ``min_periods`` known values
    gives NaN, an even count of known values gives the mean of the two middle ones (``(a + b) / 2``,
    the same operation). Each window's values go through the comparators of :func:`_network`
    (each one ``np.minimum``/``np.maximum`` over a block of rows), missing values as +inf so that
    they sort last; the median is then picked at the ranks the window's own count of known values
    gives. ``loose_ct``'s measure is four such medians of every reading (its rolling medians were
    most of its time)."""
    x = np.asarray(x, float)
    window, min_periods = int(window), int(min_periods)
    n = len(x)
    if window % 2 == 0 or window > NETWORK_MAX_WINDOW or window < 1 or n == 0:
        return pd.Series(x).rolling(window, center=True, min_periods=min_periods).median().to_numpy()
    h = window // 2
    known = np.isfinite(x)
    pad = np.full(n + 2 * h + 1, np.inf)  # one more: the last pair's second window when n is odd
    pad[h:h + n] = np.where(known, x, np.inf)
    kc = np.zeros(n + 2 * h + 1, np.int64)
    np.cumsum(np.concatenate([np.zeros(h, bool), known, np.zeros(h, bool)]), out=kc[1:])
    count = kc[window:window + n] - kc[:n]  # known values in each row's window
    ranks = _median_ranks(window, min_periods)
    pos = np.zeros(window + 1, np.int64)  # rank -> row of the stacked ranks (others: masked below)
    pos[list(ranks)] = np.arange(len(ranks))
    out = np.empty(n)
    if h == 0:
        out[:] = pad[:n]
    else:
        _pair_medians(pad, count, h, ranks, pos, out)
    out[count < max(min_periods, 1)] = np.nan
    return out


def _pair_medians(pad: np.ndarray, count: np.ndarray, h: int, ranks: tuple[int, ...], pos: np.ndarray,
                  out: np.ndarray) -> None:
    """Medians of the windows ``pad[i:i + 2h + 1]`` into ``out[i]``, two windows at a time.

    Windows ``i`` and ``i + 1`` (``i`` even) share ``2h`` values: those are put in order once
    (the comparators of :func:`_pruned` for the ranks needed), and each window's rank ``r`` is
    then that of the shared values plus its own one, ``max(S[r - 1], min(x, S[r]))``: about half
    the comparisons of sorting each window alone. Every value picked is one of the window's own
    (the order statistics are exact), and an even count's median is ``(a + b) / 2`` as before."""
    n = len(out)
    w = 2 * h + 1
    size = 2 * h
    need = tuple(sorted({k for r in ranks for k in (r - 1, r) if 0 <= k < size}))
    net = _pruned(size, need)
    for b0 in range(0, n, _BLOCK):  # _BLOCK is even: pairs start at even rows
        b1 = min(n, b0 + _BLOCK)
        pairs = (b1 - b0 + 1) // 2
        a = [pad[b0 + 1 + k:b0 + 1 + k + 2 * pairs:2].copy() for k in range(size)]
        tmp = np.empty(pairs)
        for i, j in net:
            np.minimum(a[i], a[j], out=tmp)
            np.maximum(a[i], a[j], out=a[j])
            a[i], tmp = tmp, a[i]
        for first, own in ((0, pad[b0:b0 + 2 * pairs:2]), (1, pad[b0 + w:b0 + w + 2 * pairs:2])):
            c = count[b0 + first:b1:2]
            m = len(c)
            x = own[:m]
            srt = np.empty((len(ranks), m))
            for k, r in enumerate(ranks):
                if r == 0:
                    np.minimum(x, a[0][:m], out=srt[k])
                elif r == size:
                    np.maximum(x, a[size - 1][:m], out=srt[k])
                else:
                    np.minimum(x, a[r][:m], out=srt[k])
                    np.maximum(a[r - 1][:m], srt[k], out=srt[k])
            flat = srt.ravel()
            hi = flat.take(pos[c >> 1] * m + np.arange(m))
            # An odd count's median is the middle value itself; an even count's, the mean of two.
            even = np.flatnonzero((c & 1) == 0)
            if len(even):
                lo = flat.take(pos[np.maximum(c[even] - 1, 0) >> 1] * m + even)
                with np.errstate(invalid="ignore"):
                    hi[even] = (lo + hi[even]) / 2
            out[b0 + first:b1:2] = hi


__all__ = ["centred_median", "grouped_rolling", "time_index", "window_bounds"]
