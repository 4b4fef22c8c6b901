"""Fault injection (issue 12): ``kill -9`` at random points of a loop of ingests, late readings,
re-ingests and compactions, and a full disk. Nothing acknowledged is lost, nothing is doubled."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.store.test_integrity import T0, fleet, reference_hourly
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import Store, StoreError

WORKER = r'''
import json, sys
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import Store
db, ops = sys.argv[1], json.loads(sys.argv[2])
import pyarrow.csv, pyarrow.parquet, pandas  # warm: the kills are timed over the operations, not imports
print("READY", flush=True)
import time
with Store(db) as s:
    for k, op in enumerate(ops):
        t0 = time.perf_counter()
        if op[0] == "ingest":
            ingest_path(s, op[1])
        else:
            s.compact(older_than_days=0, as_of=op[1])
        print(f"ACK {k} {time.perf_counter() - t0:.6f}", flush=True)
'''


def _state(db: Path) -> tuple[int, dict]:
    """(readings held, raw + compacted; energy per meter rounded to 1e-6 kWh)."""
    with Store(db, read_only=True) as s:
        n = s.con.execute("SELECT (SELECT count(*) FROM readings_raw) + "
                          "(SELECT coalesce(sum(n), 0) FROM readings_hourly)").fetchall()[0][0]
        e = {str(m): round(float(v), 6) for m, v in s.energy_kwh().items()}
    return int(n), e


def _ops(tmp: Path) -> tuple[list, pd.DataFrame]:
    df = fleet(meters=40, days=3, step_min=1, seed=7)
    h = pd.Timedelta(hours=1)
    late = (df.ts >= T0 + 5 * h) & (df.ts < T0 + 6 * h)
    chunks = {
        "day0": df[(df.ts < T0 + 24 * h) & ~late],
        "day1": df[(df.ts >= T0 + 24 * h) & (df.ts < T0 + 48 * h)],
        "late_day2": df[late | (df.ts >= T0 + 48 * h)],
        "all": df,
    }
    for name, part in chunks.items():
        part.to_csv(tmp / f"{name}.csv", index=False)
    f = lambda name: str(tmp / f"{name}.csv")  # noqa: E731
    return [["ingest", f("day0")], ["ingest", f("day1")], ["compact", str(T0 + 30 * h)],
            ["ingest", f("late_day2")], ["ingest", f("all")], ["compact", str(T0 + 60 * h)], ["ingest", f("all")]], df


def _run_ops(db, ops) -> None:
    """The worker's loop (WORKER) in this process, on a store path or an open store."""
    if not isinstance(db, Store):
        with Store(db) as s:
            return _run_ops(s, ops)
    for op in ops:
        ingest_path(db, op[1]) if op[0] == "ingest" else db.compact(older_than_days=0, as_of=op[1])


@pytest.mark.slow
def test_kill_9_at_random_points_of_ingest_and_compaction(tmp_path: Path):
    ops, df = _ops(tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    cmd = [sys.executable, "-c", WORKER]
    # Reference: the state after each acknowledged operation, from an uninterrupted run.
    states = [(0, {})]
    ref = tmp_path / "ref.duckdb"
    with Store(ref) as s:
        for op in ops:
            _run_ops(s, [op])
            s.con.execute("CHECKPOINT")
            shutil.copy(ref, tmp_path / "snap.duckdb")
            states.append(_state(tmp_path / "snap.duckdb"))
    # The uninterrupted run itself holds each reading once and the files' energy.
    ref = reference_hourly(df).groupby(level="meter_id").sum()
    assert states[-1][0] == len(df)
    assert states[-1][1] == pytest.approx({m: float(v) for m, v in ref.items()}, abs=1e-5)
    # Each kill lands inside a chosen operation: after the worker acknowledges the one before it, at a
    # seeded random fraction of that operation's time on an uninterrupted run. Waiting for the
    # acknowledgement (not a fraction of the whole run's time) keeps the kills spread over every
    # phase however busy the machine is.
    proc = subprocess.Popen(cmd + [str(tmp_path / "full.duckdb"), json.dumps(ops)], env=env,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "READY"
    out, _ = proc.communicate()
    assert proc.returncode == 0
    op_s = [float(line.split()[2]) for line in out.splitlines() if line.startswith("ACK")]
    assert len(op_s) == len(ops)
    assert _state(tmp_path / "full.duckdb") == states[-1]
    rng = random.Random(12)
    targets = list(range(len(ops))) + [rng.randrange(len(ops))]
    rng.shuffle(targets)
    mid, seen = 0, set()
    for trial, k in enumerate(targets):
        db = tmp_path / f"crash{trial}.duckdb"
        proc = subprocess.Popen(cmd + [str(db), json.dumps(ops)], env=env, stdout=subprocess.PIPE, text=True)
        lines = [proc.stdout.readline().strip()]
        assert lines[0] == "READY"
        while len(lines) <= k and lines[-1]:
            lines.append(proc.stdout.readline().strip())
        time.sleep(rng.uniform(0.0, 1.0) * op_s[k])
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        acked = sum(line.startswith("ACK") for line in lines[1:] + out.splitlines())
        if not db.exists():
            assert acked == 0
            continue
        try:
            got = _state(db)
        except StoreError as exc:  # killed while the store was being created: an empty file
            assert acked == 0 and "empty DuckDB file" in str(exc), exc
            got = states[0]
        # Everything acknowledged is there; the operation in flight is wholly there or not at all.
        assert got in states[acked: acked + 2], (trial, acked, got[0], [s[0] for s in states])
        print(f"trial {trial}: killed after {acked} of {len(ops)} operations acknowledged, {got[0]} readings")
        mid += acked < len(ops)
        seen.add(acked)
        # Running the whole loop again (here, as the worker does: no kill, so no process of its own
        # and no second start-up) converges on the uninterrupted result.
        _run_ops(db, ops)
        assert _state(db) == states[-1]
    assert mid >= 3 and len(seen) >= 3, f"kills landed after {sorted(seen)} operations only"


def _mount_tmpfs(path: Path, size: str) -> bool:
    if not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    path.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                         capture_output=True)
    return res.returncode == 0


def test_disk_full_is_said_and_the_store_stays_consistent():
    # Not under pytest's tmp_path: a mount point there would outlive a failed unmount.
    mnt = Path(tempfile.mkdtemp(prefix="ww-full-"))
    if not _mount_tmpfs(mnt, "8m"):
        mnt.rmdir()
        pytest.skip("needs root and a tmpfs mount (containers often refuse)")
    src = Path(tempfile.mkdtemp(prefix="ww-src-"))
    try:
        db = mnt / "s.duckdb"
        acked, error = 0, None
        with Store(db) as s:
            for k in range(60):
                df = fleet(meters=10, days=1, step_min=1, seed=k)
                df["meter_id"] = df["meter_id"] + f"_{k}"
                path = src / f"c{k}.csv"
                df.to_csv(path, index=False)
                try:
                    acked += ingest_path(s, path).stored
                except StoreError as exc:
                    error = str(exc)
                    break
            assert error is not None, "the disk never filled up"
            assert "disk full" in error.lower() and "no space left" in error.lower() and str(db) in error
            assert "rollback" not in error.lower()
            try:  # compaction on the full disk: done, or refused with the same clear message
                s.compact(older_than_days=0, as_of=T0 + pd.Timedelta(hours=12))
            except StoreError as exc:
                assert "disk full" in str(exc).lower()
        with Store(db, read_only=True) as s:
            n = s.con.execute("SELECT (SELECT count(*) FROM readings_raw) + "
                              "(SELECT coalesce(sum(n), 0) FROM readings_hourly)").fetchall()[0][0]
            assert n == acked  # every acknowledged file, nothing of the one that failed
            assert s.con.execute("SELECT count(*) FROM (SELECT sid, ts FROM readings_raw GROUP BY ALL "
                                 "HAVING count(*) > 1)").fetchall()[0][0] == 0
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)
        shutil.rmtree(src, ignore_errors=True)
        try:
            mnt.rmdir()
        except OSError:
            pass
