"""Generate the hostile ingest and mapping cases (tests/hostile/corpus/ingest, .../mapping).

Run from the repository root: ``.venv/bin/python tests/hostile/make_ingest_cases.py``. The cases
it writes are committed; the script is deterministic (no clock, no randomness) and only rewrites
the folders it owns (names starting with ``g_``; hand-written cases stay). Each case states the exit code, the
file / line / field its refusal names and how many readings are stored and rejected, so that
"every good row of a mixed file is kept" is checked, not assumed.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sqlite3
import sys
from pathlib import Path

HERE = Path(__file__).parent / "corpus"
PREFIX = "g_"

HEAD = "meter_id,ts,v_l1_v\n"
G1 = "M1,2025-01-06T00:00:00Z,230\n"  # line 2
G2 = "M1,2025-01-06T00:10:00Z,231\n"  # line 4 when a bad line sits between


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    raise TypeError(v)


CASES: list[tuple[str, str, dict, dict]] = []  # (area, name, files, spec)


def case(area: str, name: str, about: str, files: dict, *, fname: str | None = None, mapping: str | None = None,
         exit=0, stderr=(), stdout=(), stored=None, rejects=None, args=None, extra_args=()):
    """One case: ``files`` maps file names to bytes or text; the first is the input unless ``fname``."""
    fname = fname or next(iter(files))
    if args is None:
        args = ["ingest", "{case}/" + fname, "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/rejects.csv"]
        if mapping is not None:
            files = {**files, "map.toml": mapping}
            args += ["--mapping", "{case}/map.toml"]
        args += list(extra_args)
    spec = {"about": about, "args": args, "exit": exit, "stderr": list(stderr), "stdout": list(stdout)}
    if stored is not None:
        spec["stored"] = stored
    if rejects is not None:
        spec["rejects"] = rejects
    spec["unchanged"] = ["{case}/" + n for n in files]
    CASES.append((area, PREFIX + name, files, spec))


def mixed(area, name, about, bad_line: bytes | str, *, field: str | None = "ts", fname="x.csv", stored=2,
          rejects=1, **kw):
    """Two good rows around one hostile line (line 3): the line is a reject, both good rows stay."""
    bad = bad_line.encode() if isinstance(bad_line, str) else bad_line
    data = HEAD.encode() + G1.encode() + bad + b"\n" + G2.encode()
    case(area, name, about, {fname: data}, stored=stored, rejects=rejects, **kw)


# ------------------------------------------------------------------------------ CSV: epochs
for tag, cell in [("inf", "inf"), ("neg_inf", "-inf"), ("1e308", "1e308"), ("neg_1e308", "-1e308"),
                  ("1e20", "1e20"), ("neg_1e20", "-1e20"), ("9e18", "9e18"), ("infinity", "Infinity"),
                  ("ns_epoch", "1736122200000000000"), ("year_10000", "253402300800"),
                  ("zero", "0"), ("minus_one", "-1"), ("tiny", "1e-300"), ("1970_ms", "86400000"),
                  ("hex", "0x10"), ("big_digits", "9" * 400)]:
    mixed("ingest", f"csv_epoch_{tag}", f"epoch cell {cell[:30]!r}: a one-row reject naming the line, the rest kept",
          f"M1,{cell},230")
for tag, cell in [("ms", "1736121900000"), ("us", "1736121900000000"), ("s_frac", "1736121900.5"),
                  ("s_int", "1736121900")]:
    mixed("ingest", f"csv_epoch_ok_{tag}", f"a plausible epoch in {tag}: read, not rejected",
          f"M1,{cell},230", stored=3, rejects=0)

# ------------------------------------------------------------------------- CSV: time strings
for tag, cell in [("year_56985", "56985-01-01T00:00:00Z"), ("year_2199", "2199-01-01T00:00:00Z"),
                  ("year_0001", "0001-01-01T00:00:00Z"), ("year_1969", "1969-12-31T23:59:59Z"),
                  ("feb_30", "2025-02-30T00:00:00Z"), ("month_13", "2025-13-01T00:00:00Z"),
                  ("words", "yesterday"), ("bad_offset", "2025-01-06T00:05:00+25:00"),
                  ("sql", "2025-01-06'; DROP TABLE readings; --"), ("markup", "[/bold]2025"),
                  ("percent", "%s%s%n"), ("year_99999", "99999-12-31T00:00:00Z"),
                  ("neg_year", "-2025-01-06T00:00:00Z"), ("only_time", "12:00:00"),
                  ("lower_t", "2025-01-06t00:05:00z")]:
    mixed("ingest", f"csv_time_{tag}", f"time {cell!r}: a reject naming line 3 and ts, the rest kept", f"M1,{cell},230",
          stderr=[])
mixed("ingest", "csv_time_empty", "an empty time: 'ts: missing', the rest kept", "M1,,230")
mixed("ingest", "csv_time_blank", "a blank time: 'ts: missing', the rest kept", "M1,   ,230")
for tag, cell in [("offset_plus14", "2025-01-06T14:05:00+14:00"), ("offset_minus12", "2025-01-05T12:05:00-12:00"),
                  ("space_sep", "2025-01-06 00:05:00"), ("fraction", "2025-01-06T00:05:00.123456Z")]:
    mixed("ingest", f"csv_time_ok_{tag}", f"time {cell!r} is a plausible time: kept", f"M1,{cell},230",
          stored=3, rejects=0)

# ---------------------------------------------------------------------- CSV: numeric cells
for tag, cell in [("1e309", "1e309"), ("word", "abc"), ("comma_decimal", '"1,5"'), ("unit", "230 V"),
                  ("infinity_sign", "∞"), ("neg_voltage", "-5"), ("huge", "1e300"), ("inf", "inf"),
                  ("neg_inf", "-Infinity"), ("long", "9" * 5000),
                  ("sql", "'; DROP TABLE readings; --"), ("hex", "0xE6"), ("two_dots", "2.3.0")]:
    mixed("ingest", f"csv_value_{tag}", f"voltage {cell[:30]!r}: a reject naming line 3 and v_l1_v, the rest kept",
          f"M1,2025-01-06T00:05:00Z,{cell}", field="v_l1_v")
for tag, cell in [("plus", "+230"), ("spaces", "  230  "),
                  ("exp", "2.3e2"), ("neg_zero", "-0"), ("tiny", "1e-400"),
                  ("underscore", "1_000")]:
    mixed("ingest", f"csv_value_ok_{tag}", f"voltage {cell!r} is a number: the row is kept",
          f"M1,2025-01-06T00:05:00Z,{cell}", stored=3, rejects=0)
# A gap token is no value, not junk; a row whose only channel is a gap holds no reading at all
# (issue 13: it was stored as an empty reading), so it is a reject saying "no channel value".
for tag, cell in [("nan", "NaN"), ("null", "null"), ("dash", "-"), ("na", "N/A")]:
    mixed("ingest", f"csv_value_ok_{tag}", f"voltage {cell!r} is a gap (not junk); with no other channel the "
          "row holds no reading: a reject 'no channel value', the rest kept",
          f"M1,2025-01-06T00:05:00Z,{cell}", stored=2, rejects=1)

# ------------------------------------------------------------------------- CSV: bytes, encoding
mixed("ingest", "csv_nul_in_row3", "a NUL byte in row 3 (inside the first 64 KB): that row only", b"M1,2025-01-06T00:05:00Z,2\x0030")
mixed("ingest", "csv_latin1_in_row3", "a Latin-1 byte in row 3: that row only", b"M\xe9,2025-01-06T00:05:00Z,230")
mixed("ingest", "csv_invalid_utf8_seq", "an invalid UTF-8 sequence in row 3: that row only", b"M1,2025-01-06T00:05:00Z,\xff\xfe")
mixed("ingest", "csv_overlong_utf8", "an overlong UTF-8 encoding in row 3: that row only", b"M\xc0\xaf,2025-01-06T00:05:00Z,230")
mixed("ingest", "csv_surrogate_utf8", "a UTF-8-encoded surrogate in row 3: that row only", b"M\xed\xa0\x80,2025-01-06T00:05:00Z,230")
mixed("ingest", "csv_control_chars", "control characters in a meter id: a meter id, row kept",
      b"M\x01\x02,2025-01-06T00:05:00Z,230", stored=3, rejects=0)
mixed("ingest", "csv_unicode_meter", "a non-ASCII meter id in UTF-8 is a meter id", "Zürich-7,2025-01-06T00:05:00Z,230",
      stored=3, rejects=0)
mixed("ingest", "csv_rtl_meter", "right-to-left override in a meter id is just text", "M\u202e1,2025-01-06T00:05:00Z,230",
      stored=3, rejects=0)
big = HEAD + G1 + "".join(f"M1,2025-01-06T{h:02d}:{m:02d}:00Z,230\n" for h in range(1, 20) for m in range(0, 60, 5))
case("ingest", "csv_nul_at_40kb", "a NUL at ~10 KB, later rows fine: one reject",
     {"x.csv": big.encode() + b"M2,2025-01-06T00:00:00Z,2\x0030\n" + G2.encode()}, stored=230, rejects=1)
case("ingest", "csv_bom", "a UTF-8 BOM before the header is not part of the first column name",
     {"x.csv": b"\xef\xbb\xbf" + (HEAD + G1 + G2).encode()}, stored=2, rejects=0)
case("ingest", "csv_bom_twice", "two BOMs: the second is punctuation in the first column name, still meter_id",
     {"x.csv": b"\xef\xbb\xbf\xef\xbb\xbf" + (HEAD + G1 + G2).encode()}, stored=2, rejects=0)
case("ingest", "csv_utf16", "a UTF-16 file is refused whole with the file named (its header is not UTF-8)",
     {"x.csv": (HEAD + G1).encode("utf-16")}, exit=1, stderr=["x.csv"])
case("ingest", "csv_header_latin1", "a Latin-1 byte in the header: the file is refused naming line 1",
     {"x.csv": b"meter_id,ts,v_l1_v,temp_\xb0c\n" + G1.encode()}, exit=1, stderr=["x.csv", "line 1"])
case("ingest", "csv_header_nul", "a NUL in the header: refused naming the file and line 1",
     {"x.csv": b"meter_id,ts\x00,v_l1_v\n" + G1.encode()}, exit=1, stderr=["x.csv", "line 1"])
case("ingest", "csv_crlf", "CRLF line ends", {"x.csv": (HEAD + G1 + G2).replace("\n", "\r\n").encode()}, stored=2, rejects=0)
case("ingest", "csv_no_final_newline", "no newline at the end", {"x.csv": (HEAD + G1 + G2).rstrip("\n")}, stored=2, rejects=0)
case("ingest", "csv_blank_lines", "blank lines between rows are neither data nor rejects",
     {"x.csv": HEAD + "\n" + G1 + "\n\n" + G2 + "\n"}, stored=2, rejects=0)
case("ingest", "csv_header_only", "a header and no rows: nothing stored, no error", {"x.csv": HEAD}, stored=0, rejects=0)
case("ingest", "csv_empty", "an empty file is refused naming it", {"x.csv": b""}, exit=1, stderr=["x.csv", "empty"])
case("ingest", "csv_whitespace_only", "a file of blanks is refused naming it", {"x.csv": b"  \n\n \t\n"}, exit=1,
     stderr=["x.csv"])
case("ingest", "csv_binary_junk", "binary junk named .csv is refused whole", {"x.csv": bytes(range(256)) * 20},
     exit=1, stderr=["x.csv", "not a text csv"])
case("ingest", "csv_png", "a PNG named .csv is refused whole",
     {"x.csv": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200)}, exit=1, stderr=["x.csv"])
case("ingest", "csv_zip", "a zip named .csv is refused whole",
     {"x.csv": b"PK\x03\x04\x14\x00\x00\x00\x08\x00" + bytes(range(256)) * 4}, exit=1, stderr=["x.csv"])

# -------------------------------------------------------------------------- CSV: structure
case("ingest", "csv_duplicate_header", "duplicate column names: refused naming line 1",
     {"x.csv": "meter_id,ts,v_l1_v,v_l1_v\n" + "M1,2025-01-06T00:00:00Z,230,231\n"}, exit=1, stderr=["x.csv", "line 1"])
case("ingest", "csv_no_ts_column", "no column gives a time: refused naming the columns",
     {"x.csv": "meter_id,v_l1_v\nM1,230\n"}, exit=1, stderr=["x.csv", "ts"])
case("ingest", "csv_no_meter_column", "no column gives a meter: refused naming meter_id",
     {"x.csv": "ts,v_l1_v\n2025-01-06T00:00:00Z,230\n"}, exit=1, stderr=["x.csv", "meter_id"])
case("ingest", "csv_empty_header_name", "an empty column name in the header: refused naming line 1",
     {"x.csv": "meter_id,,ts\nM1,x,2025-01-06T00:00:00Z\n"}, exit=1, stderr=["x.csv", "line 1"])
case("ingest", "csv_single_column", "one column only: not a CSV header",
     {"x.csv": "meter_id\nM1\n"}, exit=1, stderr=["x.csv"])
mixed("ingest", "csv_too_many_fields", "a row with an extra field: that row only", "M1,2025-01-06T00:05:00Z,230,999")
mixed("ingest", "csv_too_few_fields", "a row with a field missing: that row only", "M1,2025-01-06T00:05:00Z")
mixed("ingest", "csv_unterminated_quote", "an unterminated quote: that row only", 'M1,"2025-01-06T00:05:00Z,230')
mixed("ingest", "csv_lone_comma", "a row of empty fields is a blank row: neither data nor a reject", ",,",
      stored=2, rejects=0)
case("ingest", "csv_extra_columns", "columns beyond the schema are noted, the rows kept",
     {"x.csv": "meter_id,ts,v_l1_v,colour,rack\n" + "M1,2025-01-06T00:00:00Z,230,red,4\n"}, stored=1, rejects=0,
     stderr=["ignored"])
case("ingest", "csv_wide_header", "a 12,000-column header past 64 KB (gzip): columns ignored, the row kept (the header was cut at 64 KB)",
     {"x.csv.gz": gzip.compress(("meter_id,ts,v_l1_v," + ",".join(f"c{i}" for i in range(12000)) + "\n"
      + "M1,2025-01-06T00:00:00Z,230," + ",".join("0" for _ in range(12000)) + "\n").encode(), mtime=0)},
     stored=1, rejects=0)
case("ingest", "csv_long_cell", "a 1 MB meter id (gzip): stored as given (no crash), the row kept",
     {"x.csv.gz": gzip.compress((HEAD + "M" * 1_000_000 + ",2025-01-06T00:00:00Z,230\n" + G2).encode(), mtime=0)},
     stored=2, rejects=0)
case("ingest", "csv_semicolon", "semicolon delimiter sniffed from the header",
     {"x.csv": (HEAD + G1 + G2).replace(",", ";")}, stored=2, rejects=0)
case("ingest", "csv_tab", "tab delimiter sniffed", {"x.csv": (HEAD + G1 + G2).replace(",", "\t")}, fname="x.csv",
     stored=2, rejects=0)
case("ingest", "csv_pipe", "pipe delimiter sniffed", {"x.csv": (HEAD + G1 + G2).replace(",", "|")}, stored=2, rejects=0)
case("ingest", "csv_exact_duplicates", "the same row three times: one stored, two duplicates",
     {"x.csv": HEAD + G1 * 3}, stored=1, rejects=0)
case("ingest", "csv_header_case", "header in capitals with spaces is matched",
     {"x.csv": " METER_ID , TS , V_L1_V \n" + G1 + G2}, stored=2, rejects=0)
case("ingest", "csv_markup_meter", "a meter id with Rich markup is stored and printed as text",
     {"x.csv": HEAD + "[/bold]M1,2025-01-06T00:00:00Z,230\n[red]M2[/red],2025-01-06T00:00:00Z,230\n"},
     stored=2, rejects=0)
case("ingest", "csv_sql_meter", "a meter id that looks like SQL is a meter id",
     {"x.csv": HEAD + "\"M1'); DROP TABLE readings; --\",2025-01-06T00:00:00Z,230\n" + G2}, stored=2, rejects=0)
case("ingest", "csv_newline_in_quoted_meter", "a quoted meter id holding a newline is one field (escaped where printed)",
     {"x.csv": HEAD + G1 + '"M\n2",2025-01-06T00:05:00Z,230\n' + G2}, stored=3, rejects=0)
mixed("ingest", "csv_empty_meter", "an empty meter id: 'meter_id: missing' on line 3", ",2025-01-06T00:05:00Z,230",
      field="meter_id")
mixed("ingest", "csv_pf_out_of_range", "a power factor of 1.7 is out of range", "M1,2025-01-06T00:05:00Z,230")  # placeholder
CASES.pop()  # (the placeholder above has no pf column; the pf case follows with its own header)
case("ingest", "csv_pf_out_of_range", "pf 1.7 and temperature 900 C: each value dropped naming the field, its reading kept",
     {"x.csv": "meter_id,ts,pf,temp_c\nM1,2025-01-06T00:00:00Z,0.9,20\nM1,2025-01-06T00:05:00Z,1.7,20\n"
      "M1,2025-01-06T00:10:00Z,0.9,900\nM1,2025-01-06T00:15:00Z,0.9,21\n"}, stored=4, rejects=2)

# ------------------------------------------------------------------------------------ gzip
buf = (HEAD + G1 + "M1,2025-01-06T00:05:00Z,abc\n" + G2).encode()
case("ingest", "gz_bad_row", "gzip CSV with one bad row", {"x.csv.gz": gzip.compress(buf, mtime=0)}, stored=2, rejects=1)
case("ingest", "gz_nul_row", "gzip CSV with a NUL in row 3",
     {"x.csv.gz": gzip.compress(HEAD.encode() + G1.encode() + b"M1,2025-01-06T00:05:00Z,\x00\n" + G2.encode(), mtime=0)},
     stored=2, rejects=1)
_gz = gzip.compress((HEAD + "".join(f"M{i},2025-01-06T00:{i % 60:02d}:{i % 59:02d}Z,{200 + i % 97}\n"
                                     for i in range(3000))).encode(), mtime=0)
case("ingest", "gz_truncated", "a truncated gzip: refused naming the file, nothing half-stored (pyarrow's reader "
     "stopped quietly at the cut)", {"x.csv.gz": _gz[: len(_gz) // 2]}, exit=1, stderr=["x.csv.gz", "truncated"], stored=0)
case("ingest", "gz_junk", "a .csv.gz that is gzip magic then junk: refused naming the file",
     {"x.csv.gz": b"\x1f\x8b" + bytes(range(256)) * 4}, exit=1, stderr=["x.csv.gz"])
case("ingest", "gz_not_gzip", "a .csv.gz that is plain text is read as text", {"x.csv.gz": HEAD + G1 + G2},
     stored=2, rejects=0)
case("ingest", "gz_double", "a doubly gzipped CSV: refused naming the file (inner gzip is binary)",
     {"x.csv.gz": gzip.compress(gzip.compress(buf, mtime=0), mtime=0)}, exit=1, stderr=["x.csv.gz"])
case("ingest", "gz_empty", "an empty gzip stream: refused as empty", {"x.csv.gz": gzip.compress(b"", mtime=0)},
     exit=1, stderr=["x.csv.gz", "empty"])


# --------------------------------------------------------------------------------- JSON
def rec(minute, meter="M1", v=230, **kw):
    return {"meter_id": meter, "ts": f"2025-01-06T00:{minute:02d}:00Z", "v_l1_v": v, **kw}


def jcase(name, about, doc, *, raw: bytes | None = None, fname="x.json", **kw):
    data = raw if raw is not None else json.dumps(doc).encode()
    case("ingest", name, about, {fname: data}, **kw)


jcase("json_bad_cell", "a list of records, one with a bad voltage", [rec(0), rec(5, v="abc"), rec(10)], stored=2, rejects=1)
jcase("json_empty_list", "[] holds no records: refused naming the file", [], exit=1, stderr=["x.json"])
jcase("json_scalar", "a bare number is not records", 42, exit=1, stderr=["x.json"])
jcase("json_string", "a bare string is not records", "hello", exit=1, stderr=["x.json"])
jcase("json_list_of_numbers", "a list of numbers is not records", [1, 2, 3], exit=1, stderr=["x.json"])
jcase("json_mixed_list", "records mixed with numbers: refused naming the file", [rec(0), 5], exit=1, stderr=["x.json"])
jcase("json_empty_object", "{} has no time column: refused", {}, exit=1, stderr=["x.json"])
jcase("json_nested_empty_sibling", "an empty sibling list (alarms) does not drop readings or double others",
      [{"PODID": "P1", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 230}], "alarms": []},
       {"PODID": "P2", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 231},
                                    {"start_ts": "2025-01-06T00:05:00Z", "Phase1Voltage": 232}],
        "alarms": [{"code": "A"}, {"code": "B"}]}], stored=3, rejects=0)
jcase("json_nested_empty_readings", "a POD with an empty readings list has no readings; the other POD's are kept",
      [{"PODID": "P1", "readings": []},
       {"PODID": "P2", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 231}]}], stored=1, rejects=0)
jcase("json_meta_data", "{meta, data: [records]}: the POD id goes onto each record",
      {"PODID": "P9", "data": [{"ts": "2025-01-06T00:00:00Z", "v_l1_v": 230}, {"ts": "2025-01-06T00:05:00Z", "v_l1_v": 231}]},
      stored=2, rejects=0)
jcase("json_bigint", "an integer beyond int64: that record is a reject, the others kept",
      None, raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":230},'
                b'{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":99999999999999999999999},'
                b'{"meter_id":"M1","ts":"2025-01-06T00:10:00Z","v_l1_v":231}]', stored=2, rejects=1)
jcase("json_bigint_ts", "an epoch beyond int64: that record is a reject", None,
      raw=b'[{"meter_id":"M1","ts":1736121600,"v_l1_v":230},{"meter_id":"M1","ts":123456789012345678901234567890,"v_l1_v":230}]',
      stored=1, rejects=1)
jcase("json_deep_100k", "100,000-deep nesting (gzip, so the case is small): refused naming the file, no crash", None,
      raw=gzip.compress(b"[" * 100_000 + b"]" * 100_000, mtime=0), fname="x.json.gz", exit=1,
      stderr=["x.json.gz", "nested"])
jcase("json_deep_object_1000", "1,000-deep object: refused naming the file", None,
      raw=b'{"a":' * 1000 + b"1" + b"}" * 1000, exit=1, stderr=["x.json", "nested"])
jcase("json_depth_40", "40 levels of nesting under a record are fine (ignored columns)", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":230,"x":' + b'{"a":' * 40 + b"1" + b"}" * 40 + b"}]",
      stored=1, rejects=0)
jcase("json_latin1_record", "a Latin-1 byte in record 2 of a JSON document: that record only", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":230},'
          b'{"meter_id":"M\xe9","ts":"2025-01-06T00:05:00Z","v_l1_v":230},'
          b'{"meter_id":"M1","ts":"2025-01-06T00:10:00Z","v_l1_v":231}]', stored=2, rejects=1)
jcase("json_bom", "a UTF-8 BOM before a JSON document", None,
      raw=b"\xef\xbb\xbf" + json.dumps([rec(0), rec(5)]).encode(), stored=2, rejects=0)
jcase("json_nan_literal", "NaN literal: a gap, the record (and its p_kw) kept", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":NaN,"p_kw":1},{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":230}]',
      stored=2, rejects=0)
jcase("json_infinity_literal", "Infinity literal: that record is a reject naming v_l1_v", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":Infinity},{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":230}]',
      stored=1, rejects=1)
jcase("json_1e400", "1e400 (infinite as a double): a reject", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":1e400},{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":230}]',
      stored=1, rejects=1)
jcase("json_null_ts", "a null time: 'ts: missing'", [rec(0), {"meter_id": "M1", "ts": None, "v_l1_v": 1}], stored=1, rejects=1)
jcase("json_bool_ts", "a boolean time: a reject", [rec(0), {"meter_id": "M1", "ts": True, "v_l1_v": 1}], stored=1, rejects=1)
jcase("json_object_value", "an object where a number belongs: ignored subcolumns, the time still maps",
      [rec(0), rec(5, v={"x": 1}, p_kw=1)], stored=2, rejects=0)
jcase("json_list_value", "a list where a number belongs: that value is not a number", [rec(0), rec(5, v=[1, 2])],
      stored=1, rejects=1)
jcase("json_mixed_types", "a number here, a string there: each value judged", [rec(0, v=230), rec(5, v="231"), rec(10, v="x")],
      stored=2, rejects=1)
jcase("json_missing_key", "a record without v_l1_v keeps its other columns; a later key is not dropped",
      [{"meter_id": "M1", "ts": "2025-01-06T00:00:00Z", "p_kw": 1}, rec(5)], stored=2, rejects=0)
jcase("json_duplicate_keys", "duplicate keys in an object: the last one wins (JSON parsers' rule)", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":1,"v_l1_v":230}]', stored=1, rejects=0)
jcase("json_truncated", "a truncated JSON document: refused naming the file and where", None,
      raw=json.dumps([rec(0), rec(5)]).encode()[:40], exit=1, stderr=["x.json", "line 1"])
jcase("json_trailing_comma", "a trailing comma: refused naming the file", None,
      raw=b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z"},]', exit=1, stderr=["x.json"])
jcase("json_nul_escape", "an escaped NUL in a meter id is text, the record kept", None,
      raw=b'[{"meter_id":"M\\u00001","ts":"2025-01-06T00:00:00Z","v_l1_v":230}]', stored=1, rejects=0)
jcase("json_lone_surrogate_escape", "an escaped lone surrogate in a meter id: that record is a reject", None,
      raw=b'[{"meter_id":"M\\ud800","ts":"2025-01-06T00:00:00Z","v_l1_v":230},{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":230}]',
      stored=1, rejects=1)
jcase("json_dotted_keys", "keys with dots and an empty key", [{"meter_id": "M1", "ts": "2025-01-06T00:00:00Z", "v_l1_v": 230, "a.b": 1, "": 2}],
      stored=1, rejects=0)
jcase("json_far_future", "a record in year 2199: rejected naming ts", [rec(0), {"meter_id": "M1", "ts": "2199-01-01T00:00:00Z"}],
      stored=1, rejects=1)
jcase("json_gz", "gzip JSON with a bad record", None, fname="x.json.gz",
      raw=gzip.compress(json.dumps([rec(0), rec(5, v=-1), rec(10)]).encode(), mtime=0), stored=2, rejects=1)
jcase("json_binary", "binary junk named .json", None, raw=bytes(range(256)) * 4, exit=1, stderr=["x.json"])


# ---------------------------------------------------------------------------- JSON Lines
def jl(*lines) -> bytes:
    return b"".join((ln if isinstance(ln, bytes) else json.dumps(ln).encode()) + b"\n" for ln in lines)


def jlcase(name, about, data, *, fname="x.jsonl", **kw):
    case("ingest", name, about, {fname: data}, **kw)


jlcase("jsonl_bad_json_line", "a line that is not JSON: that line only", jl(rec(0), b"{not json", rec(10)), stored=2, rejects=1)
jlcase("jsonl_array_line", "a line that is an array: that line only", jl(rec(0), b"[1,2]", rec(10)), stored=2, rejects=1)
jlcase("jsonl_blank_lines", "blank lines are skipped", jl(rec(0), b"", b"   ", rec(10)), stored=2, rejects=0)
jlcase("jsonl_bom", "a BOM before the first line", b"\xef\xbb\xbf" + jl(rec(0), rec(10)), stored=2, rejects=0)
jlcase("jsonl_latin1_line", "a Latin-1 byte in line 2 (first 64 KB): that line only",
       jl(rec(0), b'{"meter_id":"M\xe9","ts":"2025-01-06T00:05:00Z"}', rec(10)), stored=2, rejects=1)
jlcase("jsonl_nul_line", "a NUL in line 2: that line only", jl(rec(0), b'{"meter_id":"M\x001"}', rec(10)), stored=2, rejects=1)
jlcase("jsonl_deep_line", "a 100,000-deep line (gzip): that line only, no crash (pyarrow segfaulted)",
       gzip.compress(jl(rec(0), b'{"a":' * 100_000 + b"1" + b"}" * 100_000, rec(10)), mtime=0), fname="x.jsonl.gz",
       stored=2, rejects=1)
jlcase("jsonl_first_line_junk", "junk on line 1, records after: line 1 is a reject, the rest kept",
       jl(b"garbage", rec(0), rec(10)), stored=2, rejects=1)
jlcase("jsonl_all_junk", "no line is a record: refused naming the file", jl(b"garbage", b"more"), exit=1, stderr=["x.jsonl"])
jlcase("jsonl_crlf", "CRLF line ends", jl(rec(0), rec(10)).replace(b"\n", b"\r\n"), stored=2, rejects=0)
jlcase("jsonl_bigint", "an integer beyond int64 on line 2: that line is a reject",
       jl(rec(0), b'{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":99999999999999999999999}', rec(10)),
       stored=2, rejects=1)
jlcase("jsonl_bad_epoch", "an epoch of 1e308 on line 2: that line only",
       jl(rec(0), {"meter_id": "M1", "ts": 1e308}, rec(10)), stored=2, rejects=1)
jlcase("jsonl_schema_drift", "a key only in later lines is kept", jl({"meter_id": "M1", "ts": "2025-01-06T00:00:00Z", "p_kw": 1}, rec(10)),
       stored=2, rejects=0)
jlcase("jsonl_gz", "gzip JSON Lines with a bad line", gzip.compress(jl(rec(0), b"{", rec(10)), mtime=0),
       fname="x.jsonl.gz", stored=2, rejects=1)
jlcase("jsonl_binary", "binary junk named .jsonl", bytes(range(256)) * 4, exit=1, stderr=["x.jsonl"])
jlcase("jsonl_empty", "an empty .jsonl: refused naming it", b"", exit=1, stderr=["x.jsonl"])
jlcase("jsonl_nested_lists", "nested readings with an empty alarms list on each line",
       jl({"PODID": "P1", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 230}], "alarms": []},
          {"PODID": "P2", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 231}], "alarms": [{"c": 1}]}),
       stored=2, rejects=0)


# --------------------------------------------------------------------------------- Parquet
def parquet_bytes(table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def pcase(name, about, table, *, fname="x.parquet", **kw):
    case("ingest", name, about, {fname: parquet_bytes(table)}, **kw)


def build_parquet_cases():
    import pyarrow as pa

    ts3 = pa.array([1736121600_000_000, 1736121900_000_000, 1736122200_000_000], pa.timestamp("us", tz="UTC"))
    pcase("parquet_bad_epoch_float", "a float epoch column with 1e300 in row 2: that row only",
          pa.table({"meter_id": ["M1"] * 3, "ts": [1736121600.0, 1e300, 1736122200.0], "v_l1_v": [230.0] * 3}),
          stored=2, rejects=1)
    pcase("parquet_inf_epoch", "inf and -inf epochs: rejects",
          pa.table({"meter_id": ["M1"] * 3, "ts": [1736121600.0, float("inf"), float("-inf")], "v_l1_v": [230.0] * 3}),
          stored=1, rejects=2)
    pcase("parquet_ns_int_epoch", "int64 nanosecond epochs read as auto: rejects naming ts (hint: epoch_unit ns)",
          pa.table({"meter_id": ["M1", "M1"], "ts": pa.array([1736121600, 1736121900_000_000_000], pa.int64()),
                    "v_l1_v": [230.0, 231.0]}), stored=1, rejects=1)
    pcase("parquet_text_ts", "a text time column with a bad value",
          pa.table({"meter_id": ["M1"] * 3, "ts": ["2025-01-06T00:00:00Z", "soon", "2025-01-06T00:10:00Z"],
                    "v_l1_v": [230.0] * 3}), stored=2, rejects=1)
    pcase("parquet_future_timestamp", "a timestamp column with a reading in 2199",
          pa.table({"meter_id": ["M1"] * 2, "ts": pa.array([1736121600_000_000, 7258118400_000_000], pa.timestamp("us", tz="UTC")),
                    "v_l1_v": [230.0] * 2}), stored=1, rejects=1)
    pcase("parquet_inf_value", "an infinite voltage: that row only",
          pa.table({"meter_id": ["M1"] * 3, "ts": ts3, "v_l1_v": [230.0, float("inf"), 231.0]}), stored=2, rejects=1)
    pcase("parquet_nan_value", "a NaN voltage is a gap, the row (and its p_kw) kept",
          pa.table({"meter_id": ["M1"] * 3, "ts": ts3, "v_l1_v": [230.0, float("nan"), 231.0],
                    "p_kw": [1.0, 2.0, 3.0]}), stored=3, rejects=0)
    pcase("parquet_null_meter", "a null meter id: that row only",
          pa.table({"meter_id": ["M1", None, "M1"], "ts": ts3, "v_l1_v": [230.0] * 3}), stored=2, rejects=1)
    pcase("parquet_dictionary", "dictionary-encoded meter ids",
          pa.table({"meter_id": pa.array(["M1", "M2", "M1"]).dictionary_encode(), "ts": ts3, "v_l1_v": [230.0] * 3}),
          stored=3, rejects=0)
    pcase("parquet_uint64_max", "a uint64 at its maximum: out of range for a voltage",
          pa.table({"meter_id": ["M1"] * 3, "ts": ts3, "v_l1_v": pa.array([230, 2**64 - 1, 231], pa.uint64())}),
          stored=2, rejects=1)
    pcase("parquet_decimal", "decimal voltages",
          pa.table({"meter_id": ["M1"] * 3, "ts": ts3, "v_l1_v": pa.array([230, 231, 232], pa.decimal128(10, 2))}),
          stored=3, rejects=0)
    pcase("parquet_empty", "a Parquet file with no rows: nothing stored, no error",
          pa.table({"meter_id": pa.array([], pa.string()), "ts": pa.array([], pa.timestamp("us", tz="UTC")),
                    "v_l1_v": pa.array([], pa.float64())}),
          stored=0, rejects=0)
    pcase("parquet_nested_empty_sibling", "nested Parquet with an empty sibling list",
          pa.table({"PODID": ["P1", "P2"],
                    "readings": [[{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 230.0}],
                                 [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 231.0},
                                  {"start_ts": "2025-01-06T00:05:00Z", "Phase1Voltage": 232.0}]],
                    "alarms": [[], [{"code": "A"}, {"code": "B"}]]}), stored=3, rejects=0)
    pcase("parquet_binary_meter", "a binary meter id column",
          pa.table({"meter_id": pa.array([b"M1", b"\xff\xfe"], pa.binary()), "ts": ts3[:2], "v_l1_v": [230.0, 231.0]}),
          stored=2, rejects=0)
    good = parquet_bytes(pa.table({"meter_id": ["M1"] * 3, "ts": ts3, "v_l1_v": [230.0] * 3}))
    case("ingest", "parquet_truncated", "a truncated Parquet file: refused naming it",
         {"x.parquet": good[: len(good) // 2]}, exit=1, stderr=["x.parquet"])
    case("ingest", "parquet_junk", "junk named .parquet: refused naming it", {"x.parquet": bytes(range(256)) * 4},
         exit=1, stderr=["x.parquet"])
    case("ingest", "parquet_magic_only", "PAR1 magic and nothing else", {"x.parquet": b"PAR1PAR1"}, exit=1,
         stderr=["x.parquet"])
    one = lambda m: parquet_bytes(pa.table({"meter_id": [m], "ts": ts3[:1], "v_l1_v": [230.0]}))  # noqa: E731
    case("ingest", "parquet_glob_star", "'a*.parquet' is that one file, not a1 and a2 (no glob)",
         {"a*.parquet": one("star"), "a1.parquet": one("a1"), "a2.parquet": one("a2")}, fname="a*.parquet",
         stored=1, rejects=0)
    case("ingest", "parquet_glob_brackets", "'a[1].parquet' is that one file, not a1.parquet",
         {"a[1].parquet": one("br"), "a1.parquet": one("a1")}, fname="a[1].parquet", stored=1, rejects=0)
    case("ingest", "parquet_glob_question", "'a?.parquet' is that one file",
         {"a?.parquet": one("q"), "a1.parquet": one("a1")}, fname="a?.parquet", stored=1, rejects=0)
    case("ingest", "parquet_glob_braces", "'a{1,2}.parquet' is that one file",
         {"a{1,2}.parquet": one("b"), "a1.parquet": one("a1"), "a2.parquet": one("a2")}, fname="a{1,2}.parquet",
         stored=1, rejects=0)
    case("ingest", "parquet_quote_in_name", "a quote in the file name",
         {"it's.parquet": one("q")}, fname="it's.parquet", stored=1, rejects=0)
    case("ingest", "parquet_url_like_name", "a file named like a URL scheme is a local file",
         {"http:x.parquet": one("u")}, fname="http:x.parquet", stored=1, rejects=0)


# ---------------------------------------------------------------------------------- SQLite
def sqlite_bytes(setup) -> bytes:
    import os
    import tempfile

    fd, name = tempfile.mkstemp(suffix=".db")
    os.close(fd)
    os.unlink(name)
    con = sqlite3.connect(name)
    setup(con)
    con.commit()
    con.close()
    data = Path(name).read_bytes()
    os.unlink(name)
    return data


def scase(name, about, setup, *, fname="x.db", **kw):
    case("ingest", name, about, {fname: sqlite_bytes(setup)}, **kw)


def table(con, name, rows, cols="meter_id TEXT, ts TEXT, v_l1_v REAL", extra=""):
    q = '"' + name.replace('"', '""') + '"'
    con.execute(f"CREATE TABLE {q} ({cols}){extra}")
    if rows:
        con.executemany(f"INSERT INTO {q} VALUES ({', '.join('?' * len(rows[0]))})", rows)


R2 = [("M1", "2025-01-06T00:00:00Z", 230.0), ("M1", "2025-01-06T00:05:00Z", 231.0)]


def build_sqlite_cases():
    for tag, name in [("quote", 'we"ird'), ("single_quote", "it's"), ("semicolon", "a; DROP TABLE t; --"),
                      ("space", "rack 7"), ("bracket", "[x]"), ("unicode", "zähler"), ("backtick", "a`b")]:
        scase(f"sqlite_name_{tag}", f"table named {name!r}: identifiers quoted",
              lambda con, n=name: table(con, n, R2), stored=2, rejects=0)
    scase("sqlite_empty_table", "an empty table: nothing stored, no traceback", lambda con: table(con, "t", []),
          stored=0, rejects=0)
    scase("sqlite_no_tables", "no tables: refused naming the file", lambda con: con.execute("PRAGMA user_version=1"),
          exit=1, stderr=["x.db"])
    scase("sqlite_settings_table_skipped", "a settings table is skipped with a note, the telemetry kept",
          lambda con: (table(con, "readings", R2), table(con, "settings", [("a", "b")], cols="k TEXT, v TEXT")),
          stored=2, rejects=0, stderr=["settings"])
    scase("sqlite_only_settings", "only a settings table: refused naming the file",
          lambda con: table(con, "settings", [("a", "b")], cols="k TEXT, v TEXT"), exit=1, stderr=["x.db"])
    scase("sqlite_without_rowid", "a WITHOUT ROWID table",
          lambda con: table(con, "t", R2, cols="meter_id TEXT, ts TEXT, v_l1_v REAL, PRIMARY KEY (meter_id, ts)",
                            extra=" WITHOUT ROWID"), stored=2, rejects=0)
    scase("sqlite_latin1_text", "Latin-1 bytes in a text cell are decoded (a value), the table read",
          lambda con: (table(con, "t", R2), con.execute("INSERT INTO t VALUES (CAST(X'4DE9' AS TEXT), '2025-01-06T00:10:00Z', 232)")),
          stored=3, rejects=0)
    scase("sqlite_blob_value", "a blob where a number belongs: that row only",
          lambda con: (table(con, "t", R2), con.execute("INSERT INTO t VALUES ('M1', '2025-01-06T00:10:00Z', X'00FF')")),
          stored=2, rejects=1)
    scase("sqlite_bad_epoch", "an epoch of 1e308 in a REAL time column",
          lambda con: table(con, "t", [("M1", 1736121600.0, 230.0), ("M1", 1e308, 231.0)], cols="meter_id TEXT, ts REAL, v_l1_v REAL"),
          stored=1, rejects=1)
    scase("sqlite_mixed_types", "text and numbers in one column: each value judged",
          lambda con: table(con, "t", [("M1", "2025-01-06T00:00:00Z", 230.0), ("M1", "2025-01-06T00:05:00Z", "abc"),
                                       ("M1", "2025-01-06T00:10:00Z", 231)]), stored=2, rejects=1)
    scase("sqlite_huge_int", "a 64-bit integer at its limit in a voltage column",
          lambda con: table(con, "t", [("M1", "2025-01-06T00:00:00Z", 2**63 - 1), ("M1", "2025-01-06T00:05:00Z", 230)],
                            cols="meter_id TEXT, ts TEXT, v_l1_v INTEGER"), stored=1, rejects=1)
    scase("sqlite_table_as_meter", "no meter column: the table name is the meter",
          lambda con: table(con, "PDU-7", [("2025-01-06T00:00:00Z", 230.0)], cols="ts TEXT, v_l1_v REAL"), stored=1, rejects=0)
    scase("sqlite_view_ignored", "a view is not read twice",
          lambda con: (table(con, "t", R2), con.execute("CREATE VIEW v AS SELECT * FROM t")), stored=2, rejects=0)
    good = sqlite_bytes(lambda con: table(con, "t", R2 * 1))
    case("ingest", "sqlite_truncated", "a truncated SQLite file: refused or read to where it is whole, no traceback",
         {"x.db": good[:1024]}, exit="nonzero", stderr=["x.db"])
    case("ingest", "sqlite_junk", "junk named .db: refused naming it", {"x.db": bytes(range(256)) * 4}, exit=1,
         stderr=["x.db"])
    case("ingest", "sqlite_header_only", "the SQLite magic and junk after it", {"x.db": b"SQLite format 3\x00" + bytes(range(256)) * 4},
         exit=1, stderr=["x.db"])
    case("ingest", "sqlite_uri_chars_in_name", "a '?' and '#' in a .db file name are part of the path",
         {"a?mode=rwc#x.db": good}, fname="a?mode=rwc#x.db", stored=2, rejects=0)


# ------------------------------------------------------------------------------ mapping
def mcase(name, about, mapping: str | bytes, *, data: str | bytes | None = None, fname="x.csv", **kw):
    files = {fname: data if data is not None else HEAD + G1 + G2}
    case("mapping", name, about, files, mapping=mapping, fname=fname, **kw)


for tag, text, field in [
    ("scale_text", '[scale]\nv_l1_v = "abc"\n', "scale"),
    ("scale_bool", "[scale]\nv_l1_v = true\n", "scale"),
    ("scale_inf", "[scale]\nv_l1_v = inf\n", "scale"),
    ("scale_nan", "[scale]\nv_l1_v = nan\n", "scale"),
    ("scale_table", "[scale]\nv_l1_v = {a = 1}\n", "scale"),
    ("scale_list", "[scale]\nv_l1_v = [1, 2]\n", "scale"),
    ("scale_unknown_channel", "[scale]\nbogus_x = 2\n", "bogus_x"),
    ("timezone_int", "[options]\ntimezone = 5\n", "timezone"),
    ("timezone_unknown", '[options]\ntimezone = "Mars/Olympus_Mons"\n', "timezone"),
    ("timezone_path", '[options]\ntimezone = "../../../etc/passwd"\n', "timezone"),
    ("timezone_empty", '[options]\ntimezone = ""\n', "timezone"),
    ("timezone_quote", "[options]\ntimezone = \"Europe/Rome'; --\"\n", "timezone"),
    ("delimiter_two", '[options]\ndelimiter = ";;"\n', "delimiter"),
    ("delimiter_empty", '[options]\ndelimiter = ""\n', "delimiter"),
    ("delimiter_newline", '[options]\ndelimiter = "\\n"\n', "delimiter"),
    ("delimiter_quote", "[options]\ndelimiter = '\"'\n", "delimiter"),
    ("delimiter_int", "[options]\ndelimiter = 44\n", "delimiter"),
    ("decimal_table", "[options]\ndecimal = {a = 1}\n", "decimal"),
    ("decimal_same_as_delimiter", '[options]\ndelimiter = ","\ndecimal = ","\n', "decimal"),
    ("columns_table", "[columns]\nts = {a = 1}\n", "ts"),
    ("columns_int", "[columns]\nts = 5\n", "ts"),
    ("columns_empty_list", "[columns]\np_kw = []\n", "p_kw"),
    ("columns_list_of_ints", "[columns]\np_kw = [1, 2]\n", "p_kw"),
    ("columns_unknown", '[columns]\nvoltage_x = "v"\n', "voltage_x"),
    ("ts_format_int", "[options]\nts_format = 7\n", "ts_format"),
    ("ts_format_no_percent", '[options]\nts_format = "YYYY-MM-DD"\n', "ts_format"),
    ("epoch_unit_bad", '[options]\nepoch_unit = "fortnights"\n', "epoch_unit"),
    ("builtin_aliases_text", '[options]\nbuiltin_aliases = "yes"\n', "builtin_aliases"),
    ("tables_int", "[options]\ntables = 3\n", "tables"),
    ("tables_list_of_tables", "[options]\ntables = [{a = 1}]\n", "tables"),
    ("defaults_meter_table", "[defaults]\nmeter_id = {x = 1}\n", "meter_id"),
    ("defaults_meter_empty", '[defaults]\nmeter_id = "  "\n', "meter_id"),
    ("defaults_ts", '[defaults]\nts = "2025-01-06"\n', "ts"),
    ("defaults_value_text", '[defaults]\np_kw = "abc"\n', "p_kw"),
    ("extra_bad_name", '[extra]\n"Bad Name" = "x"\n', "bad name"),
    ("extra_canonical", '[extra]\nv_l1_v = "x"\n', "v_l1_v"),
    ("extra_no_unit", '[extra]\nbattery = "x"\n', "battery"),
    ("extra_source_table", "[extra]\nups_mode_1 = {a = 1}\n", "ups_mode_1"),
    ("unknown_section", '[colums]\nts = "x"\n', "colums"),
    ("unknown_option", '[options]\ntimezon = "UTC"\n', "timezon"),
    ("options_not_table", "options = 5\n", "options"),
    ("columns_not_table", 'columns = "ts"\n', "columns"),
    ("syntax_error", "[columns\nts = \n", "map.toml"),
    ("ts_min_bad", '[options]\nts_min = "long ago"\n', "ts_min"),
    ("ts_max_bad", "[options]\nts_max = 5\n", "ts_max"),
    ("ts_min_after_max", '[options]\nts_min = "2030-01-01"\nts_max = "2020-01-01"\n', "ts_min"),
]:
    mcase(f"mapping_{tag}", f"mapping {text.strip()!r}: a one-line error naming the mapping file and the key",
          text, exit="nonzero", stderr=["map.toml", field])
mcase("mapping_binary", "a binary file as the mapping: refused naming it", bytes(range(256)) * 4,
      exit="nonzero", stderr=["map.toml"])
mcase("mapping_utf16", "a UTF-16 mapping file: refused naming it", '[options]\ntimezone = "UTC"\n'.encode("utf-16"),
      exit="nonzero", stderr=["map.toml"])
mcase("mapping_nul", "a NUL inside the mapping file: refused naming it", b'[options]\ntimezone = "UTC\x00"\n',
      exit="nonzero", stderr=["map.toml"])
mcase("mapping_deep_tables", "2,000 nested inline tables: refused naming it, no crash",
      "[columns]\nts = " + "{a = " * 2000 + "1" + "}" * 2000 + "\n", exit="nonzero", stderr=["map.toml"])
mcase("mapping_huge_list", "a list of 3,000 source columns that do not exist: refused naming the key",
      "[columns]\np_kw = [" + ", ".join(f'"c{i}"' for i in range(3000)) + "]\n", exit="nonzero", stderr=["p_kw"])
mcase("mapping_columns_missing_source", "the mapping names a column the file lacks: refused naming the file and column",
      '[columns]\nv_l1_v = "NoSuchColumn"\n', exit=1, stderr=["x.csv", "nosuchcolumn"])
mcase("mapping_empty", "an empty mapping file is the built-in mapping", "", stored=2, rejects=0)
mcase("mapping_bom", "a mapping file with a BOM", b'\xef\xbb\xbf[options]\ntimezone = "UTC"\n', stored=2, rejects=0)
mcase("mapping_ts_min_date", "ts_min as a TOML date", "[options]\nts_min = 1980-01-01\n",
      data=HEAD + "M1,1985-01-01T00:00:00Z,230\n" + G2, stored=2, rejects=0)
mcase("mapping_ts_max_narrows", "ts_max narrows the plausible range: later readings are rejects naming ts",
      '[options]\nts_max = "2025-01-06T00:05:00Z"\n', stored=1, rejects=1)
mcase("mapping_epoch_ns", "epoch_unit = ns reads nanosecond epochs",
      '[options]\nepoch_unit = "ns"\n', data=HEAD + "M1,1736121600000000000,230\nM1,1736121900000000000,231\n",
      stored=2, rejects=0)
mcase("mapping_epoch_s_ms_value", "epoch_unit = s with a millisecond value: year 56985, a reject",
      '[options]\nepoch_unit = "s"\n', data=HEAD + "M1,1736121600,230\nM1,1736121900000,231\n", stored=1, rejects=1)
mcase("mapping_decimal_comma", "decimal comma with semicolons",
      '[options]\ndelimiter = ";"\ndecimal = ","\n',
      data="meter_id;ts;v_l1_v\nM1;2025-01-06T00:00:00Z;230,5\nM1;2025-01-06T00:05:00Z;abc\nM1;2025-01-06T00:10:00Z;231,0\n",
      stored=2, rejects=1)
mcase("mapping_sum_bad_cell", "a summed column with one bad part: that row only",
      '[columns]\np_kw = ["P1", "P2"]\n[scale]\np_kw = 0.001\n',
      data="meter_id,ts,P1,P2\nM1,2025-01-06T00:00:00Z,100,200\nM1,2025-01-06T00:05:00Z,100,x\nM1,2025-01-06T00:10:00Z,100,200\n",
      stored=2, rejects=1)
mcase("mapping_tables_missing", "tables names a table the .db lacks: refused naming it",
      '[options]\ntables = ["nope"]\n', data=sqlite_bytes(lambda con: table(con, "t", R2)), fname="x.db",
      exit=1, stderr=["x.db", "nope"])
mcase("mapping_tables_quote", "tables names a table with a quote in its name",
      "[options]\ntables = ['we\"ird']\n", data=sqlite_bytes(lambda con: table(con, 'we"ird', R2)), fname="x.db",
      stored=2, rejects=0)
mcase("mapping_default_meter", "a default meter id for a file without one",
      '[defaults]\nmeter_id = "PDU-7"\n', data="ts,v_l1_v\n2025-01-06T00:00:00Z,230\n", stored=1, rejects=0)
mcase("mapping_default_meter_int", "a default meter id given as a number",
      "[defaults]\nmeter_id = 7\n", data="ts,v_l1_v\n2025-01-06T00:00:00Z,230\n", stored=1, rejects=0)
mcase("mapping_ts_format", "ts_format with one row in another format: that row only",
      '[options]\nts_format = "%d/%m/%Y %H:%M"\n',
      data=HEAD + "M1,06/01/2025 00:00,230\nM1,2025-01-06,230\nM1,06/01/2025 00:10,231\n", stored=2, rejects=1)

# DST in Europe/Rome (and a 30-minute shift at Lord Howe Island)
ROME = '[options]\ntimezone = "Europe/Rome"\n'
fold = ["01:45", "02:00", "02:15", "02:30", "02:45", "02:00", "02:15", "02:30", "02:45", "03:00"]
mcase("dst_fall_back_in_order", "fall back, file in time order: the second pass of 02:00-02:45 is standard time, nothing merged",
      ROME, data=HEAD + "".join(f"M1,2025-10-26 {hm}:00,{230 + i}\n" for i, hm in enumerate(fold)), stored=10, rejects=0)
mcase("dst_fall_back_two_meters_interleaved", "two meters interleaved through the fold: each placed by its own order",
      ROME, data=HEAD + "".join(f"M{k},2025-10-26 {hm}:00,{230 + i}\n" for i, hm in enumerate(fold) for k in (1, 2)),
      stored=20, rejects=0)
mcase("dst_fall_back_out_of_order", "a repeated time after the meter reported 03:00: a reject with the reason",
      ROME, data=HEAD + "M1,2025-10-26 01:45:00,230\nM1,2025-10-26 03:00:00,231\nM1,2025-10-26 02:30:00,232\n",
      stored=2, rejects=1)
mcase("dst_fall_back_hourly", "hourly readings through the fold: 02:00 twice is two readings", ROME,
      data=HEAD + "M1,2025-10-26 01:00:00,230\nM1,2025-10-26 02:00:00,231\nM1,2025-10-26 02:00:00,232\nM1,2025-10-26 03:00:00,233\n",
      stored=4, rejects=0)
mcase("dst_fall_back_with_offsets", "times with offsets through the fold need no inference", ROME,
      data=HEAD + "M1,2025-10-26T02:30:00+02:00,230\nM1,2025-10-26T02:30:00+01:00,231\n", stored=2, rejects=0)
mcase("dst_spring_gap", "02:30 on the spring-forward night does not exist in Rome: a reject, never shifted", ROME,
      data=HEAD + "M1,2025-03-30 01:45:00,230\nM1,2025-03-30 02:00:00,231\nM1,2025-03-30 02:30:00,232\nM1,2025-03-30 03:00:00,233\n",
      stored=2, rejects=2)
mcase("dst_spring_gap_ts_format", "the gap with ts_format: rejects too",
      ROME + 'ts_format = "%d.%m.%Y %H:%M"\n',
      data=HEAD + "M1,30.03.2025 01:45,230\nM1,30.03.2025 02:15,231\nM1,30.03.2025 03:15,232\n", stored=2, rejects=1)
mcase("dst_lord_howe", "Lord Howe Island's 30-minute fall back: the repeated half hour kept from order",
      '[options]\ntimezone = "Australia/Lord_Howe"\n',
      data=HEAD + "".join(f"M1,2025-04-06 {hm}:00,{230 + i}\n" for i, hm in
                          enumerate(["01:15", "01:30", "01:45", "01:30", "01:45", "02:00"])), stored=6, rejects=0)
mcase("dst_utc_default", "no timezone: naive times are UTC (no fold, no gap)", "",
      data=HEAD + "M1,2025-03-30 02:30:00,232\nM1,2025-10-26 02:30:00,232\n", stored=2, rejects=0)
mcase("dst_far_future_local", "a local time in 2199 is outside the plausible range", ROME,
      data=HEAD + "M1,2025-01-06 00:00:00,230\nM1,2199-01-01 00:00:00,230\n", stored=1, rejects=1)
mcase("dst_year_9999_local", "a local time at the end of year 9999: a reject, no overflow", ROME,
      data=HEAD + "M1,2025-01-06 00:00:00,230\nM1,9999-12-31 23:59:59,230\n", stored=1, rejects=1)
mcase("dst_year_1_local", "a local time in year 1: a reject, no overflow", ROME,
      data=HEAD + "M1,2025-01-06 00:00:00,230\nM1,0001-01-01 00:00:00,230\n", stored=1, rejects=1)


def bad_file_args():
    """CLI-level path hostility: missing files, folders, the mapping is a folder."""
    case("ingest", "path_missing", "a file that does not exist: refused naming it, others unaffected",
         {"good.csv": HEAD + G1}, args=["ingest", "{case}/good.csv", "{case}/missing.csv", "--db", "{tmp}/s.duckdb",
                                        "--rejects", "{tmp}/rejects.csv"], exit="nonzero", stderr=["missing.csv"])
    case("ingest", "path_unknown_suffix", "an unknown file type: refused naming it, the good file kept",
         {"good.csv": HEAD + G1, "x.xlsx": b"PK\x03\x04"},
         args=["ingest", "{case}/good.csv", "{case}/x.xlsx", "--db", "{tmp}/s.duckdb", "--rejects", "{tmp}/rejects.csv"],
         exit=1, stderr=["x.xlsx"], stored=1)
    case("mapping", "mapping_is_a_folder", "the mapping path is a folder: refused naming it",
         {"x.csv": HEAD + G1}, args=["ingest", "{case}/x.csv", "--db", "{tmp}/s.duckdb", "--mapping", "{case}"],
         exit="nonzero", stderr=[])
    case("mapping", "mapping_missing", "the mapping file does not exist: refused naming it",
         {"x.csv": HEAD + G1}, args=["ingest", "{case}/x.csv", "--db", "{tmp}/s.duckdb", "--mapping", "{case}/nope.toml"],
         exit="nonzero", stderr=["nope.toml"])


def reserved_name_cases():
    """Source columns named like the reader's own line column must not pass for line numbers."""
    import pyarrow as pa

    case("ingest", "reserved_line_column_csv", "a CSV column named _line: ignored, rejects keep their true line",
         {"x.csv": "meter_id,ts,v_l1_v,_line\nM1,2025-01-06T00:00:00Z,230,99\nM1,2025-01-06T00:05:00Z,abc,99\n"},
         stored=1, rejects=1, stderr=["_line (source)"])
    ts = pa.array([1736121600_000_000, 1736121900_000_000], pa.timestamp("us", tz="UTC"))
    for col in ("_line", "file_row_number", "__ln"):
        pcase(f"reserved_{col.strip('_')}_parquet", f"a Parquet column named {col}: ignored, no clash with the scan",
              pa.table({"meter_id": ["M1", "M1"], "ts": ts, "v_l1_v": [230.0, -1.0], col: [7, 7]}), stored=1, rejects=1)
    jcase("reserved_line_json", "a JSON key _line: ignored", [rec(0, _line=9), rec(5, v=-1, _line=9)], stored=1, rejects=1)
    jlcase("reserved_ln_jsonl", "JSON Lines keys _line and __ln with a bad line: line numbers stay true",
           jl(rec(0, _line=9, __ln=9), b"{bad", rec(10, _line=9, __ln=9)), stored=2, rejects=1)
    scase("reserved_line_sqlite", "a SQLite column named _line: ignored",
          lambda con: table(con, "t", [("M1", "2025-01-06T00:00:00Z", 230.0, 5)], cols="meter_id TEXT, ts TEXT, v_l1_v REAL, _line INT"),
          stored=1, rejects=0)


def main() -> None:
    reserved_name_cases()
    build_parquet_cases()
    build_sqlite_cases()
    bad_file_args()
    names = [(a, n) for a, n, _, _ in CASES]
    dup = {x for x in names if names.count(x) > 1}
    if dup:
        sys.exit(f"duplicate case names: {sorted(dup)}")
    for area in {a for a, _ in names}:
        for old in (HERE / area).glob(PREFIX + "*"):
            shutil.rmtree(old)
    for area, name, files, spec in CASES:
        d = HERE / area / name
        d.mkdir(parents=True)
        for fname, data in files.items():
            (d / fname).write_bytes(data.encode() if isinstance(data, str) else data)
        lines = []
        for k in ("about", "args", "exit", "stderr", "stdout", "stored", "rejects", "unchanged"):
            if k in spec:
                lines.append(f"{k} = {_toml(spec[k])}")
        (d / "case.toml").write_text("\n".join(lines) + "\n")
    print(f"{len(CASES)} cases")


if __name__ == "__main__":
    main()
