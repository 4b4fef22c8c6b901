"""The tables of a store, and creating those it lacks (alerts, meter state, actions log share it)."""

from __future__ import annotations

import duckdb

from wattwatch import dbtables
from wattwatch.actions.base import actions_for, ensure_log
from wattwatch.alerts import store as alert_store
from wattwatch.detect import state


def test_created_once_then_left_alone_read_only(tmp_path):
    db = str(tmp_path / "s.duckdb")
    con = duckdb.connect(db)
    assert dbtables.tables(con) == set()
    assert len(actions_for(con, "x")) == 0 and dbtables.tables(con) == set()   # reading creates nothing
    alert_store.ensure_tables(con)
    state.ensure_tables(con)
    ensure_log(con)
    want = {"alerts", "rule_resets", "meter_state", "fleet_models", "actions_log", "actions_pending"}
    assert dbtables.tables(con) == want
    # another attached database's tables are not this store's
    con.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
    con.execute("CREATE TABLE other.alerts_elsewhere (x INTEGER)")
    assert dbtables.tables(con) == want
    con.close()
    ro = duckdb.connect(db, read_only=True)   # DuckDB refuses CREATE ... IF NOT EXISTS here
    alert_store.ensure_tables(ro)
    state.ensure_tables(ro)
    ensure_log(ro)
    assert dbtables.tables(ro) == want
