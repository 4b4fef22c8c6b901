"""Store.query_windows (the stream engine's read-back): each meter's own half-open window, the
same rows as Store.query cut per meter, whatever the mix of open and closed bounds and wherever
late readings sit in the table (the scan is limited to the windows' overall span)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.pipeline import ingest_frame
from wattwatch.store import Store
from wattwatch.store.duck import _us

T0 = pd.Timestamp("2026-03-01", tz="UTC")


def _readings(meters, minutes, seed, offset_min=0):
    rng = np.random.default_rng(seed)
    t = T0 + pd.to_timedelta(np.repeat(np.arange(minutes) + offset_min, len(meters)), unit="min")
    p = rng.normal(4.0, 0.4, len(t))
    return pd.DataFrame({"meter_id": np.tile(np.array(meters, dtype=object), minutes), "ts": t,
                         "p_kw": p, "v_v": rng.normal(230, 1, len(t))})


@pytest.fixture()
def filled(tmp_path):
    s = Store(tmp_path / "w.duckdb")
    meters = ["a", "b", "c"]
    ingest_frame(s, _readings(meters, 180, 1), source="history")           # 3 h in time order
    ingest_frame(s, _readings(meters, 60, 2, offset_min=180), source="live")
    late = _readings(["b"], 20, 3, offset_min=30)                            # older, stored last
    late["ts"] += pd.Timedelta(seconds=30)
    assert ingest_frame(s, late, source="late").stored == 20
    yield s
    s.close()


def _expected(store, windows):
    full = store.query()
    full["meter_id"] = full["meter_id"].astype(str)
    parts = []
    for m, lo, hi in zip(windows["meter_id"], windows["start"], windows["end"]):
        sel = full["meter_id"] == m
        if not pd.isna(lo):
            sel &= full["ts"] >= pd.Timestamp(lo).tz_convert("UTC")
        if not pd.isna(hi):
            sel &= full["ts"] < pd.Timestamp(hi).tz_convert("UTC")
        parts.append(full[sel])
    return pd.concat(parts).sort_values(["meter_id", "ts"]).reset_index(drop=True)


@pytest.mark.parametrize("bounds", [
    # (start, end) minutes after T0 per meter a, b, c; None is an open bound.
    ((200, 230), (20, 60), (239, 240)),       # narrow, and b's window holds the late readings
    ((None, 10), (170, None), (100, 190)),    # open bounds on either side
    ((230, 231), (231, 232), (400, 500)),     # c's window past its last reading: nothing
])
def test_windows_equal_query_cut_per_meter(filled, bounds):
    w = pd.DataFrame({"meter_id": ["a", "b", "c"],
                      "start": [pd.NaT if s is None else T0 + pd.Timedelta(minutes=s) for s, _ in bounds],
                      "end": [pd.NaT if e is None else T0 + pd.Timedelta(minutes=e) for _, e in bounds]})
    got = filled.query_windows(w)
    got["meter_id"] = got["meter_id"].astype(str)
    want = _expected(filled, w)
    pd.testing.assert_frame_equal(got.reset_index(drop=True)[want.columns.tolist()], want)


def test_windows_of_unknown_meter_and_other_zones(filled):
    w = pd.DataFrame({"meter_id": ["b", "zz"],
                      "start": pd.Series([T0 + pd.Timedelta(minutes=29), T0]).dt.tz_convert("Europe/Berlin"),
                      "end": pd.Series([T0 + pd.Timedelta(minutes=40), T0 + pd.Timedelta(hours=9)])})
    got = filled.query_windows(w)
    assert set(got["meter_id"].astype(str)) == {"b"}
    want = _expected(filled, w.iloc[:1])
    assert got["ts"].tolist() == want["ts"].tolist()
    assert len(got) == 11 + 10   # b at minutes 29..39 and its late readings at 30:30..39:30


def test_us_of_tz_aware_times_equals_the_object_path():
    t = pd.Series([T0 + pd.Timedelta(nanoseconds=1700), pd.NaT, T0 + pd.Timedelta(hours=5)]).dt.tz_convert("Asia/Tokyo")
    assert _us(t).equals(_us(list(t)))
    assert _us(t).null_count == 1
