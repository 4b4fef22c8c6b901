"""Build the SQL that turns a raw batch into canonical rows with reject reasons.

The statement runs inside DuckDB over the Arrow batch, so parsing, unit scaling and range checks
are vectorised and multi-threaded. The unit of rejection is the value: a channel value that cannot
be read or is implausible is stored as missing (``_drop`` marks the row) and reported; the row is
rejected whole (``_bad``) only when its meter id or time is bad or no channel value is left. A
second statement, run on those rows alone, gives the reasons.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.ingest.readers import LINE
from wattwatch.schema import CHANNEL_BY_NAME, CHANNEL_NAMES, Channel

# Tokens that mean "no value" in text exports; they become NULL, not rejects.
RELATION = "__wattwatch_relation__"
# A date column and a time column joined into one text (``[columns] ts = ["Date", "Time"]``).
TS_JOINED = "__wattwatch_ts_joined__"
# Where the local-time statements find what the file's earlier blocks said about each meter's
# repeated hour (``_c_meter``, ``_c_amb``, ``_c_plain``: see :func:`_local_layers`).
CARRY = "__wattwatch_fold_carry__"
NO_CARRY = "(SELECT NULL::VARCHAR AS _c_meter, NULL::TIMESTAMP AS _c_amb, NULL::TIMESTAMP AS _c_plain WHERE false)"
MISSING_TOKENS = ("", "nan", "null", "none", "na", "n/a", "-", "--", "#n/a", "nil")


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _is_text(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_number(t: pa.DataType) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)


def _missing(text_expr: str) -> str:
    tokens = ", ".join(_lit(t) for t in MISSING_TOKENS)
    return f"(lower(trim({text_expr})) IN ({tokens}))"


def _number_expr(col: str, t: pa.DataType, decimal: str) -> tuple[str, str | None]:
    """(value expression as DOUBLE with NaN as NULL, raw text expression for messages)."""
    q = _q(col)
    if _is_number(t) or pa.types.is_boolean(t) or pa.types.is_null(t):
        return f"CAST({q} AS DOUBLE)", None  # typed: every value parses
    txt = f"CAST({q} AS VARCHAR)"
    clean = f"trim({txt})"
    if decimal != ".":
        clean = f"replace(replace({clean}, '.', ''), {_lit(decimal)}, '.')"
    # '', 'nan', 'null', '-' ... all cast to NULL or NaN; the missing-token test runs only on
    # values that failed to cast, to tell a gap from junk.
    return f"TRY_CAST({clean} AS DOUBLE)", txt


# Epoch seconds DuckDB can turn into a time (years 0001-9999); anything else (inf, 1e308, -1e20)
# is NULL here and a reject naming the row, never an error for the whole file.
EPOCH_MIN_S, EPOCH_MAX_S = -62135596800, 253402300799


def _epoch_expr(num: str, unit: str) -> str:
    if unit == "s":
        secs = num
    elif unit == "ms":
        secs = f"({num} / 1e3)"
    elif unit == "us":
        secs = f"({num} / 1e6)"
    elif unit == "ns":
        secs = f"({num} / 1e9)"
    else:
        # auto: seconds until ~year 5138, then milliseconds, then microseconds.
        secs = (f"(CASE WHEN abs({num}) < 1e11 THEN {num} WHEN abs({num}) < 1e14 THEN {num} / 1e3 "
                f"ELSE {num} / 1e6 END)")
    return f"(CASE WHEN {secs} BETWEEN {EPOCH_MIN_S} AND {EPOCH_MAX_S} THEN to_timestamp({secs}) END)"


# An offset's hours are two digits, then optional minutes (``+19``, ``+19:00``, ``+1900``): 19 or more
# is beyond +-18:00. (Three or more hour digits DuckDB does not parse at all.) The basic form's
# four digits (``+0100``, as strftime's %z writes it) are hours and minutes, not 100 hours.
BAD_OFFSET = r"[0-9]:[0-9]{2}(:[0-9]{2}(\.[0-9]*)?)?\s*[+-](19|[2-9][0-9])(:?[0-9]{2})?$"


TS_HINT = (" (times are read as ISO-8601, with or without an offset, or epoch seconds; a time in another "
           "layout needs its format in a mapping: [options] ts_format = \"%d/%m/%Y %H:%M\", say)")


def _ts_expr(col: str, t: pa.DataType, mapping: Mapping) -> tuple[str, str | None, str]:
    """(instant expression, naive local-time expression or None, raw text expression).

    The instant is TIMESTAMPTZ for values that say their instant (an offset, an epoch, UTC
    sources); the naive expression is a TIMESTAMP of wall-clock time in ``mapping.timezone``,
    which the caller resolves (DST gaps and folds) when the zone is not UTC.
    """
    q = _q(col)
    utc = mapping.timezone.upper() == "UTC"
    raw = f"CAST({q} AS VARCHAR)"
    if pa.types.is_timestamp(t):
        if t.tz is not None or utc:
            return f"CAST({q} AS TIMESTAMPTZ)", None, raw
        return "NULL::TIMESTAMPTZ", f"CAST({q} AS TIMESTAMP)", raw
    if pa.types.is_date(t):
        if utc:
            return f"CAST(CAST({q} AS TIMESTAMP) AS TIMESTAMPTZ)", None, raw
        return "NULL::TIMESTAMPTZ", f"CAST({q} AS TIMESTAMP)", raw
    if _is_number(t):
        return _epoch_expr(f"CAST({q} AS DOUBLE)", mapping.epoch_unit), None, raw
    txt = f"trim(CAST({q} AS VARCHAR))"
    num = f"TRY_CAST({txt} AS DOUBLE)"
    # A UTC offset beyond +-18:00 is not an offset (DuckDB would shift the time by it).
    epoch = (f"WHEN {_missing(txt)} THEN NULL WHEN {num} IS NOT NULL THEN {_epoch_expr(num, mapping.epoch_unit)} "
             f"WHEN regexp_matches({txt}, {_lit(BAD_OFFSET)}) THEN NULL")
    if mapping.ts_format:
        naive = f"try_strptime({txt}, {_lit(mapping.ts_format)})"
        if utc:
            return f"CASE {epoch} ELSE CAST({naive} AS TIMESTAMPTZ) END", None, txt
        return (f"CASE {epoch} END", f"CASE WHEN {_missing(txt)} OR {num} IS NOT NULL THEN NULL "
                f"ELSE CAST({naive} AS TIMESTAMP) END", txt)
    if utc:
        return f"CASE {epoch} ELSE TRY_CAST({txt} AS TIMESTAMPTZ) END", None, txt
    has_offset = f"regexp_matches({txt}, '(Z|z|[+-][0-9]{{2}}(:?[0-9]{{2}})?)$')"
    return (f"CASE {epoch} WHEN {has_offset} THEN TRY_CAST({txt} AS TIMESTAMPTZ) END",
            f"CASE WHEN {_missing(txt)} OR {num} IS NOT NULL OR {has_offset} THEN NULL "
            f"ELSE TRY_CAST({txt} AS TIMESTAMP) END", txt)


def _local_layers(tz: str, window: bool) -> list[str]:
    """Selects (each over the previous one, ``{}`` standing for it) that turn ``ts__n``, a wall-clock
    time in zone ``tz``, and ``ts__d``, an instant, into ``ts``.

    Policy: a wall-clock time that does not exist (the hour skipped when clocks go forward) is a
    reject, never shifted. One that exists twice (the hour repeated when clocks go back) is taken
    from the order of the rows: a meter's first pass through the repeated hour is summer time, a
    return to a wall-clock time at or before one the meter already reported inside that hour is the
    second pass (standard time). When the meter's rows around it are not in time order (it already
    reported a time after the repeated hour) the row is a reject. The two candidate instants are
    the wall-clock time less the zone's offset one day before and one day after; each that maps
    back to the same wall-clock time is valid (none: a gap; two: a fold).

    A file read in blocks is judged a block at a time: the rows of the blocks before this one are
    what :data:`CARRY` holds per meter (``_c_amb``, ``_c_plain``: the latest repeated and plain
    wall-clock times it reported, as :attr:`Normalizer.carry_sql` gives them), so a block that
    starts inside (or just after) the repeated hour places its rows as one block would.
    """
    z = _lit(tz)
    w = "OVER (PARTITION BY x.meter_id ORDER BY x._line ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    prev = (f"SELECT x.*, greatest(max(CASE WHEN x.ts__amb THEN x.ts__n END) {w}, c._c_amb) AS ts__pamb, "
            f"greatest(max(CASE WHEN NOT x.ts__amb THEN x.ts__n END) {w}, c._c_plain) AS ts__pplain "
            f"FROM {{}} x LEFT JOIN {CARRY} c ON x.meter_id = c._c_meter") if window else \
        "SELECT *, NULL::TIMESTAMP AS ts__pamb, NULL::TIMESTAMP AS ts__pplain FROM {}"
    return [
        "SELECT *, timezone('UTC', ts__n) AS ts__u FROM {}",
        (f"SELECT *, ts__u - (timezone({z}, ts__u - INTERVAL 1 DAY) - (ts__n - INTERVAL 1 DAY)) AS ts__a, "
         f"ts__u - (timezone({z}, ts__u + INTERVAL 1 DAY) - (ts__n + INTERVAL 1 DAY)) AS ts__b FROM {{}}"),
        (f"SELECT *, coalesce(timezone({z}, ts__a) = ts__n, false) AS ts__oka, "
         f"coalesce(timezone({z}, ts__b) = ts__n, false) AS ts__okb FROM {{}}"),
        ("SELECT *, coalesce(ts__oka AND ts__okb AND ts__a <> ts__b, false) AS ts__amb, "
         "(ts__n IS NOT NULL AND NOT ts__oka AND NOT ts__okb) AS ts__gap FROM {}"),
        prev,
        # A meter that already reported a time after the repeated hour is not in time order here.
        ("SELECT *, CASE WHEN ts__d IS NOT NULL THEN ts__d WHEN ts__n IS NULL OR ts__gap THEN NULL "
         "WHEN ts__amb THEN (CASE WHEN ts__pplain > ts__n THEN NULL "
         "WHEN ts__pamb >= ts__n THEN greatest(ts__a, ts__b) ELSE least(ts__a, ts__b) END) "
         "WHEN ts__oka THEN ts__a ELSE ts__b END AS ts FROM {}"),
    ]


def _fmt(x: float) -> str:
    return f"{x:g}"


@dataclass(frozen=True)
class Normalizer:
    """The two statements for one source layout.

    ``fast_sql`` yields ``_line``, the canonical columns, the mapping's extra channels (``extras``,
    DOUBLE, after the canonical ones; a dropped value is NULL), a boolean ``_bad`` (the row is
    rejected whole) and ``_drop`` (a value of the row was dropped); it is what every row goes through.
    ``explain_sql`` yields ``_line``, ``meter_id``, ``_reason`` (every failed check), ``_field`` and
    one reason column per checked channel (``_d0`` ... in :attr:`dropped`'s order) and is run only on
    the rows ``fast_sql`` marked, so building reason strings costs nothing on clean data.
    """

    fast_sql: str
    explain_sql: str
    resolved: dict
    ignored: list
    extras: tuple[str, ...] = ()
    # (NaN-to-NULL as a statistics-proof CASE, the same as a cheaper NULLIF) per channel: the
    # NULLIF form is used over an in-memory table (``_t``), whose columns carry no statistics.
    nan_forms: tuple[tuple[str, str], ...] = ()
    # Wall-clock times in a zone with clock changes (a mapping's ``timezone``): ``carry_sql`` gives
    # per meter of a block what the next block of the same file needs to place its repeated hour
    # (``_c_meter``, ``_c_amb``, ``_c_plain``, see :func:`_local_layers`). None for instants.
    carry_sql: str | None = None
    # The channels whose values are checked, in the order of ``explain_sql``'s ``_d0``, ``_d1`` ...
    # (each the reason its value was dropped, NULL when it was not).
    dropped: tuple[str, ...] = ()

    def _sql(self, sql: str, relation: str) -> str:
        if relation.strip() == "_t":
            for slow, cheap in self.nan_forms:
                sql = sql.replace(slow, cheap)
        return sql.replace(RELATION, relation)

    def fast(self, relation: str, carry: str | None = None) -> str:
        """The fast statement over ``relation`` (a table name or a parenthesised query); ``carry``
        names the table of what the file's earlier blocks said (:attr:`carry_sql`, gathered over
        them), None when ``relation`` is the whole file or the first block."""
        return self._sql(self.fast_sql, relation).replace(CARRY, carry or NO_CARRY)

    def carry(self, relation: str) -> str:
        """:attr:`carry_sql` over ``relation``."""
        return self._sql(self.carry_sql, relation)

    def explain(self, relation: str) -> str:
        """The explain statement over ``relation``."""
        return self._sql(self.explain_sql, relation)


_UNIT_IN_HEADER = re.compile(r"^\s*(.+?)\s*[\[(]\s*([^\])]+?)\s*[\])]\s*$")


def unit_header_hint(ignored: list[str]) -> str:
    """A hint for ignored columns named as a channel with its unit in the header (`p_kw [W]`,
    `Voltage (V)`): they were only "ignored column(s)" while the file's power was lost."""
    from wattwatch.schema import unit_conversion

    hints = []
    for col in ignored:
        m = _UNIT_IN_HEADER.match(col)
        if m is None:
            continue
        stem, unit = m.group(1), m.group(2)
        try:
            canon = next(iter(Mapping().resolve([stem])), None)
        except MappingError:
            canon = None
        if canon is None or canon in ("meter_id", "ts"):
            continue
        try:
            unit_conversion(unit, canon)
            hints.append(f'[columns] {canon} = "{col}" with [units] {canon} = "{unit}"')
        except ValueError:
            hints.append(f'[columns] {canon} = "{col}"')
    if not hints:
        return ""
    return (f"; a channel named with its unit in the header is not matched by that name: map it in a mapping "
            f"file ({'; '.join(hints[:5])})")


def _bound(x: float) -> str:
    return _fmt(x) if np.isfinite(x) else ("'Infinity'::DOUBLE" if x > 0 else "'-Infinity'::DOUBLE")


def build_select(schema: pa.Schema, mapping: Mapping, default_meter: str | None = None,
                 wide_column: str | None = None) -> Normalizer:
    """Statements selecting canonical columns, the mapping's extra channels and checks from ``relation``.

    Parameters
    ----------
    schema : pyarrow.Schema
        Schema of the raw batch (must contain ``_line``).
    mapping : Mapping
        Column mapping.
    default_meter : str, optional
        ``meter_id`` for sources without a meter column (a SQLite table name, say).

    Raises
    ------
    MappingError
        When no column gives a timestamp, or no column or default gives a meter id.
    """
    types = {f.name: f.type for f in schema if f.name not in (LINE, wide_column)}
    resolved = mapping.resolve(list(types))
    if "ts" not in resolved:
        raise MappingError(f"no column maps to ts (columns: {', '.join(list(types)[:30])}); "
                           "give one with a mapping file: [columns] ts = \"...\"")
    meter_default = mapping.defaults.get("meter_id", default_meter)
    if "meter_id" not in resolved and meter_default is None:
        raise MappingError(f"no column maps to meter_id (columns: {', '.join(list(types)[:30])}); "
                           "give one with [columns] meter_id = \"...\" or [defaults] meter_id = \"...\" (or, when each column "
                           "is a meter, read it as a wide export: [wide] meter_columns = \"*\")")
    extras = mapping.extra_channels
    chan_names = [n for n in CHANNEL_NAMES] + list(extras)
    if not any(n in resolved or n in mapping.defaults for n in chan_names):
        raise MappingError(f"maps no channel: none of the columns ({', '.join(list(types)[:30])}) maps to a "
                           f"channel ({', '.join(CHANNEL_NAMES)}, or an [extra] one); map one with "
                           "[columns] p_kw = \"...\" (or [wide] for one column per meter)" + unit_header_hint(list(types)))
    for canon, names in resolved.items():
        if canon == "meter_id" and len(names) > 1:
            raise MappingError(f"{canon} must map to a single column, not {list(names)}")
        if canon == "ts" and len(names) > 2:
            raise MappingError(f"ts maps to one column, or to two (a date and a time column, read joined by a "
                               f"space), not {list(names)}")
    used = {n for names in resolved.values() for n in names}
    ignored = [c for c in types if c not in used]

    # Inner select: parsed values (and, for text sources, whether a value failed to parse).
    # Outer selects refer to them by name so each parse runs once per value.
    inner: list[str] = [f"{_q(LINE)} AS _line"]
    flags: list[str] = []  # fast pass: boolean conditions
    checks: list[str] = []  # explain pass: reason strings

    if "meter_id" in resolved:
        meter = f"NULLIF(trim(CAST({_q(resolved['meter_id'][0])} AS VARCHAR)), '')"
        if meter_default is not None:
            meter = f"COALESCE({meter}, {_lit(meter_default)})"
    else:
        meter = _lit(meter_default)
    inner.append(f"{meter} AS meter_id")
    flags.append("meter_id IS NULL")
    checks.append("CASE WHEN meter_id IS NULL THEN 'meter_id: missing' END")

    ts_col = resolved["ts"][0]
    source = RELATION
    if len(resolved["ts"]) == 2:
        # A date column and a time column (`16/12/2006`, `17:24:00`): one time, read as text joined by
        # a space (ts_format then describes both, "%d/%m/%Y %H:%M:%S"); either part missing: no time.
        # Joined once, in a layer of its own: the time rules name their column many times over, and
        # the join written in its place was computed at each (ingest CPU x1.8 over one column).
        parts = [f"NULLIF(trim(CAST({_q(c)} AS VARCHAR)), '')" for c in resolved["ts"]]
        joined = f"CASE WHEN {' IS NULL OR '.join(parts)} IS NULL THEN NULL ELSE {parts[0]} || ' ' || {parts[1]} END"
        source = f"(SELECT *, {joined} AS {_q(TS_JOINED)} FROM {RELATION})"
        ts, ts_naive, ts_raw = _ts_expr(TS_JOINED, pa.string(), mapping)
    else:
        ts, ts_naive, ts_raw = _ts_expr(ts_col, types[ts_col], mapping)
    local = ts_naive is not None
    carry_sql = None
    if local:
        inner += [f"{ts} AS ts__d", f"{ts_naive} AS ts__n"]
        placed = f"(SELECT {', '.join(inner)} FROM {source})"
        for layer in _local_layers(mapping.timezone, False)[:4]:  # up to ts__amb
            placed = "(" + layer.format(placed) + ")"
        carry_sql = ("SELECT meter_id AS _c_meter, max(CASE WHEN ts__amb THEN ts__n END) AS _c_amb, "
                     f"max(CASE WHEN NOT ts__amb THEN ts__n END) AS _c_plain FROM {placed} "
                     "WHERE meter_id IS NOT NULL GROUP BY meter_id")
    else:
        inner.append(f"{ts} AS ts")
    lo, hi = mapping.time_bounds()
    lo_sql, hi_sql = (f"TIMESTAMPTZ '{x.strftime('%Y-%m-%d %H:%M:%S')}+00'" for x in (lo, hi))
    span = f"[{lo.strftime('%Y-%m-%dT%H:%M:%SZ')}, {hi.strftime('%Y-%m-%dT%H:%M:%SZ')}]"
    flags.append(f"ts IS NULL OR ts < {lo_sql} OR ts > {hi_sql}")
    tz_name = mapping.timezone.replace("'", "''")
    is_num = "TRY_CAST(trim(ts__raw) AS DOUBLE) IS NOT NULL"
    gap_reason = (f"WHEN ts__gap THEN 'ts: ''' || ts__raw || ''' does not exist in {tz_name} "
                  "(clocks went forward over it); give the time with its UTC offset' ") if local else ""
    checks.append(
        f"CASE WHEN ts__raw IS NULL OR {_missing('ts__raw')} THEN 'ts: missing' "
        + gap_reason
        + f"WHEN ts IS NULL AND {is_num} THEN 'ts: epoch ''' || ts__raw || ''' is out of range (years "
        f"0001-9999 read as epoch_unit {mapping.epoch_unit}' || CASE WHEN abs(TRY_CAST(trim(ts__raw) AS DOUBLE)) "
        "BETWEEN 1e17 AND 1e20 THEN '; an epoch in nanoseconds needs [options] epoch_unit = \"ns\")' ELSE ')' END "
        "WHEN ts IS NULL THEN 'ts: cannot parse ''' || ts__raw || ''' as a time' || "
        + (_lit(f" (does not match [options] ts_format {mapping.ts_format!r})") if mapping.ts_format else
           # A time in a local layout (06/01/2025 00:15) rejected every row with no word of how to read it.
           f"CASE WHEN regexp_matches(ts__raw, {_lit(BAD_OFFSET)}) THEN ' (its UTC offset is beyond +-18:00)' "
           f"WHEN regexp_matches(ts__raw, '[0-9]') THEN {_lit(TS_HINT)} ELSE '' END") + " "
        f"WHEN ts < {lo_sql} OR ts > {hi_sql} THEN 'ts: ''' || ts__raw || ''' is ' || "
        "strftime(timezone('UTC', ts), '%Y-%m-%d %H:%M:%S') || "
        f"' UTC, outside the plausible time range {span}' || "
        f"CASE WHEN {is_num} AND ts > {hi_sql} THEN ' (an epoch in nanoseconds? set [options] epoch_unit = \"ns\")' "
        "ELSE ' (set [options] ts_min / ts_max to widen it)' END END"
    )
    # Said only when nothing else is wrong with the row: this pass runs on the rejected rows alone,
    # where a repeated wall-clock time cannot be placed by its neighbours.
    fallback = (f"CASE WHEN ts__amb THEN 'ts: ''' || ts__raw || ''' occurs twice in {tz_name} (clocks went "
                "back) and the meter''s rows around it are not in time order, so which pass it belongs to "
                "is unknown; give the time with its UTC offset' END") if local else "NULL"

    explain_inner: list[str] = [f"{ts_raw} AS ts__raw"]
    nan_cols: list[str] = []
    # (channel, condition): a value that cannot be read (not a number) or is implausible (infinite,
    # outside its range) is dropped -- stored as missing, reported -- and the reading keeps its other
    # channels; only a bad meter id or time, or no channel value left, rejects the row.
    drops: list[tuple[str, str]] = []
    check_of: dict[str, str] = {}
    nan_forms: list[tuple[str, str]] = []
    # Canonical channels carry a physical range; an extra channel is only checked to be finite
    # (unless [ranges] gives it one).
    channels = [CHANNEL_BY_NAME[n] for n in CHANNEL_NAMES] + [Channel(n, "", "extra channel") for n in extras]
    for ch in channels:
        name = ch.name
        v_col, nan_col, raw_col = (_q(f"{name}__{s}") for s in ("v", "nan", "raw"))
        if name not in resolved:
            default = mapping.defaults.get(name)
            inner.append(f"{'NULL' if default is None else float(default)}::DOUBLE AS {v_col}")
            continue
        parts = [_number_expr(c, types[c], mapping.decimal) for c in resolved[name]]
        value = " + ".join(f"({v})" for v, _ in parts)
        factor, offset = mapping.conversion(name)
        if factor != 1.0:
            value = f"({value}) * {factor!r}"
        if offset != 0.0:
            value = f"({value}) + {offset!r}"
        # NaN is a missing value, not a number to store (nor one out of range).
        # Not NULLIF(x, 'NaN') nor isnan(x): over Parquet, DuckDB folds both from the column's
        # min/max statistics (which leave NaN out), so a NaN there stayed NaN and was "out of range".
        slow = f"CASE WHEN isfinite({value}) OR isinf({value}) THEN {value} END AS {v_col}"
        nan_forms.append((slow, f"NULLIF({value}, 'NaN'::DOUBLE) AS {v_col}"))
        inner.append(slow)
        texts = [(v, raw) for v, raw in parts if raw is not None]
        range_bad = f"isinf({v_col})"
        range_reason = f"WHEN isinf({v_col}) THEN '{name}: infinite' "
        low, high = mapping.range_of(name)
        if np.isfinite(low) or np.isfinite(high):
            unit = f" {ch.unit}" if ch.unit else ""
            lo_s, hi_s = _bound(low), _bound(high)
            range_bad += f" OR {v_col} < {lo_s} OR {v_col} > {hi_s}"
            given = "set in [ranges]" if name in mapping.ranges else "default"
            hint = (f" (plausible range of {name}, {given}; a source in other units needs [units] {name} = "
                    f"\"MW\" (say); to change the range set [ranges] {name} = [low, high] in the mapping)")
            range_reason += (
                f"WHEN {v_col} < {lo_s} OR {v_col} > {hi_s} "
                f"THEN '{name}: ' || CAST(round({v_col}, 6) AS VARCHAR) || {_lit(f' outside [{_fmt(low)}, {_fmt(high)}]{unit}' + hint)}"
            )
        if texts:
            bad = " OR ".join(f"(({v}) IS NULL AND {raw} IS NOT NULL AND NOT {_missing(raw)})" for v, raw in texts)
            inner.append(f"({bad}) AS {nan_col}")
            drops.append((name, f"{nan_col} OR {range_bad}"))
            raw_text = " || ' + ' || ".join(f"COALESCE({raw}, '')" for _, raw in texts)
            explain_inner.append(f"{raw_text} AS {raw_col}")
            comma = ""
            if mapping.decimal == ".":
                comma = (f" || CASE WHEN regexp_matches({raw_col}, '^\\s*[-+]?[0-9]+,[0-9]+\\s*$') THEN "
                         "' (a decimal comma? set [options] decimal = \",\" in the mapping)' ELSE '' END")
            check_of[name] = (f"CASE WHEN {nan_col} THEN '{name}: ''' || {raw_col} || ''' is not a number'{comma} "
                              f"{range_reason} END")
            checks.append(check_of[name])
            nan_cols.append(nan_col)
        else:
            drops.append((name, range_bad))
            check_of[name] = f"CASE {range_reason} END"
            checks.append(check_of[name])

    # A row with no value in any channel is not a reading (only meter and time): a reject. A value
    # dropped (unreadable, implausible) leaves no value too.
    mapped = [ch.name for ch in channels if ch.name in resolved or mapping.defaults.get(ch.name) is not None]
    dropped = dict(drops)
    x_col = {n: _q(n + "__x") for n in dropped}
    blank = " AND ".join(f"{_q(n + '__v')} IS NULL" for n in mapped)
    if nan_cols:
        blank += " AND NOT (" + " OR ".join(nan_cols) + ")"
    left_none = " AND ".join(f"({_q(n + '__v')} IS NULL OR {x_col[n]})" if n in dropped else f"{_q(n + '__v')} IS NULL"
                             for n in mapped)
    flags.append(blank)   # the fast pass's row check; "no value left" is settled on the marked rows alone
    shown = ", ".join(mapped[:8]) + (", ..." if len(mapped) > 8 else "")
    gone = "no channel value left (the row's other channels are blank)"
    checks.append(f"CASE WHEN {blank} THEN {_lit(f'no channel value: the row has only a meter and a time ({shown} blank)')} "
                  f"WHEN {left_none} THEN {_lit(gone)} END")

    # Extra channels follow the canonical ones, in the mapping's order. The fast pass hands the values
    # on as they are, with ``_drop`` saying a row holds a bad one: which, and what is left, is worked
    # out on those rows alone (the explain statement's ``_d0`` ...), so clean data pays one boolean.
    values = [f"{_q(ch.name + '__v')} AS {_q(ch.name)}" for ch in channels]
    marks = ", ".join(f"coalesce({cond}, false) AS {x_col[n]}" for n, cond in drops)

    def layered(cols: list[str], window: bool, marked: bool = True) -> str:
        sql = f"(SELECT {', '.join(cols)} FROM {source})"
        if local:
            for layer in _local_layers(mapping.timezone, window):
                sql = "(" + layer.format(sql) + ")"
        if marks and marked:
            sql = f"(SELECT *, {marks} FROM {sql})"
        return sql

    drop_any = " OR ".join(f"({cond})" for _, cond in drops)
    fast = (f"SELECT _line, meter_id, ts, {', '.join(values)}, "
            f"coalesce({' OR '.join(f'({f})' for f in flags)}, false) AS _bad, "
            f"{f'coalesce({drop_any}, false)' if drops else 'false'} AS _drop "
            f"FROM {layered(inner, True, marked=False)}")
    # concat_ws skips NULLs: the reason lists every failed check, the field is the first one.
    reasons = f"coalesce(NULLIF(concat_ws('; ', {', '.join(checks)}), ''), {fallback})"
    # Per dropped channel (in ``drops`` order): its reason alone, for a reading kept without it.
    per = [f"CASE WHEN {x_col[n]} THEN {check_of[n]} END" for n, _ in drops]
    if wide_column is not None:
        # A wide export: the reason and field name the source column (the meter) of the cell; only
        # the bad cells of a line are reported (its other cells are good readings).
        inner_x = inner + explain_inner + [f"{_q(wide_column)} AS _wcol"]
        reasons = (f"CASE WHEN {reasons} IS NULL THEN NULL WHEN starts_with({reasons}, 'ts:') OR "
                   f"starts_with({reasons}, 'meter_id:') THEN {reasons} ELSE _wcol || ': ' || {reasons} END")
        per = [f"_wcol || ': ' || {r}" for r in per]
        src = layered(inner_x, False)
    else:
        src = layered(inner + explain_inner, False)
    cols = "".join(f", {r} AS _d{i}" for i, r in enumerate(per))
    dcols = "".join(f", _d{i}" for i in range(len(per)))
    explain = (f"SELECT _line, meter_id, _reason, split_part(_reason, ':', 1) AS _field{dcols} FROM ("
               f"SELECT _line, meter_id, {reasons} AS _reason{cols} FROM {src}) WHERE _reason IS NOT NULL")
    return Normalizer(fast, explain, resolved, ignored, tuple(extras), tuple(nan_forms), carry_sql,
                      tuple(n for n, _ in drops))


__all__ = ["build_select", "Normalizer", "MappingError", "MISSING_TOKENS"]
