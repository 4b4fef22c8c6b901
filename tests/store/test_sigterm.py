"""SIGTERM to ``detect`` while its forked workers judge (b3): a service manager's or container's stop,
``kill PID``, a scheduler's time limit. Before, the parent ended at once and its workers were left
running (blocked on their task queue for ever, or, as here, mid-chunk); now it gets a Ctrl-C's
treatment: workers terminated and reaped, the store as it was, a message, exit 143. A library
caller that left SIGTERM at its default still ends by the signal, its workers reaped; on Linux a
SIGKILL to the parent (which nothing can handle) ends the workers too.

Each worker writes its pid and sleeps in its first chunk (``judge_group`` wrapped, nothing else
changed: ``tests.support.held``), so the signal finds the run mid-way with both workers alive on any
machine load."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.store.test_ctrl_c_fit import CHEAP, ENV
from tests.store.test_integrity import fleet
from tests.support.held import CLI, HOLD
from tests.support.held import end as _end
from tests.support.held import held as _held
from tests.support.held import left as _left
from wattwatch.store import Store

_API = HOLD + """
import pandas as pd
from wattwatch.detect.engine import EngineConfig, detect
detect(pd.read_csv(sys.argv[3]), config=EngineConfig(chunk_rows=1, workers=2, profile_days=0.5))
"""


def _tables(db: Path) -> dict:
    with Store(db, read_only=True) as s:
        names = [r[0] for r in s.con.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {n: s.con.execute(f'SELECT count(*), sum(hash(t)) FROM "{n}" t').fetchone() for n in names}


def test_detect_terminated_with_workers_mid_chunk_exits_143_reaps_them_and_keeps_the_store(tmp_path: Path):
    # Before (b3): exit -15 (killed by the signal), no message, both workers still running.
    from wattwatch import api
    from wattwatch.ingest.pipeline import ingest_path

    a, db = tmp_path / "a.csv", tmp_path / "s.duckdb"
    fleet(meters=2, days=1, seed=3).to_csv(a, index=False)
    with Store(db) as s:
        ingest_path(s, a)
    api.fit(db, detectors=CHEAP.split(","), days=0.5)   # state kept: detect only judges
    before = _tables(db)
    assert before["meter_state"][0] > 0
    cfg = tmp_path / "c.toml"
    cfg.write_text("[engine]\nchunk_rows = 1\nworkers = 2\n")   # a chunk per meter, a worker per chunk
    log = tmp_path / "pids.log"
    errf = tmp_path / "stderr.txt"   # a file, not a pipe: workers left running would hold a pipe open
    with errf.open("w") as fh:
        p = subprocess.Popen([sys.executable, "-c", CLI, str(log), "all-hold", "detect", "--db", str(db),
                              "--config", str(cfg), "--detectors", CHEAP, "--out", "out.jsonl"], cwd=tmp_path, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    kids: list[psutil.Process] = []
    try:
        kids = _held(p, log)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)   # the parent alone, as `kill PID` or `docker stop` sends it
        p.wait(timeout=120)
        took = time.monotonic() - t0
    finally:
        _end(p, kids)
    left, err = _left(kids), errf.read_text()
    assert (p.returncode, left) == (143, []), f"exit {p.returncode}, workers left running: {left}; {err[-3000:]}"
    assert "Traceback" not in err, err
    assert took < 60, took   # the workers are ended, not waited for (each sleeps 120 s)
    msg = " ".join(err.split())
    assert f"{db}: terminated (SIGTERM); out.jsonl was not written; nothing of this run was committed" in msg, msg
    assert not (tmp_path / "out.jsonl").exists()
    assert _tables(db) == before


def test_a_library_caller_terminated_while_workers_judge_ends_by_the_signal_with_the_workers_reaped(tmp_path: Path):
    # Before (b3): the process ended the same way but left both workers running.
    sig = signal.SIGTERM
    a = tmp_path / "a.csv"
    fleet(meters=2, days=1, seed=3).to_csv(a, index=False)
    log = tmp_path / "pids.log"
    errf = tmp_path / "stderr.txt"
    with errf.open("w") as fh:
        p = subprocess.Popen([sys.executable, "-c", _API, str(log), "all-hold", str(a)], cwd=tmp_path, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    kids: list[psutil.Process] = []
    try:
        kids = _held(p, log)
        p.send_signal(sig)
        p.wait(timeout=120)
    finally:
        _end(p, kids)
    left, err = _left(kids), errf.read_text()
    assert (p.returncode, left) == (-sig, []), f"exit {p.returncode}, workers left running: {left}"
    assert "Traceback" not in err, err



_KILLED = """
import sys, threading, time
from wattwatch.detect import engine
log = sys.argv[1]
def held(ab):
    with open(log, "a") as fh:
        fh.write(f"{__import__('os').getpid()}\\n")
    time.sleep(120)
busy = engine._Forked(2, held)   # as on Linux: ended by PR_SET_PDEATHSIG, mid-chunk
engine._end_with_parent = lambda parent: None   # (in the workers forked from now on) as where there is none
idle = engine._Forked(2, held)   # waiting for a chunk: ended by their pipe's end alone
threading.Thread(target=lambda: list(busy.map([(0, 1), (1, 2)])), daemon=True).start()
print(" ".join(str(p.pid) for p in idle.procs), flush=True)
time.sleep(120)
"""


def test_the_workers_of_a_killed_parent_end_mid_chunk_on_linux_and_waiting_for_one_anywhere(tmp_path: Path):
    # SIGKILL (the OOM killer, a stop's time-out) cannot be handled. Before (b3): every worker ran
    # on; b3: the kernel ends them on Linux (PR_SET_PDEATHSIG), but without it (macOS, no prctl) its
    # idle workers still waited for ever: each held its own copy of the parent's end of its pipe (rb3).
    log = tmp_path / "pids.log"
    p = subprocess.Popen([sys.executable, "-c", _KILLED, str(log)], cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                         text=True, start_new_session=True)
    kids: list[psutil.Process] = []
    try:
        kids = _held(p, log)   # all four, the two busy ones inside their chunk
        assert len(kids) == 4 and len(p.stdout.readline().split()) == 2, kids
        p.kill()
        p.wait(timeout=60)
    finally:
        _end(p, kids)
        p.stdout.close()
    assert _left(kids) == []

_LIBRARY_BLOCK = """
import os, signal, time
from wattwatch import sigterm
try:
    with sigterm.as_interrupt(only_if_default=True):
        try:
            pass
        finally:   # as engine.judge's `pool.shutdown()` after the last chunk: a SIGTERM while it runs
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)
except KeyboardInterrupt:
    print("escaped", flush=True)
"""


def test_a_sigterm_in_a_library_callers_guarded_block_ends_the_process_by_the_signal_wherever_it_comes():
    # Before (rb3): the process was ended by the signal only from judge's `except` clause; one during
    # its `finally` (the workers' shutdown) reached the library caller as a KeyboardInterrupt.
    r = subprocess.run([sys.executable, "-c", _LIBRARY_BLOCK], env=ENV, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (-signal.SIGTERM, ""), (r.returncode, r.stdout, r.stderr[-2000:])
