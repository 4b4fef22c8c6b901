"""The tables a store holds, and creating the ones it lacks: shared by the parts that keep their
own tables in it (alerts and rule resets, meter state and fleet models, the actions log)."""

from __future__ import annotations

from collections.abc import Iterable


def tables(con) -> set[str]:
    """The names of the tables in ``con``'s current database."""
    return {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() "
                                      "WHERE database_name = current_database()").fetchall()}


def ensure_tables(con, ddl: Iterable[str]) -> None:
    """Run each ``CREATE TABLE IF NOT EXISTS <name> ...`` of ``ddl`` whose table the store lacks
    (a read-only store that has them is left alone: DuckDB refuses even ``CREATE TABLE IF NOT
    EXISTS`` there)."""
    have = tables(con)
    for stmt in ddl:
        if stmt.split("EXISTS ", 1)[1].split(" ", 1)[0] not in have:
            con.execute(stmt)
