"""Ctrl-C in ``fit``, ``train`` and ``detect``'s worker processes (st3), after st2's ``ingest`` and
``detect --db``: a real SIGINT ends the command with exit 130, no traceback, a message saying what
the store (and the model folder) holds; fit keeps its state whole or not at all (a model folder
trained again and interrupted while written keeps its previous models since b1:
``tests/detect/test_models_replaced.py``); a terminal's Ctrl-C (the whole process group) prints no traceback of an idle worker process and
leaves no worker running.

Reuses ``tests.support.ctrl_c`` (a SIGINT while DuckDB runs a chosen statement) unchanged; the
worker case needs the signal sent to the process group while a worker is idle and the other inside
its chunk, which that helper does not do: ``tests.support.held`` holds the other there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.test_integrity import fleet
from wattwatch.store import Store

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}", "WATTWATCH_PROGRESS": "0"}
CHEAP = "baseline_macd,frozen_readings"


def _csv(tmp_path: Path, meters: int = 2, days: float = 1) -> Path:
    f = tmp_path / "a.csv"
    fleet(meters=meters, days=days, seed=3).to_csv(f, index=False)
    return f


def test_fit_with_files_interrupted_inside_duckdb_exits_130_saying_nothing_was_kept(tmp_path: Path):
    # Before (st3): DuckDB's "Query interrupted" traceback, exit 1.
    a, db = _csv(tmp_path), tmp_path / "s.duckdb"
    r = subprocess.run([sys.executable, "-m", "tests.support.ctrl_c", "INSERT INTO readings_raw", "1", "0.02", "--",
                        "fit", str(a), "--db", str(db), "--detectors", CHEAP], capture_output=True, text=True,
                       cwd=tmp_path, env=ENV, timeout=300)
    err = " ".join(r.stderr.split())
    assert r.returncode == 130 and "Traceback" not in r.stderr, (r.returncode, r.stderr[-3000:])
    with Store(db, read_only=True) as s:
        held = [x[0] for x in s.con.execute("SELECT source FROM ingest_log").fetchall()]
    assert f"{db}: interrupted (Ctrl-C): " in err, err
    if held:   # the signal came during the file's COMMIT: DuckDB commits, then raises
        assert f"stored by this run: {a} (1 of 1 file(s)" in err, err
    else:
        assert f"none of its files was stored; not stored (rolled back or not started): {a}" in err, err
    assert "none of the state it learned was kept" in err, err


def test_fit_interrupted_between_the_meters_state_and_the_fleet_models_keeps_neither(tmp_path: Path, monkeypatch):
    # Before (st3): the meters' state was committed on its own, beside the fleet models of the fit
    # before (or none), and a later detect used that mix.
    from wattwatch import api
    from wattwatch.detect import state
    from wattwatch.ingest.pipeline import ingest_path

    db = tmp_path / "s.duckdb"
    with Store(db) as s:
        ingest_path(s, _csv(tmp_path))

    def stop(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(state, "save_fleets", stop)
    with pytest.raises(KeyboardInterrupt):
        api.fit(db, detectors=CHEAP.split(","))
    with Store(db, read_only=True) as s:
        rows = s.con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'meter_state'").fetchone()[0]
        kept = s.con.execute("SELECT count(*) FROM meter_state").fetchone()[0] if rows else 0
    assert kept == 0


def test_detect_with_worker_processes_interrupted_exits_130_without_worker_tracebacks_or_workers_left(tmp_path: Path):
    # Before (st3): the idle worker printed "Process ForkProcess-2: Traceback ... KeyboardInterrupt".
    # A terminal's Ctrl-C: a real SIGINT to the whole process group, once one worker has judged its
    # chunk (it is idle, or sending its outcome) and the other is inside the last one, held there
    # (tests.support.held; a fixed half-second delay lost the race to the chunk at load ~20).
    import psutil

    from tests.support.held import CLI, end, held, left

    a = _csv(tmp_path)   # 2 meters, so 2 chunks and 2 workers
    cfg = tmp_path / "c.toml"
    cfg.write_text("[engine]\nchunk_rows = 1\nworkers = 2\n")   # a chunk per meter
    log = tmp_path / "chunks.log"
    errf = tmp_path / "stderr.txt"   # a file, not a pipe: workers left running would hold a pipe open
    with errf.open("w") as fh:
        p = subprocess.Popen([sys.executable, "-c", CLI, str(log), "first-judges", "detect", str(a), "--config",
                              str(cfg), "--detectors", CHEAP, "--out", "out.jsonl"], cwd=tmp_path, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=fh, start_new_session=True)
    kids: list[psutil.Process] = []
    try:
        kids = held(p, log, lambda lines: len(lines) >= 3 and "done" in lines)
        os.killpg(p.pid, signal.SIGINT)
        p.wait(timeout=120)   # the held worker is ended, not waited for (it sleeps 120 s)
    finally:
        end(p, kids)
    still, err = left(kids), errf.read_text()
    assert p.returncode == 130 and "Traceback" not in err, (p.returncode, err[-3000:])
    assert "interrupted (Ctrl-C); out.jsonl was not written" in " ".join(err.split()), err
    assert not still, f"processes of the run still running: {still}"
    assert len([x for x in log.read_text().split() if x.isdigit()]) == 2 and not (tmp_path / "out.jsonl").exists()


def test_train_into_a_folder_whose_manifest_another_tool_wrote_refuses_and_keeps_it(tmp_path: Path):
    # Before (rst3): st3's save_models deleted any manifest.json first (before it, overwrote it at
    # the end); a wattwatch manifest (of an older format too) is still replaced.
    from wattwatch.detect.learned import persist

    theirs = tmp_path / "web" / "manifest.json"
    theirs.parent.mkdir()
    theirs.write_text('{"name": "my app", "icons": []}')
    with pytest.raises(persist.ModelFormatError, match="not one `wattwatch train` wrote"):
        persist.save_models([], theirs.parent)
    assert theirs.read_text() == '{"name": "my app", "icons": []}'
    ours = tmp_path / "m" / "manifest.json"
    ours.parent.mkdir()
    ours.write_text('{"format": 1, "detectors": {}}')
    persist.save_models([], ours.parent)
    assert persist.read_manifest(ours.parent)["format"] == persist.MODEL_FORMAT
