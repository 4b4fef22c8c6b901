"""detect's own forked workers (b3's ``engine._Forked``, which replaced ProcessPoolExecutor): what the
pool gave and the CLI relies on, checked in this process (a fork of it; no subprocess start-up):
outcomes in chunk order with more chunks than workers, a worker's exception raised with its
traceback, one that would not unpickle named instead of a TypeError, a killed worker an error
instead of a hang, and no worker left after any of them (rb3)."""

from __future__ import annotations

import os
import sys
import signal
import threading
import time

import pytest

from tests.store.test_integrity import fleet
from wattwatch.detect import engine
from wattwatch.detect.engine import EngineConfig, WorkerDied, detect
from wattwatch.detect.registry import build_all

CHEAP = ["baseline_macd", "frozen_readings"]


def _drained(it, pools: list, limit_s: float = 60.0):
    """Every item of ``it`` (or the exception it raised), consumed in a thread: a hang fails the test
    (its ``pools`` ended first, or the exit would wait for their workers)."""
    out: dict = {}

    def run():
        try:
            out["items"] = list(it)
        except BaseException as exc:  # noqa: BLE001 - checked by the caller
            out["exc"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit_s)
    hung = t.is_alive()
    if hung:
        for pool in pools:
            pool.terminate()
    assert not hung, f"no outcome after {limit_s} s: a worker's end was not noticed"
    return out


def _no_workers_left(pool: engine._Forked) -> None:
    assert [p.pid for p in pool.procs if p.is_alive()] == []


def test_outcomes_come_in_chunk_order_when_later_chunks_finish_first():
    def job(i):
        if i == 0:
            time.sleep(0.6)   # the first chunk ends last: the other worker judges the 5 after it
        return i * 10

    pool = engine._Forked(2, job)
    try:
        got = _drained(pool.map(range(6)), [pool])
    finally:
        pool.shutdown()
    assert got == {"items": [0, 10, 20, 30, 40, 50]}
    assert [p.exitcode for p in pool.procs] == [0, 0]   # told to stop and reaped


class _TwoArgs(Exception):
    def __init__(self, what, code):   # pickles, but does not unpickle (args holds only ``what``)
        super().__init__(what)
        self.code = code


@pytest.mark.parametrize("raised, expected, says", [
    (ValueError("bad chunk 2"), ValueError, "bad chunk 2"),
    (_TwoArgs("bad chunk 2", 7), RuntimeError, "_TwoArgs: bad chunk 2"),   # b3: TypeError: __init__() missing 'code'
], ids=["plain", "does-not-unpickle"])
def test_a_workers_exception_is_raised_with_its_traceback(raised, expected, says):
    def job(i):
        if i == 2:
            raise raised
        return i

    pool = engine._Forked(2, job)
    try:
        got = _drained(pool.map(range(5)), [pool])
    finally:
        pool.terminate()
    exc = got.get("exc")
    assert type(exc) is expected and says in str(exc), repr(exc)
    assert "in job" in str(exc.__cause__), exc.__cause__   # the worker's traceback
    _no_workers_left(pool)


def test_a_worker_killed_mid_chunk_fails_detect_with_worker_died_and_no_worker_left(monkeypatch):
    # (a worker the OOM killer ends; ProcessPoolExecutor raised BrokenProcessPool, multiprocessing.Pool waits for ever)
    judge = engine.judge_group

    def dies_on_m1(part, *a, **k):
        if str(part["meter_id"].iloc[0]) == "M1":
            os.kill(os.getpid(), signal.SIGKILL)
        return judge(part, *a, **k)

    frame, seen = fleet(meters=3, days=1, seed=3), []
    monkeypatch.setattr(engine, "judge_group", dies_on_m1)

    class Seen(engine._Forked):
        def __init__(self, n, job):
            super().__init__(n, job)
            seen.append(self)

    monkeypatch.setattr(engine, "_Forked", Seen)
    cfg = EngineConfig(chunk_rows=1, workers=2, profile_days=0.5)   # a chunk per meter
    got = _drained(_detect_once(frame, cfg), seen)   # in a thread, as the dashboard's run page calls it
    exc = got.get("exc")
    assert isinstance(exc, WorkerDied) and "exit code -9" in str(exc), repr(exc)
    assert seen and all(not p.is_alive() for p in seen[0].procs)


def _detect_once(frame, cfg):
    yield detect(frame, build_all(CHEAP), cfg)


def test_workers_judge_where_ctypes_cannot_be_imported(monkeypatch):
    # (a Python built without _ctypes: no PR_SET_PDEATHSIG then.) Before (rb3): the ImportError
    # ended each worker at its start, so every detect with worker processes failed (WorkerDied).
    monkeypatch.setitem(sys.modules, "ctypes", None)   # `import ctypes` raises ImportError (in the forks too)
    pool = engine._Forked(2, lambda i: i + 1)
    try:
        got = _drained(pool.map(range(3)), [pool])
    finally:
        pool.shutdown()
    assert got == {"items": [1, 2, 3]}, got



@pytest.mark.parametrize("when", ["before-given-its-chunk", "with-its-chunk-unread"])
def test_a_worker_dead_before_it_read_its_chunk_is_a_worker_died_error(monkeypatch, when):
    # Before (rb3): the parent's send to it (EPIPE) or its read of the dead pipe (ECONNRESET: the
    # chunk left unread) raised a bare BrokenPipeError / ConnectionResetError.
    wait_s = 0.0 if when == "before-given-its-chunk" else 0.5
    monkeypatch.setattr(engine, "_quiet_worker", lambda: (time.sleep(wait_s), os._exit(3)))   # a worker's first step
    pool = engine._Forked(2, lambda i: i)
    try:
        if when == "before-given-its-chunk":
            for p in pool.procs:
                p.join(30)
        got = _drained(pool.map(range(3)), [pool])
    finally:
        pool.terminate()
    exc = got.get("exc")
    assert isinstance(exc, WorkerDied) and "exit code 3" in str(exc), repr(exc)
    _no_workers_left(pool)
