"""Prepared telemetry frames and vectorised per-meter helpers shared by all detectors.

A prepared frame is sorted by meter and time, has a RangeIndex, every canonical channel (NaN when
the source lacked it), any further numeric channel the source had (``ups_battery_pct``, ...), and
three helper columns: ``_seg`` (meter code, contiguous), ``_t`` (epoch seconds) and ``_dt``
(seconds since the meter's previous reading, NaN on its first). All helpers below work on whole
arrays: the only loops are over meters or grid blocks, never over readings.

Values derived from a prepared frame that several detectors need (phase arrays, window bounds)
are kept in :func:`cache`, which lives on the frame object itself: it dies with the frame and is
never shared with another frame (no cache keyed by object identity).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from wattwatch.schema import CHANNEL_NAMES, canonical_keys

AUX = ("_seg", "_t", "_dt")
KEYS = ("meter_id", "ts")


def cache(df: pd.DataFrame) -> dict:
    """Scratch space of one prepared frame (an attribute of the object: a frame derived from it,
    even an equal one, starts empty)."""
    return df.__dict__.setdefault("_ww_cache", {})


#: The scratch entry :func:`times_cache` keeps its dict under (``core._independent_of`` hands it on).
TIMES_KEY = "of_times"


def times_cache(df: pd.DataFrame) -> dict:
    """Scratch space of a prepared frame for values of its times alone (``_seg``, ``_t``, ``_dt``):
    one dict, handed by reference to a frame whose channels a detector's blockers blanked
    (``core._blanked``: the same times), so that a value worked out on either serves both. Its
    entries' keys say which arrays they were worked out from (a stretch's cadence, cad49)."""
    return cache(df).setdefault(TIMES_KEY, {})


def extra_channels(frame: pd.DataFrame) -> list[str]:
    """Numeric columns of ``frame`` beyond the canonical schema and the helper columns."""
    skip = set(KEYS) | set(CHANNEL_NAMES) | set(AUX)
    return [c for c in frame.columns if isinstance(c, str) and c not in skip and not c.startswith("_")
            and (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]))]


def _assemble(meter: pd.Categorical, ts, channels: dict, seg: np.ndarray, t: np.ndarray,
              after: dict | None = None) -> pd.DataFrame:
    """The prepared frame of these columns (``after``: columns put after the helper ones)."""
    # Written in place: on large frames, fresh temporaries cost more than the arithmetic.
    dt = np.empty(len(t))
    if len(t):
        dt[0] = np.nan
        np.subtract(t[1:], t[:-1], out=dt[1:])
        dt[1:][seg[1:] != seg[:-1]] = np.nan
    data = {"meter_id": meter, "ts": ts, **channels, "_seg": seg.astype(np.int32, copy=False), "_t": t, "_dt": dt,
            **(after or {})}
    return pd.DataFrame(data, copy=False)


def reassemble(meter, ts, channels: dict, seg: np.ndarray, t: np.ndarray, n: np.ndarray | None = None) -> pd.DataFrame:
    """The prepared frame of whole meters' rows of a prepared frame, from their columns (``meter``
    its ``meter_id`` array, ``channels`` the canonical then extra channels, ``seg`` its ``_seg``
    codes, ``t`` its ``_t``, ``n`` its ``_n`` or None), as :func:`prepare` gives it of a frame of
    those rows: the segment codes from 0 (renumbered where a meter dropped out), the gaps
    recomputed, a RangeIndex. The core's subset of a detector's meters is built so directly
    (:func:`wattwatch.detect.core._rows_read`), without a frame first that prepare would take
    apart and build again (~0.75 ms a subset, two or three a stream step)."""
    codes = seg - seg[0] if len(seg) else seg
    if len(codes) and not (np.diff(codes) <= 1).all():  # a meter dropped out of the subset
        codes, _ = pd.factorize(seg, sort=False)
    seg = codes
    if isinstance(meter, pd.Series):
        meter = meter.array
    if not isinstance(meter, pd.Categorical):
        # (as prepare reads such a column: its values as numpy, e.g. pandas strings as objects; a
        # Categorical of the extension array itself would keep its dtype for the categories)
        meter = pd.Categorical(meter.to_numpy() if hasattr(meter, "to_numpy") else np.asarray(meter))
    return _assemble(meter, ts, channels, seg, t, None if n is None else {"_n": n})


def prepare(frame: pd.DataFrame, shared_nan: bool = False) -> pd.DataFrame:
    """Canonical, sorted copy of ``frame`` with the helper columns (idempotent).

    ``meter_id`` becomes a Categorical (cheap to copy and slice); a row subset of a prepared
    frame (still sorted) is only re-indexed and its codes and gaps recomputed, not sorted again.
    ``shared_nan``: the canonical channels ``frame`` lacks are one shared read-only all-NaN array
    (as after :func:`nan_channels`), not an array each."""
    if shared_nan and all(c in frame.columns for c in AUX):
        frame = nan_channels(frame)
    if all(c in frame.columns for c in AUX):
        if frame.index.equals(pd.RangeIndex(len(frame))):
            return frame
        seg = frame["_seg"].to_numpy()
        seg = seg - seg[0] if len(seg) else seg
        if len(seg) and not (np.diff(seg) <= 1).all():  # a meter dropped out of the subset
            seg, _ = pd.factorize(frame["_seg"].to_numpy(), sort=False)
        meter = frame["meter_id"].to_numpy() if not isinstance(frame["meter_id"].dtype, pd.CategoricalDtype) \
            else frame["meter_id"].array
        out = _assemble(pd.Categorical(meter) if not isinstance(meter, pd.Categorical) else meter,
                        frame["ts"].array, {c: frame[c].to_numpy() for c in (*CHANNEL_NAMES, *extra_channels(frame))},
                        seg, frame["_t"].to_numpy())
        if "_n" in frame.columns:  # readings' positions in their meter's history (the core's, for stitching)
            out["_n"] = frame["_n"].to_numpy()
        return out
    missing = [c for c in KEYS if c not in frame.columns]
    if missing:
        from wattwatch.errors import InputError

        raise InputError(f"telemetry frame lacks {' and '.join(repr(c) for c in missing)} (columns: "
                         f"{', '.join(map(str, list(frame.columns)[:20]))}); map the source's columns onto the "
                         "canonical schema first: wattwatch.api.read_frame(df) maps known names "
                         "(PODID, Timestamp, Phase1Voltage, ...), a mapping file maps any others")
    mid, ts = frame["meter_id"], frame["ts"]
    canonical = isinstance(mid.dtype, pd.CategoricalDtype) and isinstance(ts.dtype, pd.DatetimeTZDtype) \
        and str(ts.dtype.tz) == "UTC"
    if not canonical:  # the store and the readers already give this shape: no copy then
        mid, ts = canonical_keys(frame)
    sorted_categories = isinstance(mid.dtype, pd.CategoricalDtype) and mid.cat.categories.is_monotonic_increasing
    if sorted_categories:
        codes, uniques = mid.array.codes, np.asarray(mid.cat.categories, dtype=object)
    else:
        codes, uniques = pd.factorize(mid, sort=True)
    t = ts.array.asi8 / _PER_SECOND[ts.array.unit]
    if len(t) < 2:
        key_sorted = True
    else:
        dc = np.diff(codes)
        key_sorted = bool(np.all((dc > 0) | ((dc == 0) & (np.diff(t) >= 0))))
    order = None if key_sorted else np.lexsort((t, codes))

    def pick(x: np.ndarray) -> np.ndarray:
        return x if order is None else x[order]

    codes = pick(codes)
    if order is None and sorted_categories:
        meter = mid.array  # already sorted, codes unchanged
    else:
        meter = pd.Categorical.from_codes(codes, categories=pd.Index(uniques, dtype=object))
    # Channels are taken as they are (no copy when already float64 and in order).
    nan = None
    if shared_nan:   # (what nan_channels puts in, read as a column: the same array, or a copy in order)
        nan = np.full(len(frame), np.nan)
        nan.setflags(write=False)
    channels = {c: (pick(_floats(frame[c])) if c in frame.columns
                    else pick(nan) if nan is not None else np.full(len(frame), np.nan))
                for c in CHANNEL_NAMES}
    for c in extra_channels(frame):
        channels[c] = pick(frame[c].to_numpy(dtype=float, copy=False))
    seg = np.zeros(len(codes), np.int32)
    if len(codes) > 1:
        np.cumsum(codes[1:] != codes[:-1], out=seg[1:])
    return _assemble(meter, ts.array if order is None else ts.array.take(order), channels, seg, pick(t))


_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


def nan_channels(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with the canonical channels it lacks as one shared read-only all-NaN array, as the
    core hands a detector the channels it does not read (``core._rows_read``); :func:`prepare`
    would fill each with an array of its own (a stitcher that keeps only its detectors' channels:
    ~3.5 ms a step for packet_loss's 146,000 rows of times at 200 meters). ``prepare(df,
    shared_nan=True)`` gives the prepared frame of this without building it first."""
    missing = [c for c in CHANNEL_NAMES if c not in df.columns]
    if not missing:
        return df
    nan = np.full(len(df), np.nan)
    nan.setflags(write=False)
    return pd.DataFrame({**{c: df[c].array for c in df.columns}, **dict.fromkeys(missing, nan)}, copy=False)


def _floats(col: pd.Series) -> np.ndarray:
    """A channel as float64, non-numbers NaN; a float64 column as it is (``pd.to_numeric`` would
    give the same values at ~35 us a column: a stream's stitchers prepare 25 channels, most of
    them one shared all-NaN array, at every piece)."""
    if col.dtype == np.float64:
        return col.to_numpy(copy=False)
    return pd.to_numeric(col, errors="coerce").to_numpy(dtype=float, copy=False)


def seg_bounds(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start (inclusive) and end (exclusive) row of each meter's contiguous block."""
    if len(seg) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], seg[1:] != seg[:-1]]))
    return starts, np.append(starts[1:], len(seg))


def meter_names(df: pd.DataFrame) -> np.ndarray:
    """Meter id of each segment code (read-only).

    Kept in the frame's :func:`cache` while its ``_seg`` and ``meter_id`` columns are the same
    arrays: detectors ask for it on every state lookup (84 times in one judgement of a 60-meter
    group, each a pass over every reading)."""
    seg = df["_seg"].to_numpy()
    col = df["meter_id"]
    cat = isinstance(col.dtype, pd.CategoricalDtype)
    ids = col.array.codes if cat else col.to_numpy()
    tag = (_data_ptr(seg), len(seg), _data_ptr(ids), id(col.cat.categories) if cat else None)
    memo = cache(df)
    hit = memo.get("meter_names")
    if hit is not None and hit[0] == tag:
        return hit[1]
    starts, _ = seg_bounds(seg)
    names = np.asarray(col.cat.categories, dtype=object)[ids[starts]] if cat else ids[starts]
    names = np.array(names, dtype=names.dtype)  # own copy: read-only without touching the frame
    names.setflags(write=False)
    # The arrays are kept with it: while they live, no other array can take their addresses.
    memo["meter_names"] = (tag, names, seg, ids, col.cat.categories if cat else None)
    return names


def _data_ptr(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0] if isinstance(a, np.ndarray) else id(a)




def seg_quantile(x: np.ndarray, seg: np.ndarray, n_seg: int, q: float, mask: np.ndarray | None = None) -> np.ndarray:
    """Lower quantile of ``x`` per meter over rows where ``mask`` (and x finite); NaN if none.

    A partial sort per meter does it; a loop over meters, not readings (very many small meters:
    one sort, the same values). Rows are usually grouped by meter already (a prepared frame's
    ``_seg``); keys in any other order (a meter and load level, say) are grouped first (a stable
    sort): read in runs, a key's quantile was its last run's, and the answer depended on which
    path took it (q19's per-level median, rev34)."""
    ok = np.isfinite(x) if mask is None else (mask & np.isfinite(x))
    out = np.full(n_seg, np.nan)
    xs, ss = x[ok], seg[ok]
    if len(xs) == 0:
        return out
    if len(ss) > 1 and np.any(ss[1:] < ss[:-1]):
        order = np.argsort(ss, kind="stable")
        xs, ss = xs[order], ss[order]
    starts = np.flatnonzero(np.concatenate([[True], ss[1:] != ss[:-1]]))
    ends = np.append(starts[1:], len(ss))
    if q == 0:
        # The least value: one pass over every meter at once (np.minimum is exact: the value a
        # partial sort puts first), except where it is zero, whose sign a tie of -0.0 and 0.0
        # leaves to the sort (those meters take the loop below).
        low = np.minimum.reduceat(xs, starts)
        out[ss[starts]] = low
        zero = np.flatnonzero(low == 0)
        starts, ends = starts[zero], ends[zero]
        if not len(starts):
            return out
    if len(starts) > 20_000:  # very many small meters: one sort by (meter, value) instead of a loop
        order = np.lexsort((xs, ss))
        k = starts + (q * (ends - starts - 1)).astype(np.int64)
        out[ss[starts]] = xs[order][k]
        return out
    for a, b in zip(starts, ends):
        # Lower quantile by one partial sort: robust statistics need no interpolation.
        k = int(q * (b - a - 1))
        out[ss[a]] = np.partition(xs[a:b], k)[k]
    return out


def seg_median(x: np.ndarray, seg: np.ndarray, n_seg: int, mask: np.ndarray | None = None) -> np.ndarray:
    """Median of ``x`` per meter over rows where ``mask`` (and x finite); NaN for empty meters."""
    return seg_quantile(x, seg, n_seg, 0.5, mask)






def window_sum(x: np.ndarray, t: np.ndarray, seg: np.ndarray, window_s, centred: bool = False,
               memo: dict | None = None) -> np.ndarray:
    """Sum of ``x`` over each row's time window within its meter: ``(t - w, t]`` (or centred).

    Rows must be sorted by (seg, t). NaN contributes 0. ``window_s``: one length for every meter, or
    an array with one per segment code (meters of different cadences in one frame). Each window is
    summed from a cumulative sum restarted at its meter's first row, so a row's sum depends only on
    the rows of its meter. ``memo``: a frame's :func:`cache`, to share window bounds between
    detectors.
    """
    v = np.where(np.isfinite(x), x, 0.0)
    lo, hi = _window_bounds(t, seg, window_s, centred, memo)
    starts, ends = seg_bounds(seg)
    if len(starts) > 1:
        return _segment_window_sum(v, lo, hi, starts, ends)
    c = np.concatenate([[0.0], np.cumsum(v)])
    return c[hi] - c[lo]


def window_count(t: np.ndarray, seg: np.ndarray, window_s, centred: bool = False,
                 memo: dict | None = None) -> np.ndarray:
    """Rows in each row's window within its meter (the bounds :func:`window_sum` uses, shared
    through ``memo``): ``window_sum`` of ones without the sums."""
    lo, hi = _window_bounds(t, seg, window_s, centred, memo)
    return (hi - lo).astype(float)


def _segment_window_sum(v: np.ndarray, lo: np.ndarray, hi: np.ndarray, starts: np.ndarray,
                        ends: np.ndarray) -> np.ndarray:
    out = np.empty(len(v))
    for a, b in zip(starts, ends):  # a loop over meters: each meter's running sum starts at 0
        c = np.concatenate([[0.0], np.cumsum(v[a:b])])
        out[a:b] = c[hi[a:b] - a] - c[lo[a:b] - a]
    return out


def _window_bounds(t: np.ndarray, seg: np.ndarray, window_s, centred: bool,
                   memo: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Row range of each row's window (kept in ``memo`` when given: windows repeat across detectors)."""
    starts, ends = seg_bounds(seg)
    per_meter = np.ndim(window_s) > 0
    w_seg = np.asarray(window_s, float) if per_meter else np.full(len(starts), float(window_s))
    tag = ("window_bounds", w_seg.tobytes() if per_meter else float(window_s), centred)
    if memo is not None and tag in memo:
        return memo[tag]
    # One search per meter: its times fit in cache (2-3x faster than one search over all rows)
    # and differences of its own times carry no cross-meter rounding.
    lo = np.empty(len(t), np.int64)
    hi = np.empty(len(t), np.int64) if centred else np.arange(1, len(t) + 1)
    for k, (a, b) in enumerate(zip(starts, ends)):
        x = t[a:b]
        w = w_seg[k]
        if centred:
            lo[a:b] = np.searchsorted(x, x - w / 2, side="left") + a
            hi[a:b] = np.searchsorted(x, x + w / 2, side="right") + a
        else:
            lo[a:b] = np.searchsorted(x, x - w, side="right") + a
    if memo is not None:
        memo[tag] = (lo, hi)
    return lo, hi


def profile_mask(df: pd.DataFrame, days: float, max_share: float = 0.5,
                 resets: dict[str, pd.Timestamp] | None = None) -> np.ndarray:
    """Rows in each meter's profiling period: its first ``days`` days, at most ``max_share`` of
    its span, starting at its reset time when an operator reset the meter's rule state."""
    seg, t = df["_seg"].to_numpy(), df["_t"].to_numpy()
    starts, ends = seg_bounds(seg)
    t0 = t[starts].copy()
    if resets:
        names = meter_names(df)
        for i, m in enumerate(names):
            if m in resets:
                t0[i] = max(t0[i], pd.Timestamp(resets[m]).timestamp())
    span = t[ends - 1] - t0
    limit = t0 + np.minimum(days * 86400.0, np.maximum(span, 0) * max_share)
    return (t >= t0[seg]) & (t <= limit[seg])


def grid(df: pd.DataFrame, values: np.ndarray, bin_s: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean of ``values`` per meter on a regular time grid.

    Returns
    -------
    matrix : ndarray (n_meters, n_bins)
        Bin means, NaN where a meter has no finite value in a bin.
    cell : ndarray
        For each row, its flat index into ``matrix`` (so ``matrix.ravel()[cell]`` maps back).
    t0 : ndarray
        Start time (epoch s) of bin 0 for each meter: bins are aligned to multiples of ``bin_s``
        since the epoch, so a reading falls in the same bin whatever piece of data it comes with.
    """
    return grid_arrays(df["_seg"].to_numpy(), df["_t"].to_numpy(), values, bin_s)


# Grid allocations are bounded: a meter whose readings span an absurd time (a clock reset to year
# 1, an epoch in nanoseconds read as microseconds) must not make a (meters x bins) matrix of
# gigabytes. Past GRID_MAX_CELLS cells (and 16 per reading), a meter whose span is more than twice
# the frame's median span and more than its share of the budget is judged on its latest bins only
# (a share of the budget, at least twice the median span); no meter gets more than GRID_MAX_BINS.
# The share is also at most GRID_BINS_PER_READING bins per reading of that meter (four readings over
# 0001-9999 got two million bins in a two-meter frame: 10 s of rolling windows over NaN), and the
# median is the lower one (in a two-meter frame the plain median is half the absurd span).
# Its readings before that are not on the grid: their cell is an extra last column that is always
# NaN, so they read as "cannot judge". Frames without such a meter get the same grid as before.
GRID_MAX_CELLS = 1 << 24
GRID_MAX_BINS = 1 << 21
GRID_BINS_PER_READING = 64


def grid_arrays(seg: np.ndarray, t: np.ndarray, values: np.ndarray, bin_s: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`grid` on arrays: ``seg`` contiguous codes 0..n-1 (sorted), ``t`` sorted per meter.

    The allocation is bounded (see :data:`GRID_MAX_CELLS`): a meter spanning an absurd time is
    gridded over its latest bins only, its earlier readings mapped to an all-NaN last column.
    """
    starts, ends = seg_bounds(seg)
    n_seg = len(starts)
    t0 = np.floor(t[starts] / bin_s) * bin_s if n_seg else np.zeros(0)
    clipped = None
    if n_seg:
        last_bin = np.floor(t[ends - 1] / bin_s) * bin_s
        span = np.floor((last_bin - t0) / bin_s) + 1  # float: an absurd span does not overflow
        widest = float(span.max())
        if widest > GRID_MAX_BINS or n_seg * widest > max(GRID_MAX_CELLS, 16 * len(t)):
            own = np.minimum(GRID_MAX_CELLS // n_seg, GRID_BINS_PER_READING * (ends - starts))
            typical = 2 * float(np.percentile(span, 50, method="lower"))
            cap = np.minimum(GRID_MAX_BINS, np.maximum(np.maximum(own, typical), 1)).astype(float)
            wide = span > cap
            if wide.any():
                t0 = np.where(wide, last_bin - (cap - 1) * bin_s, t0)
                clipped = wide
    b = np.floor((t - t0[seg]) / bin_s) if len(t) else np.zeros(0)
    if clipped is not None:
        n_bins = int(np.max(np.where(clipped, 0, b[ends - 1]))) + 1
        n_bins = max(n_bins, int(cap[clipped].max())) + 1  # the last column holds the readings off the grid
        b = np.where(b < 0, n_bins - 1, b)
    else:
        n_bins = int(b.max()) + 1 if len(b) else 0
    b = b.astype(np.int64)
    cell = seg.astype(np.int64) * n_bins + b
    ok = np.isfinite(values)
    if clipped is not None:
        ok &= b != n_bins - 1
    sums = np.bincount(cell[ok], weights=values[ok], minlength=n_seg * n_bins)
    cnt = np.bincount(cell[ok], minlength=n_seg * n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.where(cnt > 0, sums / np.maximum(cnt, 1), np.nan)
    return m.reshape(n_seg, n_bins), cell, t0


def day_type(t_s: np.ndarray) -> np.ndarray:
    """Day type of epoch seconds (UTC): 0 weekday, 1 Saturday, 2 Sunday."""
    dow = (np.floor(t_s / 86400).astype(np.int64) + 3) % 7  # 1970-01-01 was a Thursday
    return np.where(dow < 5, 0, dow - 4)


def ffill_rows(m: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Forward-fill NaN along axis 1 (each row independently), at most ``limit`` bins past the
    last finite value (all the way when None); leading NaN stay."""
    fin = np.isfinite(m)
    cols = np.arange(m.shape[1])[None, :]
    idx = np.where(fin, cols, -1)
    np.maximum.accumulate(idx, axis=1, out=idx)
    ok = idx >= 0
    if limit is not None:
        ok &= (cols - idx) <= limit
    out = m[np.arange(m.shape[0])[:, None], np.maximum(idx, 0)]
    out[~ok] = np.nan
    return out


def bounded_fill(m: np.ndarray, limit: int) -> tuple[np.ndarray, np.ndarray]:
    """(filled, near): NaN filled along axis 1 from the last finite value up to ``limit`` bins on,
    the rest of a gap (and leading NaN) from the next finite value, so the bins after a long gap
    start from what follows it, not from a value more than ``limit`` bins back. ``near`` marks the
    bins with a finite value at most ``limit`` bins back: a value at any other bin came from
    later bins and depends on how far the data goes (a caller drops it there)."""
    f = ffill_rows(m, limit)
    near = np.isfinite(f)
    if not near.all():
        b = ffill_rows(m[:, ::-1])[:, ::-1]
        f = np.where(near, f, b)
    return f, near


def ema_rows(m: np.ndarray, alpha: float, start: float | None = None, filled: np.ndarray | None = None,
             gap: float | None = None, window: int | None = None) -> np.ndarray:
    """Exponential moving average along axis 1 of every row at once (gaps forward-filled, or
    taken as ``gap`` when given, e.g. 0 for a deviation that is 0 when normal).

    Each row starts from ``start`` when given (e.g. 0 for a deviation that is 0 when normal),
    else from its first finite value. ``filled``: the gap-filled matrix when the caller already
    has it (several smoothing constants on one matrix). ``window``: finite memory: from bin
    ``window`` of a row on, the average of the last ``window`` bins only (as if started at 0 just
    before them), so a value never depends on bins further back and scoring a piece that holds
    that reach gives the value the whole row gives."""
    if gap is not None:
        x = np.where(np.isfinite(m), m, gap)
    else:
        x = ffill_rows(m) if filled is None else filled
    lead = ~np.isfinite(x)
    if start is None:
        first = np.argmax(~lead, axis=1) if x.size else np.zeros(0, int)
        start = x[np.arange(x.shape[0]), first] if x.size else np.zeros(0)
        start = np.where(np.isfinite(start), start, 0.0)
    else:
        start = np.full(x.shape[0], float(start))
    x = np.where(lead, start[:, None], x)
    zi = ((1 - alpha) * start)[:, None]
    # (imported here: scipy.signal costs ~1 s of CPU to import, and every command that lists or
    # configures detectors imports this module without smoothing anything)
    from scipy.signal import lfilter

    y, _ = lfilter([alpha], [1, -(1 - alpha)], x, axis=1, zi=zi)
    if window is not None and 0 < window < y.shape[1]:
        # y_t - (1-a)^L y_(t-L) = a * sum_(k<L) (1-a)^k x_(t-k): the start value cancels too.
        np.subtract(y[:, window:], (1 - alpha) ** window * y[:, :-window], out=y[:, window:])
    y[lead] = np.nan
    return y


def local_offset_s(t_s: np.ndarray, zone: str) -> np.ndarray:
    """Seconds to add to epoch seconds ``t_s`` (UTC) for the wall-clock time in IANA ``zone`` at
    each instant (daylight saving included; all zeros for ``""`` or ``"UTC"``)."""
    t_s = np.asarray(t_s, float)
    if not zone or zone.upper() == "UTC" or not len(t_s):
        return np.zeros(len(t_s))
    utc = pd.DatetimeIndex(pd.to_datetime(np.round(t_s * 1e3).astype(np.int64), unit="ms", utc=True))
    local = utc.tz_convert(zone).tz_localize(None)
    return (local.asi8 - utc.tz_localize(None).asi8) / 1e9 if local.unit == "ns" else \
        (local - utc.tz_localize(None)).total_seconds().to_numpy()
