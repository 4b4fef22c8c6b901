"""Ingest files (or in-memory frames) into the store: read, map, check, de-duplicate, merge, report."""

from __future__ import annotations

import csv
import dataclasses
import io
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from wattwatch._prefetch import prefetch
from wattwatch.ingest.energykind import EnergyKind
from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.ingest.normalize import MISSING_TOKENS, build_select, unit_header_hint
from wattwatch.ingest.readers import LINE, NotRecordsError, RawBatch, RawReject, detect_format, read_batches, read_frame
from wattwatch.schema import COLUMNS
from wattwatch.store.duck import IngestCounts, Store, interrupted

if TYPE_CHECKING:
    import pandas as pd

REJECT_HEADER = ("file", "line", "field", "reason", "run")


class IngestError(ValueError):
    """A source cannot be ingested; the message is one line naming the file."""


def ingest_path(store: Store, path: str | Path, mapping: Mapping | None = None,
                on_progress: Callable[[int], None] | None = None) -> IngestCounts:
    """Ingest one file in one transaction and return its counts (rejects included).

    Raises
    ------
    IngestError
        The file is not what it claims to be, or its columns cannot be mapped. Nothing of the file
        is stored, and nothing stored before is touched.
    """
    path = Path(path)
    mapping = mapping or Mapping()
    notes: list[str] = []
    with _as_ingest_error(str(path)):
        fmt = detect_format(path)
        size = path.stat().st_size if path.exists() else 0
        raw = read_batches(path, delimiter=mapping.delimiter, tables=mapping.tables,
                           column_types=lambda names: csv_column_types(names, mapping))
        resolved: dict[str, tuple[str, ...]] = {}
        batches = prefetch(_resolved_into(_prepared(raw, fmt, mapping, notes), resolved))
        kind = EnergyKind()   # (adv2) an interval energy mapped as the register, or a register as power
        counts = store.ingest(batches, source=str(path), bytes_total=size, on_progress=on_progress, on_rows=kind)
    counts.notes.extend(notes)
    counts.notes.extend(kind.notes(str(path), resolved))
    return counts


def _resolved_into(prepared: Iterable[tuple], resolved: dict) -> Iterator[tuple]:
    """The batches of :func:`_prepared`, noting in ``resolved`` which source columns each channel is read from
    (a wide export's cells: its meter columns)."""
    for item in prepared:
        for canon, cols in item[0].resolved.items():
            resolved.setdefault(canon, ("the [wide] meter columns",) if WIDE_VALUE in cols else tuple(cols))
        yield item


def ingest_frame(store: Store, frame: "pd.DataFrame", mapping: Mapping | None = None,
                 source: str = "<frame>") -> IngestCounts:
    """Ingest an in-memory DataFrame in one transaction, exactly as a file with its columns.

    The frame goes through the same mapping (built-in aliases, ``mapping``'s columns and extra
    channels), checks, de-duplication and rejects as :func:`ingest_path`; a reject's line is the
    row's position in the frame plus one.

    Parameters
    ----------
    store : Store
        Target store.
    frame : pandas.DataFrame
        One row per reading; any column names the mapping can resolve.
    mapping : Mapping, optional
        Column mapping (built-in aliases only when None).
    source : str
        Name for rejects, notes and ``ingest_log``.

    Raises
    ------
    IngestError
        The frame's columns cannot be mapped (no timestamp, say). Nothing of it is stored.
    """
    mapping = mapping or Mapping()
    notes: list[str] = []
    with _as_ingest_error(source):
        raw = read_frame(frame, unit=source)
        size = _nbytes(frame)
        counts = store.ingest(prefetch(_prepared(raw, "frame", mapping, notes)), source=source, bytes_total=size)
    counts.notes.extend(notes)
    return counts


# A normaliser's statement holds its time bound (now + 1 day) as a constant: the live path
# rebuilds its normalisers this often, so the bound is at most this late.
LIVE_NORMALISER_S = 60.0


def ingest_live(store: Store, frame: "pd.DataFrame", mapping: Mapping | None = None,
                source: str = "<live>", cache: dict | None = None, background: bool = False, poll=None,
                then=None) -> tuple[IngestCounts, "pd.DataFrame | None", set[str]]:
    """:func:`ingest_frame` for a watcher's small batches (``Store.ingest(..., live=True)``): the
    same checks, de-duplication, merge and rejects, in fewer statements, and the rows it stored.

    ``cache`` (a dict the caller keeps between calls) holds the normalisers, rebuilt every
    ``LIVE_NORMALISER_S``. Returns the counts, the readings added to the store (``meter_id`` as
    str, ``ts``, channels, sorted by meter and time; None for a wide mapping) and the meters whose
    readings already stored the batch may have changed (a copy filled their channels: read those
    meters from the store). ``counts.changed``: the stored readings a copy filled (meter, the stored
    reading's time in µs, whether that copy also gave another value; None: none), so a caller tells
    them from plain repeats; ``counts.conflicts``: the copies whose other values were dropped (fast:
    a correction changes nothing stored).

    ``poll`` (lc): ``(interval_s, meters or None)`` of the poller that read the frame (``Store.ingest``).

    ``background`` (ovl): the store's writes and COMMIT go on in its worker thread after this
    returns (``Store.ingest(..., background=True)``; the store's ``con`` waits for them).

    ``then`` (le3): called as ``then(counts, rows)`` (``counts.changed`` set, ``rows`` as returned)
    once the readings are merged, inside the ingest's transaction; the writes ``(table, sql)`` it
    returns are committed with the readings (``Store.ingest``'s ``then``).
    """
    import time as _time

    mapping = mapping or Mapping()
    if mapping.wide is not None:
        return ingest_frame(store, frame, mapping, source), None, set()
    if cache is None:
        cache = {}
    now = _time.monotonic()
    if now - cache.get("_built", float("-inf")) > LIVE_NORMALISER_S:
        cache.clear()
        cache["_built"] = now
    notes: list[str] = []
    out: list = []
    got: list = []   # (touched, rows) once merged

    def merged(counts: IngestCounts):
        touched, rows = _live_rows(out, counts)
        got.append((touched, rows))
        return then(counts, rows) if then is not None else ()

    with _as_ingest_error(source):
        raw = read_frame(frame, unit=source)
        size = _nbytes(frame)
        counts = store.ingest(_prepared(raw, "frame", mapping, notes, cache), source=source, bytes_total=size,
                              live=True, stored_out=out, background=background, poll=poll, then=merged)
    counts.notes.extend(notes)
    touched, rows = got[0] if got else _live_rows(out, counts)
    return counts, rows, touched


def _nbytes(frame) -> int:
    """``frame.memory_usage(index=False).sum()`` (the bytes ``ingest_log`` records for a frame),
    summed over the frame's blocks, not through a Series per column (fk: ~0.6 ms CPU of a live
    step of 17 columns; the same figure: each block's values are what each column's
    ``memory_usage`` reads, an extension array by its own ``memory_usage``). 0 for a non-frame."""
    blocks = getattr(getattr(frame, "_mgr", None), "blocks", None)
    if blocks is None:
        return int(frame.memory_usage(index=False).sum()) if hasattr(frame, "memory_usage") else 0
    tot = 0
    for b in blocks:
        v = b.values
        tot += v.memory_usage(deep=False) if hasattr(v, "memory_usage") else v.nbytes
    return int(tot)


def _live_rows(out: list, counts: IngestCounts) -> tuple[set[str], "pd.DataFrame"]:
    """:func:`ingest_live`'s touched meters and stored rows from ``Store.ingest``'s ``stored_out``
    (sets ``counts.changed``)."""
    import pandas as pd

    touched = set().union(*(o[1] for o in out)) if out else set()
    chg = [o[2] for o in out if o[2] is not None]
    counts.changed = (chg[0] if len(chg) == 1 else pd.concat(chg, ignore_index=True)) if chg else None
    if not out:
        return touched, pd.DataFrame({"meter_id": pd.Series([], dtype=object),
                                      "ts": pd.Series([], dtype="datetime64[us, UTC]")})
    tables = [o[0] for o in out]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    # Sorted by meter and time in Arrow (stable, as pandas' stable sort on the same keys; a pandas
    # sort costs ~1.5 ms a step of 200 readings, mostly fixed cost).
    table = table.set_column(table.schema.get_field_index("meter_id"), "meter_id",
                             pc.cast(table["meter_id"], pa.string()))
    table = table.take(pc.sort_indices(table, [("meter_id", "ascending"), ("ts", "ascending")]))
    df = _plain_frame(table)
    return touched, df if df is not None else _general_frame(table)


def _general_frame(table: pa.Table) -> "pd.DataFrame":
    """:func:`_live_rows`' frame of any table: ``meter_id`` as str, ``ts`` in µs UTC."""
    df = table.to_pandas()
    df["meter_id"] = df["meter_id"].astype(str)
    if len(df) and str(df["ts"].dtype) != "datetime64[us, UTC]":
        df["ts"] = df["ts"].dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return df


_UTC_US = pa.timestamp("us", tz="UTC")


def _plain_frame(table: pa.Table) -> "pd.DataFrame | None":
    """(fk) :func:`_live_rows`' frame built from the columns' arrays when the table is the usual
    one (``meter_id`` text without nulls, ``ts`` in µs UTC without nulls, every other column a
    double): what :func:`_general_frame` gives (object ``meter_id``,
    ``datetime64[us, UTC]``, float64 with NaN for nulls; the same blocks), for ~a third of its fixed
    cost (~0.6 ms a step). None for any other table (the general way then)."""
    import pandas as pd

    if not table.num_rows:
        return None
    out = {}
    for name, col in zip(table.column_names, table.columns):
        typ = col.type
        if name == "meter_id":
            if typ != pa.string() or col.null_count:
                return None
            out[name] = col.to_numpy()
        elif name == "ts":
            if typ != _UTC_US or col.null_count:
                return None
            out[name] = pd.array(col.to_numpy().astype("datetime64[us]"), dtype="datetime64[us]").tz_localize("UTC")
        elif typ == pa.float64():
            out[name] = col.to_numpy()
        else:
            return None
    if "meter_id" not in out or "ts" not in out:
        return None
    return pd.DataFrame(out)


@contextmanager
def _as_ingest_error(source: str):
    """Turn what a reader, the mapping or the store raise about a source into one-line IngestErrors."""
    try:
        yield
    except NotRecordsError as exc:
        raise IngestError(str(exc)) from exc
    except MappingError as exc:
        raise IngestError(f"{source}: {exc}") from exc
    except (pa.ArrowException, duckdb.Error, UnicodeDecodeError, OSError, EOFError) as exc:
        if interrupted(exc):   # a Ctrl-C inside DuckDB stops the ingest; it says nothing of the file
            raise
        raise IngestError(f"{source}: unreadable: {exc}".splitlines()[0]) from exc


def _prepared(raw: Iterable[RawBatch], fmt: str, mapping: Mapping, notes: list[str],
              cache: dict | None = None) -> Iterator[tuple]:
    """Yield ``(normalizer, arrow table, unit, raw rejects, bytes read, relation)`` for :meth:`Store.ingest`.
    ``cache``: normalisers by (unit, layout), kept across calls by the caller (the live path)."""
    cache = {} if cache is None else cache
    skipped_units: set[str] = set()
    used_units = 0
    last_bytes = 0
    last: dict[str, tuple] = {}  # unit -> (normalizer, schema) of its last mapped block
    pending: list = []  # rejects of blocks that could not be mapped, reported with the next one
    first_error = None
    for batch in raw:
        if batch.unit in skipped_units:
            continue
        batch_mapping, wide_col = mapping, None
        if mapping.wide is not None and (batch.table.num_rows or batch.relation is not None
                                         or len(batch.table.column_names) > 1):
            try:
                batch, batch_mapping = melt_wide(batch, mapping)
            except MappingError as exc:
                if fmt != "sqlite":
                    raise
                # A .db export holds non-telemetry tables too (settings, alarms); say so, go on.
                notes.append(f"table {batch.unit.rsplit(':', 1)[-1]} skipped: {exc}")
                skipped_units.add(batch.unit)
                continue
            wide_col = WIDE_COLUMN
        key = (batch.unit, tuple((f.name, str(f.type)) for f in batch.table.schema))
        if key not in cache:
            default_meter = batch.unit.rsplit(":", 1)[-1] if fmt == "sqlite" else None
            try:
                norm = build_select(batch.table.schema, batch_mapping, default_meter=default_meter,
                                    wide_column=wide_col)
            except MappingError as exc:
                if fmt == "sqlite":
                    # A .db export holds non-telemetry tables too (settings, alarms); say so, go on.
                    notes.append(f"table {batch.unit.rsplit(':', 1)[-1]} skipped: {exc}")
                    skipped_units.add(batch.unit)
                    continue
                # A later block of a file (JSON Lines are typed per block) whose records all lack a
                # mapped column, or hold none at all: its rows are rejects, the file's good rows stay.
                lines = batch.table.column(LINE).to_pylist() if LINE in batch.table.column_names else []
                why = [RawReject(int(ln), f"record lacks a mapped column: {exc}") for ln in lines]
                pending.extend(batch.rejects + why)
                if batch.unit in last:
                    norm, schema = last[batch.unit]
                    yield norm, schema.empty_table(), batch.unit, pending, 0, None
                    pending = []
                    continue
                if batch.table.num_rows == 0:
                    first_error = first_error or exc
                    continue  # (a first block of junk lines: the records may start later)
                raise
            if norm.ignored and not any(n.startswith(f"{batch.unit}: ignored") for n in notes):
                notes.append(f"{batch.unit}: ignored column(s) not in the schema: {', '.join(norm.ignored[:20])}"
                             + unit_header_hint(norm.ignored))
            cache[key] = norm
            used_units += 1
        delta = max(batch.bytes_read - last_bytes, 0)
        last_bytes = max(last_bytes, batch.bytes_read)
        norm = cache[key]
        table = batch.table
        if batch.relation is None and table.num_columns > 64:
            # Only the mapped columns go on to DuckDB (a 20,000-column export took seconds a row).
            used = {n for names in norm.resolved.values() for n in names} | {LINE}
            table = table.select([i for i, n in enumerate(table.column_names) if n in used])
        last[batch.unit] = (norm, table.schema)
        yield norm, table, batch.unit, pending + batch.rejects, delta, batch.relation
        pending = []
    if first_error is not None and not last:
        raise first_error
    if fmt == "sqlite" and used_units == 0:
        raise MappingError("no table holds telemetry (" + "; ".join(notes) + ")")


WIDE_COLUMN, WIDE_METER, WIDE_VALUE = "__column", "__meter", "__value"


def _wide_ts(names: list[str], mapping: Mapping) -> str:
    """The time column of a wide source: ``[wide] ts``, ``[columns] ts`` or a built-in alias."""
    wide = mapping.wide
    ts = wide.ts or mapping.columns.get("ts")
    if isinstance(ts, tuple):   # (rfh: was an AttributeError, in the "not in source" suggestion)
        raise MappingError(f"[wide] the time is one column ([wide] ts = \"...\"), not {list(ts)}; a date and a time "
                           "column are read in a long file only")
    if ts is None:
        ts = (Mapping().resolve(names).get("ts") or (None,))[0]
        if ts is None:
            raise MappingError(f"[wide] no column maps to ts (columns: {', '.join(names[:30])}); "
                               "name it with [wide] ts = \"...\"")
    elif ts not in names:
        from wattwatch.ingest.mapping import _suggest

        raise MappingError(f"[wide] ts names column {ts!r} not in source" + _suggest(ts, names))
    return ts


def melt_wide(batch: RawBatch, mapping: Mapping) -> tuple[RawBatch, Mapping]:
    """A wide batch (one time column, one column per meter) in long form, and the mapping for it.

    Vectorised: one filter per meter column (pyarrow), or a DuckDB UNPIVOT over a relation. A blank
    cell (null, NaN or a missing token) is no reading, not a row. The long table has the time
    column, ``_line`` (the source line, shared by the cells of a line), ``__column`` (the source
    column, named by rejects), ``__meter`` and ``__value``.
    """
    wide = mapping.wide
    table = batch.table
    names = [n for n in table.column_names if n != LINE]
    ts = _wide_ts(names, mapping)
    if wide.channels:
        return _melt_channels(batch, mapping, ts, wide.groups(names, ts))
    cols = wide.layout(names, ts)
    if not cols:
        raise MappingError(f"[wide] no meter columns besides the time column {ts!r} (columns: {', '.join(names[:30])})")
    numeric = all(pa.types.is_integer(table.schema.field(c).type) or pa.types.is_floating(table.schema.field(c).type)
                  or pa.types.is_null(table.schema.field(c).type) or pa.types.is_decimal(table.schema.field(c).type)
                  for c in cols)
    vtype = pa.float64() if numeric else pa.string()
    canon = wide.channel in COLUMNS
    long_mapping = dataclasses.replace(
        mapping, wide=None, builtin_aliases=False,
        columns={"ts": ts, "meter_id": WIDE_METER, **({wide.channel: WIDE_VALUE} if canon else {})},
        extra={wide.channel: WIDE_VALUE} if not canon else {},
        defaults={k: v for k, v in mapping.defaults.items() if k != "meter_id"},
        scale={k: v for k, v in mapping.scale.items() if k in COLUMNS or k == wide.channel},
        units={k: v for k, v in mapping.units.items() if k in COLUMNS or k == wide.channel})
    ts_field = table.schema.field(ts)
    schema = pa.schema([ts_field, pa.field(LINE, pa.int64()), pa.field(WIDE_COLUMN, pa.string()),
                        pa.field(WIDE_METER, pa.string()), pa.field(WIDE_VALUE, vtype)])
    if batch.relation is not None:
        q = lambda n: '"' + n.replace('"', '""') + '"'  # noqa: E731
        lit = lambda v: "'" + v.replace("'", "''") + "'"  # noqa: E731
        sql_t = "DOUBLE" if numeric else "VARCHAR"
        inner = ", ".join([q(ts), LINE] + [f"CAST({q(c)} AS {sql_t}) AS {q(c)}" for c in cols])
        renames = " ".join(f"WHEN {lit(c)} THEN {lit(m)}" for c, m in wide.meters.items() if c in cols)
        meter = f"CASE {WIDE_COLUMN} {renames} ELSE {lit(wide.meter_prefix)} || {WIDE_COLUMN} END" if renames \
            else f"{lit(wide.meter_prefix)} || {WIDE_COLUMN}"
        if numeric:
            absent = f"isnan({WIDE_VALUE})"
        else:
            absent = f"lower(trim({WIDE_VALUE})) IN ({', '.join(lit(t) for t in MISSING_TOKENS)})"
        relation = (f"(SELECT {q(ts)}, {LINE}, {WIDE_COLUMN}, {meter} AS {WIDE_METER}, {WIDE_VALUE} FROM "
                    f"(UNPIVOT (SELECT {inner} FROM {batch.relation}) ON {', '.join(q(c) for c in cols)} "
                    f"INTO NAME {WIDE_COLUMN} VALUE {WIDE_VALUE}) WHERE NOT {absent})")
        return dataclasses.replace(batch, table=schema.empty_table(), relation=relation), long_mapping
    parts = []
    tokens = pa.array(MISSING_TOKENS)
    for c in cols:
        v, blank = _blank_cells(table[c], numeric, tokens)
        keep = pc.invert(blank)
        n = pc.sum(keep).as_py() or 0
        if not n:
            continue
        parts.append(pa.Table.from_arrays(
            [pc.filter(table[ts], keep), pc.filter(table[LINE], keep), pa.repeat(pa.scalar(c), n),
             pa.repeat(pa.scalar(wide.meter_id(c)), n), pc.filter(v, keep)], schema=schema))
    long = pa.concat_tables(parts) if parts else schema.empty_table()
    return dataclasses.replace(batch, table=long), long_mapping


def _blank_cells(v: pa.ChunkedArray, numeric: bool, tokens: pa.Array) -> tuple[pa.ChunkedArray, pa.ChunkedArray]:
    """A wide column cast to float64 (number columns) or text, and which of its cells are blank:
    null, NaN, or a missing-value token (``-``, ``N/A`` ...) in a text column. Never null."""
    if numeric:
        v = pc.cast(v, pa.float64())
        return v, pc.fill_null(pc.is_nan(v), True)
    v = pc.cast(v, pa.string())
    return v, pc.or_(pc.is_null(v), pc.fill_null(pc.is_in(pc.utf8_lower(pc.utf8_trim_whitespace(v)),
                                                          value_set=tokens), True))


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t) or pa.types.is_decimal(t)


def _melt_channels(batch: RawBatch, mapping: Mapping, ts: str, groups: dict[str, dict[str, str]]):
    """:func:`melt_wide` with several channels per meter (``[wide.channels]``): one row per line
    and meter with a column per channel (a meter's absent channel is null); a line where all of a
    meter's cells are blank gives no row. Vectorised per column (pyarrow) or one DuckDB UNPIVOT."""
    wide = mapping.wide
    table = batch.table
    if not groups:
        raise MappingError(f"[wide] no column matches [wide.channels] ({', '.join(wide.channels.values())})")
    chans = list(wide.channels)
    value = {ch: f"__v_{ch}" for ch in chans}
    numeric = {ch: all(_is_number(table.schema.field(g[ch]).type) for g in groups.values() if ch in g) for ch in chans}
    long_mapping = dataclasses.replace(
        mapping, wide=None, builtin_aliases=False,
        columns={"ts": ts, "meter_id": WIDE_METER, **{ch: value[ch] for ch in chans if ch in COLUMNS}},
        extra={ch: value[ch] for ch in chans if ch not in COLUMNS},
        defaults={k: v for k, v in mapping.defaults.items() if k != "meter_id"},
        scale={k: v for k, v in mapping.scale.items() if k in COLUMNS or k in chans},
        units={k: v for k, v in mapping.units.items() if k in COLUMNS or k in chans})
    schema = pa.schema([table.schema.field(ts), pa.field(LINE, pa.int64()), pa.field(WIDE_COLUMN, pa.string()),
                        pa.field(WIDE_METER, pa.string()),
                        *(pa.field(value[ch], pa.float64() if numeric[ch] else pa.string()) for ch in chans)])
    if batch.relation is not None:
        q = lambda n: '"' + n.replace('"', '""') + '"'  # noqa: E731
        lit = lambda v: "'" + v.replace("'", "''") + "'"  # noqa: E731
        tokens = ", ".join(lit(t) for t in MISSING_TOKENS)
        inner, sets = [q(ts), LINE], []
        k = 0
        for meter, g in groups.items():
            cells = []
            for ch in chans:
                alias = f"__c{k}"
                k += 1
                if ch not in g:
                    expr = f"CAST(NULL AS {'DOUBLE' if numeric[ch] else 'VARCHAR'})"
                elif numeric[ch]:
                    x = f"CAST({q(g[ch])} AS DOUBLE)"
                    expr = f"CASE WHEN isnan({x}) THEN NULL ELSE {x} END"
                else:
                    x = f"CAST({q(g[ch])} AS VARCHAR)"
                    expr = f"CASE WHEN lower(trim({x})) IN ({tokens}) THEN NULL ELSE {x} END"
                inner.append(f"{expr} AS {alias}")
                cells.append(alias)
            sets.append(f"({', '.join(cells)}) AS {lit(meter)}")
        renames = " ".join(f"WHEN {lit(c)} THEN {lit(m)}" for c, m in wide.meters.items() if c in groups)
        meter = f"CASE {WIDE_COLUMN} {renames} ELSE {lit(wide.meter_prefix)} || {WIDE_COLUMN} END" if renames \
            else f"{lit(wide.meter_prefix)} || {WIDE_COLUMN}"
        vals = [q(value[ch]) for ch in chans]
        relation = (f"(SELECT {q(ts)}, {LINE}, {WIDE_COLUMN}, {meter} AS {WIDE_METER}, {', '.join(vals)} FROM "
                    f"(SELECT {', '.join(inner)} FROM {batch.relation}) UNPIVOT INCLUDE NULLS "
                    f"(({', '.join(vals)}) FOR {WIDE_COLUMN} IN ({', '.join(sets)})) "
                    f"WHERE NOT ({' AND '.join(f'{v} IS NULL' for v in vals)}))")
        return dataclasses.replace(batch, table=schema.empty_table(), relation=relation), long_mapping
    tokens = pa.array(MISSING_TOKENS)
    n_rows = table.num_rows
    parts = []
    for meter, g in groups.items():
        arrays, any_value = [], None
        for ch in chans:
            if ch not in g:
                arrays.append(pa.nulls(n_rows, pa.float64() if numeric[ch] else pa.string()))
                continue
            v, blank = _blank_cells(table[g[ch]], numeric[ch], tokens)
            v = pc.if_else(blank, pa.scalar(None, v.type), v)
            arrays.append(v)
            here = pc.invert(blank)
            any_value = here if any_value is None else pc.or_(any_value, here)
        keep = pc.fill_null(any_value, False)
        n = pc.sum(keep).as_py() or 0
        if not n:
            continue
        parts.append(pa.Table.from_arrays(
            [pc.filter(table[ts], keep), pc.filter(table[LINE], keep), pa.repeat(pa.scalar(meter), n),
             pa.repeat(pa.scalar(wide.meter_id(meter)), n), *(pc.filter(a, keep) for a in arrays)], schema=schema))
    long = pa.concat_tables(parts) if parts else schema.empty_table()
    return dataclasses.replace(batch, table=long), long_mapping


def csv_column_types(names: list[str], mapping: Mapping) -> dict[str, pa.DataType]:
    """Types pyarrow can parse a CSV's mapped columns as: numbers as float64, and the timestamp
    as UTC when offsets are the norm (naive times need the mapping's zone, so they stay text); the
    columns no channel, time or meter reads as bytes ((adv2) a Windows-1252 comment column, not read,
    rejected every row it held an accent in; only a read column must be UTF-8 text). (nb) So are a
    ``[wide]`` export's columns that are neither its time nor a meter's (a status or notes column):
    a NUL or a Windows-1252 byte there rejected the row, and every meter's reading on it."""
    if mapping.wide is not None:
        try:
            ts = _wide_ts(names, mapping)
            if mapping.wide.channels:
                meters = [c for g in mapping.wide.groups(names, ts).values() for c in g.values()]
            else:
                meters = mapping.wide.layout(names, ts)
        except MappingError:
            return {}
        read = {ts, *meters}
        unread = {n: pa.binary() for n in names if n not in read}
        if mapping.decimal != ".":
            return unread
        types = unread | {c: pa.float64() for c in meters}
        if mapping.ts_format is None and mapping.timezone.upper() == "UTC":
            types[ts] = pa.timestamp("us", tz="UTC")
        return types
    try:
        resolved = mapping.resolve(names)
    except MappingError:
        return {}
    read = {src for cols in resolved.values() for src in cols}
    unread = {n: pa.binary() for n in names if n not in read}
    if mapping.decimal != ".":
        return unread
    types = unread | {src: pa.float64() for canon, cols in resolved.items() if canon not in ("meter_id", "ts") for src in cols}
    if "ts" in resolved and len(resolved["ts"]) == 1 and mapping.ts_format is None and mapping.timezone.upper() == "UTC":
        types[resolved["ts"][0]] = pa.timestamp("us", tz="UTC")
    return types


def _printable(value):
    if not isinstance(value, str):
        return value
    return value.replace("\x00", "\\0").encode("utf-8", "backslashreplace").decode("utf-8")


try:   # (nb) a run appending to a rejects file locks it meanwhile
    import fcntl
except ImportError:   # (Windows) appended unlocked
    fcntl = None

# Rows rendered and written at a time while a run holds the rejects file's lock (memory stays small).
REJECTS_CHUNK_ROWS = 20_000


def _read_at(fd: int, n: int, at: int) -> bytes:
    """``n`` bytes of ``fd`` from ``at`` (os.pread where there is one)."""
    if hasattr(os, "pread"):
        return os.pread(fd, n, at)
    os.lseek(fd, at, os.SEEK_SET)
    return os.read(fd, n)


class RejectsWriter:
    """Appends rejected rows to a CSV, each with the run that rejected it; created only when there is a reject.

    (adv2) The file was rewritten by each run: a user who ran two ingests (or an ingest and then a
    ``detect FILE``, which ingests too) lost the first run's rejects. Rows are now appended under the
    header ``file, line, field, reason, run`` (``run``: the command's start, ISO-8601 UTC with
    milliseconds, the same for every row of one run), so one path (the default, or a ``--rejects``
    a scheduled job was given) keeps every run's, and one run's rows are a filter on ``run``. The
    ``run`` column is last: a reader of the four columns by position reads them as before. A file
    of an earlier wattwatch (the four columns, no ``run``) is rewritten once with ``run`` empty; a
    file with another header is not written to (an ``OSError`` saying so: it is not a rejects file).

    (nb) Two runs at once on one file (two scheduled ingests, an ingest and a ``detect FILE``) wrote
    through buffered file objects, 8 KB at a time: their rows could interleave mid-row, and both
    could write the header. Each :meth:`write` now holds an exclusive ``flock`` on the file while it
    checks (or writes) the header and appends its rows, so one call's rows are whole and together;
    a write that fails part way (a full disk, a Ctrl-C) cuts the file back to where it was. Where
    the file system has no locks (or no ``fcntl``), rows are appended unlocked as before.
    """

    def __init__(self, path: str | Path, run: str | None = None):
        self.path = Path(path)
        self.count = 0
        self.run = run or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        self._headed = False   # (rnb) a pipe (--rejects /dev/stdout) has no size: its header once per writer

    def _locked(self) -> tuple[int, bool]:
        """A descriptor of the rejects file (made if absent), appending, its header checked (an earlier
        wattwatch's file upgraded first), and whether it is under an exclusive lock."""
        header = ",".join(REJECT_HEADER)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        while True:
            fd = os.open(self.path, flags, 0o666)
            try:
                locked = False
                if fcntl is not None:
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX)
                        locked = True
                    except OSError:   # a file system without locks (some network mounts): unlocked
                        pass
                held = os.fstat(fd)
                try:
                    now = os.stat(self.path)
                except FileNotFoundError:
                    now = None
                if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                    os.close(fd)   # another run replaced it (upgraded it) while this one waited: open the new one
                    continue
                first = ""
                if held.st_size:
                    first = _read_at(fd, 4096, 0).split(b"\n", 1)[0].decode("utf-8", "replace").rstrip("\r")
                    if first == ",".join(REJECT_HEADER[:-1]):
                        self._upgrade()
                        os.close(fd)
                        continue
                    if first != header:
                        raise OSError(0, f"exists and is not a wattwatch rejects file (its first line is {first[:80]!r}, "
                                         f"not {header!r}); rejected rows are appended to it, so move it away or give "
                                         "another --rejects", str(self.path))
                return fd, locked
            except BaseException:
                try:
                    os.close(fd)
                except OSError:
                    pass
                raise

    def _upgrade(self) -> None:
        """An earlier wattwatch's rejects file (no ``run`` column): its rows kept, ``run`` empty."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(self.path, newline="", encoding="utf-8", errors="surrogateescape") as src, \
                open(tmp, "w", newline="", encoding="utf-8", errors="surrogateescape") as dst:
            reader, writer = csv.reader(src), csv.writer(dst)
            next(reader, None)
            writer.writerow(REJECT_HEADER)
            writer.writerows(row + [""] for row in reader)
        os.replace(tmp, self.path)

    def _chunks(self, rows: list[tuple], header: bool) -> Iterator[bytes]:
        for start in range(0, len(rows), REJECTS_CHUNK_ROWS):
            buf = io.StringIO()
            writer = csv.writer(buf)
            if header and not start:
                writer.writerow(REJECT_HEADER)
            # A NUL or a lone surrogate from a hostile file must not break the rejects file itself.
            writer.writerows(tuple(_printable(v) for v in row) + (self.run,)
                             for row in rows[start:start + REJECTS_CHUNK_ROWS])
            yield buf.getvalue().encode("utf-8", "backslashreplace")

    def write(self, rows: list[tuple]) -> None:
        if not rows:
            return
        fd, locked = self._locked()
        try:
            st = os.fstat(fd)
            size = st.st_size
            # (rnb) A pipe or a terminal is always of size 0: its header is written by the first write only.
            header = not size if stat.S_ISREG(st.st_mode) else not self._headed
            try:
                if size and _read_at(fd, 1, size - 1) not in (b"\n", b"\r"):
                    os.write(fd, b"\r\n")   # a row cut short by a writer that died: ours start on a line of their own
                for data in self._chunks(rows, header=header):
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
            except BaseException:
                try:   # a full disk or a Ctrl-C part way: no half row is left for the next run to append to
                    if locked:   # (unlocked, another run's rows may follow ours)
                        os.ftruncate(fd, size)
                except OSError:
                    pass
                raise
        finally:
            os.close(fd)   # (the lock goes with it)
        self._headed = True
        self.count += len(rows)

    def close(self) -> None:
        """Nothing is held open between writes (each opens, locks, appends and closes the file)."""


__all__ = ["ingest_path", "ingest_frame", "IngestError", "RejectsWriter", "RawBatch"]
