"""A statement that fails inside an ingest's transaction is reported by its own error."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from wattwatch.store.duck import Store


def test_a_failing_statement_in_a_transaction_raises_its_own_error(tmp_path: Path):
    # duckdb's relation query drops its temporary name in a `finally`; inside an aborted
    # transaction that drop fails and hid the statement's error ("transaction is aborted").
    with Store(tmp_path / "s.duckdb") as s:
        s.con.execute("INSERT INTO meters VALUES ('A', 1, NULL, NULL, 300)")
        s.con.execute("BEGIN TRANSACTION")
        try:
            with pytest.raises(duckdb.ConstraintException, match="A"):
                s._query(pa.table({"meter_id": ["A"], "sid": pa.array([2], pa.int32())}),
                         "INSERT INTO meters SELECT meter_id, sid, NULL, NULL, 300 FROM _t")
        finally:
            s.con.execute("ROLLBACK")
        # Outside a transaction the error was never hidden: unchanged.
        with pytest.raises(duckdb.ConstraintException):
            s._query(pa.table({"meter_id": ["B"], "sid": pa.array([1], pa.int32())}),
                     "INSERT INTO meters SELECT meter_id, sid, NULL, NULL, 300 FROM _t")
        assert s.con.execute("SELECT count(*) FROM meters").fetchone()[0] == 1
