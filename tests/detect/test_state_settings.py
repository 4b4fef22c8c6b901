"""A detector's stored state and the settings it was learned with: a setting that only shapes the
scores of a learned state (``DetectorConfig.scoring_only``) does not make it "learned with other
settings"."""

from __future__ import annotations

import json

import duckdb

from tests.detect.conftest import healthy
from wattwatch.detect import registry
from wattwatch.detect import state as state_mod
from wattwatch.detect.frame import prepare


def test_a_setting_that_only_shapes_scores_does_not_ask_for_a_refit(tmp_path):
    """phase_imbalance learns its profiled imbalance and normal shares; its limits (``level_k``,
    ``margin``, ``spread_k``...) are drawn from them when scoring (``scoring_only``). A state stored
    before lead32 added ``level_k`` (its settings without it) or with another margin is the same
    state: no "learned with other settings, run wattwatch fit" notice. A setting the learning reads
    (``min_mean_a``) still gives it."""
    df = healthy("commercial", days=4)
    det = registry.build("phase_imbalance").fit(prepare(df))
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state_mod.save(con, [det]) == 1
    old = json.loads(con.execute("SELECT settings FROM meter_state").fetchone()[0])
    old.pop("level_k")
    con.execute("UPDATE meter_state SET settings = ?", [json.dumps(old, sort_keys=True)])
    for params, refit in (({}, False), ({"margin": 0.08}, False), ({"min_mean_a": 2.0}, True)):
        fresh = registry.build("phase_imbalance", params)
        notices = state_mod.load(con, [fresh], list(det.state_))
        assert set(fresh.state_) == set(det.state_), "the stored state is used as it is"
        assert any("other settings" in n for n in notices) == refit, (params, notices)
        if refit:
            assert "min_mean_a" in notices[0] and "level_k" not in notices[0], notices


def test_states_are_written_in_one_statement_as_replacing_them_row_by_row_did(tmp_path):
    """``state.save`` writes every (meter, detector) row in one statement (executemany cost ~3 ms a
    row). What it leaves is what replacing row by row left: a row written again replaces the old one,
    a (meter, detector) given twice in one call keeps its last state, a state without a normal
    period (no first reading, a NaN last one) keeps NULL bounds, and a round trip gives the state."""
    df = healthy("commercial", days=4)
    det = registry.build("phase_imbalance").fit(prepare(df))
    meter = next(iter(det.state_))
    twin = registry.build("phase_imbalance").fit(prepare(df))
    twin.state_[meter] = dict(twin.state_[meter], first_t=None, last_t=float("nan"), how="reset", marker=7)
    con = duckdb.connect(str(tmp_path / "s.duckdb"))
    assert state_mod.save(con, [det]) == 1
    assert state_mod.save(con, [det, twin]) == 2, "rows given, as before"
    rows = con.execute("SELECT meter_id, detector, how, normal_start, normal_end, params FROM meter_state").fetchall()
    assert len(rows) == 1
    m, d, how, start, end, params = rows[0]
    assert (m, d, how, start, end) == (str(meter), "phase_imbalance", "reset", None, None)
    assert json.loads(params)["marker"] == 7
    fresh = registry.build("phase_imbalance")
    state_mod.load(con, [fresh], [meter])
    assert fresh.state_[meter]["marker"] == 7


def test_states_are_written_from_another_thread_through_a_cursor_and_refused_by_a_read_only_store(tmp_path):
    """``state.save`` hands its rows to DuckDB as a local Arrow table found by name: that scan
    resolves from a worker thread's cursor too (a server thread beside the watcher), and a store
    opened read-only refuses the write with DuckDB's read-only error, its rows left as they were."""
    import threading

    import pytest

    df = healthy("commercial", days=4)
    det = registry.build("phase_imbalance").fit(prepare(df))
    meter = next(iter(det.state_))
    det.state_[meter] = dict(det.state_[meter], big="x" * (8 << 20))   # an 8 MiB params string
    path = str(tmp_path / "s.duckdb")
    con = duckdb.connect(path)
    out = []
    worker = threading.Thread(target=lambda: out.append(state_mod.save(con.cursor(), [det])))
    worker.start()
    worker.join()
    assert out == [1]
    assert con.execute("SELECT length(params) > 8 << 20 FROM meter_state").fetchall() == [(True,)]
    con.close()
    ro = duckdb.connect(path, read_only=True)
    with pytest.raises(duckdb.InvalidInputException, match="read-only"):
        state_mod.save(ro, [det])
    assert ro.execute("SELECT count(*) FROM meter_state").fetchall() == [(1,)]
    ro.close()
