"""The checkpoint's compact Parquet (runners/carrycodec.py, sm, issue 16) gives back what plain Parquet
of the same frame gives, bit for bit, whatever the columns hold; and is smaller on register values."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wattwatch.runners import carrycodec


def _plain(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf)
    return buf.getvalue()


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    assert list(a.columns) == list(b.columns) and a.dtypes.equals(b.dtypes)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for c in a.columns:
        if a[c].dtype == np.float64:   # NaN where NaN, -0.0 as -0.0
            assert np.array_equal(a[c].to_numpy().view(np.int64), b[c].to_numpy().view(np.int64)), c


def test_every_kind_of_column_comes_back_as_plain_parquet_gives_it():
    rng = np.random.default_rng(1613)
    n = 500
    t0 = pd.Timestamp("2025-01-06", tz="UTC")
    ms = t0 + pd.to_timedelta(np.arange(n) * 60_000 + rng.integers(0, 2000, n), unit="ms")
    volts = np.round(230 + rng.normal(0, 1, n), 1)
    volts[::7] = np.nan
    neg0 = np.round(rng.normal(0, 1, n), 2)
    neg0[3] = -0.0                                 # (rsm) counted 0, its row listed: given back -0.0
    df = pd.DataFrame({
        "meter_id": pd.Categorical(np.repeat(["M-2", "M-1"], n // 2), categories=["M-1", "M-2"]),
        "ts": ms,
        "ns": pd.DatetimeIndex(t0.value + np.arange(n) * 1_000_000_007, tz="UTC"),   # sub-µs stamps
        "v": volts,
        "e_kwh": np.round(11209.184 + np.cumsum(rng.random(n)) / 1e3, 3),
        "neg0": neg0,
        "pi": np.pi * rng.random(n),               # no short decimal
        "big": rng.random(n) * 1e18,
        "nan": np.full(n, np.nan),
        # (rsm) what sources give: a Modbus register scaled (raw * 0.1: not raw / 10 for a third of raws)
        # and with an offset; a float32 register widened; float64 noise; JSON floats near 0 (-0.0 in it)
        "modbus": rng.integers(0, 65535, n) * 0.1,
        "offset": rng.integers(0, 65535, n) * 0.01 - 40.0,
        "f32": (230 + rng.normal(0, 1, n)).astype(np.float32).astype(np.float64),
        "noise": rng.normal(0, 1, n),
        "tiny": rng.integers(-1000, 1000, n) * 1e-9,
        "inf": np.where(rng.random(n) < 0.1, np.inf, np.round(rng.normal(0, 1, n), 3)),
        "k": rng.integers(0, 5, n),
        "flag": rng.random(n) < 0.5,
        "s": np.where(rng.random(n) < 0.5, "a", "b"),
    })
    blob = carrycodec.write(df)
    _same(carrycodec.read(blob), pq.read_table(io.BytesIO(_plain(df))).to_pandas())
    assert _columns(blob)["neg0"][1] == "INT64"
    # a plain blob (a layout-2 checkpoint) is read as it is
    _same(carrycodec.read(_plain(df)), pq.read_table(io.BytesIO(_plain(df))).to_pandas())
    assert carrycodec.write(df.iloc[:0]) is None and carrycodec.write(None) is None
    # register values on a regular clock (a day at 1 min, ms jitter): under half of plain Parquet
    m = 1440
    regs = pd.DataFrame({"meter_id": "M-1", "ts": t0 + pd.to_timedelta(np.arange(m) * 60_000 + rng.integers(0, 300, m), unit="ms"),
                         "v": np.round(230 + rng.normal(0, 1, m), 1), "i": np.round(5 + rng.normal(0, 0.5, m), 3),
                         "e_kwh": np.round(11209.184 + np.cumsum(rng.random(m)) / 1e3, 3)})
    assert len(carrycodec.write(regs)) * 2 < len(_plain(regs))
    # (rsm) and so on the registers a Modbus source scales (raw * 0.01) or reads as float32, bit for bit
    mb = pd.DataFrame({"ts": regs["ts"], "e_kwh": (1_120_918 + np.cumsum(rng.integers(0, 3, m))) * 0.01,
                       "v": (230 + rng.normal(0, 1, m)).astype(np.float32).astype(np.float64)})
    blob = carrycodec.write(mb)
    _same(carrycodec.read(blob), pq.read_table(io.BytesIO(_plain(mb))).to_pandas())
    got, plain = _columns(blob), _columns(_plain(mb))
    assert got["e_kwh"][0] * 4 < plain["e_kwh"][0], (got, plain)   # counts of 0.01 (measured 461 vs 6,046 B)
    assert got["v"][1] == "FLOAT" and plain["v"][1] == "DOUBLE", (got, plain)   # 4 bytes a value


def _columns(blob: bytes) -> dict[str, tuple[int, str]]:
    """Each column's compressed bytes and physical type in a one-row-group Parquet file."""
    rg = pq.ParquetFile(io.BytesIO(blob)).metadata.row_group(0)
    return {rg.column(i).path_in_schema: (rg.column(i).total_compressed_size, rg.column(i).physical_type)
            for i in range(rg.num_columns)}


def test_the_fingerprint_of_a_meter_s_rows_changes_with_any_bit_of_them():
    """(ck) The layout-4 checkpoint's check of a re-read span (carrycodec.fingerprint): per group of
    rows, any value changed (-0.0 for 0.0, NaN for a value), moved to another column, a row more or
    fewer changes it; the rows' order in the group does not."""
    rng = np.random.default_rng(1663)
    n = 40
    df = pd.DataFrame({"ts": pd.Timestamp("2025-01-06", tz="UTC") + pd.to_timedelta(np.arange(n) * 60, unit="s"),
                       "a": np.round(rng.normal(0, 1, n), 2), "b": np.round(rng.normal(0, 1, n), 2)})
    df.loc[3, "a"] = 0.0
    cols, starts = ["ts", "a", "b"], np.array([0, 20])
    fp = carrycodec.fingerprint(df, cols, starts)
    assert fp.dtype == np.uint64 and fp[0] != fp[1]
    for change in (lambda d: d.loc.__setitem__((3, "a"), -0.0), lambda d: d.loc.__setitem__((4, "b"), np.nan),
                   lambda d: d.loc.__setitem__((5, ["a", "b"]), d.loc[5, ["b", "a"]].to_numpy()),
                   lambda d: d.loc.__setitem__((6, "ts"), d.loc[6, "ts"] + pd.Timedelta(1, "us"))):
        d = df.copy()
        change(d)
        got = carrycodec.fingerprint(d, cols, starts)
        assert got[0] != fp[0] and got[1] == fp[1]
    assert carrycodec.fingerprint(df.drop(index=25).reset_index(drop=True), cols, starts)[1] != fp[1]
    shuffled = pd.concat([df.iloc[:20].iloc[::-1], df.iloc[20:]], ignore_index=True)
    assert np.array_equal(carrycodec.fingerprint(shuffled, cols, starts), fp)
