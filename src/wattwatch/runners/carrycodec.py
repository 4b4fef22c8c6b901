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
  a value it does not give back stays float64 as it was);
- everything then zstd-compressed; strings dictionary-encoded.

The original Arrow schema (with pandas' metadata) is kept in the file's metadata, and :func:`read`
rebuilds the original Arrow columns from the counts before ``to_pandas``: the frame it gives equals
``pq.read_table(plain).to_pandas()`` of the frame written plainly (dtypes, NaN, column order), which
``tests/live/test_checkpoint_codec.py`` checks. A blob written plainly (an older checkpoint) is read
as it is."""

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


def _decimals(v: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(k, counts): the smallest k <= MAX_DECIMALS such that every value is ``counts / 10**k`` bit for
    bit (float64), or None. ``v``: the column's non-null values."""
    if not len(v):
        return 0, np.zeros(0, np.int64)
    if not np.isfinite(v).all():
        return None
    bits = v.view(np.int64)
    for k in range(MAX_DECIMALS + 1):
        p = 10.0 ** k
        s = np.round(v * p)
        if np.abs(s).max() >= _EXACT:
            return None
        n = s.astype(np.int64)
        # (from the integer counts, as read() computes it: -0.0 counts 0, which gives 0.0 back)
        if np.array_equal((n.astype(np.float64) / p).view(np.int64), bits):
            return k, n
    return None


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
    cols, how, delta = [], {}, []
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
            got = _decimals(v[valid])
            if got is None:
                cols.append(col)
                continue
            k, counts = got
            out = np.zeros(len(v), np.int64)
            out[valid] = counts
            cols.append(pa.array(out, mask=~valid))
            how[name] = {"dec": k}
            delta.append(name)
        else:
            cols.append(col)
    meta = {KEY: json.dumps({"how": how, "schema": base64.b64encode(tab.schema.serialize().to_pybytes()).decode()})}
    out = pa.table(cols, names=tab.column_names).replace_schema_metadata(meta)
    buf = io.BytesIO()
    pq.write_table(out, buf, compression="zstd", use_dictionary=[n for n in tab.column_names if n not in delta],
                   column_encoding={n: "DELTA_BINARY_PACKED" for n in delta})
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
        else:
            valid = col.is_valid().to_numpy(zero_copy_only=False)
            counts = pc.fill_null(col, 0).to_numpy()
            v = counts.astype(np.float64) / (10.0 ** h["dec"])
            cols.append(pa.array(v, mask=~valid, type=field.type))
    return pa.table(cols, schema=schema).to_pandas()
