"""Store: idempotent ingest, queries, crash consistency, retention that keeps energy."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import Store, StoreError


def test_same_file_twice_and_both_formats_leave_one_row_per_reading(store, small_fleet):
    f = small_fleet["files"]
    first = ingest_path(store, f["parquet"])
    n = store.info()["readings"]
    assert first.stored == n and first.duplicates > 0  # the simulator writes duplicated rows
    again = ingest_path(store, f["parquet"])
    assert again.stored == 0 and again.merged == n
    csv = ingest_path(store, f["csv"])
    assert csv.stored == 0
    assert store.info()["readings"] == n
    dup = store.con.execute("SELECT count(*) FROM (SELECT sid, ts FROM readings_raw GROUP BY ALL HAVING count(*) > 1)")
    assert dup.fetchall()[0][0] == 0


def test_query_by_meters_and_half_open_time_range(store, small_fleet):
    ingest_path(store, small_fleet["files"]["parquet"])
    meters = store.meters()
    assert len(meters) == 12
    start, end = pd.Timestamp("2025-01-07T00:00:00Z"), pd.Timestamp("2025-01-08T00:00:00Z")
    df = store.query(meters[:2], start=start, end=end)
    assert set(df.meter_id) == set(meters[:2])
    assert df.ts.min() >= start - pd.Timedelta(seconds=3) and df.ts.max() < end
    assert (df.groupby("meter_id").ts.apply(lambda s: s.is_monotonic_increasing)).all()
    assert store.query(meters[0], start=end, end=start).empty
    assert store.query([]).empty
    with pytest.raises(ValueError):
        store.query(columns=["volts"])


def test_store_info_and_version_guard(tmp_path: Path):
    with Store(tmp_path / "s.duckdb") as s:
        assert s.info()["readings"] == 0
        s.con.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 999"):
        Store(tmp_path / "s.duckdb")
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "missing.duckdb", read_only=True)


def test_a_store_that_cannot_be_created_says_why(tmp_path: Path):
    """A missing folder, a file where the folder should be, a folder or store file that cannot be
    written: each is said as such. They were all "cannot open store (not a DuckDB file, damaged, or
    locked by another process)", about a file that did not exist or was fine."""
    (tmp_path / "f.csv").write_text("x\n")
    with pytest.raises(StoreError, match=r"cannot create the store: folder .*nodir does not exist"):
        Store(tmp_path / "nodir" / "s.duckdb")
    with pytest.raises(StoreError, match=r"cannot create the store: .*f\.csv is not a folder"):
        Store(tmp_path / "f.csv" / "s.duckdb")
    assert not (tmp_path / "nodir").exists()
    if os.geteuid() == 0:   # root writes where the mode says it may not
        return
    ro = tmp_path / "ro"
    ro.mkdir()
    Store(ro / "s.duckdb").close()
    (ro / "s.duckdb").chmod(0o444)
    try:
        with pytest.raises(StoreError, match="the file is read-only"):
            Store(ro / "s.duckdb")
        Store(ro / "s.duckdb", read_only=True).close()
        ro.chmod(0o555)
        with pytest.raises(StoreError, match=r"cannot create the store: folder .*ro is not writable"):
            Store(ro / "t.duckdb")
    finally:
        ro.chmod(0o755)


def test_a_sqlite_file_given_as_a_store_is_named_as_such_and_nothing_is_fetched(tmp_path: Path):
    """DuckDB opens a SQLite file through its ``sqlite_scanner`` extension, which it would fetch
    from the internet on first use: a 2-5 s wait, then "Failed to download extension ... at URL
    ...". No connection may fetch or load an extension (nothing downloads at run time); the file
    is said to be a SQLite database, and left as it was."""
    import sqlite3

    db = tmp_path / "site.duckdb"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE readings (meter_id TEXT, ts TEXT, p_kw REAL)")
    con.commit()
    con.close()
    before = db.read_bytes()
    for read_only in (False, True):
        with pytest.raises(StoreError) as err:
            Store(db, read_only=read_only)
        said = str(err.value)
        assert "a SQLite database, not a DuckDB store" in said and str(db) in said, said
        assert "download" not in said.lower() and "http" not in said.lower(), said
    assert db.read_bytes() == before
    with Store(tmp_path / "s.duckdb") as s:
        got = dict(s.con.execute(
            "SELECT name, value FROM duckdb_settings() WHERE name LIKE 'auto%_known_extensions'").fetchall())
    assert got == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}, got


def _big_csv(path: Path, rows: int, meters: int = 400, prefix: str = "M") -> None:
    n = rows // meters
    ts = np.datetime64("2025-01-01T00:00:00", "s") + (np.arange(n) * 300).astype("timedelta64[s]")
    rng = np.random.default_rng(0)
    table = pa.table({
        "meter_id": pa.array(np.repeat([f"{prefix}{i:04d}" for i in range(meters)], n)),
        "ts": pa.array(np.tile(ts, meters).astype("datetime64[ms]"), pa.timestamp("ms", tz="UTC")),
        "v_l1_v": rng.uniform(220, 240, n * meters), "i_l1_a": rng.uniform(0, 30, n * meters),
        "p_kw": rng.uniform(0, 6, n * meters),
    })
    pacsv.write_csv(table, path)


# `wattwatch ingest` as the CLI runs it, saying "BLOCK k" when the k-th block of the file has been
# merged into the open transaction (Store.ingest's progress callback, called before its COMMIT),
# and, at block `hold` (argv[1]; 0: never), waiting there until killed. argv[2]: the CSV block size
# (a file of a few MB in several blocks; the kills need blocks, not a long run).
_INGEST_CLI = r"""
import sys
from wattwatch.app import cli
from wattwatch.ingest import pipeline, readers
hold, real = int(sys.argv.pop(1)), pipeline.ingest_path
readers.CSV_BLOCK_BYTES = int(sys.argv.pop(1))
def ingest_path(store, path, mapping=None, on_progress=None):
    k = 0
    def tick(n):
        nonlocal k
        k += 1
        print(f"BLOCK {k}", flush=True)
        if k == hold:
            sys.stdin.readline()
        if on_progress:
            on_progress(n)
    return real(store, path, mapping, on_progress=tick)
pipeline.ingest_path = ingest_path
cli.main()
"""


# The kill test's file is cut in ~10 blocks: what it needs is several blocks (a kill after the first,
# after the last, racing the rest), not megabytes; a quarter of the rows in quarter blocks (tt18).
BLOCK_BYTES = 1 << 18


class _Blocks:
    """The child's "BLOCK k" lines, read by a thread (a child held at a block writes no more)."""

    def __init__(self, proc: subprocess.Popen):
        self.proc, self.lines = proc, queue.Queue()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        for line in self.proc.stdout:    # the CLI's own summary too: only the BLOCK lines count
            if line.startswith("BLOCK "):
                self.lines.put(line)
        self.lines.put(None)

    def upto(self, until: int | None, timeout: float = 300.0) -> int:
        """Wait for block ``until`` (None: for the child's end); the last k read."""
        k = 0
        while until is None or k < until:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no BLOCK {k + 1} line within {timeout:g} s") from None
            if line is None:
                break
            k = int(line.split()[1])
        return k

    def kill(self) -> int:
        """kill -9 the child (if still running); its exit code."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        code = self.proc.wait(timeout=120)
        self.thread.join(120)     # before the pipe is closed under it
        self.proc.stdin.close()
        self.proc.stdout.close()
        return code


@pytest.mark.slow
def test_kill_9_mid_ingest_leaves_the_store_consistent(tmp_path: Path):
    small, big = tmp_path / "small.csv", tmp_path / "big.csv"
    _big_csv(small, 4000, meters=4, prefix="S")
    _big_csv(big, 30_000, meters=100)                      # 2.7 MB: 10 blocks of BLOCK_BYTES
    base = tmp_path / "base.duckdb"
    with Store(base) as s:
        ingest_path(s, small)

    def run(db: Path, hold: int = 0) -> subprocess.Popen:
        shutil.copy(base, db)
        return subprocess.Popen([sys.executable, "-c", _INGEST_CLI, str(hold), str(BLOCK_BYTES), "ingest", str(big),
                                 "--db", str(db)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)

    clean = _Blocks(run(tmp_path / "clean.duckdb"))
    blocks = clean.upto(None)
    assert clean.kill() == 0 and blocks >= 2, blocks   # several blocks: a kill can fall between two
    with Store(tmp_path / "clean.duckdb") as s:
        expected = s.info()["readings"]
        ingest_path(s, big)                                # committed: the file again adds nothing
        assert s.info()["readings"] == expected > 4000
    # The kills wait for the ingest to be under way (a block merged into its transaction), not for
    # a share of another run's time (a slower timing run put every kill after the commit). Held at
    # a block, the kill falls inside the transaction: after its first block, after its last (every
    # row merged, the COMMIT not made). Not held, it races the rest of the file and the COMMIT.
    for k, (hold, at) in enumerate(((1, 1), (blocks, blocks), (0, 1), (0, blocks))):
        db = tmp_path / f"crash-{k}.duckdb"
        proc = _Blocks(run(db, hold))
        try:
            assert proc.upto(at) == at
        finally:
            proc.kill()
        with Store(db) as s:
            n = s.info()["readings"]
            assert (n == 4000) if hold else (n in (4000, expected)), (hold, at, n)  # all of the file or none
            ingest_path(s, big)
            assert s.info()["readings"] == expected
            assert len(s.query(["M0000"])) == 300 and len(s.query(["S0000"])) == 1000


def _register_energy(df: pd.DataFrame) -> pd.Series:
    """Independent reference: sum of register increments, a drop being a reset to zero."""
    out = {}
    for m, g in df.dropna(subset=["e_kwh"]).sort_values("ts").groupby("meter_id"):
        d = g.e_kwh.diff().iloc[1:]
        out[m] = float(np.where(d < 0, g.e_kwh.iloc[1:], d).sum())
    return pd.Series(out)


def test_compaction_keeps_energy_and_aggregates(store, small_fleet):
    ingest_path(store, small_fleet["files"]["parquet"])
    raw = store.query(columns=["p_kw", "v_l1_v", "e_kwh"])
    reference = _register_energy(raw)
    before = store.energy_kwh()
    pd.testing.assert_series_equal(before.sort_index(), reference.sort_index(), check_names=False, atol=1e-6)
    assert any(e["type"] == "register_reset" for e in small_fleet["events"])  # resets are in the test

    as_of = pd.Timestamp("2025-01-10T00:00:00Z")  # the fleet spans 2025-01-06 .. 2025-01-10
    result = store.compact(older_than_days=2, as_of=as_of)
    cutoff = pd.Timestamp(result["cutoff"])
    assert cutoff == pd.Timestamp("2025-01-08T00:00:00Z")
    assert result["readings_compacted"] == (raw.ts < cutoff).sum()
    assert store.query().ts.min() >= cutoff
    after = store.energy_kwh()
    pd.testing.assert_series_equal(after.sort_index(), before.sort_index(), atol=1e-6)
    # Energy of a window still adds up across the compacted/raw boundary.
    split = store.energy_kwh(end=cutoff) + store.energy_kwh(start=cutoff)
    pd.testing.assert_series_equal(split.sort_index(), before.sort_index(), atol=1e-6)

    hourly = store.query_hourly()
    m = raw.meter_id.iloc[0]
    one = raw[(raw.meter_id == m) & (raw.ts < cutoff)].copy()
    one["hour"] = one.ts.dt.floor("h")
    expect = one.groupby("hour").agg(n=("p_kw", "size"), p_mean=("p_kw", "mean"), p_min=("p_kw", "min"),
                                     p_max=("p_kw", "max"), v_mean=("v_l1_v", "mean"))
    got = hourly[hourly.meter_id == m].set_index("hour")
    got.index = got.index.tz_convert("UTC")
    np.testing.assert_array_equal(got.n.to_numpy(), expect.n.to_numpy())
    np.testing.assert_allclose(got.p_kw_mean.to_numpy(), expect.p_mean.to_numpy())
    np.testing.assert_allclose(got.p_kw_min.to_numpy(), expect.p_min.to_numpy())
    np.testing.assert_allclose(got.p_kw_max.to_numpy(), expect.p_max.to_numpy())

    # Compacting again with the same reference time changes nothing.
    again = store.compact(older_than_days=2, as_of=as_of)
    assert again["readings_compacted"] == 0
    pd.testing.assert_series_equal(store.energy_kwh().sort_index(), before.sort_index(), atol=1e-6)


def _held(store: Store) -> tuple:
    """What the store holds: raw rows, hourly rows and their readings, energy per meter."""
    counts = store.con.execute("SELECT (SELECT count(*) FROM readings_raw), (SELECT count(*) FROM readings_hourly), "
                               "(SELECT coalesce(sum(n), 0) FROM readings_hourly)").fetchall()[0]
    return tuple(counts), {str(m): round(float(v), 6) for m, v in store.energy_kwh().items()}


def _ingested(tmp_path: Path, small_fleet) -> tuple[Path, tuple]:
    """The small fleet ingested into ``base.duckdb``, and what that store holds (the compaction tests' start)."""
    base = tmp_path / "base.duckdb"
    with Store(base) as s:
        ingest_path(s, small_fleet["files"]["parquet"])
        return base, _held(s)


def _compacted_copy(tmp_path: Path, base: Path, as_of: str) -> tuple[dict, tuple]:
    """A copy of ``base`` compacted with nothing in the way: the compaction's result and what the store then holds."""
    done = tmp_path / "done.duckdb"
    shutil.copy(base, done)
    with Store(done) as s:
        return s.compact(older_than_days=2, as_of=as_of), _held(s)


def test_compaction_reports_its_steps_as_the_api_does_and_a_failing_report_commits_nothing(tmp_path: Path,
                                                                                           small_fleet):
    # on_stage(description, total), as every other on_stage of wattwatch (api.detect, api.fit and the
    # progress display's Stages.stage): a caller's two-argument callback failed the compaction
    # (TypeError, rolled back) when compact called it with the description alone.
    base, before = _ingested(tmp_path, small_fleet)
    as_of = "2025-01-10T00:00:00Z"
    db = tmp_path / "s.duckdb"
    shutil.copy(base, db)
    calls = []
    with Store(db) as s:
        result = s.compact(older_than_days=2, as_of=as_of, on_stage=lambda text, total: calls.append((text, total)))
        after = _held(s)
    texts = [t for t, _ in calls]
    assert all(total is None for _, total in calls), calls
    assert texts == ["aggregating the readings before 2025-01-08T00:00:00Z by hour",
                     f"writing {result['hourly_rows_written']:,} hourly row(s)", "removing the compacted raw readings",
                     "recomputing the energy increments of the hours touched", "committing", "checkpointing"], texts
    assert after[0][0] < before[0][0] and after[0][2] == result["readings_compacted"] > 0
    # A report that raises (a progress display interrupted) inside the transaction rolls the whole
    # compaction back; the store is as before and compacts as usual afterwards. Raised at
    # "checkpointing" (after the COMMIT) the compaction is kept.
    for text in texts:
        shutil.copy(base, db)

        def stop(description, total=None, at=text):
            if description == at:
                raise KeyboardInterrupt(at)

        with Store(db) as s:
            with pytest.raises(KeyboardInterrupt):
                s.compact(older_than_days=2, as_of=as_of, on_stage=stop)
            assert _held(s) == (after if text == "checkpointing" else before), text
        with Store(db) as s:
            assert _held(s) == (after if text == "checkpointing" else before), text
            s.compact(older_than_days=2, as_of=as_of)
            assert _held(s) == after, text


def test_late_reading_into_a_compacted_hour_is_combined(store, tmp_path: Path):
    rows = "".join(f"M1,2025-01-01T00:{m:02d}:00Z,{1 + m / 60:.4f},{100 + m / 60:.4f}\n" for m in range(0, 60, 10))
    (tmp_path / "a.csv").write_text("meter_id,ts,p_kw,e_kwh\n" + rows)
    ingest_path(store, tmp_path / "a.csv")
    store.compact(older_than_days=1, as_of="2025-01-03T00:00:00Z")
    (tmp_path / "late.csv").write_text("meter_id,ts,p_kw,e_kwh\nM1,2025-01-01T00:05:00Z,5.0,100.09\n")
    ingest_path(store, tmp_path / "late.csv")
    store.compact(older_than_days=1, as_of="2025-01-03T00:00:00Z")
    h = store.query_hourly()
    assert len(h) == 1 and h.n.iloc[0] == 7 and h.p_kw_max.iloc[0] == 5.0
    assert h.p_kw_mean.iloc[0] == pytest.approx((sum(1 + m / 60 for m in range(0, 60, 10)) + 5.0) / 7)


def test_memory_stays_flat_across_the_blocks_of_one_large_file(tmp_path: Path, monkeypatch):
    """One transaction per file must not hold every parsed batch until COMMIT (it did, through
    DuckDB views registered inside the transaction): Arrow memory after each merge stays flat."""
    import wattwatch.ingest.readers as readers

    big = tmp_path / "big.csv"
    _big_csv(big, 400_000)
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 1 << 20)
    seen = []
    with Store(tmp_path / "s.duckdb") as s:
        merge = s._merge

        def spy(good):
            out = merge(good)
            seen.append(pa.total_allocated_bytes())
            return out

        s._merge = spy
        c = ingest_path(s, big)
    assert c.stored == 400_000 and len(seen) > 20
    assert max(seen[-5:]) < min(seen[:5]) + (8 << 20), [x >> 20 for x in seen]


def test_a_writer_waits_out_a_short_reader_lock(tmp_path, monkeypatch):
    """``lock_wait_s``: a writer opening while another process holds the file gets it once the
    reader lets go (``watch`` starting beside a dashboard page); without it, it fails at once.

    The store's clock is a fake one that moves only when the writer sleeps between tries: the
    reader is told to let go at the writer's third pause, so the writer must have the file at its
    fourth try (not at the end of ``lock_wait_s``), and a deadline passed while the file is still
    held gives up after exactly the pauses that fit in it."""
    import subprocess
    import sys
    from types import SimpleNamespace

    from wattwatch.store import Store, StoreError, duck

    db = tmp_path / "s.duckdb"
    Store(db).close()
    code = ("import sys, duckdb; c = duckdb.connect(sys.argv[1], read_only=True); "
            "print('held', flush=True); sys.stdin.readline(); c.close(); print('released', flush=True)")
    holder = subprocess.Popen([sys.executable, "-c", code, str(db)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    clock = {"now": 0.0, "pauses": 0, "release_at": None}

    def sleep(s):
        clock["now"] += s
        clock["pauses"] += 1
        if clock["pauses"] == clock["release_at"]:
            holder.stdin.write("go\n")
            holder.stdin.flush()
            assert holder.stdout.readline().strip() == "released"
            holder.wait(30)
    monkeypatch.setattr(duck, "time", SimpleNamespace(monotonic=lambda: clock["now"], sleep=sleep))
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="locked"):
            Store(db)
        assert clock["pauses"] == 0                          # no lock_wait_s: no second try
        with pytest.raises(StoreError, match="locked"):
            Store(db, lock_wait_s=0.45)                      # held all along: tries at 0, 0.1 .. 0.4, then gives up
        assert clock["pauses"] == 5 and holder.poll() is None
        clock.update(now=0.0, pauses=0, release_at=3)
        s = Store(db, lock_wait_s=30)
        assert clock["pauses"] == 3 and holder.returncode == 0   # had it at the first try after the release
        s.close()
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait(30)


@pytest.mark.parametrize("fault", ["duckdb", "interrupt"])
def test_store_compact_says_what_was_committed_when_a_stage_fails(tmp_path: Path, small_fleet, monkeypatch, fault):
    """fix3: ``store compact`` said "nothing changed" for any DuckDB error, one raised after the
    COMMIT (at the checkpoint) too, when the store already held the compaction. A failure injected
    at each stage the compaction reports (its ``on_stage``): before the COMMIT the store is as
    before and the CLI says nothing changed (exit 2; Ctrl-C: 130); at "checkpointing" the store
    keeps the compaction and the CLI prints its result, says it was committed and that the
    checkpoint failed (exit 3; Ctrl-C: 130, saying it was committed)."""
    import duckdb

    from tests.support.cli import ww
    from wattwatch.app.progress import Stages

    base, before = _ingested(tmp_path, small_fleet)
    as_of = "2025-01-10T00:00:00Z"
    db = tmp_path / "s.duckdb"
    shutil.copy(base, db)
    seen = []
    monkeypatch.setattr(Stages, "stage", lambda self, text, total=None: seen.append(text))
    args = ("store", "compact", "--db", db, "--older-than-days", "2", "--as-of", as_of)
    ok = json.loads(ww(*args, "--json").stdout)
    assert ok["checkpointed"] is True and ok["readings_compacted"] > 0
    with Store(db) as s:
        after = _held(s)
    assert len(seen) == 6 and seen[-2:] == ["committing", "checkpointing"], seen
    for at in seen:
        def fail(self, text, total=None, at=at):
            if text == at:
                if fault == "interrupt":
                    raise KeyboardInterrupt
                raise duckdb.IOException(f"injected at {at!r}")

        monkeypatch.setattr(Stages, "stage", fail)
        shutil.copy(base, db)
        for as_json in (False, True):
            if as_json:
                shutil.copy(base, db)
            r = ww(*args, *(["--json"] if as_json else []), check=False)
            committed = at == "checkpointing"
            with Store(db) as s:
                assert _held(s) == (after if committed else before), (at, as_json)
            if fault == "interrupt":
                assert r.returncode == 130, (at, r)
                assert ("after the compaction was committed" if committed else "nothing changed") in r.stderr, (at, r)
                assert r.stdout == ""
                continue
            if not committed:
                assert r.returncode == 2 and "nothing changed" in r.stderr and r.stdout == "", (at, r)
                continue
            assert r.returncode == 3, (at, r)
            err = " ".join(r.stderr.split())
            assert "the compaction was committed" in err and "the checkpoint after it failed" in err \
                and f"injected at {at!r}" in err and "nothing changed" not in err, err
            if as_json:
                got = json.loads(r.stdout)
                assert got == {**ok, "checkpointed": False}, got
            else:
                assert r.stdout.startswith(f"compacted {ok['readings_compacted']:,} readings"), r.stdout


def test_compact_raises_what_it_committed_when_the_checkpoint_after_the_commit_fails(tmp_path: Path, small_fleet):
    """fix3: an error after the COMMIT (the checkpoint) is a ``CommittedError`` carrying the result
    (what the store now holds); one before the COMMIT rolls back and is raised as it was."""
    from wattwatch.store import CommittedError

    base, before = _ingested(tmp_path, small_fleet)
    db = tmp_path / "s.duckdb"
    as_of = "2025-01-10T00:00:00Z"
    for at in ("committing", "checkpointing"):
        shutil.copy(base, db)

        def fail(text, total=None, at=at):
            if text == at:
                raise OSError(f"injected at {at}")

        with Store(db) as s:
            if at == "committing":
                with pytest.raises(OSError, match="injected"):
                    s.compact(older_than_days=2, as_of=as_of, on_stage=fail)
                assert _held(s) == before
                continue
            with pytest.raises(CommittedError, match="the compaction was committed") as got:
                s.compact(older_than_days=2, as_of=as_of, on_stage=fail)
            assert isinstance(got.value, StoreError) and got.value.step == "checkpointing"
            assert got.value.result["readings_compacted"] == before[0][0] - _held(s)[0][0] > 0
            assert "OSError: injected at checkpointing" in str(got.value)


def _under_file_size_limit(limit: int):
    """A child's pre-exec: no file it writes may grow beyond ``limit`` bytes (a write past it fails
    with EFBIG, "File too large", as on a full disk; SIGXFSZ ignored, so the write returns the error
    instead of killing the process)."""
    import resource

    def pre() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    return pre


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_FSIZE and SIGXFSZ as on Linux")
def test_store_compact_classifies_real_duckdb_failures_at_the_commit_and_the_checkpoint(tmp_path: Path, small_fleet):
    """rfix3 (a guard of fix3's classification, on DuckDB's real behaviour, not an injected error):
    the file may not grow, so whatever DuckDB writes into the store file fails.

    - ``store compact``: the COMMIT writes the write-ahead log (another file), then the CHECKPOINT
      fails: exit 3, the result printed (``checkpointed`` false), and the store, opened again,
      holds the compaction (the log is replayed).
    - A COMMIT that checkpoints itself (DuckDB does when the log would pass
      ``checkpoint_threshold``: a large compaction) writes no log; its checkpoint failing is the
      COMMIT failing, and nothing was committed: ``Store.compact`` raises the DuckDB error (not a
      ``CommittedError``: the CLI says nothing changed, exit 2) and the store is as before. Should a
      DuckDB release keep such a commit (log written, then the checkpoint fails), this fails: an
      error at "committing" would then no longer mean nothing changed."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "WATTWATCH_PROGRESS": "0"}
    base, before = _ingested(tmp_path, small_fleet)
    as_of = "2025-01-10T00:00:00Z"
    want, after = _compacted_copy(tmp_path, base, as_of)
    assert want["readings_compacted"] > 0 and after != before

    db = tmp_path / "s.duckdb"
    shutil.copy(base, db)
    r = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "store", "compact", "--db", str(db),
                        "--older-than-days", "2", "--as-of", as_of, "--json"], env=env, capture_output=True,
                       text=True, timeout=300, preexec_fn=_under_file_size_limit(db.stat().st_size))
    assert r.returncode == 3, r
    assert json.loads(r.stdout) == {**want, "checkpointed": False}
    err = " ".join(r.stderr.split())
    assert "the compaction was committed" in err and "the checkpoint after it failed" in err and "too large" in err, err
    with Store(db) as s:
        assert _held(s) == after

    shutil.copy(base, db)
    script = (
        "import sys, duckdb\n"
        "from wattwatch.store import CommittedError, Store\n"
        "s = Store(sys.argv[1])\n"
        "s.con.execute(\"SET checkpoint_threshold = '1kB'\")\n"
        "said = []\n"
        "try:\n"
        "    s.compact(older_than_days=2, as_of=sys.argv[2], on_stage=lambda d, t: said.append(d))\n"
        "except CommittedError as exc:\n"
        "    print('committed', exc); sys.exit(3)\n"
        "except duckdb.Error as exc:\n"
        "    print(said[-1], '|', str(exc).splitlines()[0]); sys.exit(2)\n"
        "print('done'); sys.exit(0)\n")
    r = subprocess.run([sys.executable, "-c", script, str(db), as_of], env=env, capture_output=True, text=True,
                       timeout=300, preexec_fn=_under_file_size_limit(db.stat().st_size))
    assert r.returncode == 2 and r.stdout.startswith("committing |") and "checkpoint" in r.stdout.lower(), r
    with Store(db) as s:
        assert _held(s) == before


class _InterruptedAt:
    """A store's connection on which the statement starting with ``sql`` is interrupted as DuckDB's
    Python client interrupts one on Ctrl-C (a SIGINT while it runs): ``RuntimeError("Query
    interrupted")``, not a KeyboardInterrupt. ``after``: the statement completes first, as a COMMIT
    does (DuckDB commits, then raises: seen with a real SIGINT during a 575,000-reading compaction's
    COMMIT, the store then holding the compaction)."""

    def __init__(self, con, sql: str, after: bool):
        self.con, self.sql, self.after = con, sql, after

    def execute(self, query, *args, **kw):
        if str(query).lstrip().startswith(self.sql):
            if self.after:
                self.con.execute(query, *args, **kw)
            raise RuntimeError("Query interrupted")
        return self.con.execute(query, *args, **kw)

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.mark.parametrize("sql, after, committed", [("DELETE FROM readings_raw", False, False),
                                                   ("COMMIT", True, True), ("CHECKPOINT", False, True)])
def test_store_compact_interrupted_inside_duckdb_says_whether_it_was_committed(tmp_path: Path, small_fleet,
                                                                               monkeypatch, sql, after, committed):
    """rfix3: a Ctrl-C while DuckDB runs a statement (where a compaction spends its time) reaches
    ``Store.compact`` as DuckDB's ``RuntimeError("Query interrupted")``, not as the KeyboardInterrupt
    fix3's tests raised from the progress callback. Before: a traceback (exit 1) whatever the stage;
    and at the COMMIT, which DuckDB completes before it raises, ``Store.compact`` rolled "back"
    (nothing left to roll back) and re-raised as if nothing had been committed. Now: exit 130 saying
    whether the compaction was committed, and ``Store.compact`` raises a ``CommittedError``
    (``step`` "committing") when its COMMIT was made although it raised."""
    from tests.support.cli import ww
    from wattwatch.store import CommittedError

    base, before = _ingested(tmp_path, small_fleet)
    as_of = "2025-01-10T00:00:00Z"
    want, after_ = _compacted_copy(tmp_path, base, as_of)
    db = tmp_path / "s.duckdb"
    shutil.copy(base, db)
    with Store(db) as s:
        s.con = _InterruptedAt(s.con, sql, after)
        if committed:
            with pytest.raises(CommittedError) as got:
                s.compact(older_than_days=2, as_of=as_of)
            assert got.value.result == want and got.value.step == ("committing" if sql == "COMMIT" else "checkpointing")
        else:
            with pytest.raises(RuntimeError, match="Query interrupted"):
                s.compact(older_than_days=2, as_of=as_of)
        s.con = s.con.con
        assert _held(s) == (after_ if committed else before)

    compact = Store.compact

    def interrupted(self, *a, **kw):
        self.con = _InterruptedAt(self.con, sql, after)
        try:
            return compact(self, *a, **kw)
        finally:
            self.con = self.con.con
    monkeypatch.setattr(Store, "compact", interrupted)
    for as_json in (False, True):
        shutil.copy(base, db)
        r = ww("store", "compact", "--db", db, "--older-than-days", "2", "--as-of", as_of,
               *(["--json"] if as_json else []), check=False)
        assert r.returncode == 130, r
        err = " ".join(r.stderr.split())
        assert ("interrupted after the compaction was committed" if committed else
                "interrupted before the compaction was committed: nothing changed") in err, err
        assert r.stdout == ""
        with Store(db) as s:
            assert _held(s) == (after_ if committed else before)
