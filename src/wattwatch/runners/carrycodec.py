"""The checkpoint's frames (the carried tail of readings, the closed bins) as compact Parquet that
gives back, bit for bit, what plain Parquet of the same frame gives (sm, issue 16).

A meter's readings are a time series on a regular clock of register values with a few decimals: plain
Parquet (dictionary, snappy) spends 8 bytes on most of them. Here, before writing:

- a time column becomes its integer count of the largest power of ten of its unit that divides every
  stamp (ms stamps held in µs: counts of 1,000 µs), delta-encoded (``DELTA_BINARY_PACKED``: a regular
  clock costs a few bits a reading, its jitter what it is);
- a float column whose every value is an integer count of 10**-k for some k <= 9 (a register's
  resolution: 230.1 V, 0.619 A, 11209.184 kWh) becomes those counts, delta-encoded; the test is
  exact (``counts / 10**k`` gives each value back bit for bit, -0.0 and NaN included: a column with
  a value it does not give back stays float64 as it was; (rsm) a few -0.0 are counted 0 and their rows
  listed);
  (rsm) or ``counts * 1e-k``, what a Modbus register scaled by 0.1, 0.01, ... gives (``raw * 0.1`` is
  not ``raw / 10`` for a third of raws);
- (rsm) a float column with no such counts becomes float32 when every value is a float32 widened (a
  float32 register), else stays float64; ``BYTE_STREAM_SPLIT`` when most of its values differ;
- everything then zstd-compressed; strings dictionary-encoded.

The original Arrow schema (with pandas' metadata) is kept in the file's metadata, and :func:`read`
rebuilds the original Arrow columns from the counts before ``to_pandas``: the frame it gives equals
``pq.read_table(plain).to_pandas()`` of the frame written plainly (dtypes, NaN, column order), which
``tests/live/test_checkpoint_codec.py`` checks. A blob written plainly (an older checkpoint) is read
as it is. (rsm) One exception, on the codec's side: a ``datetime64[s]`` column comes back as
``datetime64[s]`` (as held), where plain Parquet gives ``datetime64[ms]`` (it has no seconds unit)."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

KEY = b"wattwatch.carry"
MAX_DECIMALS = 9
_EXACT = 2 ** 53   # counts beyond this are not exact as float64


def _step(k: int) -> float:
    """10**-k as the float a decimal literal gives (``1e-3``): a scaled register's ``raw * scale``."""
    return float(f"1e-{k}")


def _decimals(v: np.ndarray) -> tuple[int, np.ndarray, bool] | None:
    """(k, counts, mul): the smallest k <= MAX_DECIMALS such that every value is ``counts / 10**k``
    bit for bit (float64), or (rsm) ``counts * 1e-k`` (``mul``: what a Modbus register scaled by
    0.1, 0.01, ... gives: ``raw * 0.1`` is ``raw / 10`` for only ~65 % of raws); or None. ``v``: the
    column's non-null values."""
    if not len(v):
        return 0, np.zeros(0, np.int64), False
    if not np.isfinite(v).all():
        return None
    bits = v.view(np.int64)
    for k in range(MAX_DECIMALS + 1):
        p = 10.0 ** k
        s = np.round(v * p)
        if np.abs(s).max() >= _EXACT:
            return None
        n = s.astype(np.int64)
        f = n.astype(np.float64)
        # (from the integer counts, as read() computes it: -0.0 counts 0, which gives 0.0 back)
        if np.array_equal((f / p).view(np.int64), bits):
            return k, n, False
        if k and np.array_equal((f * _step(k)).view(np.int64), bits):
            return k, n, True
    return None


def _float32(v: np.ndarray) -> bool:
    """(rsm) Whether every value of ``v`` (float64) is a float32 widened, bit for bit (a Modbus
    float32 register read unscaled): then 4 bytes hold it."""
    return bool(np.array_equal(v.astype(np.float32).astype(np.float64).view(np.int64), v.view(np.int64)))


def _divisor(t: np.ndarray) -> int:
    """The largest power of ten (<= 10**9) dividing every value of ``t``."""
    d = 1
    for k in range(9, 0, -1):
        if len(t) == 0 or not np.any(t % (10 ** k)):
            d = 10 ** k
            break
    return d


def write(df: pd.DataFrame | None) -> bytes | None:
    """``df`` as compact Parquet (see the module); None when empty."""
    if df is None or not len(df):
        return None
    tab = pa.Table.from_pandas(df, preserve_index=False)
    cols, how, delta, split = [], {}, [], []
    for name, col in zip(tab.column_names, tab.columns):
        col = col.combine_chunks()
        typ = col.type
        if pa.types.is_timestamp(typ) and col.null_count == 0:
            t = col.cast(pa.int64()).to_numpy()
            d = _divisor(t)
            cols.append(pa.array(t // d))
            how[name] = {"div": d}
            delta.append(name)
        elif pa.types.is_float64(typ):
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            v = col.to_numpy(zero_copy_only=False)
            # (rsm) a few -0.0 (a small negative rounded) no longer make the column float64: counted as
            # 0 and their rows listed in the metadata (at most 0.5 % of the rows, or 16: the list costs
            # ~15 B a row listed, stored twice, so 2 % of the rows made a 1-decimal column larger)
            neg0 = np.flatnonzero(valid & (v == 0) & np.signbit(v))
            got = None
            if len(neg0) <= max(16, len(v) // 200):
                w = v.copy()
                w[neg0] = 0.0
                got = _decimals(w[valid])
            if got is None:
                # (rsm) no decimal counts: float32 when that holds every value, else float64 as it was;
                # its bytes split by significance (``BYTE_STREAM_SPLIT``: 0.6-0.7x dictionary's on float
                # noise) when over 4/5 of its values differ, else a dictionary (1.6x smaller than split on
                # 1,000 2-decimal values with one -0.0 among them: ~500 distinct)
                if _float32(v[valid]):
                    col = pa.array(v.astype(np.float32), mask=~valid)
                    how[name] = {"f32": True}
                cols.append(col)
                if len(np.unique(v[valid])) * 5 > len(v) * 4:
                    split.append(name)
                continue
            k, counts, mul = got
            out = np.zeros(len(v), np.int64)
            out[valid] = counts
            cols.append(pa.array(out, mask=~valid))
            how[name] = {"dec": k, "mul": True} if mul else {"dec": k}
            if len(neg0):
                how[name]["neg0"] = neg0.tolist()
            delta.append(name)
        else:
            cols.append(col)
    meta = {KEY: json.dumps({"how": how, "schema": base64.b64encode(tab.schema.serialize().to_pybytes()).decode()})}
    out = pa.table(cols, names=tab.column_names).replace_schema_metadata(meta)
    buf = io.BytesIO()
    enc = {**{n: "DELTA_BINARY_PACKED" for n in delta}, **{n: "BYTE_STREAM_SPLIT" for n in split}}
    pq.write_table(out, buf, compression="zstd", use_dictionary=[n for n in tab.column_names if n not in enc],
                   column_encoding=enc)
    return buf.getvalue()


def read(blob: bytes) -> pd.DataFrame:
    """The frame :func:`write` (or plain Parquet) holds, as ``to_pandas`` gives the original."""
    tab = pq.read_table(io.BytesIO(blob))
    md = tab.schema.metadata or {}
    if KEY not in md:
        return tab.to_pandas()
    info = json.loads(md[KEY])
    schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(info["schema"])))
    how = info["how"]
    cols = []
    for name, field in zip(schema.names, schema):
        col = tab.column(name).combine_chunks()
        h = how.get(name)
        if h is None:
            cols.append(col.cast(field.type) if col.type != field.type else col)
        elif "div" in h:
            t = col.to_numpy() * np.int64(h["div"])
            cols.append(pa.array(t).cast(field.type))
        elif "f32" in h:
            cols.append(col.cast(field.type))   # float32 -> float64: exact
        else:
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            counts = pc.fill_null(col, 0).to_numpy().astype(np.float64)
            v = counts * _step(h["dec"]) if h.get("mul") else counts / (10.0 ** h["dec"])
            if "neg0" in h:
                v[np.asarray(h["neg0"], np.int64)] = -0.0
            cols.append(pa.array(v, mask=~valid, type=field.type))
    return pa.table(cols, schema=schema).to_pandas()


# ------------------------------------------------------------------------------ re-read spans (ck)
# (ck, issue 16) A checkpoint of layout 4 carries no reading the store holds: per meter the span of
# its carried tail (first and last stamp), its row count and a fingerprint of its rows, re-read from
# the store's readings at resume and checked against them (runners/stream.py).

_GOLD = np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64, wrapping)."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _bits(s: pd.Series) -> np.ndarray:
    """A column's values as their 64 bits (a time: its µs count; a float: its IEEE bits, NaN's
    payload and -0.0 included)."""
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.to_numpy("datetime64[us]").view(np.int64).view(np.uint64)
    return np.ascontiguousarray(s.to_numpy(np.float64)).view(np.uint64)


def fingerprint(df: pd.DataFrame, columns: list[str], starts: np.ndarray) -> np.ndarray:
    """Per group of rows (``starts``: each group's first row, ascending, the first 0) a 64-bit
    fingerprint of its rows' ``columns``, bit for bit: the wrapping sum of a hash per row (the
    row's order in the group does not count; its values, their column and the row's count do)."""
    n = len(df)
    if not n:
        return np.zeros(len(starts), np.uint64)
    h = np.zeros(n, np.uint64)
    v = np.empty(n, np.uint64)
    with np.errstate(over="ignore"):
        for i, c in enumerate(columns):
            # each column's bits times an odd constant of its own (a bijection: one value changed
            # changes the row's hash; a value moved to another column too), mixed once a row
            k = np.uint64(int(_mix(np.array([i + 1], np.uint64))[0]) | 1)
            np.multiply(_bits(df[c]), k, out=v)
            np.bitwise_xor(h, v, out=h)
        return np.add.reduceat(_mix(h), np.asarray(starts, np.int64)).astype(np.uint64)
