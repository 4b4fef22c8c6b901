"""(ovl, issue 16) The store's writes of a step's readings run in the store's worker thread while the
step judges the rows the ingest returned (``StreamConfig.ingest_thread``). Two invariants:

- every alert a step writes is written after the COMMIT of the readings it judged (the store's
  connection waits for that COMMIT before any other statement);
- writes that fail in the worker are the step's error: the store keeps neither those readings nor
  any alert judged from them, the engine refuses to step or checkpoint again, and a restart from
  its checkpoint (the source delivering the readings again) finds the alerts an unbroken run finds.
"""

from __future__ import annotations

import sys
import threading
import time

import pandas as pd
import pytest

from wattwatch import api
from wattwatch.runners.stream import StreamConfig, StreamEngine
from wattwatch.sim import SimConfig, simulate
from wattwatch.store import Store

CONFIG = {"engine": {"profile_days": 1.0}}


class _Recorder:
    """A store's connection that logs each statement (its first words, the thread, in order) and
    holds the worker thread's COMMIT back ``delay`` s (so a statement that does not wait for it would
    come first), or makes it fail (``fail``: the error raised before committing)."""

    def __init__(self, con, delay: float = 0.0, fail: BaseException | None = None):
        self.con, self.delay, self.fail, self.log = con, delay, fail, []

    def execute(self, query, *args, **kw):
        q = " ".join(str(getattr(query, "query", query)).split()[:3])   # (a parsed statement: its text; fk)
        worker = threading.current_thread().name.startswith("wattwatch-ingest")
        if worker and q == "COMMIT":
            time.sleep(self.delay)
            if self.fail is not None:
                self.log.append(("COMMIT failed", worker))
                raise self.fail
        # DuckDB finds an Arrow table named in the SQL (_t, _new) among its caller's variables only
        loc = sys._getframe(1).f_locals
        _t, _new = loc.get("_t"), loc.get("_new")  # noqa: F841 - found by name by DuckDB
        out = self.con.execute(query, *args, **kw)
        self.log.append((q, worker))
        return out

    def __getattr__(self, name):
        return getattr(self.con, name)


@pytest.fixture(scope="module")
def pieces() -> list[pd.DataFrame]:
    """6 meters x 1.3 days at 15 min, each with a fault after the profiling day: that day whole,
    then one piece an hour."""
    f = simulate(SimConfig(meters=6, days=1.3, step="15min", seed=23, fault_share=1.0, profile_days=1.0))["frame"]
    f = f.drop_duplicates(["meter_id", "ts"]).sort_values(["ts", "meter_id"], kind="stable").reset_index(drop=True)
    day = f["ts"].min().round("1D") + pd.Timedelta("1D")   # (its first reading is jittered before midnight)
    return [f[f["ts"] < day]] + [p for _, p in f[f["ts"] >= day].groupby(f["ts"].dt.floor("1h"), sort=True)]


def _engine(store) -> StreamEngine:
    return StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                        StreamConfig(slow_thread=False, checkpoint_s=1e9))


def _alert_ids(store) -> set[str]:
    return {r[0] for r in store.con.execute("SELECT id FROM alerts").fetchall()}


@pytest.fixture(scope="module")
def unbroken(pieces, tmp_path_factory) -> dict:
    """An unbroken run: the first fast step (after the profiling day's) that writes alerts, and the
    alerts stored after each step."""
    store = Store(tmp_path_factory.mktemp("unbroken") / "s.duckdb")
    eng = _engine(store)
    stored, first = [], None
    for k, p in enumerate(pieces):
        eng.add(p)
        rep = eng.step()
        stored.append(_alert_ids(store))
        if first is not None:
            break
        if k >= 2 and rep.alerts and "fast" in rep.written:
            first = k
    store.close()
    assert first is not None, "the fleet gives no fast-tier alert: the tests below would test nothing"
    print("first fast step with alerts", first, "of", len(pieces))
    return {"k": first, "stored": stored}


def test_a_steps_alerts_are_written_after_the_commit_of_its_readings(pieces, unbroken, tmp_path):
    k = unbroken["k"]
    store = Store(tmp_path / "s.duckdb")
    eng = _engine(store)
    for p in pieces[:k]:
        eng.add(p)
        eng.step()
    rec = _Recorder(store._con, delay=0.3)
    store.con = rec
    eng.add(pieces[k])
    rep = eng.step()
    store.con = rec.con
    assert rep.alerts
    order = [q for q, _ in rec.log]
    commit = order.index("COMMIT")
    assert rec.log[commit][1], "the readings' COMMIT ran in the store's worker"
    first_alert = next(i for i, q in enumerate(order) if q.startswith("INSERT INTO alerts"))
    assert first_alert > commit, f"an alert was written before its readings were committed: {order}"
    assert _alert_ids(store) == unbroken["stored"][k]
    store.close()


def test_writes_failing_in_the_worker_are_the_steps_error_and_nothing_judged_from_them_is_stored(
        pieces, unbroken, tmp_path):
    k = unbroken["k"]
    path = tmp_path / "s.duckdb"
    store = Store(path)
    eng = _engine(store)
    for p in pieces[:k]:
        eng.add(p)
        eng.step()
    eng.checkpoint({})
    before = store.con.execute("SELECT (SELECT count(*) FROM readings_raw), (SELECT count(*) FROM ingest_log), "
                               "(SELECT saved FROM stream_checkpoint)").fetchall()[0]
    alerts_before = _alert_ids(store)
    assert unbroken["stored"][k] - alerts_before, "step k writes new alerts in the unbroken run"
    rec = _Recorder(store._con, fail=OSError(28, "No space left on device"))
    store.con = rec
    eng.add(pieces[k])      # the rows are back; the writes fail in the worker
    with pytest.raises(Exception, match="No space left|disk full"):
        eng.step()
    store.con = rec.con
    assert ("COMMIT failed", True) in rec.log
    assert not any(q.startswith("INSERT INTO alerts") for q, _ in rec.log), rec.log
    after = store.con.execute("SELECT (SELECT count(*) FROM readings_raw), (SELECT count(*) FROM ingest_log), "
                              "(SELECT saved FROM stream_checkpoint)").fetchall()[0]
    assert after == before and _alert_ids(store) == alerts_before
    # The engine holds the lost readings as stored and judged: it goes no further.
    with pytest.raises(RuntimeError, match="cannot go on"):
        eng.step()
    with pytest.raises(RuntimeError, match="cannot go on"):
        eng.add(pieces[k + 1])
    with pytest.raises(RuntimeError, match="cannot go on"):
        eng.checkpoint({})
    assert store.con.execute("SELECT saved FROM stream_checkpoint").fetchall()[0][0] == before[2]
    store.close()
    # A restart from the checkpoint, the source delivering piece k again: the unbroken run's alerts.
    store = Store(path)
    eng = _engine(store)
    eng.step()
    for j in (k, k + 1):
        eng.add(pieces[j])
        eng.step()
        assert _alert_ids(store) == unbroken["stored"][j]
    store.close()


def test_writes_that_failed_before_the_step_waited_for_them_are_raised_once(pieces, tmp_path):
    """(rovl) The worker's COMMIT is quick: it often fails before the step begins (the engine sees
    ``live_failed`` without having waited). The step raises the error, and the store's next
    statements (the watcher's closing ones, ``close``) do not raise it again."""
    store = Store(tmp_path / "s.duckdb")
    eng = _engine(store)
    for p in pieces[:2]:
        eng.add(p)
        eng.step()
    rec = _Recorder(store._con, fail=OSError(28, "No space left on device"))
    store.con = rec
    eng.add(pieces[2])
    store._pending.exception()      # the worker has failed (not taken off the store by this wait)
    with pytest.raises(Exception, match="No space left|disk full"):
        eng.step()
    store.con = rec.con
    assert store.con.execute("SELECT count(*) FROM ingest_log").fetchall()[0][0] == 2
    with pytest.raises(RuntimeError, match="cannot go on"):
        eng.step()
    store.close()


def test_the_slow_tiers_judgement_of_readings_the_store_lost_is_not_written(pieces, tmp_path):
    """(rovl) With the slow tier in its own thread (the default), the step whose writes fail has
    started the full stitcher's judgement of its rows; what the watcher does after the failed step
    (``run`` takes the slow tier's judgement to its outputs; a checkpoint settles it first) must not
    write what it found in readings the store lost (here: a new alert)."""
    k = 2
    store = Store(tmp_path / "s.duckdb")
    eng = StreamEngine(store, api.build_detectors(None, CONFIG), api._engine(CONFIG),
                       StreamConfig(slow_thread=True, checkpoint_s=1e9))
    for p in pieces[:k]:
        eng.add(p)
        eng.step()
        eng.settle()    # the worker free for the next step's judgement
    alerts_before = store.con.execute("SELECT * FROM alerts ORDER BY id").fetchall()
    rec = _Recorder(store._con, delay=0.3, fail=OSError(28, "No space left on device"))
    store.con = rec
    eng.add(pieces[k])
    with pytest.raises(Exception, match="No space left|disk full"):
        eng.step()
    assert eng._job is not None, "the failed step started the slow tier's judgement of its rows"
    res = eng._job[0].result()[0]
    assert res is not None and (res.alerts or res.provisional), "the slow tier found nothing: this tests nothing"
    held = eng.take_held()      # as run() does after a failed step
    with pytest.raises(RuntimeError, match="cannot go on"):
        eng.checkpoint({})
    store.con = rec.con
    failed = rec.log.index(("COMMIT failed", True))
    assert not any(q.startswith(("INSERT INTO alerts", "UPDATE alerts")) for q, _ in rec.log[failed:]), rec.log
    assert held is None or not (held.alerts or held.new)
    assert store.con.execute("SELECT * FROM alerts ORDER BY id").fetchall() == alerts_before
    eng.close()
    store.close()


def test_a_wait_for_the_writes_that_is_interrupted_leaves_them_waited_for(pieces, tmp_path):
    """(rovl) A wait for the worker's writes that raises without their end (a Ctrl-C in a thread
    that waits: the main thread of a library caller, ``close`` in ``api.watch``'s finally) must not
    forget them: the next statement still waits for their COMMIT (never beside it on the one
    DuckDB connection)."""
    store = Store(tmp_path / "s.duckdb")
    eng = _engine(store)
    eng.add(pieces[0])
    eng.step()
    rec = _Recorder(store._con, delay=0.5)
    store.con = rec
    eng.add(pieces[1])
    fut = store._pending

    class Interrupted:       # its first wait interrupted, as a Ctrl-C does
        calls = 0

        def result(self):
            Interrupted.calls += 1
            if Interrupted.calls == 1:
                raise KeyboardInterrupt
            return fut.result()

        def done(self):
            return fut.done()

    store._pending = Interrupted()
    with pytest.raises(KeyboardInterrupt):
        store.settle()
    store.con.execute("SELECT count(*) FROM readings_raw")
    order = [q for q, _ in rec.log]
    assert order.index("COMMIT") < order.index("SELECT count(*) FROM"), order
    store.con = rec.con
    store.close()
