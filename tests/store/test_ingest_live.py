"""The live ingest path (issue 16: a watcher's small batches, ``pipeline.ingest_live``): the same
rows, merges, meters catalogue, counts and rejects as ``ingest_frame`` whatever a batch holds —
readings in time order, copies within the batch (timestamp jitter), copies and late readings of
stored ones that fill their gaps, out-of-range values, new meters, extra channels — and the rows it
hands back are exactly what the store gained (and it names the meters whose stored readings a copy
filled, and only those: a copy that fills nothing changed nothing the caller holds). A failed
batch leaves the in-memory catalogue as the store is."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.pipeline import IngestError, ingest_frame, ingest_live
from wattwatch.store import Store

T0 = pd.Timestamp("2026-03-01", tz="UTC")
CHANNELS = ("p_kw", "v_l1_v", "i_l1_a", "e_kwh")


def _batches(seed: int) -> list[pd.DataFrame]:
    """Pieces of a 6-meter fleet at 1 min: mostly in time order, with jittered copies, late and
    copied readings carrying channels the stored ones lack, bad values, a meter that joins late,
    an extra channel from some point on."""
    rng = np.random.default_rng(seed)
    meters = [f"m{k}" for k in range(6)]
    out, minute = [], 0
    for step in range(16):
        n = int(rng.integers(1, 4))
        ms = meters if step >= 8 else meters[:5]
        t = T0 + pd.to_timedelta(np.repeat(np.arange(minute, minute + n), len(ms)) * 60
                                 + rng.uniform(-0.4, 0.4, n * len(ms)), unit="s")
        f = pd.DataFrame({"meter_id": np.tile(np.array(ms, dtype=object), n), "ts": t})
        for c in CHANNELS:
            f[c] = rng.normal(230 if c == "v_l1_v" else 5.0, 1.0, len(f)).round(3)
        f.loc[rng.random(len(f)) < 0.2, "i_l1_a"] = np.nan            # gaps a later copy may fill
        minute += n
        extra = []
        if step % 5 == 2:   # copies within the batch (jitter well under the tolerance)
            c = f.sample(3, random_state=seed + step).copy()
            c["ts"] += pd.Timedelta(seconds=2)
            c["i_l1_a"] = 7.5
            extra.append(c)
        if step % 6 == 4 and out:   # copies of stored readings, and late readings in old gaps
            prev = out[-2]
            gaps = prev[prev["i_l1_a"].isna() & (prev.index < len(prev) - 6)]   # readings stored with a gap
            old = (gaps.head(2) if len(gaps) else prev.sample(2, random_state=seed + step)).copy()
            old["i_l1_a"] = 9.25
            late = old.copy()
            late["ts"] += pd.Timedelta(seconds=30)
            extra += [old, late]
        if step % 7 == 3:   # out of range: rejected
            b = f.iloc[:1].copy()
            b["v_l1_v"] = -5.0
            b["ts"] += pd.Timedelta(seconds=20)
            extra.append(b)
        if step >= 11:
            f["ups_battery_pct"] = rng.uniform(50, 100, len(f)).round(1)
        out.append(pd.concat([f, *extra], ignore_index=True) if extra else f)
    return out


def _rows(s: Store) -> pd.DataFrame:
    return s.con.execute("SELECT * FROM readings ORDER BY meter_id, ts").df()


def _meters(s: Store) -> pd.DataFrame:
    return s.con.execute("SELECT meter_id, first_ts, last_ts, cadence_s FROM meters ORDER BY meter_id").df()


def test_live_ingest_stores_what_ingest_frame_stores_and_hands_back_what_it_added(tmp_path):
    from wattwatch.ingest.mapping import Mapping

    a, b = Store(tmp_path / "a.duckdb"), Store(tmp_path / "b.duckdb")
    cache: dict = {}
    handed = fallbacks = filled = 0
    try:
        after = _rows(b)
        for k, f in enumerate(_batches(1)):
            m = Mapping(extra={"ups_battery_pct": "ups_battery_pct"}) if "ups_battery_pct" in f else None
            want = ingest_frame(a, f, m, source="x")
            before = after
            got, rows, touched = ingest_live(b, f, m, source="x", cache=cache)
            assert (got.read, got.stored, got.merged, got.duplicates, got.rejected) == \
                (want.read, want.stored, want.merged, want.duplicates, want.rejected), f"batch {k}"
            assert [r[1:] for r in got.rejects] == [r[1:] for r in want.rejects], f"batch {k}"
            after = _rows(b)
            pd.testing.assert_frame_equal(_meters(b), _meters(a), obj=f"meters after batch {k}")
            # What the store gained (the rows after less the rows before, by meter and time) is
            # what was handed back; stored readings changed only on the meters said touched.
            key = lambda d: pd.MultiIndex.from_arrays([d["meter_id"].astype(str), d["ts"]])
            new = after[~key(after).isin(key(before))].reset_index(drop=True)
            old = after[key(after).isin(key(before))].reset_index(drop=True)[before.columns]
            changed = ~((old == before) | (old.isna() & before.isna())).all(axis=1)
            filled += bool(changed.any())
            assert set(old.loc[changed, "meter_id"].astype(str)) == touched, f"batch {k}"
            if touched:
                fallbacks += 1
                assert got.merged > 0, f"batch {k}: meters said touched though no stored reading matched"
            handed += 1
            cols = [c for c in new.columns if c in rows.columns or new[c].notna().any()]
            pd.testing.assert_frame_equal(rows.reindex(columns=cols).reset_index(drop=True),
                                          new[cols].reset_index(drop=True), check_dtype=False,
                                          obj=f"rows handed back for batch {k}")
        pd.testing.assert_frame_equal(after, _rows(a), obj="store after every batch")
        assert handed >= 8 and fallbacks >= 2 and filled >= 1, (handed, fallbacks, filled)
        # (fk) ingest_log's figures, the bytes each frame held included (pandas' memory_usage),
        # as the batch path logs them; the normaliser's cursor has the connection's settings but
        # the optimizer.
        log = "SELECT source, bytes, rows_read, stored, merged, duplicates, rejected FROM ingest_log ORDER BY started"
        assert b.con.execute(log).fetchall() == a.con.execute(log).fetchall()
        assert [r[1] for r in b.con.execute(log).fetchall()] == \
            [int(f.memory_usage(index=False).sum()) for f in _batches(1)]
        q = "SELECT name, value FROM duckdb_settings() ORDER BY name"
        on_con, on_cur = dict(b.con.execute(q).fetchall()), dict(b._norm_cursor().execute(q).fetchall())
        # (lead) enable_progress_bar is display only; the Python client's cursor starts with it off
        # and a connection's default depends on the process (it differed under xdist)
        assert {k for k in on_con if on_con[k] != on_cur.get(k)} - {"enable_progress_bar"} == {"enable_optimizer"}
    finally:
        a.close()
        b.close()


def test_a_copy_that_fills_nothing_touches_no_meter(tmp_path):
    """A retransmitted reading (same values, or other values for channels the stored one has:
    those are kept) matches a stored reading and changes nothing: no meter is named touched, so a
    watcher need not read its meter back; a copy that fills a channel the stored reading lacks
    names its meter, and only it."""
    s = Store(tmp_path / "d.duckdb")
    cache: dict = {}
    try:
        t = T0 + pd.to_timedelta(np.repeat(np.arange(5), 3) * 60, unit="s")
        f = pd.DataFrame({"meter_id": np.tile(np.array(["a", "b", "c"], dtype=object), 5), "ts": t,
                          "p_kw": 5.0, "v_l1_v": 230.0, "i_l1_a": 2.0, "e_kwh": 1.0})
        f.loc[(f["meter_id"] == "b") & (f.index == 7), "i_l1_a"] = np.nan   # b at minute 2 lacks i_l1_a
        ingest_live(s, f, None, source="x", cache=cache)
        before = _rows(s)
        same = f[f.index.isin([4, 8])].copy()                   # b at minute 1, c at minute 2, as stored
        got, rows, touched = ingest_live(s, same, None, source="x", cache=cache)
        assert (got.merged, got.stored, len(rows), touched) == (2, 0, 0, set())
        other = f[f.index.isin([3])].copy()                     # a at minute 1, another p_kw: stored kept
        other["p_kw"] = 9.0
        other["ts"] += pd.Timedelta(seconds=3)
        got, rows, touched = ingest_live(s, other, None, source="x", cache=cache)
        assert (got.merged, got.stored, touched) == (1, 0, set())
        pd.testing.assert_frame_equal(_rows(s), before)
        fill = f[f.index.isin([7, 6])].copy()                   # b's gap filled; a's copy as stored
        fill["i_l1_a"] = 3.5
        fill.loc[fill["meter_id"] == "a", "i_l1_a"] = 2.0
        got, rows, touched = ingest_live(s, fill, None, source="x", cache=cache)
        assert (got.merged, touched) == (2, {"b"})
        after = _rows(s)
        assert after.loc[(after["meter_id"] == "b") & (after["ts"] == t[7]), "i_l1_a"].tolist() == [3.5]
    finally:
        s.close()


def test_touched_is_exactly_the_meters_a_copy_changed_whatever_the_kind_of_copy(tmp_path):
    """(rev50) One live batch holding a copy of every kind the store handles, each on its own meter,
    with a new reading of every meter: an exact copy (a), a jittered copy (b), a jittered copy filling
    the one channel its stored reading lacks (c), a jittered copy with other values for channels the
    stored reading has (d), a copy of a compacted reading (e), a late reading that is no copy (f), a
    copy lacking a channel the stored reading has (g), two copies 11 s apart (not one another's) of a
    reading lacking a channel, the farther filling it, the nearer not (h: the store takes the nearer,
    fills nothing; fast), a copy filling the channel its stored reading lacks with another p_kw (i:
    filled, the stored p_kw kept; a change and a conflict, rfast). Only c's and i's stored readings
    change, and only they are named touched and changed (i's as a conflict too); the rows handed back
    are the new readings and f's late one (no copy)."""
    s = Store(tmp_path / "k.duckdb")
    cache: dict = {}
    try:
        ms = np.array(list("abcdefghi"), dtype=object)
        t = T0 + pd.to_timedelta(np.repeat(np.arange(120), len(ms)) * 60, unit="s")
        f = pd.DataFrame({"meter_id": np.tile(ms, 120), "ts": t, "p_kw": 5.0, "v_l1_v": 230.0, "i_l1_a": 2.0,
                          "e_kwh": 1.0 + np.repeat(np.arange(120), len(ms)) * 0.01})
        f.loc[f["meter_id"].isin(["c", "h", "i"]) & (f["ts"] == T0 + pd.Timedelta(minutes=100)), "i_l1_a"] = np.nan
        ingest_live(s, f, None, source="x", cache=cache)
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=1))   # the first hour of every meter
        assert s.compaction_cuts()
        before = _rows(s)
        at = lambda m, minute, **kw: {"meter_id": m, "ts": T0 + pd.Timedelta(minutes=minute),
                                      "p_kw": 5.0, "v_l1_v": 230.0, "i_l1_a": 2.0, "e_kwh": 1.0 + minute * 0.01, **kw}
        sec = pd.Timedelta(seconds=3)
        copies = pd.DataFrame([at("a", 100), {**at("b", 100), "ts": at("b", 100)["ts"] + sec},
                               {**at("c", 100), "ts": at("c", 100)["ts"] - sec, "i_l1_a": 2.5},
                               {**at("d", 100, p_kw=9.0, v_l1_v=231.0), "ts": at("d", 100)["ts"] + sec},
                               {**at("e", 30), "ts": at("e", 30)["ts"] + sec},
                               {**at("f", 100), "ts": at("f", 100)["ts"] + pd.Timedelta(seconds=30)},
                               at("g", 100, v_l1_v=np.nan),
                               {**at("h", 100), "ts": at("h", 100)["ts"] - pd.Timedelta(seconds=6), "i_l1_a": 2.5},
                               {**at("h", 100, i_l1_a=np.nan), "ts": at("h", 100)["ts"] + pd.Timedelta(seconds=5)},
                               {**at("i", 100, p_kw=7.0), "ts": at("i", 100)["ts"] + sec, "i_l1_a": 2.75}])
        fresh = pd.DataFrame([at(m, 120) for m in ms])
        batch = pd.concat([fresh, copies], ignore_index=True)
        got, rows, touched = ingest_live(s, batch, None, source="x", cache=cache)
        assert touched == {"c", "i"}
        assert got.stored == len(ms) + 1 and len(rows) == len(ms) + 1
        # (b2) The stored readings said changed (a watcher re-judges them): c's, filled, at the stored
        # reading's time (rb2: not the copy's, 3 s off); a's, b's (jittered within the tolerance), e's
        # and g's repeat what is stored. (fast) d's other values changed nothing (the store keeps its
        # own): not a change but a conflict, counted and said in the notes. (rfast) i's copy filled its
        # reading and gave another p_kw: a change (re-judged) flagged a conflict (counted once, as one).
        us = lambda x: int(pd.Timestamp(x).value // 1000)
        assert sorted(zip(got.changed["meter_id"], got.changed["t"], got.changed["conflict"])) == \
            [("c", us(at("c", 100)["ts"]), False), ("i", us(at("i", 100)["ts"]), True)]
        assert got.conflicts == 2, got
        assert any("given again with different values" in n and "meter d " in n for n in got.notes), got.notes
        assert sorted(rows.loc[rows["ts"] < T0 + pd.Timedelta(minutes=120), "meter_id"]) == ["f"]
        after = _rows(s)
        key = lambda d: pd.MultiIndex.from_arrays([d["meter_id"].astype(str), d["ts"]])
        old = after[key(after).isin(key(before))].reset_index(drop=True)[before.columns]
        changed = ~((old == before) | (old.isna() & before.isna())).all(axis=1)
        assert old.loc[changed, "meter_id"].tolist() == ["c", "i"]
        assert old.loc[changed, "i_l1_a"].tolist() == [2.5, 2.75] and old.loc[changed, "p_kw"].tolist() == [5.0, 5.0]
    finally:
        s.close()


def test_only_a_small_batch_without_wall_clock_times_is_normalised_without_the_optimizer(monkeypatch):
    """(rfk) The optimizer-off cursor takes a watcher's small batch of instants; a batch over
    ``NOOPT_MAX_ROWS`` or one of wall-clock times (a window per meter and a join: up to ~1.9x the
    CPU unoptimised at 100,000 rows) runs on the connection, optimised. Each stores what the
    batch path stores (a repeated wall-clock hour at the DST change included)."""
    from wattwatch.ingest.mapping import Mapping
    from wattwatch.store import duck

    used = []
    cursor = duck.Store._norm_cursor
    monkeypatch.setattr(duck.Store, "_norm_cursor", lambda self: used.append(1) or cursor(self))
    monkeypatch.setattr(duck, "NOOPT_MAX_ROWS", 6)
    wall = pd.date_range("2026-10-25 01:30", periods=4, freq="30min").repeat(2)   # 02:00-02:59 twice (Paris)
    f = pd.DataFrame({"meter_id": ["a", "b"] * 4, "ts": wall, "p_kw": np.arange(8.0)})
    utc = f.assign(ts=f["ts"].dt.tz_localize("UTC"))
    a, b = Store(":memory:"), Store(":memory:")
    try:
        for k, (g, m, cur) in enumerate([(utc.iloc[:6], None, True), (utc.iloc[6:], None, True),
                                         (utc.assign(ts=utc["ts"] + pd.Timedelta("1D")), None, False),
                                         (f.assign(meter_id=["c", "d"] * 4), Mapping(timezone="Europe/Paris"), False),
                                         (f.iloc[:2].assign(meter_id="c", ts=pd.Timestamp("2026-10-25 02:15")),
                                          Mapping(timezone="Europe/Paris"), False)]):
            used.clear()
            ingest_frame(a, g, m, source="x")
            ingest_live(b, g, m, source="x", cache={})
            assert bool(used) == cur, k
            pd.testing.assert_frame_equal(_rows(b), _rows(a), obj=f"batch {k}")
        assert len(_rows(b)) >= 24
    finally:
        a.close()
        b.close()


def test_the_bytes_logged_for_a_frame_are_its_pandas_memory_usage():
    """(fk) ``ingest_log.bytes`` of a frame, summed over its blocks, is ``memory_usage(index=False)``'s
    sum whatever its columns' kinds (extension arrays count as pandas counts them)."""
    from wattwatch.ingest.pipeline import _nbytes

    n = 5
    f = pd.DataFrame({"meter_id": ["a"] * n, "ts": pd.date_range(T0, periods=n, freq="min"), "p_kw": np.arange(n, dtype=float),
                      "v_l1_v": np.ones(n, np.float32), "mode": pd.Categorical(list("uvuvu")),
                      "tag": pd.array(list("xyzxy"), dtype="string"), "count": pd.array([1, None, 3, 4, 5], dtype="Int64"),
                      "on": [True] * n, "mixed": [1, "x", None, 2.0, 3], "naive": pd.date_range("2026", periods=n)})
    _ = f["mode"].cat.categories.get_loc("u")   # (an index engine built: pandas counts it)
    f["arrow"] = pd.array([1.0, None, 2.0, 3.0, 4.0], dtype="float64[pyarrow]")   # (rfk)
    for g in (f, f.iloc[1:3], f[["ts", "p_kw"]], f.iloc[:0], pd.concat([f, f]), pd.DataFrame()):
        assert _nbytes(g) == int(g.memory_usage(index=False).sum())

    class NoBlocks:   # (rfk) no ``_mgr.blocks`` (pandas' internals moved): the public memory_usage
        _mgr = object()

        def memory_usage(self, index=True):
            assert index is False
            return pd.Series([3, 4])

    assert _nbytes(NoBlocks()) == 7 and _nbytes(object()) == 0


def test_the_rows_handed_back_are_built_as_arrow_to_pandas_builds_them():
    """(fk) The live rows' frame built from the arrays (``_plain_frame``) is the general way's
    (``to_pandas`` and its conversions) value for value, dtype for dtype, block for block; a table
    it does not take (nulls in the keys, a non-double channel, no rows) goes the general way."""
    import pyarrow as pa

    from wattwatch.ingest.pipeline import _general_frame, _plain_frame

    ts = pa.array(np.array([1_800_000_000_000_000, 1_800_000_060_000_000, 1_800_000_000_500_000]),
                  pa.timestamp("us", tz="UTC"))
    t = pa.table({"meter_id": pa.array(["a", "a", "b"]), "ts": ts, "p_kw": pa.array([1.5, None, -0.0]),
                  "v_l1_v": pa.array([None, None, None], pa.float64()), "ups_battery_pct": pa.array([50.0, 60.5, np.nan])})
    got, want = _plain_frame(t), _general_frame(t)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    blocks = lambda f: sorted((str(b.dtype), tuple(b.mgr_locs.as_array)) for b in f._mgr.blocks)
    assert blocks(got) == blocks(want)
    assert np.signbit(got["p_kw"].to_numpy()[2]) and np.isnan(got["ups_battery_pct"].to_numpy()[2])
    # (rfk) a table of several chunks (several pieces concatenated), its columns in another order:
    # the same; every column writable, as to_pandas gives it
    for other in (pa.concat_tables([t.slice(0, 1), t.slice(1)]), t.select(["ts", "p_kw", "meter_id"])):
        pd.testing.assert_frame_equal(_plain_frame(other), _general_frame(other), check_exact=True)
    assert all(got[c].to_numpy().flags.writeable for c in got.columns)
    for other in (t.set_column(0, "meter_id", pa.array(["a", None, "b"])), t.append_column("n", pa.array([1, 2, 3])),
                  t.set_column(1, "ts", ts.cast(pa.timestamp("ns", tz="UTC"))), t.slice(0, 0)):
        assert _plain_frame(other) is None


def test_a_failed_live_batch_leaves_the_catalogue_as_the_store_is(tmp_path, monkeypatch):
    s = Store(tmp_path / "c.duckdb")
    cache: dict = {}
    try:
        pieces = _batches(3)
        ingest_live(s, pieces[0], source="x", cache=cache)
        ingest_live(s, pieces[1], source="x", cache=cache)
        real = Store._stage_catalogue

        def boom(self, *a, **kw):
            real(self, *a, **kw)
            raise RuntimeError("disk gone")

        monkeypatch.setattr(Store, "_stage_catalogue", boom)
        with pytest.raises((RuntimeError, IngestError)):
            ingest_live(s, pieces[2], source="x", cache=cache)
        monkeypatch.undo()
        # The batch is not stored; sent again it is stored whole, judged against the store's meters.
        counts, rows, _ = ingest_live(s, pieces[2], source="x", cache=cache)
        assert rows is not None and counts.stored == len(rows) > 0
        cat = s._live_catalogue(sorted(_meters(s)["meter_id"]))
        stored = s._catalogue(sorted(_meters(s)["meter_id"]))
        assert cat == stored
    finally:
        s.close()


def test_a_lossy_batch_does_not_turn_readings_at_the_known_cadence_into_copies(tmp_path):
    """(fl2) A watcher's SNMP meter polled every 0.25 s that lost four polls in a row: its batch
    [2.0, 2.25, 3.5] s has gaps 0.25 and 1.25 s, whose 75th percentile (1.25 s, tolerance 0.31 s)
    took the reading 0.25 s after the last stored one, and the next one, for copies (2 of 3
    dropped, "given more than once ... with different values": tests/live/test_snmp.py's watch
    short by 7-18 readings on a loaded machine), and stored 1.25 s as the meter's cadence, so the
    next 2-reading batch lost its first one too. The meter's known cadence stands where a gap says
    so; a meter whose cadence really grew (0.25 -> 10 s, no gap left at 0.25 s) has it learned, and
    its copies 1 s late merged."""
    t0 = pd.Timestamp("2026-12-07T05:05:40Z")

    def frame(meter, offsets, seed):
        v = np.random.default_rng(seed).integers(228, 233, len(offsets)).astype(float)
        return pd.DataFrame({"meter_id": meter, "ts": t0 + pd.to_timedelta(offsets, unit="s"), "v_l1_v": v})

    lossy = [[0, .25, .5, .75], [1.0, 1.25, 1.5, 1.75], [2.0, 2.25, 3.5], [3.75, 4.0], [4.25]]
    slower = [[0, .25, .5, .75], [10.75, 20.75, 30.75, 40.75], [41.75, 50.75, 60.75]]   # 41.75: a copy
    with Store(tmp_path / "s.duckdb") as store:
        cache, notes = {}, []
        for k, offs in enumerate(lossy):
            counts, _, _ = ingest_live(store, frame("pdu1", offs, k), cache=cache)
            notes += counts.notes
        for k, offs in enumerate(slower):
            ingest_live(store, frame("m10", offs, 10 + k), cache=cache)
        n = dict(store.con.execute("SELECT meter_id, count(*) FROM readings GROUP BY 1").fetchall())
        cad = dict(store.con.execute("SELECT meter_id, cadence_s FROM meters").fetchall())
    assert n["pdu1"] == sum(map(len, lossy)) and not notes, (n, notes)
    assert cad["pdu1"] == pytest.approx(0.25)
    assert n["m10"] == 4 + 6 and cad["m10"] == pytest.approx(10.0), (n, cad)


def test_copies_re_sent_late_do_not_hold_a_meter_at_its_old_cadence(tmp_path):
    """(rfl2) fl2 kept a meter's known cadence when any gap of a batch lay between the known and
    the new tolerance: a meter gone from 0.25 s to 10 s whose source re-sends each reading 0.1 s
    late (gaps 0.1 and 9.9 s) kept 0.25 s (tolerance 62 ms), and every copy was stored as a reading,
    in this batch and every later one. Only a gap of one known cadence says the meter still reads
    at it: the 10 s is learned and the copies merged."""
    t0 = pd.Timestamp("2026-12-07T05:05:40Z")

    def frame(offsets, seed):
        v = np.random.default_rng(seed).integers(228, 233, len(offsets)).astype(float)
        return pd.DataFrame({"meter_id": "gw1", "ts": t0 + pd.to_timedelta(offsets, unit="s"), "v_l1_v": v})

    sent = [[0, .25, .5, .75], [10.75, 10.85, 20.75, 20.85, 30.75, 30.85, 40.75, 40.85],
            [50.75, 50.85, 60.75, 60.85]]
    with Store(tmp_path / "s.duckdb") as store:
        cache = {}
        for k, offs in enumerate(sent):
            ingest_live(store, frame(offs, k), cache=cache)
        n = store.con.execute("SELECT count(*) FROM readings").fetchone()[0]
        cad = store.con.execute("SELECT cadence_s FROM meters").fetchone()[0]
    assert n == 4 + 4 + 2 and cad > 5, (n, cad)


def test_the_live_time_bound_moves_with_the_clock_through_the_parsed_statements(tmp_path, monkeypatch):
    """(rfo) A watcher runs for days: its normaliser is rebuilt every ``LIVE_NORMALISER_S`` with the
    latest plausible time (now + 1 day) in its text, and the store keeps the parsed statements by
    that text (fo). A statement kept across a rebuild (keyed by layout, say) would keep the first
    day's bound and reject every reading from the second day on; a day's reading past its own
    bound is still a reject. Nine days: more texts than the store keeps (8)."""
    from wattwatch.ingest import pipeline
    from wattwatch.ingest.mapping import Mapping

    clock = {"now": T0.to_pydatetime()}
    real = Mapping.time_bounds
    monkeypatch.setattr(Mapping, "time_bounds", lambda self, now=None: real(self, clock["now"]))
    monkeypatch.setattr(pipeline, "LIVE_NORMALISER_S", -1.0)   # rebuilt at every call
    s = Store(tmp_path / "t.duckdb")
    cache: dict = {}
    try:
        for day in range(9):
            clock["now"] = (T0 + pd.Timedelta(days=day)).to_pydatetime()
            t = T0 + pd.Timedelta(days=day, minutes=1)
            f = pd.DataFrame({"meter_id": ["a", "a"], "ts": [t, t + pd.Timedelta(days=2)],
                              "p_kw": [1.0, 2.0]})
            got, rows, _ = ingest_live(s, f, None, source="x", cache=cache)
            assert (got.stored, got.rejected) == (1, 1), f"day {day}"
            assert rows["ts"].tolist() == [t], f"day {day}"
    finally:
        s.close()
