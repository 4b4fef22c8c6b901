"""Store integrity (issue 12): late readings and re-ingest after compaction keep energy exact,
foreign and damaged store files are refused, a rejects file may not overwrite the store or an
input, ``store info`` reports energy, and the old layout still opens."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import Store, StoreError

T0 = pd.Timestamp("2025-01-01T00:00:00Z")
_SEQ = iter(range(1 << 30))


def ingest_frame(store: Store, df: pd.DataFrame):
    """Ingest a frame through a CSV file next to the store (the path every command takes)."""
    path = Path(store.path).parent / f"_frame{next(_SEQ)}.csv"
    df.to_csv(path, index=False)
    try:
        return ingest_path(store, path)
    finally:
        path.unlink()


def fleet(meters: int = 3, days: float = 2, step_min: int = 5, seed: int = 0) -> pd.DataFrame:
    """Readings on a grid with a cumulative register (one meter resets mid-way, some registers missing)."""
    rng = np.random.default_rng(seed)
    n = int(days * 24 * 60 / step_min)
    ts = T0 + pd.to_timedelta(np.arange(n) * step_min, unit="min")
    parts = []
    for k in range(meters):
        p = rng.uniform(0.2, 5.0, n)
        e = 1000.0 * (k + 1) + np.cumsum(p * step_min / 60)
        if k == 1:
            e[n // 2:] -= e[n // 2] - 3.0  # a register reset
        e[rng.random(n) < 0.05] = np.nan
        parts.append(pd.DataFrame({"meter_id": f"M{k}", "ts": ts, "p_kw": p, "e_kwh": e}))
    return pd.concat(parts, ignore_index=True)


def reference_hourly(df: pd.DataFrame) -> pd.Series:
    """Independent reference: per (meter, hour) the sum of register increments attributed to the
    later reading, a drop being a reset (the new value is the increment)."""
    d = df.dropna(subset=["e_kwh"]).drop_duplicates(["meter_id", "ts"]).sort_values(["meter_id", "ts"])
    inc = d.groupby("meter_id", observed=True)["e_kwh"].diff()
    inc = inc.where(inc.isna() | (inc >= 0), d["e_kwh"])
    out = pd.DataFrame({"meter_id": d["meter_id"].astype(str), "hour": d["ts"].dt.floor("h"), "inc": inc.fillna(0.0)})
    return out.groupby(["meter_id", "hour"])["inc"].sum()


def store_hourly(store: Store, hours) -> pd.Series:
    out = {}
    for h in hours:
        e = store.energy_kwh(start=h, end=h + pd.Timedelta(hours=1))
        for m, v in e.items():
            out[(str(m), h)] = float(v)
    s = pd.Series(out, dtype=float)
    s.index = s.index.set_names(["meter_id", "hour"]) if len(s) else s.index
    return s


def assert_hourly_equal(store: Store, df: pd.DataFrame) -> None:
    ref = reference_hourly(df)
    hours = sorted(set(ref.index.get_level_values("hour")))
    got = store_hourly(store, hours).reindex(ref.index).fillna(0.0)
    bad = (got - ref).abs() > 1e-6
    assert not bad.any(), pd.DataFrame({"store": got[bad], "reference": ref[bad]}).head(10)
    assert store.energy_kwh().sum() == pytest.approx(ref.sum(), abs=1e-6)


def all_readings(store: Store) -> pd.DataFrame:
    """(meter, ts) of every reading the store holds: raw and compacted (when the layout keeps
    compacted readings' times)."""
    cols = {r[0] for r in store.con.execute("SELECT name FROM pragma_table_info('readings_hourly')").fetchall()}
    compacted = (" UNION ALL SELECT meter_id, unnest(ts_list) AS ts FROM readings_hourly WHERE ts_list IS NOT NULL"
                 if "ts_list" in cols else "")
    return store.con.execute("SELECT meter_id, ts FROM readings" + compacted).df()


def assert_unique(store: Store, expected: int | None = None) -> None:
    r = all_readings(store)
    assert not r.duplicated().any(), r[r.duplicated(keep=False)].head()
    n = store.con.execute("SELECT (SELECT count(*) FROM readings_raw) + "
                          "(SELECT coalesce(sum(n), 0) FROM readings_hourly)").fetchall()[0][0]
    if len(r) != store.con.execute("SELECT count(*) FROM readings_raw").fetchall()[0][0]:
        assert n == len(r)
    if expected is not None:
        assert n == expected


# ------------------------------------------------------------------- 1. late readings after compaction


def test_late_hour_after_compaction_keeps_energy_per_hour(tmp_path: Path):
    """Issue 12 #1: a file minus one hour, compacted, then the missing hour, compacted again: the
    meter's whole register was counted as one increment (5,189 -> 265,070 kWh)."""
    df = fleet()
    hole = (df.ts >= T0 + pd.Timedelta(hours=10)) & (df.ts < T0 + pd.Timedelta(hours=11))
    with Store(tmp_path / "s.duckdb") as s:
        ingest_frame(s, df[~hole])
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=30))
        late = ingest_frame(s, df[hole])
        assert late.stored == hole.sum()
        assert_hourly_equal(s, df)  # before the next compaction
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=30))
        assert_hourly_equal(s, df)
        assert_unique(s, len(df))
        h = s.query_hourly(meters=["M0"])
        assert h.n.sum() == ((df.meter_id == "M0") & (df.ts < T0 + pd.Timedelta(hours=30))).sum()
        # The stored increments are right too (not only what energy_kwh derives).
        ref = reference_hourly(df)
        got = s.query_hourly().set_index(["meter_id", "hour"])["e_delta_kwh"].fillna(0.0)
        got.index = got.index.set_levels(got.index.levels[1].tz_convert("UTC"), level=1)
        np.testing.assert_allclose(got.to_numpy(), ref.reindex(got.index).fillna(0.0).to_numpy(), atol=1e-6)


def test_late_reading_between_two_compacted_readings_moves_energy_between_hours(tmp_path: Path):
    rows = pd.DataFrame({"meter_id": "M1", "ts": pd.to_datetime(
        ["2025-01-01T00:50Z", "2025-01-01T01:10Z", "2025-01-01T02:10Z", "2025-01-01T03:10Z"]),
        "e_kwh": [10.0, 20.0, 30.0, 40.0]})
    late = pd.DataFrame({"meter_id": ["M1"], "ts": pd.to_datetime(["2025-01-01T00:59Z"]), "e_kwh": [12.0]})
    with Store(tmp_path / "s.duckdb") as s:
        ingest_frame(s, rows)
        s.compact(older_than_days=0, as_of="2025-01-01T03:00Z")
        ingest_frame(s, late)
        assert_hourly_equal(s, pd.concat([rows, late]))
        s.compact(older_than_days=0, as_of="2025-01-01T04:00Z")
        assert_hourly_equal(s, pd.concat([rows, late]))
        e = store_hourly(s, [pd.Timestamp("2025-01-01T00:00Z"), pd.Timestamp("2025-01-01T01:00Z")])
        assert e.tolist() == [2.0, 8.0]


# ------------------------------------------------------------------- 2. re-ingest after compaction


def test_reingest_after_compaction_adds_nothing(tmp_path: Path):
    """Issue 12 #2: re-ingesting a file after compaction stored the compacted readings again
    (508,031 -> 884,457 kWh, 18,983,712 after a second compaction)."""
    df = fleet()
    path = tmp_path / "f.csv"
    df.to_csv(path, index=False)
    with Store(tmp_path / "s.duckdb") as s:
        first = ingest_path(s, path)
        energy = s.energy_kwh()
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=30))
        raw = s.info()["readings"]
        again = ingest_path(s, path)
        assert again.stored == 0 and again.rejected == 0
        assert again.duplicates + again.merged == again.read == first.read
        assert s.info()["readings"] == raw
        pd.testing.assert_series_equal(s.energy_kwh(), energy, atol=1e-6)
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=40))
        pd.testing.assert_series_equal(s.energy_kwh(), energy, atol=1e-6)
        assert_unique(s, len(df))
        assert_hourly_equal(s, df)


# ------------------------------------------------------------------- layout 1 stores still open


def _as_layout_1(path: Path) -> None:
    """Turn a store into what wattwatch 83dfb55 wrote: no per-reading lists, no store_version."""
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE readings_hourly DROP COLUMN ts_list")
    con.execute("ALTER TABLE readings_hourly DROP COLUMN e_list")
    con.execute("DELETE FROM meta WHERE key = 'store_version'")
    con.close()


def test_a_layout_1_store_opens_migrates_and_keeps_its_energy(tmp_path: Path):
    df = fleet(meters=2)
    db = tmp_path / "old.duckdb"
    with Store(db) as s:
        ingest_frame(s, df)
        energy = s.energy_kwh()
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=20))
    _as_layout_1(db)
    with Store(db, read_only=True) as s:  # read-only: no migration, the old columns are read
        pd.testing.assert_series_equal(s.energy_kwh(), energy, atol=1e-6)
    with Store(db) as s:
        assert s.con.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchall() == [("2",)]
        pd.testing.assert_series_equal(s.energy_kwh(), energy, atol=1e-6)
        raw = s.info()["readings"]
        again = ingest_frame(s, df)  # old hours: their readings' times are unknown, any copy is a duplicate
        assert again.stored == 0 and s.info()["readings"] == raw
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=40))
        pd.testing.assert_series_equal(s.energy_kwh(), energy, atol=1e-6)


# ------------------------------------------------------------------- 3. rejects path


def test_rejects_path_equal_to_the_store_or_an_input_is_refused(tmp_path: Path):
    from wattwatch import api

    path = tmp_path / "x.csv"
    path.write_text("meter_id,ts,p_kw\nM1,2025-01-01T00:00:00Z,1\nM1,2025-01-01T00:05:00Z,abc\n")
    db = tmp_path / "v.duckdb"
    api.ingest(path, db, rejects=tmp_path / "r.csv")
    before_db, before_in = db.read_bytes(), path.read_bytes()
    with pytest.raises(StoreError, match="store file"):
        api.ingest(path, db, rejects=db)
    with pytest.raises(StoreError, match="store file"):
        api.ingest(path, db, rejects=tmp_path / "." / "v.duckdb")
    with pytest.raises(StoreError, match="input file"):
        api.ingest(path, db, rejects=path)
    with pytest.raises(StoreError, match="input file"):
        api.ingest(tmp_path, tmp_path / "w.duckdb", rejects=path)  # a folder's file
    (tmp_path / "link.csv").symlink_to(path)
    with pytest.raises(StoreError, match="input file"):
        api.ingest(path, db, rejects=tmp_path / "link.csv")
    assert db.read_bytes() == before_db and path.read_bytes() == before_in
    assert not (tmp_path / "w.duckdb").exists()
    with Store(db, read_only=True) as s:
        assert s.info()["readings"] == 1


# ------------------------------------------------------------------- 4. foreign and damaged files


def test_a_foreign_duckdb_file_is_refused_and_left_alone(tmp_path: Path):
    db = tmp_path / "other.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE TABLE sales (id INTEGER, amount DOUBLE)")
    con.execute("INSERT INTO sales VALUES (1, 2.5)")
    con.close()
    for ro in (False, True):
        with pytest.raises(StoreError, match="not a wattwatch store"):
            Store(db, read_only=ro)
    con = duckdb.connect(str(db), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    con.close()
    assert tables == {"sales"}
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    with Store(empty) as s:  # an empty DuckDB file may become a store
        assert s.info()["readings"] == 0


@pytest.mark.parametrize("sql, match", [
    ("UPDATE meta SET value = 'abc' WHERE key = 'schema_version'", "schema_version is 'abc'"),
    ("DELETE FROM meta", "no schema_version"),
    ("UPDATE meta SET value = '999' WHERE key = 'schema_version'", "schema version 999"),
    ("UPDATE meta SET value = '7' WHERE key = 'store_version'", "layout version 7"),
    ("DROP TABLE meta; CREATE TABLE meta (k INTEGER)", "meta"),
])
def test_a_damaged_meta_table_is_a_clear_store_error(tmp_path: Path, sql: str, match: str):
    db = tmp_path / "s.duckdb"
    Store(db).close()
    con = duckdb.connect(str(db))
    for stmt in sql.split(";"):
        con.execute(stmt)
    con.close()
    for ro in (False, True):
        with pytest.raises(StoreError, match=match) as info:
            Store(db, read_only=ro)
        assert str(db) in str(info.value)


def test_corrupted_and_non_duckdb_files_name_the_file(tmp_path: Path):
    text = tmp_path / "notes.duckdb"
    text.write_text("meter_id,ts\nM1,2025-01-01\n")
    with pytest.raises(StoreError, match="notes.duckdb"):
        Store(text)
    assert text.read_text().startswith("meter_id")
    good = tmp_path / "good.duckdb"
    with Store(good) as s:
        ingest_frame(s, fleet(meters=1, days=0.5))
    data = good.read_bytes()
    for name, blob in {"trunc.duckdb": data[: len(data) // 3], "zeros.duckdb": data[:4096] + bytes(len(data) - 4096),
                       "flipped.duckdb": data[:8] + bytes(b ^ 0xFF for b in data[8:64]) + data[64:]}.items():
        p = tmp_path / name
        p.write_bytes(blob)
        for ro in (False, True):
            try:
                with Store(p, read_only=ro) as s:
                    s.info(energy=True)
            except StoreError as exc:
                assert name in str(exc)
            # opening may also succeed where the damage lies in unused blocks; no other exception


def test_create_false_does_not_create(tmp_path: Path):
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "typo.duckdb", create=False)
    assert not (tmp_path / "typo.duckdb").exists()
    with pytest.raises(StoreError, match="folder"):
        Store(tmp_path)


# ------------------------------------------------------------------- 5. store info reports energy


def test_store_info_json_reports_energy_per_meter_and_total(tmp_path: Path):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    df = fleet(meters=2, days=1)
    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        ingest_frame(s, df)
        s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=12))
        energy = s.energy_kwh()
    res = CliRunner().invoke(app, ["store", "info", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    ref = reference_hourly(df).groupby(level="meter_id").sum()
    assert info["energy_kwh"]["total"] == pytest.approx(ref.sum(), abs=1e-5)
    assert info["energy_kwh"]["meters"] == pytest.approx({m: float(v) for m, v in energy.items()}, abs=1e-5)
    assert set(info["energy_kwh"]["meters"]) == {"M0", "M1"}
    res = CliRunner().invoke(app, ["store", "info", "--db", str(db)])
    assert res.exit_code == 0 and "energy_kwh" in res.stdout and "M1" in res.stdout
    missing = tmp_path / "missing.duckdb"
    res = CliRunner().invoke(app, ["store", "info", "--db", str(missing)])
    assert res.exit_code != 0 and not missing.exists()


@pytest.mark.parametrize("args, message", [
    (["--older-than-days", "1e10"], None),
    (["--older-than-days", "-1"], "older-than-days"),
    (["--older-than-days", "nan"], "older-than-days"),
    (["--older-than-days", "inf"], "older-than-days"),
    (["--older-than-days", "0", "--as-of", "0001-01-01T00:00:00Z"], None),
    (["--older-than-days", "30", "--as-of", "0001-01-01"], None),
    (["--older-than-days", "0", "--as-of", "9999-12-31T23:59:59Z"], None),
    (["--as-of", "garbage"], "as-of"),
])
def test_compact_arguments_give_a_result_or_a_clear_error(tmp_path: Path, args, message):
    from typer.testing import CliRunner

    from wattwatch.app.cli import app

    db = tmp_path / "s.duckdb"
    df = fleet(meters=1, days=0.5)
    with Store(db) as s:
        ingest_frame(s, df)
        energy = s.energy_kwh()
    res = CliRunner().invoke(app, ["store", "compact", "--db", str(db), *args])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    if message is None:
        assert res.exit_code == 0, res.output
    else:
        assert res.exit_code != 0 and message in res.stderr
    with Store(db, read_only=True) as s:
        pd.testing.assert_series_equal(s.energy_kwh(), energy, atol=1e-6)
