"""Property: a messy copy of a file (shuffled, duplicated, jittered, NaN-holed duplicates) stores
exactly the same table as the clean file."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.conftest import frame_equal
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.schema import CHANNEL_NAMES
from wattwatch.store import Store

CH = ["v_l1_v", "i_l1_a", "i_n_a", "p_kw", "e_kwh", "temp_c"]


def _clean(n_meters: int, n_rows: int, cadence_s: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for m in range(n_meters):
        ts = pd.Timestamp("2025-02-03T00:00:00Z") + pd.to_timedelta(np.arange(n_rows) * cadence_s, unit="s")
        parts.append(pd.DataFrame({
            "meter_id": f"M{m}", "ts": ts, "v_l1_v": rng.uniform(220, 240, n_rows).round(1),
            "i_l1_a": rng.uniform(0, 30, n_rows).round(3), "i_n_a": rng.uniform(0, 30, n_rows).round(3),
            "p_kw": rng.uniform(0, 6, n_rows).round(4), "e_kwh": np.cumsum(rng.uniform(0, 1, n_rows)).round(3),
            "temp_c": rng.uniform(15, 40, n_rows).round(2)}))
    return pd.concat(parts, ignore_index=True)


def _write(df: pd.DataFrame, path: Path) -> None:
    out = df.copy()
    out["ts"] = out["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    out.to_csv(path, index=False, na_rep="")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_meters=st.integers(1, 3), n_rows=st.integers(3, 40), cadence_s=st.sampled_from([60, 300, 900]),
       seed=st.integers(0, 2**31), dup_share=st.floats(0, 0.6), jitter_share=st.floats(0, 1),
       hole_share=st.floats(0, 0.5))
# Found by hypothesis (adv25): a meter of 3 readings with 4 retransmissions (4 of its 6 gaps jitter).
@example(n_meters=2, n_rows=3, cadence_s=60, seed=3840, dup_share=0.59375, jitter_share=1.0, hole_share=0.0)
def test_messy_csv_stores_the_same_table_as_the_clean_file(n_meters, n_rows, cadence_s, seed, dup_share,
                                                           jitter_share, hole_share):
    rng = np.random.default_rng(seed)
    clean = _clean(n_meters, n_rows, cadence_s, seed)
    dups = clean.sample(frac=dup_share, random_state=seed, replace=True)
    jitter = rng.random(len(dups)) < jitter_share
    # Retransmissions arrive late: 0.5-4 s after the original reading.
    dups.loc[jitter, "ts"] = dups.loc[jitter, "ts"] + pd.to_timedelta(rng.uniform(0.5, 4, jitter.sum()).round(3), unit="s")
    holes = rng.random((len(dups), len(CH))) < hole_share
    # A copy with every channel blank is no reading at all (a reject, "no channel value"): keep one.
    holes[holes.all(axis=1), 0] = False
    dups[CH] = dups[CH].mask(holes)
    messy = pd.concat([clean, dups]).sample(frac=1, random_state=seed + 1)
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _write(clean, d / "clean.csv")
        _write(messy, d / "messy.csv")
        with Store(d / "a.duckdb") as a, Store(d / "b.duckdb") as b:
            ca = ingest_path(a, d / "clean.csv")
            cb = ingest_path(b, d / "messy.csv")
            assert ca.stored == cb.stored == len(clean)
            assert cb.read == cb.stored + cb.duplicates and cb.duplicates == len(dups)
            # Retransmissions repeat their values (some blank): no conflict to report.
            assert not [n for n in cb.notes if "different values" in n]
            frame_equal(a.query(columns=list(CHANNEL_NAMES)), b.query(columns=list(CHANNEL_NAMES)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(split=st.floats(0.1, 0.9), overlap=st.floats(0, 0.5), seed=st.integers(0, 2**31))
def test_overlapping_files_in_any_order_leave_one_row_per_reading(split, overlap, seed):
    clean = _clean(2, 30, 300, seed).sort_values("ts", kind="stable")
    n = len(clean)
    cut = int(n * split)
    first = clean.iloc[: min(n, cut + int(n * overlap))]
    second = clean.iloc[max(0, cut - int(n * overlap)):]
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        _write(clean, d / "all.csv")
        _write(first, d / "1.csv")
        _write(second, d / "2.csv")
        with Store(d / "a.duckdb") as a, Store(d / "b.duckdb") as b:
            ingest_path(a, d / "all.csv")
            for f in ("2.csv", "1.csv", "2.csv"):
                ingest_path(b, d / f)
            frame_equal(a.query(), b.query())
            assert b.info()["readings"] == n


def test_arbitrary_text_rows_are_stored_or_rejected_never_lost(tmp_path: Path):
    rng = np.random.default_rng(5)
    lines = ["meter_id,ts,p_kw,v_l1_v"]
    kinds = []
    for i in range(400):
        k = rng.integers(0, 5)
        kinds.append(k)
        ts = f"2025-01-01T00:{i // 60:02d}:{i % 60:02d}Z"
        lines.append([f"M1,{ts},1.5,230", f"M1,{ts},x,230", f"M1,{ts},1.5", f"M1,{ts},1,2,3",
                      f"M1,{ts},,"][k])
    p = tmp_path / "r.csv"
    p.write_text("\n".join(lines) + "\n")
    with Store(tmp_path / "s.duckdb") as s:
        c = ingest_path(s, p)
    assert c.read == 400
    assert c.stored + c.duplicates + c.rejected == 400
    # kind 4 (meter and time, no channel value) is a reject too: it is not a reading. (fld46) kind 1
    # (p_kw 'x') is kept without its p_kw: its voltage is a reading.
    assert c.rejected == sum(k in (2, 3, 4) for k in kinds)
    assert c.values_dropped == {"p_kw": sum(k == 1 for k in kinds)}
    assert [r[1] for r in c.dropped] == [i + 2 for i, k in enumerate(kinds) if k == 1]


def test_a_short_meter_with_more_retransmissions_than_readings_keeps_one_row_per_reading(tmp_path: Path):
    """Three readings a minute apart, each sent again 0.3-2.6 s late (one twice): 4 of the 6 gaps
    between the rows are jitter, fewer than the 75 % the cadence estimate must stand."""
    rows = ["00:01:00.000", "00:00:01.096", "00:01:02.592", "00:00:00.000", "00:02:00.560", "00:02:00.000",
            "00:01:02.335"]
    p = tmp_path / "r.csv"
    p.write_text("meter_id,ts,v_l1_v\n" + "".join(f"M1,2025-02-03T{t}Z,{230 + int(t[3:5])}\n" for t in rows))
    with Store(tmp_path / "s.duckdb") as s:
        c = ingest_path(s, p)
        got = s.query(columns=["v_l1_v"])
    assert (c.stored, c.duplicates) == (3, 4)
    assert list(got.ts) == list(pd.date_range("2025-02-03", periods=3, freq="1min", tz="UTC"))
    assert list(got.v_l1_v) == [230.0, 231.0, 232.0]


def test_a_reading_given_twice_with_different_values_is_said_not_dropped_silently(tmp_path: Path):
    """Two rows for one meter and instant that disagree: one is kept (the most complete, then the
    earliest, then the first in the file) and the other's values were dropped as a plain duplicate,
    counted with the retransmissions and never mentioned. Now a note says how many and shows one."""
    p = tmp_path / "d.csv"
    p.write_text("meter_id,ts,p_kw,v_l1_v\n"
                 "C,2025-01-06T00:00:00Z,1.0,230\n"       # line 2
                 "C,2025-01-06T00:15:00Z,1.0,230\n"
                 "C,2025-01-06T00:00:00Z,2.0,230\n"       # line 4: same instant, another p_kw
                 "C,2025-01-06T00:15:00Z,1.0,\n"          # a copy with a blank: no conflict
                 "C,2025-01-06T00:30:00Z,1.0,230\n"
                 "C,2025-01-06T00:30:01.5Z,1.0,235\n")   # a retransmission 1.5 s late, another voltage
    with Store(tmp_path / "s.duckdb") as s:
        c = ingest_path(s, p)
        got = s.query(columns=["p_kw", "v_l1_v"])
    assert (c.stored, c.duplicates) == (3, 3)
    assert list(got.p_kw) == [1.0, 1.0, 1.0] and list(got.v_l1_v) == [230.0] * 3
    notes = [n for n in c.notes if "different values" in n]
    assert len(notes) == 1
    assert "2 reading(s)" in notes[0]
    assert "meter C at 2025-01-06T00:00:00Z, lines 2 (kept), 4: p_kw 1 vs 2" in notes[0]


def test_a_reading_given_again_with_other_values_than_the_stored_one_is_said(tmp_path: Path, monkeypatch):
    """The note on readings given twice with different values held only inside one read block: a
    second copy further on in the file (past a 32 MB block) or in a later file (a corrected export)
    met the stored reading, which kept its values, and the other values were dropped with no word.
    A copy with the same values, or one that only fills a stored blank, is no conflict."""
    from wattwatch.ingest import readers

    p = tmp_path / "d.csv"
    p.write_text("meter_id,ts,p_kw,v_l1_v\n" + "".join(f"C,2025-01-06T{h:02d}:00:00Z,1.0,\n" for h in range(20))
                 + "C,2025-01-06T03:00:00Z,9.0,\n")   # line 22: hour 3 again, another p_kw
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 200)   # its first copy is in an earlier block
    fixed = tmp_path / "fixed.csv"
    fixed.write_text("meter_id,ts,p_kw,v_l1_v\nC,2025-01-06T05:00:00Z,1.0,230\nC,2025-01-06T06:00:00Z,7.5,\n")
    clean = tmp_path / "clean.csv"
    clean.write_text("".join(p.read_text().splitlines(keepends=True)[:21]))
    with Store(tmp_path / "s.duckdb") as s:
        c = ingest_path(s, p)
        again = ingest_path(s, clean)
        later = ingest_path(s, fixed)
        got = s.query(columns=["p_kw", "v_l1_v"])
    notes = [n for n in c.notes if "different values" in n]
    assert len(notes) == 1 and "1 reading(s)" in notes[0] and "meter C at 2025-01-06T03:00:00Z" in notes[0], c.notes
    assert "p_kw 1 (stored) vs 9 (line 22)" in notes[0]
    assert again.merged == 20 and [n for n in again.notes if "different values" in n] == []   # the same values again
    notes = [n for n in later.notes if "different values" in n]
    assert len(notes) == 1 and "1 reading(s)" in notes[0] and "2025-01-06T06:00:00Z" in notes[0], later.notes
    assert list(got.p_kw) == [1.0] * 20 and got.v_l1_v.iloc[5] == 230.0        # stored values kept, a blank filled
