"""File readers: turn a telemetry file into Arrow batches of raw columns plus a ``_line`` column.

Readers do not interpret values; they only find the rows and say where each came from, so that
the normaliser can reject a row by line number. Rows a reader cannot even split into fields (wrong
number of fields, undecodable bytes) come back as :class:`RawReject` with their line and text.

A file that is not what it claims to be (binary junk named .csv, a truncated Parquet file, JSON
that is not records) raises :class:`NotRecordsError` with a one-line message naming the file.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sqlite3
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson
import pyarrow.parquet as pq

LINE = "_line"
CSV_BLOCK_BYTES = 32 << 20
PARQUET_BATCH_ROWS = 1 << 20
JSONL_BLOCK_LINES = 65_536
# A quoted CSV value with line breaks (RFC 4180) is read as one record across at most this many.
QUOTED_MAX_LINES = 20
SQLITE_BATCH_ROWS = 200_000
# Telemetry records are a few levels deep; anything deeper is not telemetry (and a JSON parser
# recursing 100k levels deep runs out of stack).
MAX_JSON_DEPTH = 64
# A CSV line longer than this is not telemetry; a JSON document (read whole) no larger than this.
MAX_LINE_BYTES = 256 << 20
MAX_JSON_DOC_BYTES = 2 << 30
# A file whose first 64 KB are more than this share NUL bytes is binary, not text with a bad row.
BINARY_NUL_SHARE = 0.01


def _free(name: str) -> str:
    """A source column's name, renamed when it is the reader's own ``_line`` (or the Parquet scan's
    ``file_row_number``): a file's column must not pass for the line numbers of its rows."""
    return name + " (source)" if name in (LINE, "__ln", "file_row_number") else name


def _free_table(table: pa.Table) -> pa.Table:
    names = table.column_names
    return table if not any(_free(n) != n for n in names) else table.rename_columns([_free(n) for n in names])


class NotRecordsError(ValueError):
    """The file cannot be read as telemetry records at all."""


@dataclass(frozen=True)
class RawReject:
    """A row the reader could not split into fields."""

    line: int
    reason: str
    text: str = ""
    field: str = ""   # the column at fault, when one is (the rejects file's field column)


@dataclass
class RawBatch:
    """Raw columns of a run of rows from one unit of a source (a file, or a table of a .db file)."""

    table: pa.Table
    unit: str
    rejects: list[RawReject] = field(default_factory=list)
    bytes_read: int = 0
    # When set, the rows are not in ``table`` (which then only carries the schema) but in this SQL
    # relation, which DuckDB reads itself (in parallel, streaming).
    relation: str | None = None


def detect_format(path: Path) -> str:
    """Name the reader for ``path`` from its suffix: csv, parquet, json, jsonl or sqlite."""
    name = path.name.lower()
    for suffix, fmt in ((".csv.gz", "csv"), (".csv", "csv"), (".tsv", "csv"), (".txt", "csv"),
                        (".parquet", "parquet"), (".pq", "parquet"), (".jsonl.gz", "jsonl"),
                        (".jsonl", "jsonl"), (".ndjson", "jsonl"), (".json.gz", "json"), (".json", "json"),
                        (".db", "sqlite"), (".sqlite", "sqlite"), (".sqlite3", "sqlite")):
        if name.endswith(suffix):
            return fmt
    raise NotRecordsError(f"{path}: unknown file type (expected .csv[.gz], .parquet, .json, .jsonl or .db)")


def read_batches(path: str | Path, delimiter: str | None = None, tables: tuple[str, ...] | None = None,
                 column_types: Callable[[list[str]], dict[str, pa.DataType]] | None = None) -> Iterator[RawBatch]:
    """Yield raw batches of ``path`` with the reader its suffix names."""
    path = Path(path)
    if not path.is_file():
        raise NotRecordsError(f"{path}: no such file")
    fmt = detect_format(path)
    if fmt == "csv":
        yield from read_csv(path, delimiter=delimiter, column_types=column_types)
    elif fmt == "parquet":
        yield from read_parquet(path)
    elif fmt == "jsonl":
        yield from read_jsonl(path)
    elif fmt == "json":
        yield from read_json(path)
    else:
        yield from read_sqlite(path, tables=tables)


# --------------------------------------------------------------------------------------------- CSV


def _open_maybe_gzip(path: Path):
    """A binary stream of the file, decompressed when it starts with the gzip magic.

    Python's gzip reader is used because it raises at a truncated stream (pyarrow's returns what
    it has and stops, so a cut-off .csv.gz would be half ingested without a word)."""
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rb")
    return pa.input_stream(str(path), compression=None)


# (adv) Said with text that is not UTF-8: a spreadsheet's "CSV" export on Windows is Windows-1252
# (Zählpunkt, Compteur n°), which reads as a binary header or a file of one-row rejects.
NOT_UTF8_HINT = " (an export in Windows-1252 or Latin-1? save it as UTF-8, e.g. iconv -f cp1252 -t utf-8)"

# What reading a (possibly gzip) stream raises on a damaged file.
READ_ERRORS = (OSError, EOFError, zlib.error, pa.ArrowException)


def _check_text(path: Path, head: bytes) -> str:
    """Return the header line (line 1) decoded as UTF-8, or raise if the file is evidently not text.

    Only the header must be clean: a NUL or a byte that is not UTF-8 further down is that row's
    problem (a one-row reject), not the file's, unless NUL bytes are so common that the file is
    binary.
    """
    sample = head[: 1 << 16]
    if _binary(sample):
        at = next((i for i, c in enumerate(sample) if c < 9 or 13 < c < 32), 0)
        raise NotRecordsError(f"{path}: not a text CSV file (binary data at byte {at})")
    first = head.split(b"\n", 1)[0]  # the whole header, however wide
    if b"\x00" in first:
        at = first.index(b"\x00")
        raise NotRecordsError(f"{path}: not a text CSV file: line 1 (the header) holds binary data (NUL at byte {at})")
    try:
        return first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotRecordsError(f"{path}: not a text CSV file: line 1 (the header) is not UTF-8 text at byte "
                              f"{exc.start}{NOT_UTF8_HINT}") from exc


def _latin1_fields(raw: bytes, delim: str) -> list[str] | None:
    """The fields of a row whose bytes are not UTF-8, each decoded as Latin-1 (which maps every byte
    to one character and back, so a field's bytes are ``value.encode("latin-1")``); None if the row
    cannot be split. The delimiter and quotes are ASCII, so the split is the one UTF-8 text gets."""
    try:
        return next(csv.reader([raw.decode("latin-1")], delimiter=delim))
    except (csv.Error, StopIteration):
        return None


def _not_utf8(value: str) -> bool:
    """Whether a field from :func:`_latin1_fields` is not UTF-8 text."""
    try:
        value.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False


def _bad_read_field(fields: list[str] | None, names: list[str], unread: frozenset[str] = frozenset()) -> tuple[str, str]:
    """The first column read whose bytes in this row are not text, and why: ``(name, "nul")`` for a
    NUL byte, ``(name, "utf8")`` for bytes that are not UTF-8, ``("", "")`` when every column read is
    text or the row did not split (``fields`` None). ``fields``: from :func:`_latin1_fields`.
    ((radv) the reject said only the byte's column: 'Zähler-0' in meter_id and 'Störung' in an unused
    comment column read alike; (nb) a NUL in a comment column no mapping reads rejected its row.)"""
    for name, value in zip(names, fields or ()):
        if name in unread:
            continue
        if "\x00" in value:
            return name, "nul"
        if _not_utf8(value):
            return name, "utf8"
    return "", ""


def _binary(sample: bytes) -> bool:
    """More than :data:`BINARY_NUL_SHARE` of the bytes are control characters (not tab, CR, LF)."""
    if not sample:
        return False
    arr = np.frombuffer(sample, np.uint8)
    ctrl = int(np.count_nonzero((arr < 9) | ((arr > 13) & (arr < 32))))
    return ctrl > max(BINARY_NUL_SHARE * len(arr), 16)


def _sniff_delimiter(header: str) -> str:
    counts = {d: header.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def read_csv(path: Path, delimiter: str | None = None, block_bytes: int | None = None,
             column_types: Callable[[list[str]], dict[str, pa.DataType]] | None = None) -> Iterator[RawBatch]:
    """Read a CSV or gzip-compressed CSV in newline-aligned blocks.

    ``_line`` is the physical line number (the header is line 1). ``column_types(header)`` may name
    the types of columns (numbers, the timestamp) so that pyarrow's parallel parser converts them;
    a block where that fails is re-parsed with text timestamps, then all text, then line by line
    (only a block with rows of the wrong width or bad bytes gets there), so each bad row is
    rejected with its own line number and the good rows around it are kept. The level that worked
    is kept for the next blocks. A column typed ``pa.binary()`` is one the caller does not read
    (a comment, an address): its bytes are kept as they are, so a byte that is not UTF-8 there (a
    Windows-1252 ``Störung``) or a NUL (a logger's free text) does not reject the row; in a column
    read it still does, naming the column. Which rows are kept does not depend on where a block ends.
    """
    block_bytes = block_bytes or CSV_BLOCK_BYTES
    try:
        stream = _open_maybe_gzip(path)
        head = stream.read(block_bytes)
    except READ_ERRORS as exc:
        raise NotRecordsError(f"{path}: cannot read (truncated or corrupt): {exc}") from exc
    if not head.strip():
        raise NotRecordsError(f"{path}: empty file")
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    header_line = _check_text(path, head).rstrip("\r")
    delim = delimiter or _sniff_delimiter(header_line)
    names = next(csv.reader([header_line], delimiter=delim))
    names = [_free(n.strip()) for n in names]
    if len(names) < 2 or len(set(names)) != len(names) or not all(names):
        raise NotRecordsError(f"{path}: line 1 is not a CSV header (columns: {names[:10]})")
    typed = column_types(names) if column_types else {}
    unread = {k: v for k, v in typed.items() if pa.types.is_binary(v)}
    ladder = [typed, {k: v for k, v in typed.items() if not pa.types.is_timestamp(v)}, unread]
    ladder = [lv for i, lv in enumerate(ladder) if i == 0 or lv != ladder[i - 1]]
    level = blocks = 0
    first_nl = head.find(b"\n")
    buf = head[first_nl + 1:] if first_nl >= 0 else b""
    next_line = 2
    bytes_read = len(head)
    eof = first_nl < 0
    while True:
        if not eof:
            try:
                more = stream.read(block_bytes)
            except READ_ERRORS as exc:
                raise NotRecordsError(f"{path}: truncated or corrupt after byte {bytes_read}: {exc}") from exc
            bytes_read += len(more)
            if more:
                buf += more
            else:
                eof = True
        if not buf:
            break
        if eof:
            block, buf = buf, b""
        else:
            cut = _record_cut(buf)
            if cut < 0:
                if len(buf) > MAX_LINE_BYTES:  # a gzip bomb of one endless line must not fill memory
                    raise NotRecordsError(f"{path}: line {next_line} is longer than {MAX_LINE_BYTES >> 20} MB")
                continue
            block, buf = buf[: cut + 1], buf[cut + 1:]
        n_lines = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
        # One bad value should not slow down the rest of a large file: typed parsing is tried
        # again every few blocks.
        if blocks % 8 == 0:
            level = 0
        blocks += 1
        table = None
        nul = b"\x00" in block   # (nb) a NUL in a column not read keeps the fast parse; in a column read it does not
        for lv in range(level, len(ladder)):
            table = _parse_csv_block(block, names, delim, next_line, ladder[lv], nul=nul)
            if table is not None:
                level = lv
                break
        if table is not None:
            yield RawBatch(table, unit=str(path), bytes_read=bytes_read)
        else:
            table, rejects = _parse_csv_block_slow(block, names, delim, next_line, frozenset(unread))
            yield RawBatch(table, unit=str(path), rejects=rejects, bytes_read=bytes_read)
        next_line += n_lines
        if eof and not buf:
            break


def _record_cut(buf: bytes) -> int:
    """Where a block of ``buf`` may end: its last line break that is not inside a quoted value (RFC
    4180 lets one hold line breaks), -1 to read more first. A block cut inside such a value made its
    record two rejects (its reading lost) and sent the whole block to the line-by-line parse. The
    quotes before a line break are counted: an odd count is inside a value, and the cut steps back
    over at most :data:`QUOTED_MAX_LINES` line breaks to an even one; past that it is a stray quote
    (``5" pipe``), which must not hold the cut back, and the last line break is the cut."""
    cut = buf.rfind(b"\n")
    if cut < 0 or buf.find(b'"', 0, cut) < 0 or not buf.count(b'"', 0, cut) % 2:   # (find: memchr, no quote is quick)
        return cut
    at, odd = cut, True
    for _ in range(QUOTED_MAX_LINES):
        prev = buf.rfind(b"\n", 0, at)
        if prev < 0:
            return -1   # the record may close further on: read more (at the end the rest is one block)
        odd ^= bool(buf.count(b'"', prev, at) % 2)
        if not odd:
            return prev
        at = prev
    return cut


_NULLS = sorted({v for t in ("", "nan", "null", "none", "na", "n/a", "-", "--", "#n/a", "nil")
                 for v in (t, t.upper(), t.capitalize())} | {"NaN"})


def _parse_csv_block(block: bytes, names: list[str], delim: str, first_line: int,
                     types: dict[str, pa.DataType], nul: bool = False) -> pa.Table | None:
    """Parse a block with pyarrow; None if any row is malformed or a typed value does not convert,
    or (``nul``: the block holds a NUL byte) a text column holds a NUL, which is valid UTF-8 to
    pyarrow: the line-by-line parse rejects its row naming the column. A column typed binary is not
    read by the caller: a NUL there is kept (a logger's free-text column), as a byte not UTF-8 is."""
    invalid: list[int] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(1)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(block),
            read_options=pacsv.ReadOptions(column_names=names, use_threads=True),
            parse_options=pacsv.ParseOptions(delimiter=delim, invalid_row_handler=on_invalid,
                                             ignore_empty_lines=False, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(
                column_types={n: types.get(n, pa.string()) for n in names},
                null_values=_NULLS, strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except pa.ArrowInvalid:
        return None
    if invalid:
        return None
    if nul and any(pc.any(pc.match_substring(table[n], "\x00")).as_py()
                   for n in names if pa.types.is_string(table[n].type)):
        return None
    lines = np.arange(first_line, first_line + table.num_rows, dtype=np.int64)
    physical = block.count(b"\n") + (0 if block.endswith(b"\n") else 1)
    if table.num_rows != physical:
        # A quoted value with line breaks (RFC 4180) makes one row of several lines: each row is
        # at its first line, after the line breaks inside the rows before it (they were numbered
        # as if every row were one line, so every reject after such a value named the line above).
        inside = np.zeros(table.num_rows, np.int64)
        for name in names:
            if pa.types.is_string(table[name].type) or pa.types.is_binary(table[name].type):
                inside += pc.fill_null(pc.count_substring(table[name], "\n"), 0).to_numpy(zero_copy_only=False)
        lines += np.concatenate([[0], np.cumsum(inside)[:-1]]) if table.num_rows else inside
    table = table.append_column(LINE, pa.array(lines))
    # A blank line parses as a row of empty fields (or nulls); it is not data, nor a reject.
    blank = None
    for name in names:
        col = table[name]
        text = pa.types.is_string(col.type) or pa.types.is_binary(col.type)
        empty = pc.is_null(col) if not text else pc.equal(pc.binary_length(col), 0)
        empty = pc.fill_null(empty, True)
        blank = empty if blank is None else pc.and_(blank, empty)
        if not pc.any(blank).as_py():  # (stop at the first column that rules every row out)
            break
    if blank is not None and pc.any(blank).as_py():
        table = table.filter(pc.invert(blank))
    return table


def _quoted_record(raw: bytes, raws: list[bytes], offset: int, delim: str, width: int,
                   max_lines: int = QUOTED_MAX_LINES) -> tuple[bytes, int]:
    """A line that leaves a quote open: the record and how many of the following lines it takes,
    when it and up to ``max_lines`` of them close the quote and give a row of ``width`` fields (a
    quoted value with line breaks in it, RFC 4180); else the line alone (a stray quote character
    must not swallow the good rows after it)."""
    text = raw
    for k in range(1, max_lines + 1):
        if offset + k >= len(raws):
            break
        text = text + b"\n" + raws[offset + k].rstrip(b"\r")
        if text.count(b'"') % 2:
            continue
        fields = _latin1_fields(text, delim)   # (a byte that is not UTF-8 is the row's to judge, not the split's)
        if fields is None:
            break
        return (text, k) if len(fields) == width else (raw, 0)
    return raw, 0


def _parse_csv_block_slow(block: bytes, names: list[str], delim: str, first_line: int,
                          unread: frozenset[str] = frozenset()) -> tuple[pa.Table, list[RawReject]]:
    """Line-by-line parse of a block that contains bad rows. ``unread``: columns the caller does not
    read, returned as bytes (as the fast parse types them); a byte that is not UTF-8 there keeps the row."""
    cols: list[list] = [[] for _ in names]
    lines: list[int] = []
    rejects: list[RawReject] = []
    width = len(names)
    raws = block.split(b"\n")
    joined = 0   # lines taken into the record before them (a quoted value with line breaks)
    for offset, raw in enumerate(raws):
        lineno = first_line + offset
        if joined:
            joined -= 1
            continue
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            continue
        if raw.count(b'"') % 2:
            raw, joined = _quoted_record(raw, raws, offset, delim, width)
        try:
            text, exc = raw.decode("utf-8"), None
        except UnicodeDecodeError as err:
            text, exc = None, err
        if text is None or "\x00" in text:
            # (adv2, nb) Only the columns read must be text: a Windows-1252 byte or a NUL in a note
            # column no mapping reads rejected its row (the readings beside it lost).
            fields = _latin1_fields(raw, delim)
            split = fields is not None and len(fields) == width
            bad, kind = _bad_read_field(fields, names, unread) if split else ("", "")
            if split and not bad:
                for name, col, value in zip(names, cols, fields):
                    col.append(value.encode("latin-1") if name in unread else value.encode("latin-1").decode("utf-8"))
                lines.append(lineno)
                continue
            where = f" (field {bad})" if bad else ""
            shown = (text[:200] if text is not None else raw[:200].decode("latin-1")).replace("\x00", "\\0")
            if kind == "nul":
                rejects.append(RawReject(lineno, f"binary data (NUL byte) in row{where}", shown, field=bad))
                continue
            if text is None:
                rejects.append(RawReject(lineno, f"not UTF-8 text at column {exc.start + 1}{where}{NOT_UTF8_HINT}",
                                         shown, field=bad))
                continue
            # UTF-8 text with a NUL that does not split into the header's columns: said so below
        try:
            fields = next(csv.reader([text], delimiter=delim))
        except csv.Error as exc:
            rejects.append(RawReject(lineno, f"cannot split row: {exc}", text[:200].replace("\x00", "\\0")))
            continue
        if len(fields) != width:
            why = f"expected {width} fields, found {len(fields)}"
            if text.count('"') % 2:
                # Lines are read one by one: a quoted value with a line break in it (a comment or
                # address column) leaves a quote open at one line's end and closes it on the next.
                why += ("; a quote opens or closes on this line: a quoted value with a line break in it is read "
                        "as two lines (export text columns without line breaks)")
            rejects.append(RawReject(lineno, why, text[:200].replace("\x00", "\\0")))
            continue
        for name, col, value in zip(names, cols, fields):
            col.append(value.encode("utf-8") if name in unread else value)
        lines.append(lineno)
    arrays = ([pa.array(c, type=pa.binary() if n in unread else pa.string()) for n, c in zip(names, cols)]
              + [pa.array(lines, type=pa.int64())])
    return pa.Table.from_arrays(arrays, names=names + [LINE]), rejects


# ----------------------------------------------------------------------------------------- Parquet


def read_parquet(path: Path, batch_rows: int = PARQUET_BATCH_ROWS) -> Iterator[RawBatch]:
    """Read a Parquet file; ``_line`` is the 1-based row number.

    A flat file is handed to DuckDB as a relation (its own parallel reader); a file with nested
    columns is read here in row batches and flattened.
    """
    try:
        pf = pq.ParquetFile(str(path))
    except (OSError, pa.ArrowException) as exc:
        raise NotRecordsError(f"{path}: not a readable Parquet file ({exc})") from exc
    schema = pf.schema_arrow
    # DuckDB expands globs (* ? [ ] { }) and reads URLs and ~ in the paths it is given: a path
    # that holds any of those is read here instead, so that a path is only ever that one file.
    local = str(path.resolve())
    if (not any(pa.types.is_nested(f.type) for f in schema) and not any(ch in local for ch in "*?[]{}~\\")
            and all(_free(n) == n for n in schema.names)):
        quoted = "'" + local.replace("'", "''") + "'"
        empty = schema.empty_table().append_column(LINE, pa.array([], pa.int64()))
        yield RawBatch(empty, unit=str(path), bytes_read=path.stat().st_size,
                       relation=f"(SELECT *, file_row_number + 1 AS {LINE} FROM read_parquet({quoted}, file_row_number = true))")
        return
    start = 1
    try:
        for batch in pf.iter_batches(batch_size=batch_rows):
            table = _free_table(flatten_nested(pa.Table.from_batches([batch])))
            n = table.num_rows
            table = table.append_column(LINE, pa.array(np.arange(start, start + n, dtype=np.int64)))
            start += n
            yield RawBatch(table, unit=str(path))
    except (OSError, pa.ArrowException) as exc:
        raise NotRecordsError(f"{path}: corrupt Parquet data after row {start - 1} ({exc})") from exc


# -------------------------------------------------------------------------------------------- JSON


def _is_record_list(t: pa.DataType) -> bool:
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_struct(t.value_type)


def _has_time_field(t: pa.DataType) -> bool:
    """Whether a list of records holds a field a timestamp is found under (its readings)."""
    from wattwatch.ingest.mapping import BUILTIN_ALIASES, norm_name

    aliases = {norm_name(a) for a in BUILTIN_ALIASES["ts"]}
    stack = [t.value_type]
    while stack:
        st = stack.pop()
        for f in st:
            if norm_name(f.name) in aliases:
                return True
            if pa.types.is_struct(f.type):
                stack.append(f.type)
    return False


def flatten_nested(table: pa.Table) -> pa.Table:
    """Flatten struct columns to dotted names and explode a list of records into rows.

    A record such as ``{"PODID": "X", "readings": [{"start_ts": ..., "Phase1Voltage": ...}, ...]}``
    becomes one row per reading that also carries ``PODID``. Lists of scalars are left alone. When
    a record holds several lists of records (readings and alarms, say), only one is exploded: the
    one whose records carry a time field (else the first); exploding both would give one row per
    pair, and a record whose other list is empty would lose its readings. The others stay
    columns (ignored unless mapped).
    """
    keep: set[str] = set()
    for _ in range(16):
        changed = False
        if any(pa.types.is_struct(f.type) for f in table.schema):
            table = table.flatten()
            changed = True
        lists = [i for i, f in enumerate(table.schema) if _is_record_list(f.type) and f.name not in keep]
        if lists:
            timed = [i for i in lists if _has_time_field(table.schema.field(i).type)]
            i = (timed or lists)[0]
            keep.update(table.schema.field(j).name for j in lists if j != i)
            f = table.schema.field(i)
            col = table.column(i).combine_chunks()
            parents = pc.list_parent_indices(col)
            rest = table.remove_column(i).take(parents)
            table = rest.append_column(f.name, pc.list_flatten(col))
            changed = True
        if not changed:
            return table
    return table


def _records_table(records: list, where: str, path: Path) -> pa.Table:
    if not all(isinstance(r, dict) for r in records):
        raise NotRecordsError(f"{path}: {where} holds values that are not records (JSON objects)")
    # from_pylist takes the columns from the first record only: name every key of every record.
    names = list(dict.fromkeys(k for r in records for k in r))
    try:
        return pa.Table.from_pydict({k: [r.get(k) for r in records] for k in names})
    except (pa.ArrowException, TypeError, ValueError, OverflowError, RecursionError):
        # Mixed types in a field (a number here, a string there): keep everything as text and let
        # the normaliser decide per value.
        keys: dict[str, None] = {}
        for r in records:
            keys.update(dict.fromkeys(_flat_keys(r)))
        flat = [_flat_record(r) for r in records]
        return pa.table({k: pa.array([None if (v := r.get(k)) is None else str(v) for r in flat],
                                     type=pa.string()) for k in keys})


def _flat_keys(rec: dict, prefix: str = "") -> Iterator[str]:
    for k, v in rec.items():
        if isinstance(v, dict):
            yield from _flat_keys(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}"


def _flat_record(rec: dict, prefix: str = "", out: dict | None = None) -> dict:
    out = {} if out is None else out
    for k, v in rec.items():
        if isinstance(v, dict):
            _flat_record(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = v
    return out


def read_json(path: Path) -> Iterator[RawBatch]:
    """Read a JSON document holding records: a list of objects, ``{"key": [objects]}`` or one object.

    ``_line`` is the 1-based record number. A file whose first non-blank byte is not ``[`` or
    ``{`` but that holds one object per line is read as JSON Lines.
    """
    stream = _open_maybe_gzip(path)
    try:
        raw = stream.read(MAX_JSON_DOC_BYTES + 1)
    except READ_ERRORS as exc:
        raise NotRecordsError(f"{path}: cannot read: {exc}") from exc
    if len(raw) > MAX_JSON_DOC_BYTES:  # read whole: a (decompressed) document has a ceiling
        raise NotRecordsError(f"{path}: a JSON document larger than {MAX_JSON_DOC_BYTES >> 20} MB "
                              "(write it as JSON Lines, which is read in blocks)")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    lenient = False
    depth = _json_depth(raw)
    if depth > MAX_JSON_DEPTH:
        if raw.lstrip()[:1] == b"{" and b"\n" in raw.strip():  # JSON Lines: the deep line is a reject
            yield from read_jsonl(path)
            return
        raise NotRecordsError(f"{path}: JSON nested {depth} levels deep (telemetry records are at most "
                              f"{MAX_JSON_DEPTH})")
    try:
        doc = json.loads(raw)
    except UnicodeDecodeError as exc:
        if raw.lstrip()[:1] == b"{" and b"\n" in raw.strip():
            yield from read_jsonl(path)
            return
        # One record's bad bytes: read the text with them escaped and reject the records that hold them.
        doc = _loads_lenient(raw, path, exc)
        lenient = True
    except RecursionError as exc:
        raise NotRecordsError(f"{path}: JSON nested too deeply") from exc
    except json.JSONDecodeError as exc:
        if raw.lstrip()[:1] == b"{" and b"\n" in raw.strip():
            yield from read_jsonl(path)
            return
        raise NotRecordsError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    if isinstance(doc, dict):
        lists = [k for k, v in doc.items() if isinstance(v, list) and v and all(isinstance(x, dict) for x in v)]
        if len(lists) == 1 and all(not isinstance(v, list) for k, v in doc.items() if k != lists[0]):
            # {"meta": ..., "data": [records]}: scalar siblings (a POD id, say) go onto each record.
            key = lists[0]
            meta = {k: v for k, v in doc.items() if k != key}
            records = [{**meta, **r} for r in doc[key]]
        else:
            records = [doc]
    elif isinstance(doc, list):
        records = doc
    else:
        raise NotRecordsError(f"{path}: JSON that is not records (top level is {type(doc).__name__})")
    if not records:
        raise NotRecordsError(f"{path}: JSON holds no records")
    rejects: list[RawReject] = []
    table = None
    if not lenient:
        try:
            table = flatten_nested(_records_table(records, "the top-level list", path))
        except UnicodeEncodeError:  # an escaped lone surrogate ("\ud800") in some record
            lenient = True
    if lenient:
        bad = [i for i, r in enumerate(records) if not _utf8_clean(r)]
        rejects = [RawReject(i + 1, f"record {i + 1} holds text that is not Unicode (bytes that are not UTF-8, or a lone surrogate)",
                             json.dumps(records[i], ensure_ascii=True)[:200]) for i in bad]
        drop = set(bad)
        records = [r for i, r in enumerate(records) if i not in drop]
        if not records:
            yield RawBatch(pa.table({LINE: pa.array([], type=pa.int64())}), unit=str(path), rejects=rejects,
                           bytes_read=len(raw))
            return
    if table is None:
        table = flatten_nested(_records_table(records, "the top-level list", path))
    # Explosion keeps parent order, so record numbers follow the row order of the top level.
    table = _free_table(table).append_column(LINE, pa.array(np.arange(1, table.num_rows + 1, dtype=np.int64)))
    yield RawBatch(table, unit=str(path), rejects=rejects, bytes_read=len(raw))


def _loads_lenient(raw: bytes, path: Path, exc: UnicodeDecodeError):
    """The document with bytes that are not UTF-8 kept as lone surrogates (see ``_utf8_clean``)."""
    try:
        return json.loads(raw.decode("utf-8", "surrogateescape"))
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError):
        raise NotRecordsError(f"{path}: not UTF-8 JSON text (byte {exc.start})") from exc


def _utf8_clean(rec) -> bool:
    try:
        json.dumps(rec, ensure_ascii=False).encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def read_jsonl(path: Path, block_lines: int = JSONL_BLOCK_LINES) -> Iterator[RawBatch]:
    """Read JSON Lines in blocks; ``_line`` is the physical line number of each record.

    A line that is not a JSON object (bad JSON, bytes that are not UTF-8, a NUL, nesting deeper
    than :data:`MAX_JSON_DEPTH`) is a reject with its line; a file none of whose first lines is
    an object is not JSON Lines at all.
    """
    stream = _open_maybe_gzip(path)
    try:
        head = stream.read(1 << 16)
    except READ_ERRORS as exc:
        raise NotRecordsError(f"{path}: cannot read: {exc}") from exc
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if _binary(head[: 1 << 16]):
        raise NotRecordsError(f"{path}: not a JSON Lines text file (binary data)")
    first = head.lstrip()[:1]
    if first not in (b"{", b"") and not any(ln.lstrip()[:1] == b"{" for ln in head.split(b"\n")[:-1] or [head]):
        raise NotRecordsError(f"{path}: JSON Lines must hold one object per line (starts with {first!r})")
    byte_stream = io.BufferedReader(_Chain(head, stream), buffer_size=1 << 20)
    lineno = 0
    good_any = False
    while True:
        lines: list[bytes] = []
        try:
            for _ in range(block_lines):
                line = byte_stream.readline()
                if not line:
                    break
                lines.append(line)
        except READ_ERRORS as exc:
            raise NotRecordsError(f"{path}: truncated or corrupt near line {lineno + len(lines) + 1}: {exc}") from exc
        if not lines:
            break
        start = lineno + 1
        lineno += len(lines)
        batch = _parse_jsonl_block(lines, start, path)
        good_any = good_any or batch.table.num_rows > 0
        yield batch
    if not good_any:
        raise NotRecordsError(f"{path}: no JSON records found")


def _utf8(blob: bytes) -> bool:
    """Whether ``blob`` is valid UTF-8 (pyarrow's JSON reader passes bad bytes on unchecked)."""
    try:
        blob.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _json_depth(blob: bytes) -> int:
    """Upper bound of the bracket nesting depth of ``blob`` (brackets inside strings count too)."""
    if not blob:
        return 0
    arr = np.frombuffer(blob, np.uint8)
    step = ((arr == 0x7B) | (arr == 0x5B)).astype(np.int8) - ((arr == 0x7D) | (arr == 0x5D)).astype(np.int8)
    return int(np.cumsum(step, dtype=np.int64).max())


class _Chain(io.RawIOBase):
    """A raw stream that first returns ``head`` and then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: pa.NativeFile):
        self._head, self._stream = head, stream

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        if self._head:
            n = min(len(b), len(self._head))
            b[:n], self._head = self._head[:n], self._head[n:]
            return n
        data = self._stream.read(len(b))
        b[: len(data)] = data
        return len(data)


def _parse_jsonl_block(lines: list[bytes], start: int, path: Path) -> RawBatch:
    blob = b"".join(lines)
    nonblank = [i for i, s in enumerate(lines) if s.strip()]
    if len(nonblank) == len(lines) and b"\x00" not in blob and _utf8(blob) and _json_depth(blob) <= MAX_JSON_DEPTH:
        try:
            table = pajson.read_json(io.BytesIO(blob))
            if table.num_rows == len(lines):
                table = flatten_nested(table)
                table = _free_table(table).append_column(LINE, pa.array(np.arange(start, start + len(lines), dtype=np.int64)))
                return RawBatch(table, unit=str(path), bytes_read=len(blob))
        except pa.ArrowException:
            pass
    records, line_nos, rejects = [], [], []
    for i in nonblank:
        raw = lines[i].strip()
        shown = raw[:200].decode("utf-8", "replace").replace("\x00", "\\0")
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            rejects.append(RawReject(start + i, f"not UTF-8 text at column {exc.start + 1}{NOT_UTF8_HINT}", shown))
            continue
        if "\x00" in s:
            rejects.append(RawReject(start + i, "binary data (NUL byte) in row", shown))
            continue
        depth = _json_depth(raw)
        if depth > MAX_JSON_DEPTH:
            rejects.append(RawReject(start + i, f"nested {depth} levels deep (at most {MAX_JSON_DEPTH})", shown))
            continue
        try:
            rec = json.loads(s)
        except (json.JSONDecodeError, RecursionError) as exc:
            rejects.append(RawReject(start + i, f"not valid JSON: {getattr(exc, 'msg', exc)}", shown))
            continue
        if not isinstance(rec, dict):
            rejects.append(RawReject(start + i, "not a JSON object", shown))
            continue
        if "\\u" in s and not _utf8_clean(rec):  # an escaped lone surrogate
            rejects.append(RawReject(start + i, "a string holds a lone UTF-16 surrogate (not text)", shown))
            continue
        records.append(rec)
        line_nos.append(start + i)
    if records:
        table = _records_table(records, "a line", path)
        # Exploding nested lists changes the row count; carry the line through the explosion.
        table = _free_table(table).append_column("__ln", pa.array(line_nos, type=pa.int64()))
        table = flatten_nested(table)
        table = table.rename_columns([LINE if n == "__ln" else n for n in table.column_names])
    else:
        table = pa.table({LINE: pa.array([], type=pa.int64())})
    return RawBatch(table, unit=str(path), rejects=rejects, bytes_read=len(blob))


# ------------------------------------------------------------------------------------------ SQLite


def _sql_ident(name: str) -> str:
    """A quoted SQL identifier (any name, quotes doubled)."""
    return '"' + str(name).replace('"', '""') + '"'


def _sqlite_text(b: bytes) -> str:
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _sqlite_connect(path: Path) -> sqlite3.Connection:
    """``path`` opened read-only (a path is a path: no URI parameters from its name, a '?' or '#' in it)."""
    uri = "file:" + urllib.parse.quote(str(path.resolve())) + "?mode=ro"
    return sqlite3.connect(uri, uri=True)


def sqlite_tables(path: Path) -> list[str]:
    """The tables of a SQLite export that :func:`read_sqlite` reads, in its order."""
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise NotRecordsError(f"{path}: not a SQLite database")
    try:
        con = _sqlite_connect(Path(path))
        try:
            names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise NotRecordsError(f"{path}: not a readable SQLite database ({exc})") from exc
    return [n for n in names if not n.startswith("sqlite_")]


def read_sqlite(path: Path, tables: tuple[str, ...] | None = None,
                batch_rows: int = SQLITE_BATCH_ROWS) -> Iterator[RawBatch]:
    """Read every table of a SQLite export (or those named); ``_line`` is the table's rowid.

    Each table is its own unit (a device group in data-centre exports); the ingest step uses the
    table name as ``meter_id`` when the table has no meter column.
    """
    with open(path, "rb") as fh:
        if fh.read(16) != b"SQLite format 3\x00":
            raise NotRecordsError(f"{path}: not a SQLite database")
    try:
        con = _sqlite_connect(path)
        # Text that is not UTF-8 is decoded as Latin-1 (a value, not a failure of the whole table).
        con.text_factory = _sqlite_text
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table' ORDER BY name")]
    except sqlite3.DatabaseError as exc:
        raise NotRecordsError(f"{path}: not a readable SQLite database ({exc})") from exc
    try:
        if tables:
            missing = sorted(set(tables) - set(names))
            if missing:
                raise NotRecordsError(f"{path}: no table(s) {missing} (tables: {names})")
            names = list(tables)
        names = [n for n in names if not n.startswith("sqlite_")]
        if not names:
            raise NotRecordsError(f"{path}: SQLite database has no tables")
        for name in names:
            qname = _sql_ident(name)
            try:
                cols = [r[1] for r in con.execute(f"PRAGMA table_info({qname})")]
            except sqlite3.DatabaseError as exc:
                raise NotRecordsError(f"{path}: table {name}: unreadable ({exc})") from exc
            cols = [_free(c) for c in cols]
            if len(set(cols)) != len(cols):
                raise NotRecordsError(f"{path}: table {name}: duplicate column names {cols[:20]}")
            try:
                cur = con.execute(f"SELECT rowid, * FROM {qname}")
                rowid_ok = True
            except sqlite3.OperationalError:  # WITHOUT ROWID tables (or a view)
                try:
                    cur = con.execute(f"SELECT * FROM {qname}")
                except sqlite3.DatabaseError as exc:
                    raise NotRecordsError(f"{path}: table {name}: unreadable ({exc})") from exc
                rowid_ok = False
            counter = 0
            while True:
                try:
                    rows = cur.fetchmany(batch_rows)
                except sqlite3.DatabaseError as exc:
                    raise NotRecordsError(f"{path}: table {name}: corrupt after row {counter} ({exc})") from exc
                if not rows:
                    break
                columns = list(zip(*rows))
                if rowid_ok:
                    line, columns = columns[0], columns[1:]
                else:
                    line = range(counter + 1, counter + len(rows) + 1)
                counter += len(rows)
                arrays = []
                for values in columns:
                    try:
                        arrays.append(pa.array(values))
                    except (pa.ArrowException, TypeError):
                        arrays.append(pa.array([None if v is None else str(v) for v in values], type=pa.string()))
                table = pa.Table.from_arrays(arrays + [pa.array(line, type=pa.int64())], names=cols + [LINE])
                yield RawBatch(table, unit=f"{path}:{name}")
            if counter == 0:  # an empty table still gets mapped, so a skip is reported
                yield RawBatch(pa.table({**{c: pa.array([], pa.string()) for c in cols},
                                         LINE: pa.array([], pa.int64())}), unit=f"{path}:{name}")
    finally:
        con.close()


# --------------------------------------------------------------------------------------- DataFrame

FRAME_BATCH_ROWS = 1 << 20


def _frame_column(series) -> pa.Array:
    try:
        return pa.array(series, from_pandas=True)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        # Mixed types (numbers and text in one object column): text, so the normaliser judges
        # each value and rejects the rows whose value is not a number.
        return pa.array(series.astype("string"), from_pandas=True)


def read_frame(frame, unit: str = "<frame>", batch_rows: int = FRAME_BATCH_ROWS) -> Iterator[RawBatch]:
    """Read an in-memory :class:`pandas.DataFrame` in row batches; ``_line`` is the row position + 1.

    Columns keep their types (numbers and times are not written out as text and parsed back); a
    column whose values Arrow cannot type as one (numbers mixed with text) is read as text. Named
    index levels become columns (as :meth:`pandas.DataFrame.to_parquet` does), an unnamed index is
    ignored. Nested records (dict values) are flattened as in JSON.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise NotRecordsError(f"{unit}: not a pandas DataFrame ({type(frame).__name__})")
    named = [n for n in frame.index.names if n is not None and n not in frame.columns]
    if named:
        frame = frame.reset_index(level=named)
    names = [".".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise NotRecordsError(f"{unit}: duplicate column name(s) {dup[:10]}")
    if LINE in names:
        raise NotRecordsError(f"{unit}: column name {LINE!r} is reserved")
    n = len(frame)
    for start in range(0, max(n, 1), batch_rows):
        # (fk) A frame of one batch (a watcher's every step) read as it is, its columns through
        # ``items()`` (the same Series as ``iloc[:, i]``, the names being unique: ~half the cost,
        # ~0.5 ms of a 17-column live step).
        part = frame if start == 0 and n <= batch_rows else frame.iloc[start:start + batch_rows]
        arrays = [_frame_column(col) for _, col in part.items()]
        arrays.append(pa.array(np.arange(start + 1, start + len(part) + 1, dtype=np.int64)))
        table = flatten_nested(pa.Table.from_arrays(arrays, names=names + [LINE]))
        yield RawBatch(table, unit=unit)
