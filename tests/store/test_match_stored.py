"""The duplicate check of an ingest against stored readings (st2): read once per group of meters
and matched on sorted arrays instead of two ASOF joins in DuckDB, with the same result. A copy
matches the nearest stored reading of its meter within the tolerance, the earlier of two as near;
a copy that fills none of a stored reading's gaps writes nothing; the stored side read in several
groups gives what one read gives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.store.test_integrity import T0, fleet, ingest_frame
from wattwatch.store import Store
from wattwatch.store import duck
from wattwatch.store.duck import _hour_key, _nearest


def _reference(p_sid, p_t, p_tol, s_sid, s_t, s_c, legacy):
    """Per probe, by definition: the nearest stored reading of its series within its tolerance (the
    earlier of two as near, the raw one of a raw and a compacted one at one time), else a layout-1
    hour it falls in; (stored index or -1, stored time, compacted) or None."""
    out = []
    for sid, t, tol in zip(p_sid, p_t, p_tol):
        best = None
        for j in range(len(s_t)):
            if s_sid[j] != sid or abs(s_t[j] - t) > tol:
                continue
            key = (abs(s_t[j] - t), s_t[j], bool(s_c[j]))
            if best is None or key < best[0]:
                best = (key, j)
        if best is not None and best[0][0] == 0:
            out.append((best[1], int(s_t[best[1]]), bool(s_c[best[1]])))
        elif legacy is not None and _hour_key(np.array([sid]), np.array([t]))[0] in set(legacy.tolist()):
            out.append((-1, int(t), True))
        elif best is not None:
            out.append((best[1], int(s_t[best[1]]), bool(s_c[best[1]])))
        else:
            out.append(None)
    return out


def test_nearest_is_the_nearest_stored_reading_within_the_tolerance_by_definition():
    # Seeds 0..299: grids with jitter, exact copies, copies half-way between two stored readings,
    # series the stored side lacks, compacted readings at a raw one's time, layout-1 hours, and
    # times centuries apart (one integer key no longer fits: ranks are used).
    for seed in range(300):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(0, 40))
        s_sid = rng.integers(1, 4, n)
        step = int(rng.choice([4, 10, 60]))
        s_t = rng.integers(0, 30, n) * step + rng.integers(-2, 3, n) * (seed % 3)
        if seed % 10 == 0 and n:
            s_t[0] += 3_000 * 365 * 86_400 * 10**6   # far apart
        s_c = rng.random(n) < 0.2
        if n > 2 and seed % 4 == 0:   # a compacted reading at a raw one's time
            s_sid[1], s_t[1], s_c[1], s_c[0] = s_sid[0], s_t[0], True, False
        pair = np.unique(np.c_[s_sid, s_t, s_c], axis=0)   # stored (series, time) unique but for raw+compacted
        s_sid, s_t, s_c = pair[:, 0], pair[:, 1], pair[:, 2].astype(bool)
        order = np.lexsort((s_c, s_t, s_sid))
        s_sid, s_t, s_c = s_sid[order], s_t[order], s_c[order]
        m = int(rng.integers(1, 30))
        p_sid = rng.integers(1, 5, m)
        n = len(s_t)
        base = s_t[rng.integers(0, n, m)] if n else rng.integers(0, 1000, m)
        p_t = base + rng.choice([0, 0, 1, -1, step // 2, -(step // 2), 3 * step], m)
        p_tol = np.full(m, max(1, step // 2))
        legacy = None
        if seed % 5 == 1:
            legacy = np.unique(_hour_key(np.array([1, 2]), np.array([0, 3_600_000_000])))
            p_t[: m // 2] = rng.integers(0, 3_600_000_000, m // 2)
        s = {"sid": s_sid, "t": s_t, "c": s_c, "legacy": legacy}
        got = _nearest(p_sid, p_t, p_tol, s)
        want = _reference(p_sid, p_t, p_tol, s_sid, s_t, s_c, legacy)
        flat = [None] * m
        if got is not None:
            for j, h, old, comp in zip(*got):
                flat[h] = (int(j), int(old), bool(comp))
        assert flat == want, seed


def _reingest(tmp_path: Path, monkeypatch=None, rows: int | None = None):
    df = fleet(meters=4, days=2)
    copy = df.sample(frac=0.6, random_state=1).copy()
    copy["ts"] += pd.to_timedelta(np.random.default_rng(2).uniform(-4, 4, len(copy)), unit="s")
    copy.loc[copy.index[::7], "p_kw"] += 1.0        # conflicts, said in a note
    holes = df.sample(frac=0.3, random_state=3).copy()
    holes["e_kwh"] = np.nan                          # the stored copies of these lack e_kwh ...
    if monkeypatch is not None:
        monkeypatch.setattr(duck, "MATCH_ROWS", rows)
    with Store(tmp_path / f"s{rows}.duckdb") as s:
        first = ingest_frame(s, pd.concat([df.drop(holes.index), holes]))
        again = ingest_frame(s, copy)
        fill = ingest_frame(s, df)                   # ... which this fills
        got = s.con.execute("SELECT * FROM readings ORDER BY meter_id, ts").df()
    return [(c.stored, c.merged, c.duplicates, c.rejected, [n.split(": ", 1)[1] for n in c.notes])
            for c in (first, again, fill)], got


def test_the_stored_side_read_in_groups_of_meters_gives_what_one_read_gives(tmp_path: Path, monkeypatch):
    # MATCH_ROWS bounds the stored readings read at a time (estimated from each meter's cadence):
    # at 500 the 4 meters (576 readings each) are read one or two at a time.
    one, rows_one = _reingest(tmp_path)
    many, rows_many = _reingest(tmp_path, monkeypatch, 500)
    assert one == many
    assert one[1][1] > 0 and one[2][1] > 0 and any("different values" in n for n in one[1][4])
    pd.testing.assert_frame_equal(rows_one, rows_many)


def test_a_copy_that_fills_no_gap_writes_nothing(tmp_path: Path, monkeypatch):
    # An exact re-ingest (most of them) matches every reading and fills nothing: no UPDATE is made
    # (before: an UPDATE of every matched reading was planned and run, finding nothing to change).
    df = fleet(meters=3, days=1)
    seen = []
    query = Store._query

    def recorded(self, table, sql):
        seen.append(sql.lstrip().split(" ", 2)[:2])
        return query(self, table, sql)
    with Store(tmp_path / "s.duckdb") as s:
        ingest_frame(s, df)
        monkeypatch.setattr(Store, "_query", recorded)
        c = ingest_frame(s, df)
        assert c.stored == 0 and c.merged == len(df)
        assert ["UPDATE", "readings_raw"] not in seen, seen
        gap = df.iloc[[5]].copy()
        s.con.execute("UPDATE readings_raw SET p_kw = NULL WHERE ts = ? AND sid = (SELECT sid FROM meters "
                      "WHERE meter_id = ?)", [gap["ts"].iloc[0], gap["meter_id"].iloc[0]])
        c = ingest_frame(s, gap)   # fills the gap: one UPDATE
        assert c.merged == 1 and seen.count(["UPDATE", "readings_raw"]) == 1
        assert s.con.execute("SELECT count(*) FROM readings_raw WHERE p_kw IS NULL").fetchone()[0] == 0


def test_a_copy_as_near_to_two_stored_readings_fills_the_earlier(tmp_path: Path):
    # Two readings of a 1-min meter 16 s apart (more than the 10 s tolerance: two readings), both
    # without p_kw; a copy 8 s from each fills the earlier (before: whichever DuckDB's join gave).
    ts = T0 + pd.to_timedelta([0, 60, 120, 136, 180, 240], unit="s")
    df = pd.DataFrame({"meter_id": "M", "ts": ts, "p_kw": [1.0, 1.0, np.nan, np.nan, 1.0, 1.0],
                       "e_kwh": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]})
    with Store(tmp_path / "s.duckdb") as s:
        assert ingest_frame(s, df).stored == 6
        c = ingest_frame(s, pd.DataFrame({"meter_id": ["M"], "ts": [T0 + pd.Timedelta(seconds=128)],
                                          "p_kw": [7.0]}))
        assert c.merged == 1 and c.stored == 0
        got = s.con.execute("SELECT epoch(ts) - epoch(?::TIMESTAMPTZ), p_kw FROM readings WHERE ts BETWEEN ? AND ? "
                            "ORDER BY ts", [T0, T0 + pd.Timedelta(seconds=120),
                                            T0 + pd.Timedelta(seconds=136)]).fetchall()
        assert [(int(a), b) for a, b in got] == [(120, 7.0), (136, None)]


def test_a_sparse_batch_reads_the_stored_readings_near_its_own_not_its_whole_span(tmp_path: Path, monkeypatch):
    # (rst2) Two copies 19 days apart of a 1-min meter's readings: the stored side read for them is
    # the hours around each (about 2 x 60 readings), not the 27,000 stored between them (a late
    # reading a year back of a 1 s meter would read the whole year, in Python memory, at once).
    step = 60
    n = 20 * 24 * 60
    ts = T0 + pd.to_timedelta(np.arange(n) * step, unit="s")
    df = pd.DataFrame({"meter_id": "M", "ts": ts, "p_kw": np.linspace(1, 2, n)})
    read = []
    near = Store._stored_near

    def counted(self, *a, **k):
        out = near(self, *a, **k)
        read.append(len(out["t"]))
        return out
    with Store(tmp_path / "s.duckdb") as s:
        ingest_frame(s, df)
        monkeypatch.setattr(Store, "_stored_near", counted)
        late = df.iloc[[10, n - 10]].copy()
        late["ts"] += pd.Timedelta(seconds=3)
        late.loc[late.index[0], "p_kw"] = 9.0      # a conflict, said
        c = ingest_frame(s, late)
        assert c.merged == 2 and c.stored == 0 and any("different values" in x for x in c.notes)
        assert sum(read) <= 4 * 61, read
        # and a copy matches across an hour's edge (its stored reading in the previous hour)
        edge = df.iloc[[60]].copy()                  # stored at 01:00:00
        edge["ts"] -= pd.Timedelta(seconds=4)        # given at 00:59:56
        assert ingest_frame(s, edge).merged == 1
        assert s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0] == n
