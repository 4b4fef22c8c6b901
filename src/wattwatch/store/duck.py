"""Embedded DuckDB store for canonical readings.

Every file is ingested in one transaction: its rows are staged, de-duplicated and merged into
``readings``, and the transaction commits only at the end. A crash (even ``kill -9``) mid-file
leaves the store as it was before that file, and re-running the ingest converges on the same rows.

De-duplication keeps one row per meter per instant. Two readings of one meter closer together than
``min(jitter_tol_s, cadence / 4)`` are the same reading reported twice (a retransmission with
timestamp jitter); the group keeps the timestamp of its most complete row, earliest first on ties,
and fills that row's missing channels from the others. The cadence is inferred per meter from the
batch together with the stored readings around it, so a single late reading is judged against the
meter's real cadence, not a default; a batch lengthens a meter's known cadence only where no gap of
it (nor to the stored span) would thereby become a copy (packet loss lengthens gaps too).

Extra channels (numeric columns beyond the canonical schema that a mapping declares, see
:mod:`wattwatch.ingest.mapping`) become DOUBLE columns of ``readings_raw`` on the first ingest that
brings them, recorded in ``channels``; from then on they are de-duplicated, merged, queried and
compacted exactly like the canonical channels.

Compaction (:meth:`Store.compact`) keeps per meter and hour the aggregates and, since store layout
2 (``meta.store_version``), the time and register value of every compacted reading. Energy is
therefore the same whatever was compacted and in whatever order readings arrived (late readings,
re-ingest), and a copy of a compacted reading is a duplicate: the hour's aggregates are kept as
they are. Layout-1 stores are migrated on a writable open (columns added); their hours keep their
stored increment, and any reading that falls in one of them is taken as a copy.

Only a new or empty DuckDB file becomes a store; a file with other tables, a damaged ``meta``
table or an unreadable file is a :class:`StoreError` naming the file (``create=False`` refuses a
missing path). A write that fails on a full disk is rolled back and said as such.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from wattwatch import sigterm
from wattwatch._prefetch import prefetch
from wattwatch.errors import CommittedError, StoreError  # re-exported: wattwatch.store.StoreError
from wattwatch.ingest.readers import LINE
from wattwatch.schema import CHANNEL_NAMES, SCHEMA_VERSION, extra_channel_error

# The live path takes a statement's Arrow result off the connection (``_normalised_live``): DuckDB
# hints that a relation copies less, but for a watcher's batch a relation's bind costs more.
warnings.filterwarnings("ignore", message="Arrow output on a DB-API result", category=UserWarning,
                        module=r"wattwatch\.store\.duck$")

DEFAULT_DB = "wattwatch.duckdb"
# DuckDB fetches and loads an extension it needs from the internet on first use (a SQLite file
# given as a store asks for ``sqlite_scanner``: a 2-5 s wait for a download, then an error naming a
# URL). Nothing in wattwatch needs one beyond those built into the wheel (ICU, JSON, Parquet), and
# nothing may download at run time: every connection is opened with both switched off.
NO_EXTENSION_FETCH = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_SQLITE_MAGIC = b"SQLite format 3\x00"
# Layout of the store's own tables (``meta.store_version``), apart from the canonical schema
# version: 2 keeps, per compacted hour, the time of every reading and its register value
# (``ts_list``, ``e_list``) so late readings and re-ingest after compaction stay exact.
STORE_VERSION = 2
DEFAULT_JITTER_TOL_S = 10.0
MERGE_CHUNK_ROWS = 1 << 20
# (rfk) A live batch of at most this many rows, without wall-clock times, is normalised on the
# optimizer-off cursor (``Store._norm_cursor``); a larger one, or one with, on the connection.
NOOPT_MAX_ROWS = 4096
# Stored readings read at a time by the duplicate check of an ingest (about: estimated from the
# meters' cadence), so a batch against a dense history keeps a bounded footprint.
MATCH_ROWS = 1 << 20
FOLD_CARRY = "_wattwatch_fold_carry"  # temp table: see Normalizer.carry_sql
AGG_CHANNELS = tuple(c for c in CHANNEL_NAMES if c != "e_kwh")
# A channel is "mostly bad" (a mapping mistake: a loud note, ``ingest`` exits 1) when its share of
# bad values is above one half at this significance (one-sided binomial test; see IngestCounts).
MOSTLY_BAD_P = 0.01
_KEYS = frozenset({LINE, "meter_id", "ts", "_bad", "_drop"})
_CANONICAL = frozenset(CHANNEL_NAMES)

# Readings are keyed by an integer series id (``sid``) that the ``meters`` catalogue maps to the
# meter id: an integer key makes inserts ~30 % cheaper than a text one and scans by meter faster.
# The ``readings`` view gives the canonical (meter_id, ts, ...) shape back.
_READINGS_DDL = (
    "CREATE TABLE IF NOT EXISTS readings_raw (sid INTEGER NOT NULL, ts TIMESTAMPTZ NOT NULL, "
    + ", ".join(f"{c} DOUBLE" for c in CHANNEL_NAMES)
    + ")"
)
# Extra channels, in the order they were added (their column order in readings_raw).
_CHANNELS_DDL = "CREATE TABLE IF NOT EXISTS channels (name VARCHAR PRIMARY KEY, added TIMESTAMPTZ)"


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _readings_view(extras: Sequence[str]) -> str:
    return ("CREATE OR REPLACE VIEW readings AS SELECT m.meter_id, r.ts, "
            + ", ".join(f"r.{_q(c)}" for c in (*CHANNEL_NAMES, *extras))
            + " FROM readings_raw r JOIN meters m USING (sid)")


_HOURLY_DDL = (
    "CREATE TABLE IF NOT EXISTS readings_hourly (meter_id VARCHAR NOT NULL, hour TIMESTAMPTZ NOT NULL, n BIGINT, "
    + ", ".join(f"{c}_mean DOUBLE, {c}_min DOUBLE, {c}_max DOUBLE" for c in AGG_CHANNELS)
    + ", e_kwh_first DOUBLE, e_kwh_last DOUBLE, e_delta_kwh DOUBLE, ts_list TIMESTAMPTZ[], e_list DOUBLE[], "
    "PRIMARY KEY (meter_id, hour))"
)
_LOG_DDL = (
    "CREATE TABLE IF NOT EXISTS ingest_log (source VARCHAR, bytes BIGINT, rows_read BIGINT, stored BIGINT, "
    "merged BIGINT, duplicates BIGINT, rejected BIGINT, started TIMESTAMPTZ, seconds DOUBLE)"
)
_METERS_DDL = (
    "CREATE TABLE IF NOT EXISTS meters (meter_id VARCHAR PRIMARY KEY, sid INTEGER NOT NULL UNIQUE, "
    "first_ts TIMESTAMPTZ, last_ts TIMESTAMPTZ, cadence_s DOUBLE)"
)




def _reject_key(r: tuple) -> tuple:
    """The rejects' order: file, line, then field and reason (a wide line's cells come out of the
    engine's threads in any order; this puts them in one)."""
    return (r[0], r[1], r[2] or "", r[3] or "")


@dataclass
class IngestCounts:
    """What one ingest did. ``read`` = stored + merged + duplicates + rejected (rows).

    ``rejects`` are the rows rejected whole (a bad meter id or time, or no channel value left);
    ``dropped`` the values dropped from readings that were kept (unreadable or implausible: stored
    as missing), both ``(unit, line, field, reason)``. ``values_dropped`` counts the latter per
    channel; ``bad_values`` and ``given`` count, per checked channel, the values that were bad (in
    kept and rejected rows alike) and the values given (not blank), so a channel bad on most rows
    (a mapping mistake: W read as kW) is told from a glitch (:attr:`mostly_bad`)."""

    source: str
    read: int = 0
    stored: int = 0
    merged: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    rejects: list[tuple[str, int, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dropped: list[tuple[str, int, str, str]] = field(default_factory=list)
    values_dropped: dict[str, int] = field(default_factory=dict)
    bad_values: dict[str, int] = field(default_factory=dict)
    given: dict[str, int] = field(default_factory=dict)
    # (b2, fast) A live ingest's changes to readings already stored: the stored readings a copy
    # filled (a channel they lacked; ``meter_id``, ``t`` in epoch µs: the stored reading's time, not
    # the copy's, which may be up to the tolerance off; rb2), one row each, ``conflict`` where that
    # copy also gave another value for a channel the reading has. A copy giving only other values (a
    # correction) changes nothing (the store keeps its values): it is no row here, it is a conflict.
    changed: "pd.DataFrame | None" = None
    # (fast) Readings given again with other values than those kept, whose values were dropped:
    # copies of stored readings (each) and groups of copies within the ingest (each group once);
    # the notes say them with an example. (m2) Not apart from the rows above: each is one of the
    # ``merged`` or ``duplicates`` rows (``ingest``'s table and ``--json`` show it beside them, "of
    # which"); a watcher's engine takes them out of its ``duplicates`` counter.
    conflicts: int = 0

    @property
    def rows_per_s(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else float("nan")

    @property
    def mostly_bad(self) -> list[str]:
        """Channels more than half of whose given values were unreadable or implausible, beyond
        doubt: a one-sided binomial test of "at most half bad" rejected at 1 % (:data:`MOSTLY_BAD_P`).
        A mapping mistake spoils a channel throughout and passes at a few values (7 of 7); two
        glitches in three readings of a small file (a scheduled job's few minutes) do not."""
        out = [c for c, n in self.bad_values.items() if n and 2 * n > self.given.get(c, 0)]
        if not out:
            return out
        from scipy.stats import binom
        return [c for c in out if binom.sf(self.bad_values[c] - 1, max(self.given.get(c, 0), self.bad_values[c]),
                                           0.5) < MOSTLY_BAD_P]

    @property
    def reject_lines(self) -> list[tuple[str, int, str, str]]:
        """What the rejects file gets: the rows rejected whole and the values dropped, by line."""
        return sorted(self.rejects + self.dropped, key=_reject_key)


def _ts(value) -> datetime | None:
    if value is None:
        return None
    t = pd.Timestamp(value)
    t = t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")
    return t.floor("us").to_pydatetime()


def _open_failure(path: Path, read_only: bool, exc: Exception) -> str:
    """Why a store could not be opened, in words: a folder that is missing or cannot be written, or
    a store file that cannot be written, is said as such (DuckDB's error names neither, and "not a
    DuckDB file, damaged, or locked" sent the user to look at a file that was fine or absent)."""
    reason = str(exc).split("\n")[0]
    parent = path.absolute().parent
    if not path.exists():
        if not parent.exists():
            return f"{path}: cannot create the store: folder {parent} does not exist ({reason})"
        if not parent.is_dir():
            return f"{path}: cannot create the store: {parent} is not a folder ({reason})"
        if not os.access(parent, os.W_OK | os.X_OK):
            return f"{path}: cannot create the store: folder {parent} is not writable ({reason})"
    elif not read_only and path.is_file() and not os.access(path, os.W_OK):
        return (f"{path}: cannot open the store for writing: the file is read-only ({reason}); commands that "
                "only read it (alerts list, report, store info) work")
    elif not read_only and path.is_file() and not os.access(parent, os.W_OK | os.X_OK):
        return (f"{path}: cannot open the store for writing: its folder {parent} is not writable (the store "
                f"keeps a write-ahead log beside it) ({reason})")
    if _is_sqlite(path):
        return (f"{path}: cannot open store: a SQLite database, not a DuckDB store (give a new file name to "
                "create a store; to read its readings, `wattwatch ingest` it)")
    return f"{path}: cannot open store (not a DuckDB file, damaged, or locked by another process): {exc}"


def _is_sqlite(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


@dataclass
class _Conflicts:
    """What one ingest dropped for another copy's values: readings given more than once with
    different values (``copies``) and copies of stored readings with other values (``stored``),
    each with its first example."""

    copies: int = 0
    copies_eg: str | None = None
    stored: int = 0
    stored_eg: str | None = None


def _edge_gaps(names, cat: dict, cs: np.ndarray, ts_: np.ndarray, same: np.ndarray):
    """A batch's gaps to what is stored of its meters: per meter of ``names`` (codes ``cs``, the
    batch sorted by meter and time ``ts_`` in µs, ``same``: a row's meter is its predecessor's), its
    first reading's gap after the stored last one and its last reading's before the stored first
    (the catalogue ``cat``'s span). Returns (meter codes, gaps, whether the meter has a stored span);
    a meter with none gets its readings' own times as gaps."""
    first = np.flatnonzero(np.concatenate([[True], ~same]))
    last = np.concatenate([first[1:], [len(cs)]]) - 1
    span = np.array([(cat[m][0], cat[m][1]) if m in cat and cat[m][0] is not None else (0, 0)
                     for m in names], np.int64).reshape(-1, 2)
    has = span[:, 1] > 0
    return (np.concatenate([cs[first], cs[last]]),
            np.concatenate([ts_[first] - span[cs[first], 1], span[cs[last], 0] - ts_[last]]),
            np.concatenate([has[cs[first]], has[cs[last]]]))


class Store:
    """A DuckDB file of canonical readings.

    Parameters
    ----------
    path : str or Path
        Database file; created when missing.
    read_only : bool
        Open without taking the write lock.
    memory_limit : str, optional
        DuckDB memory limit (default ``$WATTWATCH_MEMORY_LIMIT`` or ``1GB``); DuckDB spills to
        disk beyond it, which keeps ingest of large files within a fixed footprint.
    jitter_tol_s : float
        Largest timestamp difference treated as the same reading reported twice.
    lock_wait_s : float
        How long to keep trying when another process holds the file's lock (default 0: fail at
        once). A long-running writer (``watch``) waits out short readers (a dashboard page, an
        ``alerts list``) instead of failing to start.
    """

    def __init__(self, path: str | Path = DEFAULT_DB, *, read_only: bool = False, create: bool = True,
                 memory_limit: str | None = None, threads: int | None = None,
                 jitter_tol_s: float = DEFAULT_JITTER_TOL_S, lock_wait_s: float = 0.0):
        self.path = Path(path)
        self.jitter_tol_s = float(jitter_tol_s)
        # The live path (``ingest(..., live=True)``, a watcher's small batches): the meters table
        # as committed (meter -> first µs, last µs, cadence µs, sid; loaded on first use, kept in
        # step by every merge), changes staged by the open transaction, and the extra channels.
        self._cat_cache: dict[str, tuple] | None = None
        self._cat_staged: dict[str, tuple] = {}
        self._live_extras: list[str] | None = None
        # (fo) The live normalising statements as DuckDB parsed them, by their text (a watcher's
        # layouts: one or a few, their text renewed with the normaliser's time bound): parsed once,
        # not at every step (~1-1.5 ms of a step's CPU; bound and planned anew each time, so
        # ``_t`` is the step's own table).
        self._live_parsed: dict[str, object] = {}
        # (fk) A live ingest's writes (``UPDATE meters``, the readings' INSERT, ``ingest_log``) parsed
        # once per text and re-run (bound and planned at each execute, so ``_t`` is that write's own
        # table): ~0.6 ms CPU less of the ingest worker's ~6 ms a step.
        self._writes_parsed: dict[str, object] = {}
        self._live_cursor: tuple | None = None   # (connection, its cursor for the live normaliser; fk)
        # (ovl) A live ingest's writes (the meters row, the readings' INSERT, ingest_log, COMMIT)
        # running in a worker thread (``ingest(..., background=True)``) while the caller judges
        # the rows it returned: ``con`` waits for them (every statement of anyone on this store
        # comes after that COMMIT); ``live_failed``: the error such writes raised (the store rolled
        # them back), kept (a caller that judged their rows must not go on as if they were stored).
        self._pending: concurrent.futures.Future | None = None
        self._deferred: list | None = None
        self._worker: concurrent.futures.ThreadPoolExecutor | None = None
        self._worker_ident: int | None = None
        self.live_failed: BaseException | None = None
        self.live_wait_s = 0.0      # how long callers waited for those writes (the overlap's misses)
        self.live_bg_cpu_s = 0.0    # CPU the worker spent on them (thread time)
        memory = str(path) == ":memory:"
        if (read_only or not create) and not memory and not self.path.exists():
            raise StoreError(f"{self.path}: no such store (create one with `wattwatch ingest FILES --db {self.path}`)")
        if not memory and self.path.is_dir():
            raise StoreError(f"{self.path}: is a folder, not a store file")
        deadline = time.monotonic() + max(0.0, float(lock_wait_s))
        while True:
            try:
                self.con = duckdb.connect(str(self.path), read_only=read_only, config=dict(NO_EXTENSION_FETCH))
                break
            except duckdb.Error as exc:
                if "lock" in str(exc).lower() and time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise StoreError(_open_failure(self.path, read_only, exc)) from exc
        try:
            self.con.execute("SET TimeZone = 'UTC'")
            self.con.execute(f"SET memory_limit = '{memory_limit or os.environ.get('WATTWATCH_MEMORY_LIMIT', '1GB')}'")
            self.con.execute("SET preserve_insertion_order = false")
            if threads:
                self.con.execute(f"SET threads = {int(threads)}")
            fresh = self._check_foreign()
            if not fresh:
                self._check_version()
            elif read_only:
                raise StoreError(f"{self.path}: an empty DuckDB file, not a wattwatch store yet "
                                 f"(create one with `wattwatch ingest FILES --db {self.path}`)")
            if read_only:
                names = {r[0] for r in self.con.execute(
                    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
                lost = sorted({"readings_raw", "meters", "readings_hourly"} - names)
                if lost:
                    raise StoreError(f"{self.path}: damaged wattwatch store: table(s) {', '.join(lost)} missing")
            if not read_only:
                # One transaction: a kill while a store is being created leaves no half-made store
                # (a meta table without its schema_version row would be refused as damaged).
                self.con.execute("BEGIN TRANSACTION")
                try:
                    self._init_schema()
                    self._migrate()
                    self.con.execute("COMMIT")
                except BaseException as exc:
                    _rollback(self.con, self.path, exc)
                    raise
            self._legacy = self._count_legacy_hours()
        except StoreError:
            self.con.close()
            raise
        except duckdb.Error as exc:
            self.con.close()
            raise StoreError(f"{self.path}: cannot read store (damaged file?): {_first_line(exc)}") from exc

    # ------------------------------------------------------------------------------------ schema

    def _check_foreign(self) -> bool:
        """True for an empty database (a new store); raise for a DuckDB file that holds other
        tables but no wattwatch ``meta`` table (wattwatch never adds its tables to a foreign file)."""
        names = {r[0] for r in self.con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'main'").fetchall()}
        if not names:
            return True
        if "meta" not in names:
            shown = ", ".join(sorted(names)[:5]) + (", ..." if len(names) > 5 else "")
            raise StoreError(f"{self.path}: not a wattwatch store (a DuckDB file with other tables: {shown}); "
                             "give another --db path")
        return False

    def _init_schema(self) -> None:
        self.con.execute("CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR)")
        self.con.execute(_READINGS_DDL)
        self.con.execute(_HOURLY_DDL)
        self.con.execute(_LOG_DDL)
        self.con.execute(_METERS_DDL)
        self.con.execute(_CHANNELS_DDL)  # stores made before extra channels lack it
        self.con.execute(_readings_view(self._extra_channels()))
        from wattwatch.alerts.store import ensure_tables
        from wattwatch.detect.state import ensure_tables as ensure_state_tables

        ensure_tables(self.con)
        ensure_state_tables(self.con)
        self.con.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)])
        self.con.execute("INSERT OR IGNORE INTO meta VALUES ('store_version', ?)", [str(STORE_VERSION)])

    def _meta(self, key: str) -> list:
        try:
            return self.con.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchall()
        except duckdb.CatalogException as exc:
            raise StoreError(f"{self.path}: not a wattwatch store (no meta table)") from exc
        except duckdb.Error as exc:
            raise StoreError(f"{self.path}: not a wattwatch store (unreadable meta table: "
                             f"{_first_line(exc)})") from exc

    def _check_version(self) -> None:
        rows = self._meta("schema_version")
        if not rows:
            raise StoreError(f"{self.path}: damaged wattwatch store: its meta table has no schema_version "
                             "row; restore it from a backup or ingest into a new --db file")
        value = rows[0][0]
        try:
            version = int(str(value).strip())
        except ValueError:
            raise StoreError(f"{self.path}: damaged wattwatch store: schema_version is {value!r}, not a "
                             f"number (this wattwatch reads version {SCHEMA_VERSION})") from None
        if version != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema version {value} but this wattwatch "
                             f"reads version {SCHEMA_VERSION}")
        rows = self._meta("store_version")
        if rows:
            try:
                layout = int(str(rows[0][0]).strip())
            except ValueError:
                raise StoreError(f"{self.path}: damaged wattwatch store: store_version is {rows[0][0]!r}, "
                                 "not a number") from None
            if layout > STORE_VERSION or layout < 1:
                raise StoreError(f"{self.path}: store layout version {layout} but this wattwatch reads "
                                 f"layouts 1..{STORE_VERSION} (a newer wattwatch wrote it)")

    def _migrate(self) -> None:
        """Bring a store of an older layout up to :data:`STORE_VERSION` (columns added, nothing
        rewritten). Layout 1 had no per-reading register list in ``readings_hourly``; its hours
        keep their stored increment (``e_delta_kwh``) and are read as before."""
        have = {r[0] for r in self.con.execute("SELECT name FROM pragma_table_info('readings_hourly')").fetchall()}
        for name, typ in (("ts_list", "TIMESTAMPTZ[]"), ("e_list", "DOUBLE[]")):
            if name not in have:
                self.con.execute(f"ALTER TABLE readings_hourly ADD COLUMN {name} {typ}")
        self.con.execute("INSERT OR REPLACE INTO meta VALUES ('store_version', ?)", [str(STORE_VERSION)])

    def _count_legacy_hours(self) -> int:
        """Hourly rows written by layout 1 (no list of their readings' times)."""
        have = {r[0] for r in self.con.execute("SELECT name FROM pragma_table_info('readings_hourly')").fetchall()}
        if "ts_list" not in have:
            return -1 if "hour" in have else 0
        return int(self.con.execute("SELECT count(*) FROM readings_hourly WHERE ts_list IS NULL").fetchall()[0][0])

    def _extra_channels(self) -> list[str]:
        """The store's extra channels in the order they were added (none in an old store opened
        read-only, which has no ``channels`` table)."""
        try:
            rows = self.con.execute(
                "SELECT c.name FROM channels c JOIN pragma_table_info('readings_raw') p ON p.name = c.name "
                "ORDER BY p.cid").fetchall()
        except duckdb.CatalogException:
            return []
        return [r[0] for r in rows]

    def channels(self, live: bool = False) -> list[str]:
        """Channel names: the canonical ones, then the store's extra channels in the order they were
        added. ``live``: as the live ingest path last read them (no statement; this process is the
        store's only writer)."""
        if live:
            if self._live_extras is None:
                self._live_extras = self._extra_channels()
            return [*CHANNEL_NAMES, *self._live_extras]
        return [*CHANNEL_NAMES, *self._extra_channels()]

    def _add_channels(self, names: Sequence[str]) -> None:
        """Add extra channel columns to ``readings_raw`` (inside the caller's transaction)."""
        for name in names:
            err = extra_channel_error(name)
            if err is not None:
                raise ValueError(f"cannot store extra channel: {err}")
            self.con.execute(f"ALTER TABLE readings_raw ADD COLUMN {_q(name)} DOUBLE")
            self.con.execute("INSERT INTO channels VALUES (?, now())", [name])
        self.con.execute(_readings_view(self._extra_channels()))
        self._live_extras = None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The connection, once a live ingest's writes running in the worker are committed (or
        rolled back: their error is raised here, once; :attr:`live_failed` keeps it)."""
        if self._pending is not None and threading.get_ident() != self._worker_ident:
            self.settle()
        return self._con

    @con.setter
    def con(self, value) -> None:
        self._con = value

    def settle(self) -> None:
        """Wait for a live ingest's writes running in the worker (``ingest(..., background=True)``);
        raise their error (once: :attr:`live_failed` keeps it)."""
        fut = self._pending
        if fut is None:
            return
        t0 = time.perf_counter()
        try:
            fut.result()
        finally:
            self.live_wait_s += time.perf_counter() - t0
            if fut.done():   # (rovl) a wait interrupted (Ctrl-C) keeps them: the next one waits again
                self._pending = None
        # (an error: raised by fut.result() above, after the worker rolled the transaction back)

    def close(self) -> None:
        try:
            self.settle()
        finally:
            if self._worker is not None:
                self._worker.shutdown(wait=True)
                self._worker = None
            if self._live_cursor is not None:
                with contextlib.suppress(duckdb.Error):
                    self._live_cursor[1].close()
                self._live_cursor = None
            self._con.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ ingest

    def ingest(self, batches: Iterable, source: str, *, bytes_total: int = 0,
               on_progress: Callable[[int], None] | None = None, live: bool = False,
               stored_out: list | None = None, background: bool = False, poll=None,
               on_rows: Callable[[pa.Table], None] | None = None,
               then: Callable[[IngestCounts], Sequence[tuple[pa.Table, str]]] | None = None) -> IngestCounts:
        """Check, de-duplicate and merge one source in a single transaction.

        Parameters
        ----------
        batches : iterable of tuples
            ``(normalizer, raw table, unit, raw rejects, bytes read, relation)`` as produced by
            :func:`wattwatch.ingest.pipeline.ingest_path` and ``ingest_frame``, the normal callers.
            With a relation, the raw table only carries the schema and DuckDB streams the rows
            from the relation. Extra channels the normalised rows carry and the store lacks are
            added to it (in this transaction, so a failed source adds none).
        source : str
            Name recorded in ``ingest_log``.
        live : bool
            A watcher's small batch: the same checks, de-duplication and merge with fewer
            statements (the normalising statement prepared once per batch layout, the meters
            catalogue kept in memory, rows handed to DuckDB by name instead of bound relations).
            Readings after their meter's last stored one (beyond the duplicate tolerance) need no
            look-up in the store; only the others go through the stored-row match.
        stored_out : list, optional
            Receives, per merged chunk, ``(rows, touched)``: an Arrow table of the rows this ingest
            added to the store (``meter_id``, ``ts``, channels) and the meters whose readings already
            stored it may have changed (filled channels of a copy): for those the store, not these
            rows, says what changed.

        on_rows : callable, optional
            (adv2) Called with each chunk of checked readings (``meter_id``, ``ts``, channels) before
            they are merged: what the source gave, for a look at it as a whole (ingest's register check).
        then : callable, optional
            (le3) Called with the counts once every row is merged (``stored_out`` filled), inside the
            transaction: returns writes ``(table, sql)`` (``sql`` reading ``table`` as ``_t``) made in it,
            committed with the readings or not at all (a watcher's request to re-judge the meters
            these readings reach back into: ``runners/stream.py``).
        poll : (float, set or None), optional
            (lc; ``live`` only) The interval (s) of the poller that read these readings and the
            meters whose readings take its poll's time (None: every one): see :meth:`_merge`.
        background : bool
            (ovl; ``live`` only) Return once the rows and counts are known, the readings' and the
            meters' writes, ``ingest_log`` and the COMMIT running in a worker thread: the caller
            judges the rows meanwhile. Every later use of :attr:`con` (anyone's statement on this
            store) waits for that COMMIT first and raises what the writes raised (rolled back; kept
            in :attr:`live_failed`), so nothing the caller writes after its judgement (alerts) is
            stored before the readings it judged, and never for readings that were not.

        Any exception rolls the whole source back and propagates, but for one the COMMIT raises
        after committing (DuckDB's "Query interrupted" for a Ctrl-C during it): a
        :class:`CommittedError` (``result``: these counts, ``step`` "committing") says the source
        is stored.
        """
        counts = IngestCounts(source=source)
        t0 = time.perf_counter()
        con = self.con
        # Readings are doubles, for which DuckDB picks ALP anyway; naming it skips the analysis
        # of the other candidates (inserts ~25 % faster, same size). Other types fall back to
        # their defaults. (fast) A watcher's store keeps it set from its first live ingest on (a SET
        # and a RESET were ~0.7 ms CPU of every step); a batch ingest sets it and resets it after.
        # (rfast) The setting is DuckDB's GLOBAL one: it holds for every connection to this database
        # in the process, for every checkpoint (the only place it acts: how doubles are compressed
        # on disk, never what is read back). A watcher's process writes nothing else of note (no
        # compaction, retention or batch ingest: those are other processes, locked out while it
        # runs); only alerts' and state's few doubles are compressed as ALP too.
        if not getattr(self, "_alp_kept", False):
            con.execute("SET force_compression = 'alp'")
            self._alp_kept = live
        con.execute("BEGIN TRANSACTION")
        since = sigterm.raised()
        self._cat_staged = {}
        # Values an ingest drops for another copy's, said in its notes and counted (``conflicts``;
        # fast: a live ingest too, whose copies of stored readings are matched anyway).
        self._conflicts = _Conflicts()
        # (ovl) The last chunk's writes, run by ``_finish`` (in the worker with ``background``).
        self._deferred = [] if background and live else None
        handed = False
        try:
            if live:
                if self._live_extras is None:
                    self._live_extras = self._extra_channels()
                known = set(self._live_extras)
            else:
                known = set(self._extra_channels())
            carry_unit = None  # the source whose earlier blocks FOLD_CARRY holds
            for norm, raw, unit, raw_rejects, nbytes, relation in batches:
                counts.rejects.extend((unit, r.line, r.field, r.reason + (f" | {r.text}" if r.text else ""))
                                      for r in raw_rejects)
                counts.read += len(raw_rejects)
                # Wall-clock times in a zone with clock changes, read in blocks: each block places
                # its repeated hour by what the blocks before it said (``Normalizer.carry_sql``).
                carry = None
                if norm.carry_sql is not None and relation is None and not live:
                    if carry_unit != unit:
                        con.execute(f"CREATE OR REPLACE TEMP TABLE {FOLD_CARRY} "
                                    "(_c_meter VARCHAR, _c_amb TIMESTAMP, _c_plain TIMESTAMP)")
                        carry_unit = unit
                    carry = FOLD_CARRY
                for res, rel in (self._normalised_live(norm, raw) if live and relation is None
                                 else self._normalised(norm, raw, relation, carry)):
                    counts.read += res.num_rows
                    for c in norm.dropped:   # values given (not blank), the bad ones among them
                        counts.given[c] = counts.given.get(c, 0) + res.num_rows - res[c].null_count
                    marked = pc.or_(res["_bad"], res["_drop"])
                    if pc.any(marked).as_py():
                        sel = res.filter(marked)
                        lines = sel["_line"].combine_chunks()
                        if rel is None:  # the raw rows are in memory: explain just the bad ones
                            bad_raw = raw.filter(pc.is_in(raw[LINE], value_set=lines))
                            why = self._query(bad_raw, norm.explain("_t"))
                        else:
                            why = self._query(pa.table({"_line": lines}), norm.explain(
                                f"(SELECT * FROM {rel} WHERE _line IN (SELECT _line FROM _t))"))
                        kept = _explained(counts, unit, norm, why.to_arrow_table(), sel)
                        res = res.filter(pc.invert(marked))
                        if kept.num_rows:
                            res = pa.concat_tables([res, kept.select(res.column_names).cast(res.schema)])
                    if res.num_rows:
                        new = [c for c in res.column_names if c not in _KEYS and c not in _CANONICAL
                               and c not in known]
                        if new:
                            self._add_channels(new)
                            known.update(new)
                        good = res.drop_columns(["_bad", "_drop"])
                        if on_rows is not None:
                            on_rows(good)
                        stored, merged = self._merge(good, live, stored_out, poll) \
                            if live or stored_out is not None else self._merge(good)
                        counts.stored += stored
                        counts.merged += merged
                sigterm.raise_if_lost(since)   # (flaky) a Ctrl-C DuckDB lost in this block's statements
                if on_progress:
                    on_progress(nbytes)
            counts.rejects.sort(key=_reject_key)
            counts.rejected = len(counts.rejects)
            counts.dropped.sort(key=_reject_key)
            for c in counts.mostly_bad:
                n, given = counts.bad_values[c], counts.given.get(c, 0)
                eg = next((r for r in counts.rejects + counts.dropped if c in r[3].split(":", 2)[:2]), None)
                counts.notes.append(
                    f"{source}: {c}: {n:,} of its {given:,} value(s) unreadable or implausible, most of the "
                    f"channel: a mapping mistake (its unit, scale or column)? "
                    + (f"e.g. line {eg[1]}: {eg[3]}. " if eg else "")
                    + f"The readings were kept without {c} where they had another channel (those without one "
                    f"were rejected); fix the mapping and ingest again to fill {c} in")
            cf = self._conflicts
            counts.conflicts = cf.copies + cf.stored
            if cf.copies:
                counts.notes.append(
                    f"{source}: {cf.copies:,} reading(s) given more than once for one meter and instant (or within "
                    f"a retransmission's jitter) "
                    f"with different values; the most complete row (then the earliest, then the first in the "
                    f"file) was kept, the other values dropped ({cf.copies_eg})")
            if cf.stored:
                counts.notes.append(
                    f"{source}: {cf.stored:,} reading(s) given again with different values from the "
                    f"reading already stored for that meter and instant "
                    # (rfast) a watcher's log says it too (fast): no file there
                    + ("(sent before: a correction or a replay)" if live else
                       "(earlier in the file, or from another file)")
                    + f"; the stored values were kept, these dropped ({cf.stored_eg})")
            counts.duplicates = counts.read - counts.rejected - counts.stored - counts.merged
            counts.seconds = time.perf_counter() - t0
            for table, sql in (then(counts) if then is not None else ()):
                self._write(table, sql)
            sigterm.raise_if_lost(since)       # not committed over a lost Ctrl-C
            deferred, self._deferred = self._deferred, None
            if deferred is not None:
                # (ovl) The rows and counts are known: the writes go on in the worker, the caller
                # judges meanwhile; ``con`` waits for them (and raises their error) for anyone.
                if self._worker is None:
                    self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="wattwatch-ingest")
                    self._worker_ident = self._worker.submit(threading.get_ident).result()
                self._pending = self._worker.submit(self._finish_bg, con, deferred, source, bytes_total, counts)
                handed = True
                return counts
            self._finish(con, (), source, bytes_total, counts)
        except BaseException as exc:
            if not handed:
                self._failed_ingest(con, source, counts, exc, getattr(exc, "_ww_committing", False))
            raise
        finally:
            if not live:
                self._alp_kept = False
                try:
                    con.execute("RESET force_compression")
                except duckdb.Error:
                    pass
        return counts

    def _finish(self, con, deferred, source: str, bytes_total: int, counts: IngestCounts) -> None:
        """An ingest's last statements on ``con`` (its transaction open): the writes ``deferred``
        (``(table, sql)``: ``sql`` with ``table`` as ``_t``), the ``ingest_log`` row and the COMMIT;
        then the in-memory catalogue takes what the transaction staged."""
        for table, sql in deferred:
            _t = table  # noqa: F841 - found by name by DuckDB
            con.execute(self._parsed_write(sql))
        log = "INSERT INTO ingest_log VALUES (?, ?, ?, ?, ?, ?, ?, now(), ?)"
        con.execute(
            self._parsed_write(log) if deferred else log,   # (fk: parsed for a watcher's background writes)
            [source, bytes_total, counts.read, counts.stored, counts.merged, counts.duplicates,
             counts.rejected, counts.seconds],
        )
        try:
            con.execute("COMMIT")
        except BaseException as exc:
            exc._ww_committing = True   # asked of the store whether it committed (_failed_ingest)
            raise
        if self._cat_cache is not None:
            self._cat_cache.update(self._cat_staged)
        self._cat_staged = {}

    def _finish_bg(self, con, deferred, source: str, bytes_total: int, counts: IngestCounts) -> None:
        """:meth:`_finish` in the worker thread (``ingest(..., background=True)``): its error rolls
        the ingest back and is kept (:attr:`live_failed`) and raised to whoever waits next."""
        c0 = time.thread_time()
        try:
            self._finish(con, deferred, source, bytes_total, counts)
        except BaseException as exc:
            try:
                self._failed_ingest(con, source, counts, exc, getattr(exc, "_ww_committing", False))
            except BaseException as err:
                self.live_failed = err
                raise
            self.live_failed = exc
            raise
        finally:
            self.live_bg_cpu_s += time.thread_time() - c0

    def _failed_ingest(self, con, source: str, counts: IngestCounts, exc: BaseException, committing: bool) -> None:
        """After ``exc`` in an ingest: forget the live path's memory; a COMMIT that raised after
        committing is a :class:`CommittedError`; otherwise roll back (a full disk said so)."""
        self._deferred = None
        self._forget_live()
        # (st2, as rfix3 for compact) DuckDB's Python client commits, then raises "Query
        # interrupted" for a Ctrl-C during the COMMIT: asked of the store, not assumed.
        if committing and _ingested_by(con, source, counts):
            raise CommittedError(
                f"{self.path}: {source} was stored (committed), but its COMMIT raised: "
                + ("interrupted (Ctrl-C)" if interrupted(exc) else f"{type(exc).__name__}: {_first_line(exc)}")
                + "; the store keeps it", counts, "committing") from exc
        _rollback(con, self.path, exc)

    def _write(self, table: pa.Table, sql: str) -> None:
        """A live merge's write: run now, or (a background ingest) kept for :meth:`_finish`."""
        if self._deferred is not None:
            self._deferred.append((table, sql))
        else:
            self._run(table, self._parsed_write(sql))

    def _parsed_write(self, sql: str):
        """(fk) ``sql`` (one statement) as DuckDB's parsed statement, parsed once per text
        (:attr:`_writes_parsed`); the text itself if it is not one statement."""
        stmt = self._writes_parsed.get(sql)
        if stmt is None:
            parsed = self._con.extract_statements(sql)
            if len(parsed) != 1:
                return sql
            if len(self._writes_parsed) >= 16:   # (other channel layouts' INSERTs)
                self._writes_parsed.clear()
            stmt = self._writes_parsed[sql] = parsed[0]
        return stmt

    def _query(self, table: pa.Table, sql: str):
        """Run ``sql`` with ``table`` visible as ``_t``.

        Not ``register``: inside a transaction a registered (then dropped) view keeps its Arrow
        table alive until COMMIT, so a large file would hold every batch in memory.
        """
        since = sigterm.raised()
        with unmasked():
            rel = self.con.from_arrow(table).query("_t", sql)
        sigterm.raise_if_lost(since)   # (flaky) a Ctrl-C DuckDB's binder lost (sigterm's module)
        return rel

    def _run(self, table: pa.Table, sql):
        """Run ``sql`` with ``table`` visible as ``_t`` through DuckDB's scan of the caller's
        variables: no relation is bound first (a few ms a statement less than :meth:`_query`).
        For the live path's small tables (a transaction may keep them alive until it ends).
        ``sql``: text, or a statement DuckDB parsed (``extract_statements``; fo)"""
        _t = table  # noqa: F841 - found by name by DuckDB
        since = sigterm.raised()
        out = self.con.execute(sql)
        sigterm.raise_if_lost(since)
        return out

    def _forget_live(self) -> None:
        """After a rollback: what the live path keeps in memory may no longer be the store's."""
        self._cat_cache = None
        self._cat_staged = {}
        self._live_extras = None

    def _normalised_live(self, norm, raw: pa.Table):
        """:meth:`_normalised` for a small in-memory batch: one statement over the Arrow table.

        Cheaper than a statement prepared over a temp table (fill it, execute, empty it: three
        statements, ~6 ms a step of 200 readings against ~4 ms; 2026-12-04, live23); the Arrow
        result is copied once more than a relation's would be, which for a watcher's batch is
        less than a relation's extra bind costs.
        """
        sql = norm.fast("_t")
        stmt = self._live_parsed.get(sql)
        if stmt is None:
            parsed = self.con.extract_statements(sql)
            if len(parsed) != 1:   # (not expected: one SELECT) as text, as before
                yield self._run(raw, sql).to_arrow_table(), None
                return
            if len(self._live_parsed) >= 8:   # (old time bounds' texts)
                self._live_parsed.clear()
            stmt = self._live_parsed[sql] = parsed[0]
        # (fk) Run on a cursor of its own planned without DuckDB's optimizer: a projection of the
        # batch's columns (casts, NULLIF, range tests; no join, filter or aggregate to rewrite) whose
        # ~100 expressions the optimizer walked at every step for nothing (in a step: ~3.4-4.2 ->
        # ~2.1-2.4 ms CPU). It reads only ``_t`` (no table of the store), so it needs no part of the
        # ingest's transaction; the cursor has the connection's settings but the optimizer (its
        # TimeZone set as ``__init__`` sets the connection's: a TIMESTAMPTZ's Arrow zone is the
        # session's). Toggling the optimizer on the connection instead saved nothing inside the
        # ingest's open transaction (measured). The same rows: the live ingest tests compare them
        # with the batch path's optimised statement.
        # (rfk) Only for a watcher's small step without wall-clock times: unoptimised, the
        # statement over wall-clock times (a window over each meter and a join to the carry) took
        # ~1.3x the CPU at 20,000 rows and ~1.9x at 100,000 (63 against 49, 439 against 229 ms), and
        # the plain one is no cheaper from ~5,000 rows on (~1.3x at 100,000); those run on the
        # connection, optimised, as before fk.
        if raw.num_rows > NOOPT_MAX_ROWS or norm.carry_sql is not None:
            yield self._run(raw, stmt).to_arrow_table(), None
            return
        cur = self._norm_cursor()
        _t = raw  # noqa: F841 - found by name by DuckDB
        since = sigterm.raised()
        out = cur.execute(stmt).to_arrow_table()
        sigterm.raise_if_lost(since)
        yield out, None

    def _norm_cursor(self):
        """(fk) The cursor the live normalising statement runs on (made once per connection)."""
        con = self.con
        held = self._live_cursor
        if held is None or held[0] is not con:
            if held is not None:   # (the connection was replaced: its cursor goes with it)
                with contextlib.suppress(duckdb.Error):
                    held[1].close()
            cur = con.cursor()
            cur.execute("SET TimeZone = 'UTC'")
            cur.execute("PRAGMA disable_optimizer")
            self._live_cursor = held = (con, cur)
        return held[1]

    def _normalised(self, norm, raw: pa.Table, relation: str | None, carry: str | None = None):
        """Yield ``(normalised arrow table, relation or None)`` chunks of one raw batch. ``carry``:
        the table of what the file's earlier blocks said about repeated wall-clock hours, brought
        up to date with this block (in-memory batches only)."""
        if relation is None:
            # DuckDB scans an Arrow table in parallel only across its record batches.
            chunked = pa.Table.from_batches(raw.to_batches(max_chunksize=1 << 15), schema=raw.schema)
            out = self._query(chunked, norm.fast("_t", carry)).to_arrow_table()
            if carry is not None:
                self._query(chunked, f"CREATE OR REPLACE TEMP TABLE {carry} AS SELECT _c_meter, max(_c_amb) AS "
                            f"_c_amb, max(_c_plain) AS _c_plain FROM (SELECT * FROM {carry} UNION ALL "
                            f"{norm.carry('_t')}) GROUP BY _c_meter")
            yield out, None
            return
        # A second cursor streams the file while this connection merges (and holds the transaction).
        cur = self.con.cursor()

        def chunks():
            reader = cur.sql(norm.fast(relation)).to_arrow_reader(MERGE_CHUNK_ROWS)
            while True:
                chunk, rows = [], 0
                for batch in reader:
                    chunk.append(batch)
                    rows += batch.num_rows
                    if rows >= MERGE_CHUNK_ROWS:
                        break
                if not chunk:
                    return
                yield pa.Table.from_batches(chunk)

        try:
            for table in prefetch(chunks()):
                yield table, relation
        finally:
            cur.close()

    def _merge(self, good: pa.Table, live: bool = False, stored_out: list | None = None,
               poll=None) -> tuple[int, int]:
        """Merge checked rows into ``readings``; return (rows added, rows merged into stored ones).

        ``good`` holds ``_line``, ``meter_id``, ``ts``, the canonical channels and any extra
        channels (already columns of ``readings_raw``). ``live``, ``stored_out``: see :meth:`ingest`.
        """
        con = self.con
        if self._deferred:   # (ovl) an earlier chunk's writes: this chunk's match must see them
            for table, sql in self._deferred:
                self._run(table, sql)
            self._deferred.clear()
        chans = [c for c in good.column_names if c not in _KEYS]
        cap_us = int(self.jitter_tol_s * 1e6)
        enc = pc.dictionary_encode(good["meter_id"]).combine_chunks()
        codes = enc.indices.to_numpy().astype(np.int64)
        names = enc.dictionary.to_pylist()
        t = pc.cast(good["ts"], pa.int64()).to_numpy()

        # A sorted view by meter and time (the table itself is never reordered).
        order = _argsort2(codes, t, len(names), stable=True)
        cs, ts_ = codes[order], t[order]
        same = cs[1:] == cs[:-1]
        gap = np.diff(ts_)

        # Cadence per meter: 75th percentile of the positive gaps (robust to duplicates below 75 %
        # and to packet loss); meters with too few gaps here use the cadence stored for them.
        cat = self._live_catalogue(names) if live else self._catalogue(names)
        known = np.array([cat[m][2] if m in cat else 0.0 for m in names], float)
        cadence = known.copy()
        pos = same & (gap > 0)
        q_codes, q75 = _group_quantile(cs[1:][pos], gap[pos], len(names), 0.75, min_count=2)
        cadence[q_codes] = q75
        # (fl2) Packet loss lengthens the gaps too: a live batch of a meter that lost most of its
        # polls (a few readings, 0.25 s, then 1.25 s apart) gave a 75th percentile of 1.25 s, so
        # readings 0.25 s apart were taken for copies and dropped (and that cadence was stored for
        # the next batches). A batch lengthens a meter's known cadence only where none of its gaps
        # (between its readings, and to the meter's stored first and last) would thereby turn from
        # two readings into one: a gap at the known cadence (within its tolerance) and within the new
        # tolerance says the meter still reads at its known cadence and this batch lost readings.
        longer = (known > 0) & (cadence > known)
        edges = None   # (_edge_gaps, found once for both rules below where either needs them)
        if longer.any():
            tol_k = np.minimum(cap_us, 0.25 * known)
            tol_b = np.minimum(cap_us, 0.25 * cadence)
            # the batch's first reading after the stored last one, its last before the stored first
            edges = _edge_gaps(names, cat, cs, ts_, same)
            b_codes, b_gap, _ = edges
            g_codes, g = np.concatenate([cs[1:][pos], b_codes]), np.concatenate([gap[pos], b_gap])
            # (rfl2) only a gap of one known cadence (within its tolerance) says so: a copy re-sent
            # later than the known tolerance (a meter gone from 1 s to 15 s whose gateway re-sends
            # each reading 0.5 s late) is no reading at the known cadence, and kept the known one
            # (its copies stored as readings, in every file after it).
            seen = longer[g_codes] & (np.abs(g - known[g_codes]) <= tol_k[g_codes]) & (g <= tol_b[g_codes])
            keep_known = np.zeros(len(names), bool)
            keep_known[g_codes[seen]] = True
            cadence[keep_known] = known[keep_known]
        if poll is not None and poll[0] > 0:
            cadence = self._poll_cadence(poll, names, cadence, cs, gap, pos, cap_us,
                                         lambda: edges or _edge_gaps(names, cat, cs, ts_, same))
        tol = np.minimum(cap_us, 0.25 * cadence).astype(np.int64)

        keep = np.ones(good.num_rows, bool)
        merged_tbl = None
        dup = same & (gap <= tol[cs[1:]])
        if dup.any():
            group = np.concatenate([[0], np.cumsum(~dup)])
            multi = np.bincount(group)[group] > 1
            m_rows, m_group = order[multi], group[multi]
            sub = good.take(pa.array(m_rows))
            nn = np.zeros(len(m_rows), np.int8)
            for c in chans:
                nn += pc.is_valid(sub[c]).to_numpy(zero_copy_only=False)
            # Best row of a group: most complete, then earliest, then first in the file; the
            # others only fill its missing channels (pandas' first() skips NaN per column).
            rank = np.lexsort((sub["_line"].to_numpy(), t[m_rows], -nn, m_group))
            df = sub.take(pa.array(rank)).to_pandas()
            df["_g"] = m_group[rank]
            firsts = df.groupby("_g", sort=False).first().reset_index(drop=True)
            self._note_conflicts(df, chans)
            merged_tbl = pa.Table.from_pandas(firsts[good.column_names], schema=good.schema, preserve_index=False)
            keep[m_rows] = False

        # Series ids: known meters keep theirs, new ones get the next free ids.
        sids = np.array([cat[m][3] if m in cat else -1 for m in names], np.int64)
        new = sids < 0
        if new.any():
            if live:
                base = max((v[3] for d in (self._cat_cache, self._cat_staged) for v in d.values()), default=0)
            else:
                base = con.execute("SELECT coalesce(max(sid), 0) FROM meters").fetchall()[0][0]
            sids[new] = base + 1 + np.arange(int(new.sum()))

        # Per-meter span of this chunk, for the overlap test against stored readings.
        starts = np.flatnonzero(np.concatenate([[True], ~same]))
        ends = np.concatenate([starts[1:], [len(cs)]]) - 1
        lo = np.zeros(len(names), np.int64)
        hi = np.zeros(len(names), np.int64)
        n_per = np.zeros(len(names), np.int64)
        lo[cs[starts]], hi[cs[starts]], n_per[cs[starts]] = ts_[starts], ts_[ends], ends - starts + 1
        overlap = [i for i, m in enumerate(names) if m in cat and cat[m][0] is not None
                   and cat[m][0] - tol[i] <= hi[i] and lo[i] <= cat[m][1] + tol[i]]
        merged = 0
        # The series whose stored readings a copy filled: asked of the UPDATE only when the caller
        # takes the rows back (a batch ingest filling millions of readings would fetch them all).
        filled: set[int] | None = set() if stored_out is not None else None
        changed: list | None = [] if stored_out is not None else None
        if overlap:
            merged, merged_tbl = self._match_stored(good, codes, t, keep, merged_tbl, names, sids, overlap, tol,
                                                    chans, filled, cat, changed)
        # Catalogue: series id, span and cadence per meter, so later chunks and files skip the
        # stored-row lookup where they do not overlap.
        span = pa.table({
            "meter_id": pa.array(names, pa.string()), "sid": pa.array(sids, pa.int32()),
            "first_us": pa.array(lo), "last_us": pa.array(hi), "n": pa.array(n_per), "cadence_us": pa.array(cadence)})
        upsert = ("INSERT INTO meters SELECT meter_id, sid, make_timestamptz(first_us), make_timestamptz(last_us), "
                  "cadence_us / 1e6 FROM _t WHERE n > 0 ON CONFLICT (meter_id) DO UPDATE SET "
                  "first_ts = least(meters.first_ts, EXCLUDED.first_ts), last_ts = greatest(meters.last_ts, EXCLUDED.last_ts), "
                  "cadence_s = CASE WHEN EXCLUDED.cadence_s > 0 THEN EXCLUDED.cadence_s ELSE meters.cadence_s END")
        if live and not new.any():
            # Every meter already has its row (the in-memory catalogue is the whole table): the same
            # update without the conflict check (~1 ms less a step at 200 meters).
            self._write(span, "UPDATE meters SET first_ts = least(meters.first_ts, make_timestamptz(_t.first_us)), "
                      "last_ts = greatest(meters.last_ts, make_timestamptz(_t.last_us)), "
                      "cadence_s = CASE WHEN _t.cadence_us > 0 THEN _t.cadence_us / 1e6 ELSE meters.cadence_s END "
                      "FROM _t WHERE meters.meter_id = _t.meter_id AND _t.n > 0")
        else:
            (self._write if live else self._query)(span, upsert)
        if self._cat_cache is not None:
            self._stage_catalogue(names, sids, lo, hi, n_per, cadence, cat)
        stored = int(keep.sum())
        # Columns named: a store with extra channels has more columns than this batch may carry.
        cols = ", ".join(_q(c) for c in chans)
        insert = f"INSERT INTO readings_raw (sid, ts, {cols}) SELECT _sid, ts, {cols} FROM _t"
        if live or stored_out is not None:   # one append of every new row
            kept = good if stored == len(keep) else good.filter(pa.array(keep))
            if merged_tbl is not None and merged_tbl.num_rows:
                kept = pa.concat_tables([kept, merged_tbl.select(kept.column_names)])
            k_codes = pc.index_in(kept["meter_id"], value_set=pa.array(names, pa.string())).to_numpy()
            (self._write if live else self._query)(kept.append_column("_sid", pa.array(sids[k_codes], pa.int32())), insert)
            if stored_out is not None:
                # Meters whose stored readings this changed: a copy that matched a stored reading
                # and filled none of its channels changed nothing the caller holds (the kept rows
                # are all that is new), so those meters need no read-back.
                touched = {names[i] for i in overlap if int(sids[i]) in filled} if merged else set()
                # (b2) The copies that fill or differ, by meter and time: a caller judging readings as
                # they come re-judges those (late data), not a plain repeat of a stored reading.
                chg = None
                if changed and any(len(c) for c, _, _ in changed):
                    chg = pd.DataFrame({"meter_id": np.asarray(names, dtype=object)[np.concatenate([c for c, _, _ in changed])],
                                        "t": np.concatenate([x for _, x, _ in changed]).astype(np.int64),
                                        "conflict": np.concatenate([x for _, _, x in changed]).astype(bool)})
                stored_out.append((kept.select(["meter_id", "ts", *chans]), touched, chg))
            return kept.num_rows, merged
        final = good.append_column("_sid", pa.array(sids[codes], pa.int32())).append_column("_keep", pa.array(keep))
        self._query(final, insert + ("" if stored == len(keep) else " WHERE _keep"))
        if merged_tbl is not None and merged_tbl.num_rows:
            m_codes = pc.index_in(merged_tbl["meter_id"], value_set=pa.array(names, pa.string())).to_numpy()
            self._query(merged_tbl.append_column("_sid", pa.array(sids[m_codes], pa.int32())), insert)
            stored += merged_tbl.num_rows
        return stored, merged

    def _note_conflicts(self, df: pd.DataFrame, chans: Sequence[str]) -> None:
        """Count the duplicate groups (``df``: their rows, best first per ``_g``) whose rows give one
        channel two different values, and keep the first such group as an example: the kept row's
        values win and the others are dropped, which is said (:attr:`IngestCounts.notes`), not
        done silently. A retransmission repeats its values and is no conflict."""
        if not chans or df.empty:
            return
        g = df.groupby("_g", sort=False)
        diff = g[list(chans)].nunique(dropna=True).gt(1)
        bad = diff.any(axis=1)
        n = int(bad.sum())
        if not n:
            return
        self._conflicts.copies += n
        if self._conflicts.copies_eg is None:
            first = bad.index[bad.to_numpy()][0]
            rows = df[df["_g"] == first]
            cols = [c for c in chans if diff.loc[first, c]][:3]
            vals = "; ".join(f"{c} " + " vs ".join(f"{v:g}" for v in rows[c]) for c in cols)
            lines = [int(x) for x in rows["_line"]]
            ts = pd.Timestamp(rows["ts"].iloc[0])
            ts = (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).isoformat().replace("+00:00", "Z")
            self._conflicts.copies_eg = (f"e.g. meter {rows['meter_id'].iloc[0]} at {ts}, lines {lines[0]} (kept), "
                                  f"{', '.join(map(str, lines[1:]))}: {vals}")

    def _live_catalogue(self, meter_ids: list[str]) -> dict[str, tuple[int | None, int | None, float, int]]:
        """:meth:`_catalogue` from memory (the whole meters table is read once)."""
        if self._cat_cache is None:
            rows = self.con.execute("SELECT meter_id, epoch_us(first_ts), epoch_us(last_ts), "
                                    "coalesce(cadence_s, 0) * 1e6, sid FROM meters").fetchall()
            self._cat_cache = {r[0]: (r[1], r[2], float(r[3]), int(r[4])) for r in rows}
        out = {}
        for m in meter_ids:
            v = self._cat_staged.get(m) or self._cat_cache.get(m)
            if v is not None:
                out[m] = v
        return out

    @staticmethod
    def _poll_cadence(poll, names, cadence, cs, gap, pos, cap_us, edges) -> np.ndarray:
        """(lc) A poller's interval as the cadence of the meters whose readings take its poll's
        time, where the cadence this batch (or the store) says is longer only because polls were
        lost: a meter's *first* live batch with lost polls (0, 0.25, then 1.5 s: a 75th percentile of
        1 s) made 0.25 s gaps copies (readings dropped) and was stored as the meter's cadence, so the
        next short batches lost their first reading too (fl2's open item). The interval is taken
        where a gap of one poll or more (less its tolerance; between the batch's readings or to the
        stored span's ends) would otherwise turn two readings into a copy: two readings of a meter
        that takes the poll's time, a poll or more apart, are two polls (rlc: a first batch that
        kept only polls 0, 2 and 11 had no gap of exactly one poll, and its 2-s gap was merged at a
        9-s cadence). A meter whose gaps are all beyond its tolerance keeps its own cadence.
        ``gap``, ``pos``: the sorted batch's gaps and which are positive gaps of one meter; ``edges``:
        returns :func:`_edge_gaps` of the batch."""
        poll_us = float(poll[0]) * 1e6
        only = poll[1]
        paced = np.array([only is None or m in only for m in names], bool)
        tol_p = min(cap_us, 0.25 * poll_us)
        over = paced & (cadence > poll_us + tol_p)
        if not over.any():
            return cadence
        b_codes, b_gap, b_ok = edges()
        g_codes = np.concatenate([cs[1:][pos], b_codes])
        g = np.concatenate([gap[pos], b_gap])
        ok = np.concatenate([np.ones(int(pos.sum()), bool), b_ok])
        tol_c = np.minimum(cap_us, 0.25 * cadence)
        hit = ok & over[g_codes] & (g >= poll_us - tol_p) & (g <= tol_c[g_codes])
        if hit.any():
            cadence = cadence.copy()
            cadence[np.unique(g_codes[hit])] = poll_us
        return cadence

    def _stage_catalogue(self, names, sids, lo, hi, n_per, cadence, cat) -> None:
        """What the meters upsert just wrote, as the in-memory catalogue will read it back."""
        staged, cache = self._cat_staged, self._cat_cache
        idx = np.flatnonzero(n_per > 0)
        # written in seconds, read back in µs, as DuckDB does; NaN: none here, the old one kept
        # (ovl: the columns converted once, not number by number: ~0.5 ms a step at 200 meters)
        cad = np.where(cadence[idx] > 0, cadence[idx] / 1e6 * 1e6, np.nan).tolist()
        for m, a, b, c, sid in zip([names[i] for i in idx], lo[idx].tolist(), hi[idx].tolist(), cad,
                                   sids[idx].tolist()):
            old = staged.get(m) or cache.get(m)
            if old is None or old[0] is None:
                staged[m] = (a, b, c if c == c else 0.0, sid)
            else:
                staged[m] = (old[0] if old[0] <= a else a, old[1] if old[1] >= b else b, c if c == c else old[2], sid)

    def _catalogue(self, meter_ids: list[str]) -> dict[str, tuple[int | None, int | None, float, int]]:
        """(first µs, last µs, cadence µs, sid) of each known meter."""
        if not meter_ids:
            return {}
        rows = self._query(pa.table({"meter_id": pa.array(meter_ids, pa.string())}),
            "SELECT m.meter_id, epoch_us(first_ts), epoch_us(last_ts), coalesce(cadence_s, 0) * 1e6, sid "
            "FROM meters m SEMI JOIN _t USING (meter_id)").fetchall()
        return {r[0]: (r[1], r[2], float(r[3]), int(r[4])) for r in rows}

    def _match_stored(self, good: pa.Table, codes: np.ndarray, t: np.ndarray, keep: np.ndarray,
                      merged_tbl: pa.Table | None, names: list[str], sids: np.ndarray, overlap: list[int],
                      tol: np.ndarray, chans: Sequence[str] = CHANNEL_NAMES,
                      filled: set[int] | None = None, cat: dict | None = None,
                      changed: list | None = None) -> tuple[int, pa.Table | None]:
        """Find candidate rows that a stored reading already holds, fill that reading's gaps.

        Candidates are the rows of ``good`` still marked in ``keep`` plus ``merged_tbl``; matched
        ones are cleared from ``keep`` (in place) and dropped from ``merged_tbl``. ``filled``, when
        given, receives the series ids whose stored readings a copy filled (changed); ``changed``, when
        given, ``(meter codes, stored times)`` of the matched copies that fill a channel or give another
        value than the stored reading (:func:`_differs`; the others repeat it): the time of the stored
        reading matched, which a judgement read, not the copy's own. ``cat``: the
        catalogue of ``names`` (:meth:`_catalogue`), to size the stored side read at a time.

        A candidate matches the nearest stored reading of its meter within its meter's ``tol``
        (the earlier one when two are as near; a layout-1 compacted hour, whose readings' times
        are unknown, when no stored reading has its very time). The stored side (the raw readings
        and the times of compacted ones, within each meter's span of candidates) is read once and
        matched on sorted arrays (st2: two ASOF joins in DuckDB took most of a re-ingest's time);
        conflicts and the channels a copy fills are told from the values read with it, so the
        UPDATE is made only for the stored readings a copy fills.
        """
        n_good = len(codes)
        c_codes, c_t = codes, t
        if merged_tbl is not None:
            m_codes = pc.index_in(merged_tbl["meter_id"], value_set=pa.array(names, pa.string())).to_numpy()
            c_codes = np.concatenate([codes, m_codes])
            c_t = np.concatenate([t, pc.cast(merged_tbl["ts"], pa.int64()).to_numpy()])
        cand = np.concatenate([keep, np.ones(len(c_codes) - n_good, bool)])
        sel = np.flatnonzero(cand & np.isin(c_codes, overlap))
        if len(sel) == 0:
            return 0, merged_tbl
        p_code, p_t = c_codes[sel], c_t[sel]
        # The stored side is read by (meter, hour) buckets: the hours each candidate's window
        # (its time +- its meter's tolerance) touches (rst2: by each meter's whole span of
        # candidates, a late reading a year back read the whole year). Meters are read in groups of
        # about MATCH_ROWS stored readings (estimated from the catalogue: hours over cadence).
        p_tol = tol[p_code]
        base = (int(p_t.min()) - int(p_tol.max())) // _HOUR_US * _HOUR_US
        b_lo, b_hi = (p_t - p_tol - base) // _HOUR_US, (p_t + p_tol - base) // _HOUR_US
        nb = b_hi - b_lo + 1
        if nb.max() > 2:
            rep = np.repeat(np.arange(len(p_t)), nb)
            bc, bk = p_code[rep], b_lo[rep] + (np.arange(len(rep)) - np.repeat(np.cumsum(nb) - nb, nb))
        elif nb.max() == 2:   # (a window across an hour's edge)
            two = nb == 2
            bc, bk = np.concatenate([p_code, p_code[two]]), np.concatenate([b_lo, b_hi[two]])
        else:
            bc, bk = p_code, b_lo
        width = int(bk.max()) + 1
        if len(names) * width <= max(1 << 22, 4 * len(bk)):   # few (meter, hour) pairs: marked, not sorted
            mark = np.zeros(len(names) * width, bool)
            mark[bc * width + bk] = True
            pairs = np.flatnonzero(mark)
        else:
            pairs = np.unique(bc * width + bk)
        w_code, w_b = pairs // width, pairs % width
        u, first = np.unique(w_code, return_index=True)   # meters (sorted), their first bucket
        n_b = np.diff(np.append(first, len(pairs)))
        est = np.bincount(np.searchsorted(u, p_code), minlength=len(u)).astype(float)
        if cat:
            for k, i in enumerate(u):
                c = cat.get(names[i])
                if c is not None and c[0] is not None and c[2] > 0:
                    est[k] = n_b[k] * (_HOUR_US / c[2] + 1)
        group = ((np.cumsum(est) - est) // MATCH_ROWS).astype(np.int64)
        w_group = np.repeat(group, n_b)
        n_ch = len(chans)
        # Per group: the candidates matched (positions in ``sel``) and whether to a compacted
        # reading; for those matched to a raw one, its time and values (valid where ``ok``).
        m_at, m_comp, r_at, r_old, r_val, r_ok = [], [], [], [], [], []
        for g in np.unique(group):
            gu = u[group == g]
            gw = w_group == g
            w = pa.table({"sid": pa.array(sids[w_code[gw]], pa.int32()), "b": pa.array(w_b[gw])})
            at = np.flatnonzero(np.isin(p_code, gu)) if len(gu) < len(u) else np.arange(len(p_code))
            res = self._stored_near(w, chans, base)
            m = _nearest(sids[p_code[at]], p_t[at], tol[p_code[at]], res)
            if m is None:
                continue
            j, hit, old, comp = m
            m_at.append(at[hit])
            m_comp.append(comp)
            raw = ~comp   # (a layout-1 hour, j = -1, is compacted)
            jr = j[raw] if res["at"] is None else res["at"][j[raw]]
            r_at.append(at[hit][raw])
            r_old.append(old[raw])
            r_val.append([res["values"][k][jr] for k in range(n_ch)])
            r_ok.append([res["valid"][k][jr] for k in range(n_ch)])
        if not m_at:
            return 0, merged_tbl

        def cat_(parts: list, order: np.ndarray | None) -> np.ndarray:
            out = parts[0] if len(parts) == 1 else np.concatenate(parts)
            return out if order is None else out[order]

        def ascending(parts: list) -> np.ndarray | None:   # the order putting groups' rows back in ``sel``'s
            x = cat_(parts, None)
            return None if len(x) < 2 or np.all(x[1:] > x[:-1]) else np.argsort(x, kind="stable")

        o = ascending(m_at)
        compacted = cat_(m_comp, o)
        # Copies of compacted readings: dropped (duplicates); the hour's aggregates are kept as they are.
        gone = sel[cat_(m_at, o)[compacted]]
        keep[gone[gone < n_good]] = False
        if merged_tbl is not None and (gone >= n_good).any():
            m_keep = np.ones(merged_tbl.num_rows, bool)
            m_keep[gone[gone >= n_good] - n_good] = False
            drop_m = m_keep
        else:
            drop_m = None
        o = ascending(r_at)
        idx, old_t = sel[cat_(r_at, o)], cat_(r_old, o)
        if len(idx) == 0:
            if drop_m is not None:
                merged_tbl = merged_tbl.filter(pa.array(drop_m))
            return 0, merged_tbl
        s_val = [cat_([v[k] for v in r_val], o) for k in range(n_ch)]
        s_ok = [cat_([v[k] for v in r_ok], o) for k in range(n_ch)]
        in_good = idx < n_good
        h_val, h_ok = [], []
        for c in chans:
            v, ok = _values(good[c], idx[in_good])
            if merged_tbl is not None and (~in_good).any():
                v2, ok2 = _values(merged_tbl[c], idx[~in_good] - n_good)
                v, ok = np.concatenate([v, v2]), np.concatenate([ok, ok2])
            h_val.append(v)
            h_ok.append(ok)
        # hit arrays are in idx order within good, then merged: idx is ascending, so that is idx order
        h_t = c_t[idx]
        h_code = c_codes[idx]
        differ = _differs(h_val, h_ok, s_val, s_ok)
        self._note_stored_conflicts(good, merged_tbl, idx, n_good, h_code, old_t, names, chans, h_val, s_val,
                                    differ)
        # A stored reading keeps its values; channels it lacks are filled from the new copy: the copy
        # nearest to it (then the earliest) when several match it, and only where it fills one.
        h_sid = sids[h_code]
        fills = np.zeros(len(idx), bool)
        for k in range(len(chans)):
            fills |= ~s_ok[k] & h_ok[k]
        up = np.flatnonzero(fills)
        if len(up):
            # Only the copies of the stored readings some copy fills compete (most re-ingests fill none).
            key = _pair_key(h_sid, old_t)
            rel = np.flatnonzero(np.isin(key, key[up]))
            best = rel[np.lexsort((h_t[rel], np.abs(h_t[rel] - old_t[rel]), key[rel]))]
            best = best[np.concatenate([[True], key[best][1:] != key[best][:-1]])]
            up = np.sort(best[fills[best]])
        if changed is not None:
            # (fast) What the store changed: the stored readings filled (one copy each, the one the
            # UPDATE takes), at the stored reading's time (rb2: a copy jittered past a meter's last
            # judged reading that fills it changed a judged reading). A correction (other values
            # only) changes nothing stored: a conflict, not a change (rb2 re-judged it for nothing).
            conflict = np.logical_or.reduce(differ, axis=0)[up] if len(chans) else np.zeros(len(up), bool)
            changed.append((h_code[up], old_t[up], conflict))
        if len(up):
            u_good, u_m = idx[up][idx[up] < n_good], idx[up][idx[up] >= n_good] - n_good
            parts = [good.select(list(chans)).take(pa.array(u_good))]
            if len(u_m):
                parts.append(merged_tbl.select(list(chans)).take(pa.array(u_m)))
            fill = pa.concat_tables(parts)
            fill = fill.append_column("sid", pa.array(h_sid[up], pa.int32()))
            fill = fill.append_column("_old_us", pa.array(old_t[up]))
            sets = ", ".join(f"{_q(c)} = COALESCE(r.{_q(c)}, h.{_q(c)})" for c in chans)
            self._query(fill, f"UPDATE readings_raw r SET {sets} FROM _t h "
                              "WHERE r.sid = h.sid AND r.ts = make_timestamptz(h._old_us)")
            if filled is not None:
                filled.update(int(s) for s in np.unique(h_sid[up]))
        keep[idx[in_good]] = False
        if merged_tbl is not None and ((~in_good).any() or drop_m is not None):
            m_keep = np.ones(merged_tbl.num_rows, bool) if drop_m is None else drop_m
            m_keep[idx[~in_good] - n_good] = False
            merged_tbl = merged_tbl.filter(pa.array(m_keep))
        return len(idx), merged_tbl

    def _stored_near(self, w: pa.Table, chans: Sequence[str], base: int) -> dict:
        """The stored readings of the (series, hour) buckets in ``w`` (``sid``, ``b``: the hour
        ``base + b * 1 h`` µs, ``base`` on an hour): raw ones with the values of ``chans``,
        compacted ones (their times kept in ``ts_list``) without, and, in a store of layout 1, the
        compacted hours with no list of times. Arrays sorted by (sid, time), raw before compacted
        at one time."""
        lo = base + int(pc.min(w["b"]).as_py()) * _HOUR_US
        hi = base + (int(pc.max(w["b"]).as_py()) + 1) * _HOUR_US - 1
        rng = f"BETWEEN make_timestamptz({lo}::BIGINT) AND make_timestamptz({hi}::BIGINT)"
        vals = ", ".join(f"r.{_q(c)}" for c in chans)
        nulls = ", ".join(f"NULL::DOUBLE AS {_q(c)}" for c in chans)
        # The overall span as constants of the scan (DuckDB prunes row groups by them); the buckets
        # by a hash join on (series, hour) (times at or after ``base`` there: a floor division).
        bucket = f"// {_HOUR_US} = w.b"
        tbl = self._query(
            w,
            f"SELECT r.sid, epoch_us(r.ts) AS t, FALSE AS c{', ' + vals if chans else ''} FROM readings_raw r "
            f"JOIN _t w ON r.sid = w.sid AND (epoch_us(r.ts) - {base}) {bucket} WHERE r.ts {rng} "
            f"UNION ALL SELECT w.sid, epoch_us(u.ts) AS t, TRUE AS c{', ' + nulls if chans else ''} FROM "
            "(SELECT meter_id, unnest(ts_list) AS ts FROM readings_hourly "
            f"  WHERE hour BETWEEN make_timestamptz({lo}::BIGINT) - INTERVAL 1 HOUR AND make_timestamptz({hi}::BIGINT) "
            f"  AND ts_list IS NOT NULL) u JOIN meters m USING (meter_id) JOIN _t w ON w.sid = m.sid "
            f"AND (epoch_us(u.ts) - {base}) {bucket} WHERE u.ts {rng}",
        ).to_arrow_table()
        s_sid = tbl["sid"].to_numpy().astype(np.int64)
        s_t = tbl["t"].to_numpy().astype(np.int64)
        s_c = tbl["c"].to_numpy(zero_copy_only=False).astype(bool)
        # By (series, time), raw before compacted at one time; the values stay in the result's
        # order (``at``: a sorted row's place there), read only where a copy matched.
        key = _pair_key(s_sid, s_t) * 2 + s_c
        order = np.argsort(key, kind="stable") if len(key) > 1 and not np.all(key[1:] >= key[:-1]) else None
        if order is None:
            out = {"sid": s_sid, "t": s_t, "c": s_c, "at": None}
        else:
            out = {"sid": s_sid[order], "t": s_t[order], "c": s_c[order], "at": order}
        vals = [_values(tbl[c]) for c in chans]
        out["values"], out["valid"] = [v for v, _ in vals], [ok for _, ok in vals]
        out["legacy"] = None
        if self._legacy > 0:  # layout-1 hours: their readings' times are unknown, any reading there is a copy
            h = self._query(
                w, "SELECT w.sid, epoch_us(h.hour) AS hour FROM readings_hourly h JOIN meters m USING (meter_id) "
                   f"JOIN _t w ON w.sid = m.sid AND (epoch_us(h.hour) - {base}) {bucket} WHERE h.ts_list IS NULL "
                   f"AND h.hour {rng}").to_arrow_table()
            out["legacy"] = _hour_key(h["sid"].to_numpy().astype(np.int64), h["hour"].to_numpy().astype(np.int64))
        return out

    def _note_stored_conflicts(self, good: pa.Table, merged_tbl: pa.Table | None, idx: np.ndarray, n_good: int,
                               h_code: np.ndarray, old_t: np.ndarray, names: list[str], chans: Sequence[str],
                               h_val: list, s_val: list, differ: list) -> None:
        """Count the copies (candidates ``idx`` matched to the raw readings stored at ``old_t``; their
        values ``h_val``, the stored ones ``s_val``; ``differ``: :func:`_differs` of them) that give a
        channel another value than the stored one, and keep the first (by meter, then time) as an example: the stored
        reading keeps its values, which is said (a copy in a later block of the file, or a corrected
        export ingested again, lost its values with no word), not done silently."""
        cf = getattr(self, "_conflicts", None)
        if not chans or not len(idx) or cf is None:
            return
        bad = np.flatnonzero(np.logical_or.reduce(differ))
        if not len(bad):
            return
        cf.stored += len(bad)
        if cf.stored_eg is not None:
            return
        rank = np.empty(len(names), np.int64)
        rank[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
        e = bad[np.lexsort((old_t[bad], rank[h_code[bad]]))[0]]
        line = None
        if "_line" in good.column_names:
            i = int(idx[e])
            line = (good["_line"][i] if i < n_good else merged_tbl["_line"][i - n_good]).as_py()
        at = f" (line {line})" if line is not None else ""
        diff = [f"{c} {float(s_val[k][e]):g} (stored) vs {float(h_val[k][e]):g}{at}"
                for k, c in enumerate(chans) if differ[k][e]][:3]
        ts = pd.Timestamp(int(old_t[e]), unit="us", tz="UTC").isoformat().replace("+00:00", "Z")
        cf.stored_eg = f"e.g. meter {names[h_code[e]]} at {ts}: {'; '.join(diff)}"

    # ------------------------------------------------------------------------------------- query

    def query(self, meters: Sequence[str] | str | None = None, start=None, end=None,
              columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Readings of ``meters`` (all when None) with ``start <= ts < end``, sorted by meter and time.

        ``columns`` may name canonical and extra channels (:meth:`channels`); by default all are
        returned, after dropping those that are NULL for every returned row.

        Raises
        ------
        ValueError
            A name in ``columns`` is not a channel of this store.
        """
        known = self.channels()
        cols = list(columns) if columns else known
        unknown = set(cols) - set(known)
        if unknown:
            raise ValueError(f"unknown column(s) {sorted(unknown)} (channels of this store: {', '.join(known)})")
        where, params = self._where(meters, start, end, "r.ts", meter_col="m.meter_id")
        sql = ("WITH m AS (SELECT sid, meter_id, (row_number() OVER (ORDER BY meter_id) - 1)::INTEGER AS k FROM meters) "
               f"SELECT m.k, r.ts, {', '.join('r.' + _q(c) for c in cols)} FROM readings_raw r JOIN m USING (sid) {where}")
        return self._frame(self.con.sql(sql, params=params).to_arrow_table(), columns)

    def query_windows(self, windows: pd.DataFrame, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """Readings of each meter within its own window: ``windows`` has ``meter_id``, ``start`` and
        ``end`` (UTC; ``start <= ts < end``; NaT for no bound), one row per meter."""
        known = self.channels()
        cols = list(columns) if columns else known
        unknown = set(cols) - set(known)
        if unknown:
            raise ValueError(f"unknown column(s) {sorted(unknown)} (channels of this store: {', '.join(known)})")
        w = pa.table({"meter_id": pa.array([str(m) for m in windows["meter_id"]], pa.string()),
                      "lo": _us(windows["start"]), "hi": _us(windows["end"])})
        # The windows' overall span as constants of the scan: DuckDB prunes the
        # row groups outside them (zone maps), so a watcher's read-back costs what it reads, not
        # the size of the stored history (a join condition alone scans the whole table).
        span = []
        if w.num_rows and w["lo"].null_count == 0:
            span.append(f"r.ts >= make_timestamptz({pc.min(pc.cast(w['lo'], pa.int64())).as_py()}::BIGINT)")
        if w.num_rows and w["hi"].null_count == 0:
            span.append(f"r.ts < make_timestamptz({pc.max(pc.cast(w['hi'], pa.int64())).as_py()}::BIGINT)")
        sql = ("WITH m AS (SELECT sid, meter_id, (row_number() OVER (ORDER BY meter_id) - 1)::INTEGER AS k FROM meters) "
               f"SELECT m.k, r.ts, {', '.join('r.' + _q(c) for c in cols)} FROM readings_raw r JOIN m USING (sid) "
               f"JOIN _t w ON w.meter_id = m.meter_id WHERE {' AND '.join(span) or 'TRUE'} "
               "AND (w.lo IS NULL OR r.ts >= w.lo) AND (w.hi IS NULL OR r.ts < w.hi)")
        return self._frame(self._query(w, sql).to_arrow_table(), columns)

    def catalogue(self, meters: Sequence[str] | None = None) -> pd.DataFrame:
        """Per meter with raw readings: first and last raw reading time, inferred cadence (s), readings."""
        where, params = self._where(meters, None, None, "ts", meter_col="m.meter_id")
        return self.con.execute(
            # The span comes from the readings themselves: compaction moves old readings out of
            # readings_raw and does not touch meters.first_ts.
            "SELECT m.meter_id, c.first_ts, c.last_ts, m.cadence_s, c.n AS readings FROM meters m JOIN "
            "(SELECT sid, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n FROM readings_raw GROUP BY sid) c "
            f"USING (sid) {where} ORDER BY m.meter_id",
            params).df()

    def count_before(self, windows: pd.DataFrame) -> dict[str, int]:
        """Readings of each meter before its ``start`` (``windows``: ``meter_id``, ``start``)."""
        w = pa.table({"meter_id": pa.array([str(m) for m in windows["meter_id"]], pa.string()),
                      "lo": _us(windows["start"])})
        rows = self._query(w, "SELECT m.meter_id, count(r.ts) FROM _t w JOIN meters m ON m.meter_id = w.meter_id "
                              "LEFT JOIN readings_raw r ON r.sid = m.sid AND r.ts < w.lo GROUP BY m.meter_id").fetchall()
        return {m: int(n) for m, n in rows}

    def _frame(self, table: pa.Table, columns) -> pd.DataFrame:
        # Meter ids travel as integer codes (their rank by name) and become a pandas Categorical:
        # no Python string per reading, and the sort is on integers (10 M readings load in seconds).
        names = [r[0] for r in self.con.execute("SELECT meter_id FROM meters ORDER BY meter_id").fetchall()]
        # Sorted here rather than by DuckDB: under the store's memory limit an ORDER BY of 10 M
        # readings spills to disk (18 s); a numpy sort on (meter code, time) takes about 2 s.
        if table.num_rows:
            order = _argsort2(table["k"].to_numpy().astype(np.int64),
                              pc.cast(table["ts"], pa.int64()).to_numpy(), len(names), stable=True)
            if not (len(order) and order[0] == 0 and (np.diff(order) == 1).all()):
                table = table.take(pa.array(order))
        codes = table["k"].to_numpy()
        df = table.drop_columns(["k"]).to_pandas()
        df.insert(0, "meter_id", pd.Categorical.from_codes(codes, categories=pd.Index(names, dtype=object)))
        if len(df) and str(df["ts"].dtype) != "datetime64[us, UTC]":
            df["ts"] = df["ts"].dt.tz_convert("UTC")
        if not columns:
            df = df.dropna(axis=1, how="all") if len(df) else df
        return df

    def query_hourly(self, meters=None, start=None, end=None) -> pd.DataFrame:
        """Hourly aggregates written by :meth:`compact` (without the per-reading lists, which
        :meth:`energy_kwh` and de-duplication use)."""
        where, params = self._where(meters, start, end, "hour")
        cols = "* EXCLUDE (ts_list, e_list)" if self._legacy != -1 else "*"
        return self.con.execute(f"SELECT {cols} FROM readings_hourly {where} ORDER BY meter_id, hour", params).df()

    @staticmethod
    def _where(meters, start, end, col: str, meter_col: str = "meter_id") -> tuple[str, list]:
        conds, params = [], []
        if meters is not None:
            meters = [meters] if isinstance(meters, str) else list(meters)
            conds.append(f"{meter_col} IN ({', '.join('?' for _ in meters)})" if meters else "FALSE")
            params += meters
        if start is not None:
            conds.append(f"{col} >= ?")
            params.append(_ts(start))
        if end is not None:
            conds.append(f"{col} < ?")
            params.append(_ts(end))
        return ("WHERE " + " AND ".join(conds)) if conds else "", params

    def meters(self) -> list[str]:
        return [r[0] for r in self.con.execute(
            "SELECT meter_id FROM meters WHERE sid IN (SELECT DISTINCT sid FROM readings_raw) ORDER BY 1").fetchall()]

    def info(self, energy: bool = False) -> dict:
        """Counts and time span of the store (raw readings; hourly aggregates reported apart).

        With ``energy``, also ``energy_kwh``: ``{"total": kWh, "meters": {meter: kWh}}`` from
        :meth:`energy_kwh` over raw and compacted readings (rounded to 1e-6 kWh), so the store can
        be checked against the source files."""
        n, m, first, last = self.con.execute(
            "SELECT count(*), count(DISTINCT sid), min(ts), max(ts) FROM readings_raw").fetchall()[0]
        h, hfirst = self.con.execute("SELECT count(*), min(hour) FROM readings_hourly").fetchall()[0]
        iso = lambda t: None if t is None else pd.Timestamp(t).tz_convert("UTC").isoformat().replace("+00:00", "Z")
        info = {"db": str(self.path), "readings": int(n), "meters": int(m), "first": iso(first), "last": iso(last),
                "hourly_rows": int(h), "hourly_first": iso(hfirst), "schema_version": SCHEMA_VERSION,
                "bytes": self.path.stat().st_size if self.path.exists() else 0}
        if energy:
            e = self.energy_kwh()
            info["energy_kwh"] = {"total": round(float(e.sum()), 6),
                                  "meters": {str(m): round(float(v), 6) for m, v in e.items()}}
        return info

    # ---------------------------------------------------------------------------------- energy

    def energy_kwh(self, meters=None, start=None, end=None) -> pd.Series:
        """Register energy per meter over raw and compacted data: the sum of register increments.

        An increment is the difference between consecutive register readings; a drop is a register
        reset (firmware update, rollover), after which the new value itself is the increment.
        Increments are attributed to the later reading. Compacted hours keep every reading's time
        and register value (``ts_list``, ``e_list``), so the sequence of register readings is the
        same whatever was compacted, and in whatever order readings arrived: the totals of any
        window equal those of the same readings ingested at once. Hours compacted by a store of
        layout 1 (no lists) count as one point at the hour's end carrying its stored increment.
        """
        mcond, mparams = self._where(meters, None, None, "ts")
        tcond, tparams = self._where(None, start, end, "ts")
        raw_cond = (mcond + " AND " if mcond else "WHERE ") + "e_kwh IS NOT NULL"
        pre = mcond + " AND " if mcond else "WHERE "
        if self._legacy == -1:  # a layout-1 store opened read-only
            hourly = ("SELECT meter_id, hour + INTERVAL 1 HOUR - INTERVAL 1 MICROSECOND, e_kwh_last, "
                      f"coalesce(e_delta_kwh, 0) FROM readings_hourly {mcond}")
            params = mparams + mparams + tparams
        else:
            hourly = ("SELECT meter_id, ts, e, NULL::DOUBLE FROM (SELECT meter_id, unnest(ts_list) AS ts, "
                      f"unnest(e_list) AS e FROM readings_hourly {pre} ts_list IS NOT NULL) WHERE e IS NOT NULL "
                      "UNION ALL SELECT meter_id, hour + INTERVAL 1 HOUR - INTERVAL 1 MICROSECOND, e_kwh_last, "
                      f"coalesce(e_delta_kwh, 0) FROM readings_hourly {pre} ts_list IS NULL")
            params = mparams * 3 + tparams
        df = self.con.execute(
            f"WITH seq AS (SELECT meter_id, ts, e_kwh AS e, NULL::DOUBLE AS d FROM readings {raw_cond} "
            f"UNION ALL {hourly}), "
            "inc AS (SELECT meter_id, ts, e, d, last_value(e IGNORE NULLS) OVER (PARTITION BY meter_id ORDER BY ts "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS e_prev FROM seq) "
            "SELECT meter_id, sum(coalesce(d, CASE WHEN e < e_prev THEN e ELSE e - e_prev END)) AS e_kwh "
            f"FROM inc {tcond} GROUP BY meter_id ORDER BY meter_id",
            params,
        ).df()
        return df.set_index("meter_id")["e_kwh"].fillna(0.0)

    # --------------------------------------------------------------------------------- retention

    @staticmethod
    def _cutoff(older_than_days, as_of) -> datetime:
        """``as_of`` minus the age, floored to the hour; clamped to year 1 (an age beyond the
        calendar compacts nothing). Raises ValueError for an age that is not a finite number >= 0
        or a time that cannot be read."""
        try:
            age = float(older_than_days)
        except (TypeError, ValueError):
            raise ValueError(f"--older-than-days {older_than_days!r}: not a number of days") from None
        if not np.isfinite(age) or age < 0:
            raise ValueError(f"--older-than-days {older_than_days!r}: must be a finite number of days >= 0")
        if as_of is None or (isinstance(as_of, str) and not as_of.strip()):
            ref = datetime.now(timezone.utc)
        elif isinstance(as_of, datetime):
            ref = as_of if as_of.tzinfo else as_of.replace(tzinfo=timezone.utc)
        else:
            text = str(as_of).strip()
            try:
                ref = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
            except ValueError:
                try:
                    ref = _ts(text)
                except (ValueError, TypeError, OverflowError):
                    raise ValueError(f"--as-of {as_of!r}: not an ISO-8601 time (e.g. 2025-01-31T00:00:00Z)") from None
            if ref.tzinfo is None:
                ref = ref.replace(tzinfo=timezone.utc)
        ref = ref.astimezone(timezone.utc)
        floor = datetime(1, 1, 1, tzinfo=timezone.utc)
        try:
            cutoff = ref - timedelta(days=age)
        except OverflowError:
            cutoff = floor
        return max(cutoff, floor).replace(minute=0, second=0, microsecond=0)

    def compaction_cuts(self) -> dict[str, float]:
        """Per meter with compacted hours: the end of its last compacted hour (epoch seconds), where
        its raw readings are judged from (``detect``, ``watch`` and its re-judging)."""
        return {str(m): last / 1e6 + 3600.0 for m, last in self.con.execute(
            "SELECT meter_id, epoch_us(max(hour)) FROM readings_hourly GROUP BY meter_id").fetchall()
            if m is not None and last is not None}

    def compact(self, older_than_days: float = 30, as_of=None,
                on_stage: Callable[[str, float | None], None] | None = None) -> dict:
        """Downsample readings older than ``older_than_days`` to hourly aggregates.

        The cutoff is ``as_of`` (default: now) minus the age, floored to the hour. Per hour and
        meter the table keeps the count, the mean/min/max of each channel (extra channels included,
        as ``<name>_mean`` and so on), the register's first and last value, the sum of its
        increments, and the time and register value of every reading (``ts_list``, ``e_list``).
        Those lists make energy exact in any order of events (see :meth:`energy_kwh`) and let a
        re-ingested copy of a compacted reading be recognised as a duplicate. Readings that arrive
        late for an hour already compacted stay raw until the next compaction, which folds them
        into that hour (aggregates combined, lists merged, increments of that hour and the hours
        after it recomputed).

        ``on_stage(description, total)`` is told each step as it starts (as the API's ``on_stage``;
        ``total`` is always None; ``stages`` shows it on a terminal): "aggregating ...", "writing
        ... hourly rows", "removing ...", "recomputing ..." (only when hours were written),
        "committing" (every statement done, the COMMIT not made), all inside the one transaction
        (an exception the callback raises there rolls the compaction back), then "checkpointing"
        (committed: an exception raised there leaves the compaction done, not yet checkpointed).

        Raises
        ------
        ValueError
            ``older_than_days`` is not a finite number >= 0, or ``as_of`` is not a time.
        StoreError
            The disk is full (nothing is committed).
        CommittedError
            (a StoreError) The compaction was committed, then its COMMIT raised anyway (DuckDB's
            "Query interrupted" for a Ctrl-C during it) or the CHECKPOINT after it failed: ``result``
            is what was committed, ``step`` "committing" or "checkpointing", ``__cause__`` the error
            (:func:`interrupted` tells a Ctrl-C).
        """
        cutoff = self._cutoff(older_than_days, as_of)

        def stage(description: str) -> None:
            if on_stage is not None:
                on_stage(description, None)

        con = self.con
        result = None   # what the COMMIT commits, once every statement is done
        con.execute("BEGIN TRANSACTION")
        try:
            stage(f"aggregating the readings before {cutoff.isoformat().replace('+00:00', 'Z')} by hour")
            extras = self._extra_channels()
            have = {r[0] for r in con.execute("SELECT name FROM pragma_table_info('readings_hourly')").fetchall()}
            for c in extras:
                for stat in ("mean", "min", "max"):
                    if f"{c}_{stat}" not in have:
                        con.execute(f"ALTER TABLE readings_hourly ADD COLUMN {_q(f'{c}_{stat}')} DOUBLE")
            agg_channels = [*AGG_CHANNELS, *extras]
            aggs = ", ".join(f"avg({_q(c)}) AS {_q(c + '_mean')}, min({_q(c)}) AS {_q(c + '_min')}, "
                             f"max({_q(c)}) AS {_q(c + '_max')}" for c in agg_channels)
            con.execute(
                "CREATE OR REPLACE TEMP TABLE _hour AS "
                f"SELECT meter_id, date_trunc('hour', ts) AS hour, count(*) AS n, {aggs}, "
                "arg_min(e_kwh, ts) FILTER (WHERE e_kwh IS NOT NULL) AS e_kwh_first, "
                "arg_max(e_kwh, ts) FILTER (WHERE e_kwh IS NOT NULL) AS e_kwh_last, "
                "NULL::DOUBLE AS e_delta_kwh, list(ts ORDER BY ts) AS ts_list, list(e_kwh ORDER BY ts) AS e_list "
                "FROM readings WHERE ts < ? GROUP BY ALL",
                [cutoff],
            )
            n_hours = con.execute("SELECT count(*) FROM _hour").fetchall()[0][0]
            stage(f"writing {n_hours:,} hourly row(s)")
            # An hour compacted before (readings that arrived late) is combined, not duplicated.
            upd = ", ".join(
                f"{mean} = (readings_hourly.{mean} * readings_hourly.n + EXCLUDED.{mean} * EXCLUDED.n) "
                f"/ (readings_hourly.n + EXCLUDED.n), {lo} = least(readings_hourly.{lo}, EXCLUDED.{lo}), "
                f"{hi} = greatest(readings_hourly.{hi}, EXCLUDED.{hi})"
                for mean, lo, hi in ((_q(c + "_mean"), _q(c + "_min"), _q(c + "_max")) for c in agg_channels))
            # By name: extra channels' columns were appended to readings_hourly in the order they
            # were first compacted, which need not be the order of the select. A layout-1 hour
            # (no lists) keeps adding increments the old way.
            con.execute(
                "INSERT INTO readings_hourly BY NAME SELECT * FROM _hour ON CONFLICT (meter_id, hour) DO UPDATE SET "
                f"{upd}, n = readings_hourly.n + EXCLUDED.n, "
                "e_delta_kwh = CASE WHEN readings_hourly.ts_list IS NULL THEN coalesce(readings_hourly.e_delta_kwh, 0) "
                "  + coalesce(EXCLUDED.e_delta_kwh, 0) ELSE NULL END, "
                "e_kwh_first = coalesce(readings_hourly.e_kwh_first, EXCLUDED.e_kwh_first), "
                "e_kwh_last = coalesce(EXCLUDED.e_kwh_last, readings_hourly.e_kwh_last), "
                "ts_list = CASE WHEN readings_hourly.ts_list IS NULL THEN NULL "
                "  ELSE list_concat(readings_hourly.ts_list, EXCLUDED.ts_list) END, "
                "e_list = CASE WHEN readings_hourly.ts_list IS NULL THEN NULL "
                "  ELSE list_concat(readings_hourly.e_list, EXCLUDED.e_list) END"
            )
            stage("removing the compacted raw readings")
            removed = con.execute("DELETE FROM readings_raw WHERE ts < ?", [cutoff]).fetchall()[0][0]
            if n_hours:
                stage("recomputing the energy increments of the hours touched")
                self._recompute_hours()
            con.execute("DROP TABLE _hour")
            result = {"cutoff": cutoff.isoformat().replace("+00:00", "Z"), "readings_compacted": int(removed),
                      "hourly_rows_written": int(n_hours)}
            stage("committing")
            con.execute("COMMIT")
        except BaseException as exc:
            # (rfix3) A COMMIT can be made and still raise: DuckDB's Python client commits, then
            # raises "Query interrupted" for a Ctrl-C during it. Asked of the store, not assumed.
            if result is not None and result["readings_compacted"] and _compacted_by(con, cutoff):
                raise _committed_error(self.path, result, "committing", exc) from exc
            _rollback(con, self.path, exc)
            raise
        # Committed: an error from here on leaves the compaction done (DuckDB replays its
        # write-ahead log at the next open if the CHECKPOINT did not complete). Said as such, with
        # what was committed (fix3: the CLI said "nothing changed" for any DuckDB error).
        try:
            stage("checkpointing")
            con.execute("CHECKPOINT")
        except Exception as exc:
            raise _committed_error(self.path, result, "checkpointing", exc) from exc
        return result

    def _recompute_hours(self) -> None:
        """After a compaction (inside its transaction, ``_hour`` holding the hours it wrote):
        sort the lists of the touched hours, take their first/last register values from them,
        and recompute the increments of every hour of each touched meter from the earliest touched
        hour on (a late reading changes the increment of the next reading, which may sit in a
        later compacted hour)."""
        con = self.con
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _fix AS SELECT meter_id, hour, list(ts ORDER BY ts) AS ts_list, "
            "list(e ORDER BY ts) AS e_list, arg_min(e, ts) FILTER (WHERE e IS NOT NULL) AS ef, "
            "arg_max(e, ts) FILTER (WHERE e IS NOT NULL) AS el FROM (SELECT meter_id, hour, unnest(ts_list) AS ts, "
            "unnest(e_list) AS e FROM readings_hourly h SEMI JOIN _hour USING (meter_id, hour) "
            "WHERE h.ts_list IS NOT NULL) GROUP BY meter_id, hour")
        con.execute(
            "UPDATE readings_hourly h SET ts_list = f.ts_list, e_list = f.e_list, e_kwh_first = f.ef, "
            "e_kwh_last = f.el FROM _fix f WHERE h.meter_id = f.meter_id AND h.hour = f.hour")
        con.execute(
            "CREATE OR REPLACE TEMP TABLE _delta AS "
            "WITH lo AS (SELECT meter_id, min(hour) AS lo FROM _hour GROUP BY meter_id), "
            "prev AS (SELECT h.meter_id, arg_max(h.e_kwh_last, h.hour) AS e FROM readings_hourly h JOIN lo "
            "  USING (meter_id) WHERE h.hour < lo.lo AND h.e_kwh_last IS NOT NULL GROUP BY h.meter_id), "
            "seq AS (SELECT meter_id, hour AS hr, ts, e FROM (SELECT h.meter_id, h.hour, unnest(h.ts_list) AS ts, "
            "    unnest(h.e_list) AS e FROM readings_hourly h JOIN lo USING (meter_id) "
            "    WHERE h.hour >= lo.lo AND h.ts_list IS NOT NULL) WHERE e IS NOT NULL "
            "  UNION ALL SELECT h.meter_id, NULL, h.hour + INTERVAL 1 HOUR - INTERVAL 1 MICROSECOND, h.e_kwh_last "
            "    FROM readings_hourly h JOIN lo USING (meter_id) WHERE h.hour >= lo.lo AND h.ts_list IS NULL "
            "    AND h.e_kwh_last IS NOT NULL "
            "  UNION ALL SELECT r.meter_id, NULL, r.ts, r.e_kwh FROM readings r JOIN lo USING (meter_id) "
            "    WHERE r.ts >= lo.lo AND r.e_kwh IS NOT NULL), "
            "inc AS (SELECT s.meter_id, s.hr, s.e, coalesce(last_value(s.e IGNORE NULLS) OVER (PARTITION BY s.meter_id "
            "  ORDER BY s.ts ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), p.e) AS e_prev "
            "  FROM seq s LEFT JOIN prev p USING (meter_id)) "
            "SELECT meter_id, hr AS hour, sum(CASE WHEN e_prev IS NULL THEN NULL WHEN e < e_prev THEN e "
            "  ELSE e - e_prev END) AS d FROM inc WHERE hr IS NOT NULL GROUP BY meter_id, hr")
        con.execute(
            "UPDATE readings_hourly h SET e_delta_kwh = d.d FROM _delta d "
            "WHERE h.meter_id = d.meter_id AND h.hour = d.hour AND h.ts_list IS NOT NULL")
        con.execute("DROP TABLE _fix")
        con.execute("DROP TABLE _delta")


_NO_METER = "\x00"   # stands for a NULL meter id in the join below (Arrow joins match no NULLs)


def _explained(counts: IngestCounts, unit: str, norm, why: pa.Table, sel: pa.Table) -> pa.Table:
    """Settle the rows the fast pass marked (``sel``: ``_bad``, or ``_drop``: a value is bad) with the
    reasons ``why`` (the explain statement over them: ``_line``, ``meter_id``, ``_reason``, one
    ``_d{i}`` per checked channel) and return the readings kept, their bad values NULL.

    A row is rejected whole (one entry in ``counts.rejects``, its every failed check) when the fast
    pass said so (meter id, time, no channel value) or no channel value is left once its bad values
    are dropped; otherwise each bad value is one entry in ``counts.dropped``. Vectorised (Arrow) but
    for the tuples handed on."""
    def keyed(t: pa.Table) -> pa.Table:
        t = t.set_column(t.schema.get_field_index("meter_id"), "meter_id",
                         pc.fill_null(pc.cast(t["meter_id"], pa.string()), _NO_METER))
        return t.set_column(t.schema.get_field_index("_line"), "_line", pc.cast(t["_line"], pa.int64()))
    chans = [c for c in sel.column_names if c not in _KEYS]
    extra = [c for c in why.column_names if c not in ("_line", "meter_id")]
    j = keyed(sel.append_column("_row", pa.array(np.arange(sel.num_rows)))).join(
        keyed(why), ["_line", "meter_id"], join_type="left outer").sort_by("_row")
    left = None
    for i, c in enumerate(norm.dropped):
        d = j[f"_d{i}"]
        # A value that is not a number is NULL already: given, but not in the caller's count of them.
        unread = pc.sum(pc.and_(pc.is_valid(d), pc.is_null(j[c]))).as_py() or 0
        counts.given[c] = counts.given.get(c, 0) + unread
        j = j.set_column(j.schema.get_field_index(c), c, pc.if_else(pc.is_valid(d), pa.scalar(None, j[c].type), j[c]))
    for c in chans:
        v = pc.is_valid(j[c])
        left = v if left is None else pc.or_(left, v)
    whole = pc.or_(j["_bad"], pc.invert(left)) if left is not None else j["_bad"]
    w = j.filter(whole)
    reasons = pc.fill_null(w["_reason"], "rejected: no reason could be built for this row")
    counts.rejects.extend((unit, ln, fld or r.split(":", 1)[0], r) for ln, fld, r in zip(
        w["_line"].to_pylist(), w["_field"].to_pylist(), reasons.to_pylist()))
    kept = j.filter(pc.invert(whole))
    for i, c in enumerate(norm.dropped):
        col = f"_d{i}"
        n_bad = len(j[col]) - j[col].null_count
        if not n_bad:
            continue
        counts.bad_values[c] = counts.bad_values.get(c, 0) + n_bad
        k = kept.filter(pc.is_valid(kept[col]))
        if k.num_rows:
            counts.values_dropped[c] = counts.values_dropped.get(c, 0) + k.num_rows
            counts.dropped.extend((unit, ln, r.split(":", 1)[0], r) for ln, r in zip(
                k["_line"].to_pylist(), k[col].to_pylist()))
    kept = kept.drop_columns(["_row", *extra])
    i = kept.schema.get_field_index("meter_id")
    return kept.set_column(i, "meter_id", pc.cast(kept["meter_id"], sel.schema.field("meter_id").type))


def _differs(h_val: list, h_ok: list, s_val: list, s_ok: list) -> list[np.ndarray]:
    """Per channel, where a copy (values ``h_val``, valid where ``h_ok``) gives another value than
    the stored reading (``s_val``, ``s_ok``): a blank on either side is no conflict; NaN equals NaN
    (as DuckDB compares them); values compare exactly (a retransmission repeats its values)."""
    return [h_ok[k] & s_ok[k] & (h_val[k] != s_val[k]) & ~(np.isnan(h_val[k]) & np.isnan(s_val[k]))
            for k in range(len(h_val))]


def _values(col, at: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A numeric Arrow column as float64 values (NaN where NULL) and its validity, at ``at``."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    col = pc.cast(col, pa.float64())
    if col.null_count == 0:
        v, ok = col.to_numpy(zero_copy_only=False), np.ones(len(col), bool)
    else:
        v = pc.fill_null(col, np.nan).to_numpy(zero_copy_only=False)
        ok = pc.is_valid(col).to_numpy(zero_copy_only=False)
    return (v, ok) if at is None else (v[at], ok[at])


def _pair_key(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """One int64 per pair ``(a, b)`` (int64 arrays), ordered as the pairs are."""
    if not len(a):
        return np.zeros(0, np.int64)
    a0, b0 = int(a.min()), int(b.min())
    span = int(b.max()) - b0 + 1
    if (int(a.max()) - a0 + 1) * span < 2**61:
        return (a - a0) * span + (b - b0)
    _, rank = np.unique(b, return_inverse=True)   # too far apart for one key: the ranks of ``b``
    return (a - a0) * (int(rank.max()) + 1) + rank.reshape(-1)


_HOUR_US = 3_600_000_000


def _hour_key(sid: np.ndarray, t_us: np.ndarray) -> np.ndarray:
    """One integer per (series, UTC hour of ``t_us``)."""
    return sid.astype(np.int64) * (1 << 28) + (np.floor_divide(t_us, _HOUR_US) + (1 << 27))


def _nearest(p_sid: np.ndarray, p_t: np.ndarray, p_tol: np.ndarray, s: dict):
    """The stored reading each probe (series ``p_sid``, time ``p_t`` µs) is a copy of: the nearest of
    its series within ``p_tol`` (the earlier of two as near; the raw one of a raw and a compacted at
    one time), else a layout-1 compacted hour it falls in (``s["legacy"]``). ``s``: the stored side
    (:meth:`Store._stored_near`, sorted by series and time). Returns ``(j, hit, old, compacted)``:
    for the probes ``hit`` (ascending positions), the stored row ``j`` (-1 for a layout-1 hour), the
    stored time and whether it is compacted; None when none matched."""
    n = len(s["t"])
    legacy = s.get("legacy")
    hit = np.zeros(len(p_t), bool)
    j = np.zeros(len(p_t), np.int64)
    d = np.zeros(len(p_t), np.int64)
    if n:
        new = np.concatenate([[True], s["sid"][1:] != s["sid"][:-1]])   # (sorted by series)
        us, s_r = s["sid"][new], np.cumsum(new) - 1
        p_r = np.minimum(np.searchsorted(us, p_sid), len(us) - 1)
        known = us[p_r] == p_sid
        k = _pair_key(np.concatenate([s_r, p_r]), np.concatenate([s["t"], p_t]))   # (series, time): one order
        ks, kp = k[:n], k[n:]
        jb = np.searchsorted(ks, kp, "right") - 1   # the last stored at or before ...
        ja = np.searchsorted(ks, kp, "left")        # the first stored at or after
        jb_c, ja_c = np.clip(jb, 0, n - 1), np.clip(ja, 0, n - 1)
        jb_c = np.searchsorted(ks, ks[jb_c], "left")   # ... the first at its time (raw before compacted)
        d_b, d_a = p_t - s["t"][jb_c], s["t"][ja_c] - p_t
        ok_b = known & (jb >= 0) & (s["sid"][jb_c] == p_sid) & (d_b <= p_tol)
        ok_a = known & (ja < n) & (s["sid"][ja_c] == p_sid) & (d_a <= p_tol)
        use_a = ok_a & (~ok_b | (d_a < d_b) | (d_a == 0))
        use_b = ok_b & ~use_a
        hit = use_a | use_b
        j = np.where(use_a, ja_c, jb_c)
        d = np.where(use_a, d_a, d_b)
    old = s["t"][j] if n else np.zeros(len(p_t), np.int64)
    comp = s["c"][j] if n else np.zeros(len(p_t), bool)
    if legacy is not None and len(legacy):
        lg = np.isin(_hour_key(p_sid, p_t), legacy) & ~(hit & (d == 0))
        old = np.where(lg, p_t, old)
        comp = comp | lg
        j = np.where(lg, -1, j)
        hit |= lg
    h = np.flatnonzero(hit)
    if not len(h):
        return None
    return j[h], h, old[h], comp[h]


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def interrupted(exc: BaseException | None) -> bool:
    """``exc`` is a Ctrl-C: a KeyboardInterrupt raised in Python code, or what DuckDB's Python client
    raises for a SIGINT while it runs a statement (``RuntimeError("Query interrupted")``), or an
    interrupted DuckDB statement (``duckdb.InterruptException``), or a DuckDB error a Ctrl-C made in
    the Python code a statement called back (its scan of an Arrow table: "... failed:
    KeyboardInterrupt", st2)."""
    return isinstance(exc, (KeyboardInterrupt, duckdb.InterruptException)) or (
        type(exc) is RuntimeError and str(exc).strip() == "Query interrupted") or (
        isinstance(exc, duckdb.Error) and "KeyboardInterrupt" in str(exc))


def _asked_after_commit(con, sql: str, params: list):
    """After a COMMIT raised (its transaction rolled back if it is still open): the first row of
    ``sql``, asked of the store to tell whether the COMMIT committed; None when the store cannot say
    (a connection DuckDB invalidated)."""
    try:
        con.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - no transaction open: the COMMIT ended it
        pass
    try:
        return con.execute(sql, params).fetchone()
    except Exception:  # noqa: BLE001
        return None


def _compacted_by(con, cutoff) -> bool:
    """Did a compaction's COMMIT that raised commit? Its DELETE removed every raw reading before
    ``cutoff`` (at least one): none left means committed. False when the store cannot say."""
    row = _asked_after_commit(con, "SELECT count(*) FROM readings_raw WHERE ts < ?", [cutoff])
    return row is not None and row[0] == 0


def _ingested_by(con, source: str, counts: IngestCounts) -> bool:
    """Did an ingest's COMMIT that raised commit? Its ``ingest_log`` row (source, counts, seconds)
    is there if so. False when the store cannot say."""
    row = _asked_after_commit(
        con, "SELECT count(*) FROM ingest_log WHERE source = ? AND rows_read = ? AND stored = ? AND seconds = ?",
        [source, counts.read, counts.stored, counts.seconds])
    return row is not None and row[0] > 0


def _committed_error(path, result: dict, step: str, exc: BaseException) -> CommittedError:
    """fix3/rfix3: the compaction was committed, and ``step`` (the COMMIT itself, which raised after
    committing, or the CHECKPOINT after it) failed or was interrupted: said with what was committed."""
    if interrupted(exc):
        why = "interrupted (Ctrl-C)"
    elif isinstance(exc, duckdb.Error) and _disk_full(exc):
        why = "disk full (No space left on device)"
    else:
        why = f"{type(exc).__name__}: {_first_line(exc)}"
    what = "the checkpoint after it failed" if step == "checkpointing" else "its COMMIT raised after committing"
    return CommittedError(
        f"{path}: the compaction was committed ({result['readings_compacted']:,} readings older than "
        f"{result['cutoff']} into {result['hourly_rows_written']:,} hourly rows), but {what}: {why}. The "
        f"store keeps the compaction (DuckDB replays its write-ahead log when the store is next opened); running it "
        f"again is safe (a reading is not compacted twice).", result, step)


def _disk_full(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, OSError) and getattr(exc, "errno", None) == 28 or "no space left" in text \
        or "disk full" in text or "enospc" in text


@contextmanager
def unmasked():
    """Raise the error a relation's ``query`` met inside a transaction, not the one that hid it.

    DuckDB's relation ``query`` names the relation in the catalog for the length of the call and
    drops the name in a ``finally``; when the statement fails inside an open transaction that drop
    fails too ("Current transaction is aborted") and is what reaches the caller, the statement's own
    error (a constraint, a full disk, memory) only on its ``__context__`` (duckdb 2.0.1). Raise that
    one, so a message and :func:`_disk_full` see the cause.
    """
    try:
        yield
    except duckdb.TransactionException as exc:
        cause = exc.__context__
        # (st2) A Ctrl-C inside the statement too (DuckDB's "Query interrupted", a RuntimeError):
        # hidden, it was taken for an unreadable file and the ingest went on with the next one.
        if "transaction is aborted" in str(exc) and (isinstance(cause, duckdb.Error) or interrupted(cause)):
            raise cause from None
        raise


def _rollback(con, path, exc: BaseException) -> None:
    """Roll back after ``exc``; the rollback's own failure (DuckDB invalidates a connection whose
    write failed, e.g. on a full disk) must not hide the cause. A full disk becomes a StoreError
    that says so."""
    try:
        con.execute("ROLLBACK")
    except Exception:  # noqa: BLE001 - the original error is what the user must see
        pass
    if _disk_full(exc):
        raise StoreError(f"{path}: disk full (No space left on device) while writing the store; nothing of "
                         f"this operation was committed. Free space and run it again. ({_first_line(exc)})") from exc


def same_file(a, b) -> bool:
    """``a`` and ``b`` name one file (a link, a relative path, ``..``), whether or not it exists yet."""
    a, b = Path(a), Path(b)
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def check_paths(db, rejects=None, inputs=(), outputs: dict | None = None) -> None:
    """Refuse outputs that would overwrite the store or one of the inputs.

    ``db`` is the store path (or a :class:`Store`), ``rejects`` the rejects CSV path (None: no
    rejects file), ``outputs`` other outputs by option name (``{"out": path}``; None values are
    skipped), ``inputs`` the files (or folders) read. Raises :class:`StoreError` naming the option
    and both paths; nothing is written.
    """
    named = {"rejects": rejects, **(outputs or {})}
    named = {o: Path(p) for o, p in named.items() if p is not None and str(p) != ""}
    if not named:
        return
    if db is not None and not isinstance(db, (str, Path)):
        db = getattr(db, "path", None)
    stores = [Path(db), Path(str(db) + ".wal")] if db is not None and str(db) != ":memory:" else []
    files = []
    for item in inputs:
        if isinstance(item, (str, Path)):
            p = Path(item)
            files += sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    for option, out in named.items():
        flag = f"--{option}"
        if any(same_file(out, p) for p in stores):
            raise StoreError(f"{flag} {out}: is the store file {db}; writing there would destroy it. "
                             f"Give another {flag} path")
        for p in files:
            if same_file(out, p):
                raise StoreError(f"{flag} {out}: is the input file {p}; writing there would overwrite it. "
                                 f"Give another {flag} path")


def _us(values) -> pa.Array:
    """Times (any resolution, tz or naive UTC, None/NaT) as an Arrow microsecond UTC array, floored
    (a window bound never shrinks by the rounding)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.DatetimeTZDtype):
        t = values.dt.tz_convert("UTC")  # already times (the stream engine's windows): no object round trip
    else:
        t = pd.to_datetime(pd.Series(list(values), dtype=object), utc=True)
    return pa.array(t.dt.floor("us"), pa.timestamp("us", tz="UTC"))


def _argsort2(major: np.ndarray, minor: np.ndarray, n_major: int, stable: bool = False) -> np.ndarray:
    """Order by (major, minor): one int64 key when it fits (the common case), two keys otherwise."""
    if len(minor) == 0:
        return np.zeros(0, np.int64)
    m_min = int(minor.min())
    span = int(minor.max()) - m_min + 1
    if n_major * span < 2**62:
        key = major * span + (minor - m_min)
        if np.all(key[1:] > key[:-1]):  # already in order, the common case for exports
            return np.arange(len(key))
        return np.argsort(key, kind="stable" if stable else None)
    return np.lexsort((minor, major))


def _group_quantile(groups: np.ndarray, values: np.ndarray, n_groups: int, q: float,
                    min_count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Higher ``q``-quantile of ``values`` per group (the value at index ``ceil(q * (n - 1))`` of
    the sorted ``n``), for groups with at least ``min_count`` values. Higher, not lower: as long as
    at most ``q * (n - 1)`` of a group's values lie below the ones wanted, one of those is picked,
    however small the group (a short meter's 6 gaps between rows, 4 of them retransmission jitter:
    the lower 0.75-quantile, index 3, was jitter, and the retransmissions were kept as readings)."""
    if len(values) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    g_starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
    if len(g_starts) <= 20_000 and len(np.unique(groups[g_starts])) == len(g_starts):
        # Groups already contiguous (the sorted view): a partial sort per group, a loop over
        # meters (not readings), is far cheaper than sorting everything again.
        bounds = np.append(g_starts, len(groups))
        keys, out = [], []
        for a, b in zip(bounds[:-1], bounds[1:]):
            if b - a >= min_count:
                k = int(np.ceil(q * (b - a - 1)))
                keys.append(groups[a])
                out.append(np.partition(values[a:b], k)[k])
        return np.asarray(keys, np.int64), np.asarray(out, float)
    order = _argsort2(groups, values, n_groups)
    g, v = groups[order], values[order]
    starts = np.flatnonzero(np.concatenate([[True], g[1:] != g[:-1]]))
    sizes = np.diff(np.concatenate([starts, [len(g)]]))
    ok = sizes >= min_count
    pick = starts[ok] + np.ceil(q * (sizes[ok] - 1)).astype(np.int64)
    return g[starts[ok]], v[pick].astype(float)
