"""(flaky) A Ctrl-C or SIGTERM that DuckDB's client loses is raised again.

CI-style runs of ``test_ctrl_c.py::test_detect_with_db_interrupted_while_ingesting...`` ended exit 0
at load ~20: the real SIGINT sent 0.05 s into the ingest's read of the stored readings was lost.
DuckDB's binder (duckdb 2.0.1) calls back into Python to count an Arrow table's rows; a
KeyboardInterrupt raised there becomes a ``duckdb.Error`` ("counting the rows of the Arrow source
failed: KeyboardInterrupt"), which one of its paths (``_bind_with_stand_ins``) catches and binds
again: the statement returns as if no signal had come. Here the signal is a real one, sent from
inside that callback at each of its calls in turn, so every place the binder can lose it is met;
what DuckDB does with it is DuckDB's own."""

from __future__ import annotations

import os
import signal

import numpy as np
import pyarrow as pa
import pytest

from wattwatch import sigterm
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.store import Store
from wattwatch.store.duck import interrupted


@pytest.fixture
def signal_at_call(monkeypatch):
    """``arm(sig, k)``: the ``k``-th call of DuckDB's count of a pyarrow table's rows (1 = the first)
    sends this process ``sig`` first; returns the list of calls seen. SIGINT is Python's own handler
    first (a pytest started without job control inherits it ignored: tests/support/ctrl_c.py)."""
    from duckdb._sources import pyarrow as sources

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rows = sources.PyArrowTableSource.rows
    calls: list[int] = []

    def arm(sig, k):
        calls.clear()

        def counted(self):
            calls.append(len(calls) + 1)
            if len(calls) == k:
                os.kill(os.getpid(), sig)   # handled at the callback's next line: inside DuckDB's bind
            return rows(self)

        monkeypatch.setattr(sources.PyArrowTableSource, "rows", counted)
        return calls

    yield arm
    for s, h in before.items():
        signal.signal(s, h)


def _a_query():
    table = pa.table({"i": np.arange(0, 1000, 7)})
    with Store(":memory:") as s:
        s.con.execute("CREATE TABLE n AS SELECT range AS i FROM range(1000)")
        return s._query(table, "SELECT n.i FROM n JOIN _t USING (i)").to_arrow_table()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_at_any_of_the_binders_callbacks_reaches_the_caller(tmp_path, signal_at_call, sig):
    want = sigterm.Terminated if sig == signal.SIGTERM else KeyboardInterrupt
    calls = signal_at_call(sig, 10 ** 9)
    _a_query()
    n = len(calls)
    assert n >= 2, f"DuckDB counted the Arrow table's rows {n} time(s): the test no longer reaches its binder"
    lost = []
    for k in range(1, n + 1):
        signal_at_call(sig, k)
        with sigterm.as_interrupt():
            try:
                _a_query()
                lost.append(k)
            except BaseException as exc:   # noqa: BLE001 - which one is the point
                # DuckDB's own error for one raised in its callback (the command line takes that as
                # the interrupt: ``interrupted``, and any error after a SIGTERM) or the interrupt itself
                assert isinstance(exc, want) or interrupted(exc) or (
                    sigterm.received() and "Terminated" in str(exc)), repr(exc)
    assert not lost, f"the signal sent at call(s) {lost} of {n} never reached the caller"


def test_an_ingest_interrupted_where_duckdb_loses_it_stores_nothing_and_raises(tmp_path, signal_at_call):
    """The ingest's own statements over Arrow tables: whichever call the Ctrl-C lands in, the file is
    not committed and the interrupt reaches the caller."""
    csv = tmp_path / "a.csv"
    csv.write_text("meter_id,ts,p_kw\n" + "".join(f"m{i % 3},2026-01-01T{i // 60 % 24:02d}:{i % 60:02d}:00Z,{i}\n"
                                                   for i in range(300)))
    calls = signal_at_call(signal.SIGINT, 10 ** 9)
    with Store(":memory:") as s:
        ingest_path(s, csv)
    n = len(calls)
    assert n >= 1, "the ingest no longer reads an Arrow table through DuckDB's binder"
    lost = []
    for k in range(1, n + 1):
        signal_at_call(signal.SIGINT, k)
        with Store(":memory:") as s, sigterm.as_interrupt():
            try:
                ingest_path(s, csv)
                lost.append(k)
            except BaseException as exc:   # noqa: BLE001
                assert interrupted(exc) or sigterm.from_interrupt(exc), repr(exc)
            assert s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0] in (0, 300)
            stored = s.con.execute("SELECT count(*) FROM ingest_log").fetchone()[0]
        if k not in lost:
            assert stored == 0, f"interrupted at call {k}, yet the file was committed"
    assert not lost, f"the Ctrl-C sent at call(s) {lost} of {n} never reached the caller"


def test_an_interrupt_is_raised_again_only_in_the_main_thread(signal_at_call):
    """A statement of another thread (the watcher's ingest worker) that spans a Ctrl-C the main thread
    got and raised is not given that Ctrl-C: only the main thread runs handlers, so only it can lose one."""
    import threading

    signal_at_call(signal.SIGINT, 10 ** 9)      # Python's own SIGINT handler, restored after
    since = sigterm.raised()
    with sigterm.as_interrupt():
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):               # handled at a line boundary of this thread
                pass
    got = []

    def other():
        try:
            sigterm.raise_if_lost(since)
            got.append(None)
        except BaseException as exc:            # noqa: BLE001
            got.append(exc)
    t = threading.Thread(target=other)
    t.start()
    t.join(30)
    assert got == [None], got
    with pytest.raises(KeyboardInterrupt):
        sigterm.raise_if_lost(since)


def test_a_ctrl_c_lost_while_the_detectors_state_is_read_reaches_the_caller(signal_at_call):
    """(rflaky) ``detect.state.load`` (``detect --db``, a watcher's start) reads ``meter_state`` through a
    relation over an Arrow table of meter ids, the same binder path as :meth:`Store._query`, outside it."""
    from wattwatch import api
    from wattwatch.detect import state

    dets = api.build_detectors(None, None)
    meters = [f"m{i}" for i in range(50)]
    with Store(":memory:") as s:
        state.ensure_tables(s.con)
        calls = signal_at_call(signal.SIGINT, 10 ** 9)
        state.load(s.con, dets, meters)
        n = len(calls)
        assert n >= 2, f"DuckDB counted the Arrow table's rows {n} time(s): the test no longer reaches its binder"
        lost = []
        for k in range(1, n + 1):
            signal_at_call(signal.SIGINT, k)
            with sigterm.as_interrupt():
                try:
                    state.load(s.con, dets, meters)
                    lost.append(k)
                except BaseException as exc:   # noqa: BLE001
                    assert isinstance(exc, KeyboardInterrupt) or interrupted(exc), repr(exc)
    assert not lost, f"the Ctrl-C sent at call(s) {lost} of {n} never reached the caller"
