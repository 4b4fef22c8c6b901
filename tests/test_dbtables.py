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


def test_an_older_actions_log_gets_its_queued_at_column_and_a_read_only_one_is_left_alone(tmp_path):
    """(ah) ``actions_log`` as wattwatch made it before ``queued_at``: a writer adds the column, a
    read-only reader leaves the table as it is (DuckDB refuses the ALTER there) and still reads it."""
    cols = "alert_id VARCHAR, action VARCHAR, kind VARCHAR, event VARCHAR, done_at TIMESTAMPTZ, dry_run BOOLEAN, " \
           "outcome VARCHAR, detail VARCHAR, attempts INTEGER, ms DOUBLE, meter_id VARCHAR, code VARCHAR"
    for name in ("w", "r"):
        con = duckdb.connect(str(tmp_path / f"{name}.duckdb"))
        con.execute(f"CREATE TABLE actions_log ({cols})")
        con.execute("CREATE TABLE actions_pending (alert_id VARCHAR, action VARCHAR, event VARCHAR, dry_run BOOLEAN, "
                    "queued_at TIMESTAMPTZ, alert VARCHAR)")
        con.close()
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    ensure_log(con)
    assert "queued_at" in con.execute("SELECT * FROM actions_log").df().columns
    con.close()
    ro = duckdb.connect(str(tmp_path / "r.duckdb"), read_only=True)
    ensure_log(ro)
    assert "queued_at" not in ro.execute("SELECT * FROM actions_log").df().columns and len(actions_for(ro, "x")) == 0
    ro.close()
