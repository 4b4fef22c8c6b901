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
    """Times in seconds (float) as the int64 nanoseconds pandas' ``to_datetime(unit="s")`` gives
    (whole seconds, the usual case, directly: pandas' float conversion was half the cost)."""
    t = np.asarray(t_seconds, float)
    if len(t) and np.all(np.abs(t) < 9.2e9) and np.array_equal(t, np.floor(t)):
        return t.astype(np.int64) * np.int64(1_000_000_000)
    return pd.to_datetime(t, unit="s").asi8


def window_bounds(key: np.ndarray, ns: np.ndarray, window_ns: int, closed: str = "right") -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of each row's time window within its group.

    ``key`` (int) must be sorted, and ``ns`` (int64 nanoseconds) sorted within each key."""
    n = len(ns)
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    key = np.asarray(key, np.int64)
    ns = np.asarray(ns, np.int64)
    u = np.sort(ns)  # the distinct times, sorted (np.unique's hashing took 100x as long here)
    u = u[np.r_[True, u[1:] != u[:-1]]]
    rank = np.searchsorted(u, ns)  # dense rank of each time among all times
    left_closed = closed in ("left", "both")
    lo = ns - np.int64(window_ns) + (0 if left_closed else 1)  # first time inside the window
    lo_rank = np.searchsorted(u, lo, side="left")
    base = key * np.int64(len(u) + 1)  # (key, rank) as one sortable integer
    code = base + rank
    start = np.searchsorted(code, base + lo_rank, side="left").astype(np.int64)
    if closed in ("right", "both"):
        end = np.arange(1, n + 1, dtype=np.int64)
    else:  # open on the right: before the first row of the group at the row's own time
        end = np.searchsorted(code, code, side="left").astype(np.int64)
    return start, end


def grouped_rolling(values: np.ndarray, key: np.ndarray, ns: np.ndarray, window_ns: int, *,
                    closed: str = "right", min_periods: int = 1):
    """A pandas Rolling over ``values`` whose windows are the time windows of each row within its
    group (``key`` sorted, ``ns`` sorted within a key); call ``.median()``, ``.quantile(q)``,
    ``.count()`` on it. Equal to ``Series(values, index=ns).groupby(key, sort=False)
    .rolling(window, closed=closed, min_periods=min_periods)`` row for row."""
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


@functools.lru_cache(maxsize=64)
def _network(window: int, min_periods: int) -> tuple[tuple[tuple[int, int], ...], tuple[int, ...]]:
    """The comparators that put, for a window of ``window`` values, the ranks a median of ``c``
    known values needs (``(c - 1) // 2`` and ``c // 2`` for ``c`` from ``min_periods`` to ``window``)
    in place, and those ranks. A sorting network (:data:`_NETWORKS`, else odd-even transposition)
    less every comparator whose outputs nothing needed reads; checked on every 0/1 input, which
    proves it for all inputs (the 0-1 principle)."""
    full = _NETWORKS.get(window) or tuple((i, i + 1) for r in range(window) for i in range(r % 2, window - 1, 2))
    ranks = tuple(sorted({r for c in range(max(min_periods, 1), window + 1) for r in ((c - 1) // 2, c // 2)}))
    need, kept = set(ranks), []
    for i, j in reversed(full):
        if i in need or j in need:
            kept.append((i, j))
            need |= {i, j}
    net = tuple(reversed(kept))
    bits = ((np.arange(2 ** window)[:, None] >> np.arange(window)) & 1).astype(np.int8)
    cols = [bits[:, k] for k in range(window)]
    for i, j in net:
        cols[i], cols[j] = np.minimum(cols[i], cols[j]), np.maximum(cols[i], cols[j])
    want = np.sort(bits, axis=1)
    if not all(np.array_equal(cols[r], want[:, r]) for r in ranks):  # pragma: no cover - a wrong table
        raise AssertionError(f"the comparator network for a window of {window} does not sort")
    return net, ranks


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
    net, ranks = _network(window, min_periods)
    pos = np.zeros(window + 1, np.int64)  # rank -> row of the stacked ranks (others: masked below)
    pos[list(ranks)] = np.arange(len(ranks))
    h = window // 2
    known = np.isfinite(x)
    pad = np.full(n + 2 * h, np.inf)
    pad[h:h + n] = np.where(known, x, np.inf)
    kc = np.zeros(n + 2 * h + 1, np.int64)
    np.cumsum(np.concatenate([np.zeros(h, bool), known, np.zeros(h, bool)]), out=kc[1:])
    count = kc[window:window + n] - kc[:n]  # known values in each row's window
    out = np.empty(n)
    for b0 in range(0, n, _BLOCK):
        b1 = min(n, b0 + _BLOCK)
        m = b1 - b0
        a = [pad[b0 + k:b1 + k].copy() for k in range(window)]
        tmp = np.empty(m)
        for i, j in net:
            np.minimum(a[i], a[j], out=tmp)
            np.maximum(a[i], a[j], out=a[j])
            a[i], tmp = tmp, a[i]
        c = count[b0:b1]
        srt = np.stack([a[r] for r in ranks])
        rows = np.arange(m)
        hi = srt[pos[c // 2], rows]
        lo = srt[pos[np.maximum(c - 1, 0) // 2], rows]
        with np.errstate(invalid="ignore"):
            out[b0:b1] = np.where(c % 2 == 1, hi, (lo + hi) / 2)
    out[count < max(min_periods, 1)] = np.nan
    return out


__all__ = ["centred_median", "grouped_rolling", "time_index", "window_bounds"]
