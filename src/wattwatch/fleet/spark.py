"""The Spark engine of the fleet features: Spark's own readers, native columns and aggregations.

Mirrors :mod:`wattwatch.fleet.readers` and :mod:`wattwatch.fleet.features` step by step (same
rules, same order of fallbacks) so both engines give the same features; no Python runs per row.
Only the per-POD-per-period partial sums (and, for the energy balance, the hourly energy of
panels that have a panel meter) are collected; the last arithmetic is
:func:`wattwatch.fleet.features.finish`, shared with pandas.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from wattwatch.errors import InputError
from wattwatch.fleet.features import (DAY_US, HOUR_US, MIN_DAY_COVER_H, MIN_HOUR_COVER, NIGHT_HOURS,
                                      REGISTER_DIGIT_KWH, REGISTER_TOLERANCE, FleetFeatures, Partials, _check,
                                      finish, group_conflict_notes, meters_of, panel_meters,
                                      span_hours)
from wattwatch.fleet.readers import (_TS_RE, FLOAT_COLUMNS, ID_FIELDS, NUMERIC_FIELDS, PHASES, SCPS_UNITS,
                                     column_range, reading_range, tz_offset_minutes, unit_factor,
                                     unread_columns, unread_notes, UNIT_SYMBOLS, UNIT_SYMBOLS_ANY_CASE)

MAX_REJECTS_COLLECTED = 100_000
_REMOTE = ("hdfs://", "s3a://", "s3://", "s3n://", "gs://", "abfs://", "abfss://", "wasb://", "wasbs://", "file://",
           "viewfs://", "dbfs:/")


def _F():
    from pyspark.sql import functions as F

    return F


def partitions_for(paths, minimum: int = 8, bytes_per_partition: int = 8 << 20) -> int | None:
    """Shuffle partitions for local inputs (one per 8 MB of files, at least ``minimum``): a
    persisted partition must fit the executor's memory when it is read back. None (the session's
    setting) when an input is remote."""
    total = 0
    for p in ([paths] if isinstance(paths, (str, Path)) else paths):
        if is_remote(str(p)):
            return None
        q = Path(p)
        total += sum(f.stat().st_size for f in q.rglob("*") if f.is_file()) if q.is_dir() else q.stat().st_size
    return max(minimum, -(-total // bytes_per_partition))


def is_remote(path: str) -> bool:
    """A path Spark resolves itself (a URI scheme, or a glob that is no local file's name): passed
    through untouched. A local file whose name has ``*``, ``?``, ``[`` or ``{`` is that file."""
    s = str(path)
    return s.startswith(_REMOTE) or (any(ch in s for ch in "*?[{") and not os.path.lexists(s))


# Hadoop's globber (``GlobPattern``) reads these as pattern characters and a backslash as an escape,
# in every path handed to a reader (Spark globs any path that has one of them).
_GLOB_CHARS = re.compile(r"([\\*?\[\]{}])")


def _escaped(path: str) -> str:
    """``path`` with its glob characters escaped (Hadoop's backslash): that exact file or folder."""
    return _GLOB_CHARS.sub(r"\\\1", path)


def _spark_path(path: str) -> str:
    """The path to hand Spark's readers for ``path``: a local file or folder (resolved) with its glob
    characters escaped, so that Hadoop's globber reads exactly it (``star*.csv`` never picks up
    ``starx.csv``); a URI untouched. A local glob is Spark's, but the longest start of it that is a
    local folder by its exact name is that folder (rsp3: ``d[1]/*.csv`` globbed in ``d1``, not in the
    folder ``d[1]``), as absolute as Python found it; a glob with no such start untouched."""
    if not is_remote(path):
        return _escaped(path)
    if path.startswith(_REMOTE):
        return path
    parts = path.split("/")
    for k in range(len(parts) - 1, 0, -1):
        head = "/".join(parts[:k])
        if head and _GLOB_CHARS.search(head) and os.path.lexists(head):
            return "/".join([_escaped(os.path.abspath(head)), *parts[k:]])
    return path


def _path_of(uri: str) -> str:
    """The path of a file as Spark names it (``input_file_name``: a URI, percent-encoded): a local
    file's path, else the URI with its path decoded."""
    from urllib.parse import unquote, urlsplit

    u = urlsplit(uri)
    path = unquote(u.path)
    return path if u.scheme in ("", "file") else f"{u.scheme}://{u.netloc}{path}"


class _FileError(InputError):
    """An input error about one file, named by Spark (``uri``): :func:`read_fleet_spark` raises it
    again naming the file as it was given (``what`` after the name)."""

    def __init__(self, uri: str, what: str):
        super().__init__(f"{_path_of(uri)}: {what}")
        self.uri, self.what = uri, what


def _refuse_unreadable_names(ps, given):
    """Refuse, before any work, a local file Spark cannot read by its name: Hadoop takes what comes
    before a ``:`` in a file name for a URI scheme (its checksum file ``.name.crc`` is built from the
    name alone), and in a folder's name too once the path is globbed (it has an escaped character)."""
    for s in ps:
        if is_remote(s):
            continue
        if ":" in Path(s).name or (":" in s and _spark_path(s) != s):
            raise InputError(f"{given.get(s, s)}: a ':' in this file's path cannot be read by Spark (Hadoop takes "
                             "it for a URI scheme); rename the file or folder, or use --engine local")


def _kind(path: str) -> str:
    s = str(path).lower().rstrip("/")
    for suf, kind in ((".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json", "json"), (".parquet", "parquet"),
                      (".pq", "parquet"), (".csv", "csv"), (".csv.gz", "csv")):
        if s.endswith(suf):
            return kind
    return "parquet"  # a folder of Parquet parts (how Spark writes a table)


def _field(schema, *names):
    """The nested Spark type at ``names`` or None."""
    from pyspark.sql.types import ArrayType, StructType

    t = schema
    for n in names:
        if isinstance(t, ArrayType):
            t = t.elementType
        if not isinstance(t, StructType) or n not in t.fieldNames():
            return None
        t = t[n].dataType
    return t


def time_parts(s):
    """``(base, offset)`` strings of a timestamp column (see :func:`parse_times_col`)."""
    F = _F()
    s = s.cast("string")
    return F.regexp_extract(s, _TS_RE, 1), F.regexp_extract(s, _TS_RE, 2)


def times_from_parts(base, off, offset_min):
    """UTC timestamps from :func:`time_parts` and the document's offset (minutes east of UTC)."""
    F = _F()
    base = F.regexp_replace(F.regexp_replace(base, "/", "-"), "T", " ")
    # 'SSSSSS' parses 1 to 6 fraction digits, as pandas' ISO8601 does.
    ts = F.when(base != "", F.try_to_timestamp(base, F.lit("yyyy-MM-dd HH:mm[:ss][.SSSSSS]")))
    digits = F.regexp_replace(F.regexp_replace(off, ":", ""), "^[+-]", "")
    own = F.when(off == "Z", F.lit(0)).otherwise(
        F.when(F.substring(off, 1, 1) == "-", F.lit(-1)).otherwise(F.lit(1))
        * (F.substring(digits, 1, 2).cast("int") * 60 + F.coalesce(F.substring(digits, 3, 2).cast("int"), F.lit(0))))
    minutes = F.when(off != "", own).otherwise(offset_min)
    return F.timestamp_micros(F.unix_micros(ts) - minutes.cast("long") * F.lit(60_000_000))


def parse_times_col(s, offset_min):
    """Spark twin of :func:`wattwatch.fleet.readers.parse_times` on a string column."""
    base, off = time_parts(s)
    return times_from_parts(base, off, offset_min)


def _num(c):
    """A JSON value (string or number) as a double, None when it is not a number."""
    F = _F()
    s = F.trim(c.cast("string"))
    return F.when(s == "", F.lit(None).cast("double")).otherwise(s.try_cast("double"))


# ---------------------------------------------------------------------------------------- readers


def read_fleet_spark(spark, paths: Sequence[str | Path] | str | Path, *, energy: str = "interval"):
    """The fleet frame of ``paths`` as a Spark DataFrame, plus the rejects.

    Returns
    -------
    (DataFrame, list of (file, line, field, reason), list of notes)
    """
    if energy not in ("interval", "register"):
        raise InputError(f"energy must be 'interval' or 'register', not {energy!r}")
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    groups: dict[str, list[str]] = {}
    given: dict[str, str] = {}  # resolved path -> the name the user gave (as the pandas engine names it)
    for p in items:
        s = str(p)
        if not is_remote(s):
            lp = Path(s)
            if not lp.exists():
                raise InputError(f"{s}: no such file")
            if lp.is_dir() and not any(lp.glob("*.parquet")) and not any(lp.glob("part-*")):
                inside = sorted(x for x in lp.rglob("*") if x.is_file() and not x.name.startswith((".", "_")))
                if not inside:
                    raise InputError(f"{s}: no files in this folder")
                for q in inside:
                    groups.setdefault(_kind(str(q)), []).append(str(q.resolve()))
                    given.setdefault(str(q.resolve()), str(q))
                continue
            given.setdefault(str(lp.resolve()), str(lp))  # as pandas names it (``./x.csv``: ``x.csv``)
            s = str(lp.resolve())
        groups.setdefault(_kind(s), []).append(s)
    order = {k: i for i, k in enumerate(given)}

    def name(uri: str) -> str:  # a file as Spark names it (a URI) -> as the user gave it
        path = _path_of(uri)
        return given.get(path, path)

    _refuse_unreadable_names([s for named in groups.values() for s in named], given)
    frames, rejects, notes, unread = [], [], [], []
    for kind, ps in ((k, r) for k, named in groups.items() for r in _rounds(named)):
        sp = [_spark_path(x) for x in ps]  # each local file exactly (not a glob)
        try:
            if kind in ("json", "jsonl"):
                # A repeated property name in a record: the last wins (as the pandas reader does)
                # instead of failing the job.
                spark.conf.set("spark.sql.mapKeyDedupPolicy", "LAST_WIN")
                raw = spark.read.option("multiLine", kind == "json").option("mode", "PERMISSIVE").json(sp)
                if kind == "jsonl":  # each document on its line of the file
                    sdf, rej = _read_json_lines(spark, sp, raw, energy)
                elif "UrbanDataset" in raw.schema.fieldNames():  # a record's line: its position in its
                    sdf, rej, _ = _from_json(raw, energy)           # document's values.line, no numbering
                else:  # the record's position in the file's array
                    sdf, rej, _ = _from_json(_numbered(spark, raw)[0], energy)
            elif kind == "parquet":
                # pandas writes nanosecond timestamps, which Spark only reads as longs (see _from_canonical).
                spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
                raw = spark.read.parquet(*sp)
                sdf, rej = _from_canonical(_numbered(spark, raw)[0], energy)
            else:
                _refuse_local_csv(ps, given)
                raw = spark.read.option("header", True).csv(sp)  # the columns (the first line): no full job
                sdf, rej = _read_csv(spark, sp, raw.columns, energy)
            if kind not in ("json", "jsonl"):  # the schema only: no job
                cols = unread_columns(raw.columns)
                unread.extend((given.get(x, x), cols, order.get(x, len(order))) for x in ps)
        except _FileError as exc:
            raise InputError(f"{name(exc.uri)}: {exc.what}") from exc
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - Spark's analysis errors name the path; keep one line
            msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{', '.join(given.get(x, x) for x in ps[:3])}: cannot be read by Spark: {msg}") from exc
        frames.append(sdf)
        rejects.extend((name(f), *rest) for f, *rest in rej)
    if not frames:
        raise InputError("no input files given")
    notes = unread_notes([(name, cols) for name, cols, _ in sorted(unread, key=lambda u: u[2])]) + notes
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out, rejects, notes


def _refuse_local_csv(ps, given):
    """Refuse, as the pandas engine does, a local CSV file that is empty (or blank lines only) or whose
    header (read by pandas' rules) has no ``meter_id`` or no ``ts`` column. Spark's reader would read
    the first silently as no rows and the second with the first file's columns, by position. Each file's
    first bytes are read on the driver (a file of blank lines is read to its end); remote paths are
    not checked (spk60 Left)."""
    import gzip

    from wattwatch.fleet.readers import _canonical_columns

    def blank(p: Path) -> bool:
        with (gzip.open(p, "rb") if p.name.lower().endswith(".gz") else open(p, "rb")) as fh:
            while chunk := fh.read(1 << 16):
                if chunk.strip():
                    return False
        return True

    for s in ps:
        if is_remote(s):
            continue
        p = Path(s)
        name = given.get(s, s)
        if blank(p):
            raise InputError(f"{name}: empty file")
        if not _canonical_columns(p):
            raise InputError(f"{name}: the header has no meter_id or no ts column (as pandas reads it); "
                             "the Spark engine reads CSV in canonical columns (map other layouts with `wattwatch "
                             "ingest` first or use --engine local)")


def _rounds(ps):
    """``ps`` as lists of distinct paths, a path named k times in each of the first k: each copy of a
    file named twice (or named and inside a named folder) is read in a round of its own, as the pandas
    engine reads it twice. Within one read a file must be there once: the line numbering
    (:func:`_numbered`) counts a file's rows per (file, split), and the CSV / JSON Lines readers match
    the reader's reject counts per file against a numbered read of the file once."""
    rounds: list[list[str]] = []
    seen: dict[str, int] = {}
    for p in ps:
        k = seen[p] = seen.get(p, 0) + 1
        if k > len(rounds):
            rounds.append([])
        rounds[k - 1].append(p)
    return rounds


def _select_fleet(df):
    """``df`` (meter_id, ts, ts_end, panel_id, town and some float columns) in the fleet column order."""
    F = _F()
    cols = [F.col("meter_id").cast("string").alias("meter_id"), F.col("ts").cast("timestamp").alias("ts"),
            (F.col("ts_end") if "ts_end" in df.columns else F.lit(None)).cast("timestamp").alias("ts_end"),
            (F.col("panel_id") if "panel_id" in df.columns else F.lit(None)).cast("string").alias("panel_id"),
            (F.col("town") if "town" in df.columns else F.lit(None)).cast("string").alias("town")]
    cols += [(F.col(c) if c in df.columns else F.lit(None)).cast("double").alias(c) for c in FLOAT_COLUMNS]
    return df.select(*cols)


SHIFT_MAP_MAX = 256  # splits numbered: up to this many, their shifts as a literal map in the plan


def _numbered(spark, df, *aggs, order: bool = False):
    """``df`` (straight from a file reader) with ``_file`` and ``_line``: each row's 1-based position in
    its file (for ``spark.read.text`` the physical line), exact however Spark splits the file.

    Within one split the rows come in file order and in one task, so their
    ``monotonically_increasing_id`` values are consecutive; one small aggregation per (file, split
    start) gives each split's row count and first id, and the driver adds up the counts of the
    earlier splits of the same file (ordered by their byte offset, not by task). The ids are
    recomputed by each job over the same scan, which gives the same splits in the same tasks.

    ``aggs(t)`` are further per-split aggregates (of the numbered frame ``t``'s columns, ``_mid`` the id);
    returns (frame, list of rows: _file, _blk, shift (line = _mid + shift), and the aggs)."""
    F = _F()
    t = df.select("*", F.input_file_name().alias("_file"), F.input_file_block_start().alias("_blk"),
                  F.monotonically_increasing_id().alias("_mid"))
    more = [a(t) for a in aggs]
    blocks = sorted(t.groupBy("_file", "_blk").agg(F.count(F.lit(1)).alias("_n"), F.min("_mid").alias("_m0"), *more)
                    .collect(), key=lambda r: (r["_file"], r["_blk"]))
    rows, seen, file = [], 0, None
    for r in blocks:
        if r["_file"] != file:
            file, seen = r["_file"], 0
        rows.append((r["_file"], r["_blk"], seen + 1 - r["_m0"], *r[4:]))
        seen += r["_n"]
    # A lookup, not an inner join: the frame is lazy, and a later job may split the files otherwise
    # (another split size; on a cluster, Spark sizes splits by the cores it has then): its rows keep
    # no line (-1 in a reject) rather than vanish. ``order`` keeps ``_blk`` and ``_mid``, the file
    # order in this job.
    t = _looked_up(spark, t, {"_file": "string", "_blk": "long"}, {"_shift": "long"}, [x[:3] for x in rows],
                   how="left", join=len(rows) > SHIFT_MAP_MAX)
    keep = ["_blk", "_mid"] if order else []
    out = t.select(*[c for c in df.columns], "_file", (F.col("_mid") + F.col("_shift")).alias("_line"), *keep)
    return out, rows


def _looked_up(spark, t, keys: dict, values: dict, rows, *, how: str, join: bool):
    """``t`` with the columns ``values`` (name: Spark SQL type) that ``rows`` (tuples: the ``keys``'
    values, then the ``values``') give the row's ``keys`` (columns of ``t``, name: type).

    Up to ``SHIFT_MAP_MAX`` splits numbered (``join`` false): a literal map in the plan (one constant
    after folding), not a broadcast join: a broadcast of a local frame costs every later job over
    this frame one job of its own; a key not in ``rows`` gets nulls. rsp1: the literal map is built
    with a few py4j calls per entry and looked up by a linear scan of its keys per row: with thousands
    of splits (8,000 small files) it made the read slower than the join (94.6 s against 52.6 s);
    above, a broadcast join (``how``: "inner" drops the rows of a key not in ``rows``)."""
    F = _F()
    if join:
        schema = ", ".join(f"{k} {ty}" for k, ty in (*keys.items(), *values.items()))
        return t.join(F.broadcast(spark.createDataFrame(rows, schema)), list(keys), how)
    nk = len(keys)

    def value(vs):  # one value as it is, several as a struct of them
        lits = [F.lit(v).cast(ty) for v, ty in zip(vs, values.values())]
        return lits[0] if len(lits) == 1 else F.struct(*[x.alias(n) for x, n in zip(lits, values)])

    one = len(values) == 1
    vtype = next(iter(values.values())) if one else "struct<" + ",".join(f"{n}:{ty}" for n, ty in values.items()) + ">"
    if nk == 1:
        key, text = F.col(next(iter(keys))), (lambda r: r[0])
    else:  # several keys: their texts joined by a NUL, which no path has
        key = F.concat_ws("\0", *[F.col(k) if ty == "string" else F.col(k).cast("string") for k, ty in keys.items()])
        text = (lambda r: "\0".join(str(x) for x in r[:nk]))  # noqa: E731
    got = (F.create_map(*[x for r in rows for x in (F.lit(text(r)), value(r[nk:]))])[key] if rows
           else F.lit(None).cast(vtype))
    if one:
        return t.select("*", got.alias(next(iter(values))))
    tmp = "_v"
    while tmp in t.columns:
        tmp = "_" + tmp
    return t.select("*", got.alias(tmp)).select(*t.columns, *[F.col(tmp)[n].alias(n) for n in values])


# pandas' (RFC 4180) quoting, line by line: a field is quoted when a double quote begins it (a doubled
# quote inside stays in it; what follows the closing quote up to the comma is text), else it is text in
# which a quote is a literal (``5" pipe``). Possessive: each line is matched in linear time.
_CSV_FIELD = r'(?:"(?:[^"]|"")*+"[^,]*+|(?:[^",][^,]*+)?)'
_CSV_CLOSED = "^" + _CSV_FIELD + "(?:," + _CSV_FIELD + ")*+$"          # begun outside quotes, ends outside
_CSV_REOPENED = r'^(?:[^"]|"")*+"[^,]*+(?:,' + _CSV_FIELD + ")*+$"     # begun inside quotes, ends outside


def _csv_lines(spark, ps, columns):
    """The CSV records of ``ps`` as string columns ``columns`` (the header's names) plus ``_file`` and
    ``_line``, the line each record starts on, as pandas reads it (``readers.csv_record_lines``):
    blank and whitespace-only lines skipped, the first line left the header, a quoted field may span
    lines. Spark's CSV reader (one record per line unless ``multiLine``, which reads each file in one
    task) knows no line: the lines are read as text and numbered (:func:`_numbered`), then parsed with
    the reader's own parser (``from_csv``). A file with a quoted line end anywhere is put together
    record by record in one more (sorting) job; otherwise each line is a record, no shuffle."""
    F = _F()
    from pyspark.sql import Window

    text = spark.read.text(ps)
    has_quote = F.col("value").contains('"')
    # _c0: the line, begun outside a quoted field, ends outside one; _c1: begun inside one, it ends outside.
    c0 = F.when(has_quote, F.col("value").rlike(_CSV_CLOSED)).otherwise(True)
    blank = F.col("value").rlike(r"^\s*$")
    t, blocks = _numbered(spark, text.select("value", c0.alias("_c0"), blank.alias("_blank")),
                          lambda t: F.max((~F.col("_c0")).cast("int")).alias("_odd"),
                          lambda t: F.min(F.when(~F.col("_blank"), F.col("_mid"))).alias("_first"),
                          lambda t: F.min_by("value", F.when(~F.col("_blank"), F.col("_mid"))).alias("_text"),
                          order=True)
    head, odd = {}, set()
    for f, _blk, shift, is_odd, first, text in blocks:
        if first is not None and f not in head:
            head[f] = (first + shift, text)
        if is_odd:
            odd.add(f)
    # The header: the file's first line that is not blank; by its text on a row whose line is not known.
    # Looked up by file as the shifts are (:func:`_looked_up`, a literal map up to SHIFT_MAP_MAX splits).
    # A file with no such line (blank lines only) has no header: its rows are blank, dropped below.
    t = _looked_up(spark, t, {"_file": "string"}, {"_head": "long", "_htext": "string"},
                   [(f, n, x) for f, (n, x) in head.items()], how="inner", join=len(blocks) > SHIFT_MAP_MAX)
    if odd:
        # A line is one of four steps of a two-state machine (in a quoted field or not): it leaves the
        # state closed (_c0 and _c1) or open (neither), keeps it (_c0 only) or flips it (_c1 only).
        # The state a line begins in is the last reset's, flipped once per flip since; a record starts
        # on a line begun outside quotes. The lines from the last start of a file that ends inside a
        # quoted field are records of their own (pandas: "EOF inside string"; the reader: each a line).
        c1 = F.col("value").rlike(_CSV_REOPENED)
        t = t.select("*", c1.alias("_c1"))
        w = Window.partitionBy("_file").orderBy("_blk", "_mid")  # the file's order in this job
        upto = w.rowsBetween(Window.unboundedPreceding, 0)
        before = w.rowsBetween(Window.unboundedPreceding, -1)
        whole = w.rowsBetween(Window.unboundedPreceding, Window.unboundedFollowing)
        reset, flip = F.col("_c0") == F.col("_c1"), ~F.col("_c0") & F.col("_c1")
        t = t.select("*", F.sum(flip.cast("long")).over(upto).alias("_flips"))
        t = t.select("*", F.last(F.when(reset, F.col("_flips")), ignorenulls=True).over(before).alias("_rflips"),
                     F.last(F.when(reset, F.col("_c0")), ignorenulls=True).over(before).alias("_rclosed"))
        since = F.col("_flips") - flip.cast("long") - F.coalesce(F.col("_rflips"), F.lit(0))
        start = F.coalesce(F.col("_rclosed"), F.lit(True)) == (since % 2 == 0)
        t = t.select("*", start.alias("_start"))
        t = t.select("*", F.when(F.col("_start"), F.col("_c0")).otherwise(F.col("_c1")).alias("_after"))
        key = F.struct("_blk", "_mid")
        t = t.select("*", F.max(F.when(F.col("_start"), key)).over(upto).alias("_rec0"),
                     F.max(F.when(F.col("_start"), key)).over(whole).alias("_last_start"),
                     F.last("_after").over(whole).alias("_ends_closed"))
        t = t.select("*", F.when(~F.col("_ends_closed") & (key >= F.col("_last_start")), key)
                     .otherwise(F.col("_rec0")).alias("_rec"))
        # A file ending inside a quoted field is refused, as pandas refuses it ("EOF inside string"),
        # naming the line the open record starts on (one more job, only for files with such lines).
        unclosed = t.where(~F.col("_ends_closed") & (key == F.col("_last_start")))
        for r in unclosed.select("_file", "_line").limit(1).collect():
            raise _FileError(r["_file"], f"a quoted field never closed (the record from line {r['_line']} runs "
                                         "to the end of the file)")
        t = (t.groupBy("_file", "_rec", "_head", "_htext")
             .agg(F.sort_array(F.collect_list(F.struct("_blk", "_mid", "_line", "value"))).alias("_parts"))
             .select("_file", F.col("_parts")[0]["_line"].alias("_line"), "_head", "_htext",
                     F.array_join(F.transform("_parts", lambda x: x["value"]), "\n").alias("value")))
        t = t.select("*", F.col("value").rlike(r"^\s*$").alias("_blank"))
    recs = t.where(~F.col("_blank") & F.coalesce(F.col("_line") > F.col("_head"), F.col("value") != F.col("_htext")))
    ddl = ", ".join("`" + c.replace("`", "``") + "` STRING" for c in columns)
    parsed = recs.select("_file", "_line", F.from_csv(F.col("value"), ddl).alias("_r"))
    return parsed.select(*[F.col("_r").getField(c).alias(c) for c in columns], "_file", "_line")


def _reader_paths(files):
    """The paths to hand a reader for ``files`` as ``input_file_name`` names them (URIs,
    percent-encoded): each file's path, its glob characters escaped (it is that file, not a glob)."""
    return [_escaped(_path_of(f)) for f in files]


def _by_file(rejects):
    counts: dict[str, int] = {}
    for r in rejects:
        counts[r[0]] = counts.get(r[0], 0) + 1
    return counts


def _read_csv(spark, ps, columns, energy: str):
    """CSV files ``ps`` (the header's ``columns``): the readings and the rejects, each reject at the
    line its record starts on (as pandas names it).

    Spark's own CSV reader reads every file, as before ops52, with one aggregation per file (the
    job that collected the rejects before): how many rows are rejects, and whether any line of the
    file is not one whole record when read alone (a field count other than the header's, which a
    quoted field over two lines always makes somewhere when there are two columns or more, or a
    double quote left in a value: a line that ends or starts inside a quoted field, or a stray
    quote). A file with neither is read as it is: no numbering, nothing more. Only the others are
    read again as numbered text (:func:`_csv_lines`): a file with rejects for its rejects' lines (its
    readings stay the reader's), a file whose lines are not records for its readings and rejects
    both. Where the numbered text finds another number of rejects in a file than the reader did
    (a quoted field the reader cut where no check could see it), that file's readings are the
    numbered text's too."""
    F = _F()
    corrupt = "_corrupt_record"
    while corrupt in columns:
        corrupt = "_" + corrupt
    ddl = ", ".join("`" + c.replace("`", "``") + "` STRING" for c in columns) + f", `{corrupt}` STRING"

    def checked(paths):
        raw = (spark.read.schema(ddl).option("header", True).option("mode", "PERMISSIVE")
               .option("columnNameOfCorruptRecord", corrupt).csv(paths))
        # One flat test over every column (concat_ws skips nulls), not a chain of ORs as deep as the header
        # is wide: 12,000 columns overflowed the JVM's stack building it.
        odd = F.col(corrupt).isNotNull() | F.concat_ws("\0", *[F.col("`" + c.replace("`", "``") + "`")
                                                              for c in columns]).contains('"')
        return _canonical_checked(raw.select("*", F.input_file_name().alias("_file"), odd.alias("_odd")))

    t = checked(ps)
    files = {r["_file"]: (r["_n"], bool(r["_odd"])) for r in t.groupBy("_file").agg(
        F.count("_reason").alias("_n"), F.max(F.col("_odd").cast("int")).alias("_odd")).collect()}
    quoted = sorted(f for f, (_, odd) in files.items() if odd)
    lined = sorted(f for f, (n, odd) in files.items() if n and not odd)
    if not quoted and not lined:
        return _select_fleet(t.where(F.col("_reason").isNull())), []
    careful = _canonical_checked(_csv_lines(spark, _reader_paths(quoted + lined), columns))
    rejects = _collect_rejects(careful, F.col("_reason"), F.col("_field"), F.col("_line"))
    if len(rejects) < MAX_REJECTS_COLLECTED:
        got = _by_file(rejects)
        moved = [f for f in lined if got.get(f, 0) != files[f][0]]
        quoted, lined = sorted(quoted + moved), [f for f in lined if f not in moved]
    frames = []
    rest = sorted(set(files) - set(quoted))
    if rest:
        frames.append(_select_fleet(checked(_reader_paths(rest)).where(F.col("_reason").isNull())))
    if quoted:  # the numbered text's readings of these files: the same frame, no second numbering
        good = careful.where(F.col("_reason").isNull())
        frames.append(_select_fleet(good.where(F.col("_file").isin(quoted)) if lined else good))
    out = frames[0]
    for f in frames[1:]:
        out = out.unionByName(f)
    return out, rejects


NOT_RECORDS = "JSON that is not records"


def _refuse_not_records(rejects):
    """Raise the pandas reader's error when a JSON Lines line is no record (``null``, ``5``)."""
    for f, line, _, why in rejects:
        if why == NOT_RECORDS:
            raise _FileError(str(f), f"{NOT_RECORDS} (line {line} is neither an object nor a list)")
    return rejects


def _read_json_lines(spark, ps, raw, energy: str):
    """JSON Lines files ``ps`` (``raw``: Spark's JSON reader on them): the readings and the rejects,
    each at its document's line (as pandas names it).

    The readings and a first list of the rejects come from the reader's frame, as before ops52;
    only the files with a reject are read again as numbered text (:func:`_json_lines`, the same
    parser and schema), for the rejects' lines. A file where the numbered text finds another
    number of rejects than the reader keeps the reader's rejects (line -1 for flat records, the
    record's position in an UrbanDataset document), which agree with its readings.

    An input with a line that is not JSON (the reader's inferred schema then has
    ``_corrupt_record``, which the reader cannot be asked for alone) is read as numbered text
    whole, readings and rejects (as ops52 did).

    A line that is JSON but no object or list (``null``, ``5``) fails the input as on pandas; the
    reader reads ``null`` as a record of nothing (a reject), so its file is numbered and the line found."""
    F = _F()
    if "_corrupt_record" in raw.schema.fieldNames():
        sdf, rejects, _ = _from_json(_json_lines(spark, ps, raw.schema), energy)
        return sdf, _refuse_not_records(rejects)
    # The documents' time zones and units are checked once: the numbered text below reads the same ones.
    sdf, rejects, found = _from_json(raw.select("*", F.input_file_name().alias("_file"),
                                                F.lit(None).cast("long").alias("_line")), energy)
    first = _by_file(rejects)
    if not first:
        return sdf, rejects
    # A list cut at the limit may leave out a file that has rejects: then every file is numbered.
    full = len(rejects) >= MAX_REJECTS_COLLECTED
    paths = None if full else _reader_paths(sorted(first))
    _, lined, _ = _from_json(_json_lines(spark, ps if paths is None else paths, raw.schema), energy, rejects_only=True,
                             found=found)
    _refuse_not_records(lined)
    if full or len(lined) >= MAX_REJECTS_COLLECTED:
        return sdf, lined
    got = _by_file(lined)
    differ = {f for f in set(first) | set(got) if got.get(f, 0) != first.get(f, 0)}
    return sdf, [r for r in lined if r[0] not in differ] + [r for r in rejects if r[0] in differ]


_JSON_SCALAR = r'^\s*(?:null|true|false|-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?|"(?:[^"\\]|\\.)*")\s*$'


def _json_lines(spark, ps, schema):
    """JSON Lines read as text, numbered (:func:`_numbered`) and parsed with ``schema`` (the reader's
    inferred one): ``_file`` and ``_line``, the document's line, as the pandas reader numbers them;
    blank lines skipped (as Spark's reader and pandas do)."""
    F = _F()
    t, _ = _numbered(spark, spark.read.text(ps))
    t = t.where(~F.col("value").rlike(r"^\s*$"))
    opts = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}
    parsed = t.select("_file", "_line", F.from_json(F.col("value"), schema, opts).alias("_r"),
                      F.col("value").rlike(_JSON_SCALAR).alias("_notrec"))
    # ``_notrec``: a line that is JSON but no object or list (``null``, ``5``, ``"x"``): from_json reads it
    # as a record of nothing; the pandas reader refuses the file.
    return parsed.select(*[F.col("_r").getField(c).alias(c) for c in schema.fieldNames()], "_file", "_line",
                         F.lit(True).alias("_jsonl"), "_notrec")


def _collect_rejects(df, reason, fld, line):
    F = _F()
    bad = df.filter(reason.isNotNull()).select(F.col("_file"), line.alias("line"), fld.alias("field"), reason.alias("reason"))
    rows = bad.limit(MAX_REJECTS_COLLECTED).collect()
    return [(r["_file"], int(r["line"]) if r["line"] is not None else -1, r["field"] or "", r["reason"]) for r in rows]


def _from_json(raw, energy: str, *, rejects_only: bool = False, found=None):
    """JSON records ``raw``: (frame, rejects, found). ``found``: an UrbanDataset read's checked time
    zones and units (rows of file, time zone, field, unit; None for flat records), returned so that
    a read of the same documents again (a subset of them) passes them back, without another job."""
    schema = raw.schema
    if "UrbanDataset" in schema.fieldNames():
        recs, found = _urban_records(raw, found)
    elif "PODID" in schema.fieldNames():
        recs = _flat_records(raw)
    else:
        raise InputError("JSON without UrbanDataset or PODID records: read it with `wattwatch ingest` readers "
                         "(local engine) or convert it to Parquet")
    return (*_flatten_spark(recs, energy, rejects_only=rejects_only), found)


def _urban_records(raw, found=None):
    """One row per ``values.line`` element: _file, _line, start_ts, end_ts, _offset, then each known
    field as a string (the last property of that name) already multiplied by its unit factor; and the
    documents' time zones and units as checked (``found``, one job when not given)."""
    F = _F()
    s = raw.schema
    ud = F.col("UrbanDataset")
    has_corrupt = "_corrupt_record" in s.fieldNames()
    tz = ud["context"]["timeZone"] if _field(s, "UrbanDataset", "context", "timeZone") is not None else F.lit(None)
    defs = (ud["specification"]["properties"]["propertyDefinition"]
            if _field(s, "UrbanDataset", "specification", "properties", "propertyDefinition") is not None
            else F.lit(None))
    # JSON Lines: every record of a document is on the document's line (a .json file: its position).
    doc_line = F.col("_line") if "_jsonl" in s.fieldNames() else None
    base = raw.select(F.col("_file") if "_file" in s.fieldNames() else F.input_file_name().alias("_file"),
                      (doc_line if doc_line is not None else F.lit(None).cast("long")).alias("_doc_line"),
                      tz.cast("string").alias("_tz"), defs.alias("_defs"),
                      ud["values"]["line"].alias("_lines"),
                      (F.col("_corrupt_record") if has_corrupt else F.lit(None).cast("string")).alias("_corrupt"))
    # Validate the (few) distinct time zones and units on the driver, in one job; errors name the file.
    with_units = _field(s, "UrbanDataset", "specification", "properties", "propertyDefinition", "unitOfMeasure") is not None
    if with_units:
        pairs = F.transform(F.filter("_defs", lambda d: d["propertyName"].isin(list(NUMERIC_FIELDS))),
                            lambda d: F.struct(d["propertyName"].cast("string").alias("n"),
                                               d["unitOfMeasure"].cast("string").alias("u")))
    else:
        pairs = F.array().cast("array<struct<n:string,u:string>>")
    if found is None:
        found = (base.select("_file", "_tz", F.explode_outer(pairs).alias("d"))
                 .select("_file", "_tz", F.col("d.n").alias("n"), F.col("d.u").alias("u")).distinct().collect())
    tz_min = {}
    for r in found:
        if r["_tz"] not in tz_min:
            try:
                tz_min[r["_tz"]] = tz_offset_minutes(r["_tz"])
            except ValueError as exc:
                raise _FileError(r["_file"], f"context.{exc}") from exc
        if r["n"] is not None:
            try:
                unit_factor(r["u"], NUMERIC_FIELDS[r["n"]][1], r["n"])
            except InputError as exc:
                raise _FileError(r["_file"], str(exc)) from exc
    have_defs = with_units
    tzmap = F.create_map(*[x for k, v in tz_min.items() if k is not None for x in (F.lit(k), F.lit(v))]) if any(
        k is not None for k in tz_min) else None
    offset = F.coalesce(tzmap[F.col("_tz")] if tzmap is not None else F.lit(0), F.lit(0))
    corrupt = base.where(F.col("_corrupt").isNotNull()).select(
        "_file", F.coalesce(F.col("_doc_line"), F.lit(1)).alias("_line"), F.lit("not valid JSON").alias("_bad")) if has_corrupt else None
    lines = base.where(F.col("_corrupt").isNull()).select(
        "_file", "_doc_line", offset.alias("_offset"), "_defs", F.posexplode("_lines").alias("_pos", "ln"))
    lt = _field(s, "UrbanDataset", "values", "line")
    # The line: a JSON Lines document's line (as pandas); in a .json file the record's position.
    cols = [F.col("_file"), F.coalesce(F.col("_doc_line"), F.col("_pos") + 1).alias("_line"), F.col("_offset"),
            F.col("ln.period.start_ts").cast("string").alias("start_ts") if _field(lt, "period", "start_ts") is not None else F.lit(None).cast("string").alias("start_ts"),
            F.col("ln.period.end_ts").cast("string").alias("end_ts") if _field(lt, "period", "end_ts") is not None else F.lit(None).cast("string").alias("end_ts")]
    has_props = _field(lt, "property", "name") is not None and _field(lt, "property", "val") is not None
    with_units = have_defs and _field(s, "UrbanDataset", "specification", "properties", "propertyDefinition",
                                      "unitOfMeasure") is not None
    # A record's properties as a map (the last of a repeated name wins, as in the pandas reader), and
    # the document's declared units likewise: one lookup per field, not one array scan each.
    lines = lines.select("*", (F.map_from_entries(F.transform(
        F.filter(F.col("ln.property"), lambda x: x["name"].isNotNull()),
        lambda x: F.struct(x["name"].cast("string"), x["val"].cast("string"))))
        if has_props else F.lit(None).cast("map<string,string>")).alias("_props"),
        (F.map_from_entries(F.transform(F.filter(F.col("_defs"), lambda d: d["propertyName"].isNotNull()), lambda d: F.struct(
            d["propertyName"].cast("string"), d["unitOfMeasure"].cast("string"))))
         if with_units else F.lit(None).cast("map<string,string>")).alias("_units"))

    def prop(name):
        return F.col("_props")[F.lit(name)]

    # readers.unit_key as columns: a symbol (case-sensitive, then any case), else the lower-cased name.
    sym_exact = F.create_map(*[F.lit(x) for kv in UNIT_SYMBOLS.items() for x in kv])
    sym_any = F.create_map(*[F.lit(x) for kv in UNIT_SYMBOLS_ANY_CASE.items() for x in kv])

    for name in list(ID_FIELDS):
        cols.append(prop(name).alias(name))
    for name, (_, qty) in NUMERIC_FIELDS.items():
        v = prop(name)
        if name == "height" and _field(lt, "coordinates", "height") is not None:
            v = F.coalesce(v, F.col("ln.coordinates.height").cast("string"))
        cols.append(v.alias(name))
        if with_units and any(q == qty and f != 1.0 for q, f in SCPS_UNITS.values()):
            raw_u = F.regexp_replace(F.trim(F.col("_units")[F.lit(name)]), "[ -]", "")
            cols.append(F.coalesce(sym_exact[raw_u], sym_any[F.lower(raw_u)], F.lower(raw_u)).alias(f"_unit_{name}"))
    recs = lines.select(*cols)
    # Factors in a second projection, so each field's property filter runs once per record.
    fcols = []
    for name, (_, qty) in NUMERIC_FIELDS.items():
        if f"_unit_{name}" in recs.columns:
            u = F.col(f"_unit_{name}")
            fac = F.lit(1.0)
            for key, (q, f) in SCPS_UNITS.items():
                if q == qty and f != 1.0:
                    fac = F.when(u == key, F.lit(f)).otherwise(fac)
            fcols.append(fac.alias(f"_f_{name}"))
    recs = recs.select(*[c for c in recs.columns if not c.startswith("_unit_")], *fcols)
    return (recs, corrupt), found


def _flat_records(raw):
    F = _F()
    names = raw.schema.fieldNames()
    cols = [F.col("_file"), F.col("_line").cast("long").alias("_line"), F.lit(0).alias("_offset")]
    for n in list(ID_FIELDS) + ["start_ts", "end_ts"] + list(NUMERIC_FIELDS):
        cols.append((F.col(n).cast("string") if n in names else F.lit(None).cast("string")).alias(n))
    recs = raw.select(*cols)
    bad = F.col("_corrupt_record").isNotNull() if "_corrupt_record" in names else F.lit(False)
    notrec = F.col("_notrec") if "_notrec" in names else F.lit(False)
    if "_corrupt_record" in names or "_notrec" in names:
        corrupt = raw.where(bad | notrec).select(
            "_file", F.col("_line").cast("long").alias("_line"),
            F.when(notrec, F.lit(NOT_RECORDS)).otherwise(F.lit("not valid JSON")).alias("_bad"))
        recs = raw.where(~(bad | notrec)).select(*cols)
    else:
        corrupt = None
    return recs, corrupt


def _flatten_spark(recs_corrupt, energy: str, *, rejects_only: bool = False):
    """Spark twin of ``readers._flatten``: the same checks in the same order, the same columns.

    Built in projections (parsed columns, then checks on them, then derived channels) so that
    each parse runs once per record and the plan stays small. ``rejects_only``: (None, the
    rejects), nothing kept in Spark's storage."""
    F = _F()
    recs, corrupt = recs_corrupt
    # Projections separated by a non-deterministic column (a barrier): Spark keeps them apart
    # instead of inlining every parse into every check (generated code past the JVM's 64 KB).
    sb, so = time_parts(F.col("start_ts"))
    eb, eo = time_parts(F.col("end_ts"))
    recs = recs.select("*", sb.alias("_sb"), so.alias("_so"), eb.alias("_eb"), eo.alias("_eo"),
                       F.spark_partition_id().alias("_barrier0"))
    parsed = [F.col("_file"), F.col("_line")]
    for src, col in ID_FIELDS.items():
        v = F.trim(F.col(src))
        parsed.append(F.when(v != "", v).alias(f"_{col}"))
    parsed.append(times_from_parts(F.col("_sb"), F.col("_so"), F.col("_offset")).alias("_ts"))
    parsed.append(times_from_parts(F.col("_eb"), F.col("_eo"), F.col("_offset")).alias("_te"))
    parsed.append(F.col("end_ts").isNotNull().alias("_has_end"))
    for src, (col, _) in NUMERIC_FIELDS.items():
        raw = F.trim(F.col(src))
        parsed.append((F.col(src).isNotNull() & (raw != "")).alias(f"_given_{col}"))
        num = F.when((raw != "") & ~_java_suffix(raw), raw.try_cast("double"))  # "1d": not a number, as on pandas
        if f"_f_{src}" in recs.columns:
            num = num * F.col(f"_f_{src}")
        parsed.append(num.alias(f"_n_{col}"))
    df = recs.select(*parsed, F.spark_partition_id().alias("_barrier"))
    checks = [(F.col("_meter_id").isNull(), "PODID", "no POD id"),
              (F.col("_ts").isNull(), "start_ts", "missing or unreadable start_ts"),
              (F.col("_has_end") & F.col("_te").isNull(), "end_ts", "unreadable end_ts"),
              (F.col("_te").isNotNull() & (F.col("_te") <= F.col("_ts")), "end_ts", "end_ts not after start_ts")]
    for src, (col, _) in NUMERIC_FIELDS.items():
        num = F.col(f"_n_{col}")
        # A "NaN" text is not a number (as pandas says), not a value outside the range.
        checks.append((F.col(f"_given_{col}") & (num.isNull() | F.isnan(num)), src, "not a number"))
        lo, hi = reading_range(col, energy)
        out = F.isnan(num) | (F.abs(num) == float("inf"))
        if np.isfinite(lo):
            out = out | (num < lo)
        if np.isfinite(hi):
            out = out | (num > hi)
        checks.append((num.isNotNull() & out, src, f"outside the physical range [{lo:g}, {hi:g}]"))
    # The first check that holds names the reject: one CASE giving its number, then two lookups.
    code = F.when(checks[0][0], F.lit(1))
    for k, (cond, _, _) in enumerate(checks[1:], start=2):
        code = code.when(cond, F.lit(k))
    reasons = F.array(*[F.lit(c[2]) for c in checks])
    fields = F.array(*[F.lit(c[1]) for c in checks])
    df = df.select("*", code.alias("_code"))
    df = df.select("*", F.when(F.col("_code").isNotNull(), F.element_at(reasons, F.col("_code"))).alias("_reason"),
                   F.when(F.col("_code").isNotNull(), F.element_at(fields, F.col("_code"))).alias("_field"),
                   F.spark_partition_id().alias("_barrier2"))
    # JSON is parsed once: the rejects and the features read the parsed records from here.
    from pyspark import StorageLevel

    if not rejects_only:
        df = df.persist(StorageLevel.DISK_ONLY)
    rejects = _collect_rejects(df, F.col("_reason"), F.col("_field"), F.col("_line"))
    if corrupt is not None:
        rejects += [(r["_file"], int(r["_line"]) if r["_line"] is not None else -1, "", r["_bad"])
                    for r in corrupt.limit(MAX_REJECTS_COLLECTED).collect()]
    if rejects_only:
        return None, rejects
    good = df.where(F.col("_reason").isNull())
    n = {col: F.col(f"_n_{col}") for _, (col, _) in NUMERIC_FIELDS.items()}
    nul = F.lit(None).cast("double")

    def phase_sum(q, unit, total):
        cs = [n[f"{q}_l{k}_{unit}"] for k in PHASES]
        any_ = cs[0].isNotNull() | cs[1].isNotNull() | cs[2].isNotNull()
        tot = F.coalesce(cs[0], F.lit(0.0)) + F.coalesce(cs[1], F.lit(0.0)) + F.coalesce(cs[2], F.lit(0.0))
        return F.when(any_, tot).otherwise(n[total])

    pfs = [n[f"pf_l{k}"] for k in PHASES]
    cnt = sum(F.when(c.isNotNull(), F.lit(1)).otherwise(F.lit(0)) for c in pfs)
    tot = F.coalesce(pfs[0], F.lit(0.0)) + F.coalesce(pfs[1], F.lit(0.0)) + F.coalesce(pfs[2], F.lit(0.0))
    step = good.select(
        F.col("_meter_id").alias("meter_id"), F.col("_ts").alias("ts"), F.col("_te").alias("ts_end"),
        F.col("_panel_id").alias("panel_id"), F.col("_town").alias("town"),
        *[n[c].alias(c) for c in ("v_l1_v", "v_l2_v", "v_l3_v", "i_l1_a", "i_l2_a", "i_l3_a", "p_l1_kw", "p_l2_kw",
                                  "p_l3_kw", "q_int_kvarh", "height_m")],
        phase_sum("p", "kw", "p_total_kw").alias("p_kw"), phase_sum("q", "kvar", "q_total_kvar").alias("q_kvar"),
        phase_sum("s", "kva", "s_total_kva").alias("s_kva"), F.when(cnt > 0, tot / cnt).alias("_pf_phase"),
        (n["e_field_kwh"] if energy == "interval" else nul).alias("e_int_kwh"),
        (n["e_field_kwh"] if energy == "register" else nul).alias("e_kwh"))
    pf = F.coalesce(F.when(F.col("s_kva") > 0, F.col("p_kw") / F.col("s_kva")), F.col("_pf_phase"))
    step = step.withColumn("pf", F.when(pf.isNotNull(), F.least(F.greatest(pf, F.lit(-1.0)), F.lit(1.0))))
    return _select_fleet(step), rejects


def _java_suffix(text):
    """A number text with Java's ``d``/``f`` suffix (``1d``, ``2.5F``): Spark's cast reads it (Java's
    parser), pandas does not; both engines call it not a number (``inf`` is not one: no digit before)."""
    return text.rlike("[0-9.][dDfF]$")


def _from_canonical(df, energy: str):
    """Canonical columns (as ``wattwatch simulate`` / the POD simulator write them) natively.

    ``ts`` may be a timestamp, an ISO-8601 string (CSV) or, from Parquet, a TIMESTAMP(NANOS)
    column (pandas' default), which Spark hands over as a long of nanoseconds since the epoch."""
    F = _F()
    df = _canonical_checked(df)
    rejects = _collect_rejects(df, F.col("_reason"), F.col("_field"),
                               F.col("_line") if "_line" in df.columns else F.lit(-1))
    good = df.where(F.col("_reason").isNull())
    return _select_fleet(good), rejects


def _canonical_checked(df):
    """``df`` (canonical columns) with ``ts``/``ts_end`` parsed, ``_file`` (the reader's file if not
    given) and ``_reason``/``_field``: the first check a row fails, null for a reading. Other
    columns of ``df`` are kept."""
    F = _F()
    names = df.columns
    if "meter_id" not in names or "ts" not in names:
        raise InputError("the Spark engine reads Parquet/CSV in canonical columns (meter_id, ts, p_kw, ...); "
                         "map other layouts with `wattwatch ingest` first or use --engine local")
    from pyspark.sql.types import StringType, TimestampType, TimestampNTZType

    from pyspark.sql.types import LongType

    ts_type = df.schema["ts"].dataType
    if isinstance(ts_type, StringType):
        ts = parse_times_col(F.col("ts"), F.lit(0))
    elif isinstance(ts_type, LongType):  # a Parquet TIMESTAMP(NANOS) column (pandas' default), as Spark reads it
        ts = F.timestamp_micros(F.floor(F.col("ts") / 1000).cast("long"))
    elif isinstance(ts_type, TimestampNTZType):
        ts = F.to_utc_timestamp(F.col("ts"), "UTC")
    else:
        ts = F.col("ts").cast("timestamp")
    df = (df if "_file" in names else df.withColumn("_file", F.input_file_name())).withColumn("ts", ts)
    if "ts_end" in names and isinstance(df.schema["ts_end"].dataType, StringType):
        df = df.withColumn("ts_end", parse_times_col(F.col("ts_end"), F.lit(0)))
    elif "ts_end" in names and isinstance(df.schema["ts_end"].dataType, LongType):
        df = df.withColumn("ts_end", F.timestamp_micros(F.floor(F.col("ts_end") / 1000).cast("long")))
    checks = [(F.col("meter_id").isNull() | (F.trim(F.col("meter_id").cast("string")) == ""), "meter_id", F.lit("no meter id")),
              (F.col("ts").isNull(), "ts", F.lit("missing or unreadable timestamp"))]
    if "ts_end" in names:
        checks.append((F.col("ts_end").isNotNull() & (F.col("ts_end") <= F.col("ts")), "ts_end", F.lit("ts_end not after ts")))
    for c in FLOAT_COLUMNS:
        if c in names:
            # As read_canonical: a blank or NaN is missing (null: Spark orders NaN above every number,
            # so a NaN kept would fail the range check, and sums would carry it); a text that is not a
            # number is a reject; an infinite value is outside the range.
            if isinstance(df.schema[c].dataType, StringType):
                text = F.trim(F.col(c))
                given = F.col(c).isNotNull() & (text != "")
                num = text.try_cast("double")
                # pandas' reading: only "nan" (any case) is a NaN that is missing; "+NaN" is not a number
                not_num = num.isNull() | _java_suffix(text) | (F.isnan(num) & (F.lower(text) != "nan"))
                v = F.when(given & ~not_num, num)
                df = df.withColumn(f"_nan_{c}", given & not_num)
                checks.append((F.col(f"_nan_{c}"), c, F.lit("not a number")))
            else:
                v = F.col(c).cast("double")
            df = df.withColumn(c, F.when(~F.isnan(v), v))
            lo, hi = column_range(c)
            bad = F.abs(F.col(c)) == float("inf")
            if np.isfinite(lo):
                bad = bad | (F.col(c) < lo)
            if np.isfinite(hi):
                bad = bad | (F.col(c) > hi)
            checks.append((F.col(c).isNotNull() & bad, c, F.lit(f"outside the physical range [{lo:g}, {hi:g}]")))
    reason = F.lit(None).cast("string")
    fld = F.lit(None).cast("string")
    for cond, name, why in reversed(checks):
        reason = F.when(cond, why).otherwise(reason)
        fld = F.when(cond, F.lit(name)).otherwise(fld)
    # canonical e_kwh is a register whatever ``energy`` says (the schema defines it so)
    return df.withColumn("_reason", reason).withColumn("_field", fld)


# ---------------------------------------------------------------------------------------- features


def _local(col, tz: str):
    F = _F()
    return F.from_utc_timestamp(col, tz) if tz != "UTC" else col


def _period_cols(local, period: str):
    F = _F()
    if period == "month":
        start = F.date_trunc("month", local)
        label = F.date_format(start, "yyyy-MM")
    elif period == "week":
        start = F.date_trunc("week", local)
        label = F.date_format(start, "yyyy-MM-dd")
    else:
        start = F.date_trunc("day", local)
        label = F.date_format(start, "yyyy-MM-dd")
    return label, start


def readings_spark(sdf, partitions: int | None = None):
    """Spark twin of :func:`wattwatch.fleet.features.readings` (steps 1-2).

    ``partitions``: how many meter groups the readings are shuffled into (default: the session's
    ``spark.sql.shuffle.partitions``); :func:`partitions_for` sizes it from the input."""
    from pyspark.sql import Window

    F = _F()
    df = _select_fleet(sdf).where(F.col("meter_id").isNotNull() & F.col("ts").isNotNull())
    if partitions is None:
        partitions = int(df.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    df = df.repartition(partitions, "meter_id")
    num = [c for c in FLOAT_COLUMNS]
    df = df.groupBy("meter_id", "ts").agg(*[F.avg(c).alias(c) for c in num], F.max("ts_end").alias("ts_end"),
                                          F.max("panel_id").alias("panel_id"), F.max("town").alias("town"))
    w = Window.partitionBy("meter_id").orderBy("ts")
    wm = Window.partitionBy("meter_id")
    t0 = F.unix_micros("ts")
    df = df.withColumn("t0", t0)
    nxt = F.lead("t0").over(w)
    df = df.withColumn("step", (nxt - F.col("t0")).cast("double")).withColumn("reg_next", F.lead("e_kwh").over(w))
    df = df.withColumn("med", F.floor(F.percentile(F.col("step"), F.lit(0.5)).over(wm)).cast("double"))
    end = F.unix_micros("ts_end").cast("double")
    has_end = F.col("ts_end").isNotNull() & (end > F.col("t0"))
    dt = F.when(has_end, end - F.col("t0")).otherwise(
        F.when(F.col("step").isNull(), F.col("med")).otherwise(F.least("step", "med")))
    df = df.withColumn("dt", F.when(dt > 0, dt))
    dt_h = F.col("dt") / F.lit(float(HOUR_US))
    pe = F.col("p_kw") * dt_h
    diff = F.col("reg_next") - F.col("e_kwh")
    adjacent = F.col("step").isNotNull() & (F.col("step") == F.col("dt"))
    consistent = adjacent & (diff >= 0) & (F.col("p_kw").isNull() | (F.abs(diff - pe) <= F.lit(REGISTER_TOLERANCE) * F.abs(pe) + F.lit(REGISTER_DIGIT_KWH)))
    consistent = F.coalesce(consistent, F.lit(False))
    e = F.when(F.col("e_int_kwh").isNotNull(), F.col("e_int_kwh")).when(consistent, diff).otherwise(pe)
    df = df.withColumn("e", F.when(F.col("dt").isNotNull(), e))
    return df.select("meter_id", "panel_id", "town", "t0", "dt", "e", "p_kw", "q_kvar", "pf", "p_l1_kw", "p_l2_kw",
                     "p_l3_kw", "i_l1_a", "i_l2_a", "i_l3_a")


def hourly_spark(r):
    """Spark twin of :func:`wattwatch.fleet.features.hourly_table`: ``meter_id, h, e_kwh, cover_us``."""
    F = _F()
    H = F.lit(HOUR_US)
    ok = r.where(F.col("e").isNotNull() & F.col("dt").isNotNull()).select(
        "meter_id", "t0", F.col("dt").cast("long").alias("dtl"), "e")
    h0 = F.expr(f"t0 div {HOUR_US}")
    h1 = F.expr(f"(t0 + dtl - 1) div {HOUR_US}")
    x = ok.select("meter_id", "t0", "dtl", "e", F.explode(F.sequence(h0, h1)).alias("h"))
    ov = F.least(F.col("t0") + F.col("dtl"), (F.col("h") + 1) * H) - F.greatest(F.col("t0"), F.col("h") * H)
    x = x.select("meter_id", "h", (F.col("e") * ov / F.col("dtl")).alias("ep"), ov.alias("ov"))
    return x.groupBy("meter_id", "h").agg(F.sum("ep").alias("e_kwh"), F.sum("ov").alias("cover_us"))


def pod_periods_spark(sdf, period: str = "month", *, tz: str = "UTC", min_coverage: float = 0.8, min_peers: int = 5,
                      panels: pd.DataFrame | None = None, hourly: str = "balance",
                      partitions: int | None = None) -> FleetFeatures:
    """Features per POD and period from a Spark fleet frame; the same numbers as
    :func:`wattwatch.fleet.features.pod_periods` (to floating-point summation order).

    ``hourly="balance"`` (default here) collects the hourly energy only of panels with a panel
    meter (what the energy balance needs; a country's full hourly table stays in Spark), ``"all"``
    collects every meter's.
    """
    from pyspark import StorageLevel

    F = _F()
    _check(period, tz)
    r = readings_spark(sdf, partitions).persist(StorageLevel.DISK_ONLY)
    hr = hourly_spark(r).persist(StorageLevel.DISK_ONLY)
    try:
        # reading-level sums per POD-period (one job), with the span and the meters' groups
        loc = _local(F.timestamp_micros("t0"), tz)
        label, _ = _period_cols(loc, period)
        w = F.col("dt") / F.lit(float(HOUR_US))
        has_p = F.col("p_l1_kw").isNotNull() | F.col("p_l2_kw").isNotNull() | F.col("p_l3_kw").isNotNull()
        terms = []
        for k in (1, 2, 3):
            xk = F.when(has_p, F.col(f"p_l{k}_kw")).otherwise(F.col(f"i_l{k}_a"))
            terms.append(F.sum(F.abs(F.coalesce(xk, F.lit(0.0))) * F.coalesce(w, F.lit(0.0))).alias(f"ph{k}"))
        both = F.col("q_kvar").isNotNull() & F.col("p_kw").isNotNull() & w.isNotNull()
        rs = (r.withColumn("period", label)
              .groupBy(F.col("meter_id").alias("pod_id"), "period")
              .agg(F.count(F.lit(1)).alias("n_readings"), *terms,
                   F.sum(F.when(both, F.abs("q_kvar") * w).otherwise(F.lit(0.0))).alias("q_abs"),
                   F.sum(F.when(both, F.abs("p_kw") * w).otherwise(F.lit(0.0))).alias("p_abs"),
                   F.percentile(F.abs("pf"), F.array(F.lit(0.1), F.lit(0.5))).alias("pfq"),
                   F.min("t0").alias("t_first"), F.max(F.col("t0") + F.coalesce(F.col("dt"), F.lit(0.0))).alias("t_last"),
                   F.max("panel_id").alias("panel_id"), F.max("town").alias("town"),
                   F.min("panel_id").alias("panel_min"), F.min("town").alias("town_min"))
              .toPandas())
        # hourly-based sums per POD-period (one job) and the daily regression sums (one job)
        hl = _local(F.timestamp_micros(F.col("h") * F.lit(HOUR_US)), tz)
        hlabel, hstart = _period_cols(hl, period)
        cov_h = F.col("cover_us") / F.lit(float(HOUR_US))
        cov_c = F.least(cov_h, F.lit(1.0))
        night = F.hour(hl).isin(list(NIGHT_HOURS))
        weekend = F.dayofweek(hl).isin([1, 7])
        hmax = F.when(cov_h >= MIN_HOUR_COVER, F.col("e_kwh") / F.when(cov_h > 0, cov_h))
        hx = hr.select(F.col("meter_id").alias("pod_id"), hlabel.alias("period"), F.col("e_kwh").alias("e"),
                       cov_c.alias("cov"), cov_h.alias("raw"), night.alias("night"), weekend.alias("we"), hmax.alias("hmax"),
                       F.datediff(F.to_date(hl), F.to_date(hstart)).alias("d"))
        agg = (hx.groupBy("pod_id", "period")
               .agg(F.sum("e").alias("e_sum"), F.sum("cov").alias("cov_sum"), F.sum("raw").alias("cov_raw"),
                    F.sum(F.when(F.col("night"), F.col("e")).otherwise(F.lit(0.0))).alias("e_n"),
                    F.sum(F.when(F.col("night"), F.col("raw")).otherwise(F.lit(0.0))).alias("c_n"),
                    F.sum(F.when(F.col("we"), F.col("e")).otherwise(F.lit(0.0))).alias("e_we"),
                    F.sum(F.when(F.col("we"), F.col("raw")).otherwise(F.lit(0.0))).alias("c_we"),
                    F.max("hmax").alias("p_max_kw"))
               .toPandas())
        days = (hx.groupBy("pod_id", "period", "d").agg(F.sum("e").alias("e"), F.sum("raw").alias("c"))
                .where(F.col("c") >= MIN_DAY_COVER_H)
                .select("pod_id", "period", F.col("d").cast("double").alias("x"), (F.col("e") / F.col("c")).alias("y")))
        reg = (days.groupBy("pod_id", "period")
               .agg(F.count(F.lit(1)).alias("n_d"), F.sum("x").alias("sx"), F.sum("y").alias("sy"),
                    F.sum(F.col("x") * F.col("y")).alias("sxy"), F.sum(F.col("x") * F.col("x")).alias("sxx"))
               .toPandas())
        meters = meters_of(rs, "pod_id")
        pan = panel_meters(meters, panels)
        if len(agg):
            first = int(rs["t_first"].min())
            last = int(np.nanmax(rs["t_last"].to_numpy()))
            spans = span_hours(first, last, period, tz)
        else:
            spans = pd.DataFrame({"period": pd.Series([], dtype=object), "period_hours": [], "period_start": [],
                                  "full_hours": []})
        pfq = pd.DataFrame({"pod_id": rs["pod_id"], "period": rs["period"],
                            "pf_q10": [np.nan if v is None else float(v[0]) for v in rs["pfq"]],
                            "pf_q50": [np.nan if v is None else float(v[1]) for v in rs["pfq"]]})
        rsum = rs[["pod_id", "period", "n_readings", "ph1", "ph2", "ph3", "q_abs", "p_abs"]].copy()
        for d in (agg, reg, rsum, pfq):
            d["pod_id"] = d["pod_id"].astype("string")
        parts = Partials(agg=agg, reg=reg, rsum=rsum, pfq=pfq.dropna(subset=["pf_q10", "pf_q50"], how="all"),
                         spans=spans, meters=meters, panels=pan)
        feats, excluded, notes = finish(parts, period, min_coverage=min_coverage, min_peers=min_peers)
        ranges = rs.rename(columns={"panel_id": "panel_max", "town": "town_max"})
        for c in ("panel_min", "panel_max", "town_min", "town_max"):
            ranges[c] = ranges[c].astype("string")
        notes = group_conflict_notes(ranges.astype({"pod_id": "string"})) + notes
        # the hourly table: all meters, or only what the energy balance needs
        hsel = hr
        if hourly == "balance":
            keep_panels = sorted(set(pan["panel_id"].astype(str)))
            keep_meters = sorted(set(pan["meter_id"].astype(str)) | set(
                meters.loc[meters["panel_id"].isin(keep_panels), "meter_id"].astype(str)))
            hsel = hr.where(F.col("meter_id").isin(keep_meters)) if keep_meters else None
        if hsel is None:
            hp = pd.DataFrame({"meter_id": pd.Series([], dtype="string"), "h": pd.Series([], dtype="int64"),
                               "e_kwh": pd.Series([], dtype="float64"), "cover_us": pd.Series([], dtype="int64")})
        else:
            hp = hsel.toPandas()
        from wattwatch.fleet.features import _hourly_out

        hourly_out = _hourly_out(hp, meters, pan, "all")
        return FleetFeatures(feats, hourly_out, excluded, pan, period, notes)
    finally:
        hr.unpersist()
        r.unpersist()


__all__ = ["read_fleet_spark", "pod_periods_spark", "readings_spark", "hourly_spark", "is_remote", "parse_times_col"]
