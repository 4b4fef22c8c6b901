"""Ctrl-C in ``ingest`` and ``detect --db`` (st2): a real SIGINT while DuckDB runs one of the ingest's
statements ends the command with exit 130 and says which files the store holds (each file is one
transaction), as ``store compact`` does since rfix3; before it printed DuckDB's "Query interrupted"
traceback, or, in one statement, took the file for unreadable and went on to the next one.
``Store.ingest`` whose COMMIT raises after committing (DuckDB's client does so for a Ctrl-C during
it) raises a ``CommittedError``, and ``wattwatch.api`` exports it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.store.test_integrity import fleet
from tests.store.test_store import _InterruptedAt
from tests.support.ctrl_c import AS_A_TERMINAL
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import CommittedError, Store

ROOT = Path(__file__).resolve().parents[2]


def _files(tmp_path: Path) -> tuple[Path, Path]:
    """Two files: 60 meters x 4 days at 5 min, and a jittered copy of its second half with two days
    more (so the second file's ingest reads and matches stored readings)."""
    df = fleet(meters=60, days=4, seed=5)
    a = tmp_path / "a.csv"
    df.to_csv(a, index=False)
    later = df[df["ts"] >= df["ts"].min() + pd.Timedelta(days=2)].copy()
    more = later.copy()
    more["ts"] += pd.Timedelta(days=2)
    b_df = pd.concat([later, more], ignore_index=True)
    b_df["ts"] += pd.to_timedelta(np.random.default_rng(1).uniform(-3, 3, len(b_df)), unit="s")
    b = tmp_path / "b.csv"
    b_df.to_csv(b, index=False)
    return a, b


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, Path, Path]:
    """:func:`_files` and a store of the first file alone, made once for the module (tt11: 1.7 s of
    CPU per test): the runs below only read them (each writes its own store, in its own folder)."""
    root = tmp_path_factory.mktemp("ctrl_c")
    a, b = _files(root)
    only_a = root / "only_a.duckdb"
    with Store(only_a) as s:
        ingest_path(s, a)
    return a, b, only_a


def _held(db: Path) -> tuple:
    with Store(db, read_only=True) as s:
        return (s.con.execute("SELECT count(*), count(p_kw), round(sum(e_kwh), 3) FROM readings_raw").fetchall()[0],
                sorted(r[0] for r in s.con.execute("SELECT source FROM ingest_log").fetchall()))


def _ctrl_c(tmp_path: Path, prefix: str, nth: int, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "WATTWATCH_PROGRESS": "0"}
    return subprocess.run([sys.executable, "-m", "tests.support.ctrl_c", prefix, str(nth), "0.05", "--",
                           *map(str, args)], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)


def _says_what_is_stored(err: str, db: Path, a: Path, b: Path, only_a: Path | None = None) -> None:
    """The message names the files the store holds: the first, and the second only if its COMMIT was
    made (a signal that comes in the last milliseconds of its ingest: DuckDB commits, then raises)."""
    held = _held(db)
    if str(b) in held[1]:
        assert held[1] == sorted([str(a), str(b)]) and f"stored by this run: {a}, {b} (2 of 2 file(s)" in err, err
    else:
        assert held[1] == [str(a)], held
        assert f"stored by this run: {a} (1 of 2 file(s), each committed on its own)" in err, err
        assert f"not stored (rolled back or not started): {b}" in err, err
        assert only_a is None or held[0] == _held(only_a)[0]


@pytest.mark.parametrize("prefix, nth", [("INSERT INTO meters", 2), ("SELECT r.sid", 1),
                                         ("INSERT INTO readings_raw", 2)])
def test_ingest_interrupted_inside_duckdb_exits_130_saying_which_files_are_stored(tmp_path: Path, inputs, prefix,
                                                                                   nth):
    # A statement of the second file's ingest: its meters upsert, its read of the stored readings it
    # overlaps, its insert. The first file is stored (committed); the second is not, unless the
    # signal came during its COMMIT, and the message says which.
    a, b, only_a = inputs
    db = tmp_path / "s.duckdb"
    r = _ctrl_c(tmp_path, prefix, nth, "ingest", a, b, "--db", db)
    err = " ".join(r.stderr.split())
    assert r.returncode == 130 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-3000:])
    # (rst2) "while ingesting b" unless b's COMMIT was made (then b is said stored, not cut short)
    cut = str(b) not in _held(db)[1]
    assert (f"interrupted (Ctrl-C) while ingesting {b}" in err) == cut and "Ingest again to finish" in err, err
    _says_what_is_stored(err, db, a, b, only_a)


def test_detect_with_db_interrupted_while_ingesting_exits_130_saying_what_is_kept(tmp_path: Path, inputs):
    a, b, _ = inputs
    db = tmp_path / "s.duckdb"
    r = _ctrl_c(tmp_path, "SELECT r.sid", 1, "detect", a, b, "--db", db, "--out", "out.jsonl")
    err = " ".join(r.stderr.split())
    assert r.returncode == 130 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-3000:])
    assert f"{db}: interrupted (Ctrl-C); out.jsonl was not written" in err, err
    _says_what_is_stored(err, db, a, b)
    assert not (tmp_path / "out.jsonl").exists()


def test_an_ingest_whose_commit_raises_after_committing_raises_committed_error(tmp_path: Path, inputs):
    # DuckDB's Python client commits, then raises "Query interrupted" for a Ctrl-C during the COMMIT
    # (as rfix3 saw for compact): the source is stored, and Store.ingest says so (before: it "rolled
    # back" and re-raised as if nothing had been stored).
    a = inputs[0]
    with Store(tmp_path / "s.duckdb") as s:
        s.con = _InterruptedAt(s.con, "COMMIT", after=True)
        with pytest.raises(CommittedError) as got:
            ingest_path(s, a)
        s.con = s.con.con
        assert got.value.step == "committing" and got.value.result.stored == len(pd.read_csv(a))
        assert s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0] == got.value.result.stored
        # Interrupted before its COMMIT: nothing stored, the interruption raised as it is.
        s.con = _InterruptedAt(s.con, "INSERT INTO ingest_log", after=False)
        with pytest.raises(RuntimeError, match="Query interrupted"):
            ingest_path(s, a)
        s.con = s.con.con
        assert s.con.execute("SELECT count(*) FROM ingest_log").fetchone()[0] == 1


def test_committed_error_is_exported_by_the_api():
    from wattwatch import api, store

    assert "CommittedError" in api.__all__ and api.CommittedError is store.CommittedError


_AT = {   # (rst2) a real SIGINT in Python code at another moment of ``ingest``
    "after the first file's commit": (
        "from wattwatch.store import duck\n"
        "orig = duck.Store.ingest\n"
        "def ingest(self, *a, **k):\n"
        "    r = orig(self, *a, **k)\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    return r\n"
        "duck.Store.ingest = ingest\n"),
    "while the first file's rejects are written": (
        "from wattwatch.ingest import pipeline\n"
        "orig = pipeline.RejectsWriter.write\n"
        "def write(self, rows):\n"
        "    if rows:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "    return orig(self, rows)\n"
        "pipeline.RejectsWriter.write = write\n"),
}


@pytest.mark.parametrize("moment", sorted(_AT))
def test_a_ctrl_c_between_files_says_the_first_is_stored_and_not_that_it_was_being_ingested(tmp_path: Path, moment):
    # Before (st2): after the first file's commit, "interrupted (Ctrl-C) while ingesting a.csv:
    # stored by this run: a.csv", as if a.csv had been cut short.
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    for k, f in enumerate((a, b)):
        ts = pd.Timestamp("2025-01-01T00:00:00Z") + pd.to_timedelta(np.arange(200) * 300 + k * 60_000, unit="s")
        df = pd.DataFrame({"meter_id": "M1", "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "p_kw": 1.0})
        df.loc[5, "ts"] = "garbage"
        df.to_csv(f, index=False)
    db = tmp_path / "s.duckdb"
    code = ("import os, signal, sys\n" + AS_A_TERMINAL + _AT[moment] + "from wattwatch.app.cli import main\n"
            f"sys.argv = ['wattwatch', 'ingest', {str(a)!r}, {str(b)!r}, '--db', {str(db)!r}, '--rejects', "
            f"{str(tmp_path / 'r.csv')!r}]\nmain()\n")
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "WATTWATCH_PROGRESS": "0"}
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert p.returncode == 130, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    assert f"stored by this run: {a} (1 of 2 file(s)" in p.stderr and f"not stored (rolled back or not started): {b}" in p.stderr
    assert "while ingesting" not in p.stderr, p.stderr
    assert _held(db)[1] == [str(a)]
