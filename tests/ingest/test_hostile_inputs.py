"""Hostile ingest inputs (issue 12, items 4-9 and 13, and the tracebacks): each bad cell, byte or
line is a reject naming its line and field, every good row around it is kept, and nothing takes
more memory than the data. Each test fails on 83dfb55."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.ingest.pipeline import IngestError, ingest_path

HEAD = "meter_id,ts,v_l1_v\n"


def _good(minute: int, meter: str = "M1", v: float = 230) -> str:
    return f"{meter},2025-01-06T00:{minute:02d}:00Z,{v}\n"


def _by_line(counts) -> dict[int, tuple[str, str]]:
    return {line: (field, reason) for _, line, field, reason in counts.rejects}


def _stored(store) -> pd.DataFrame:
    df = store.con.execute("SELECT meter_id, ts, v_l1_v FROM readings ORDER BY meter_id, ts").df()
    df["ts"] = pd.to_datetime(df["ts"], utc=True)
    return df


# ------------------------------------------------------------------- 4: plausible time bounds


def test_far_future_and_nanosecond_epoch_are_rejects_naming_line_and_field(store, tmp_path: Path):
    p = tmp_path / "future.csv"
    p.write_text(HEAD + _good(0) + "M1,56985-01-01T00:00:00Z,230\n" + "M1,1736122200000000000,231\n"
                 + "M1,2199-01-01T00:00:00Z,231\n" + "M1,1969-12-31T00:00:00Z,231\n" + _good(5))
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (2, 4)
    why = _by_line(c)
    assert {3, 4, 5, 6} == set(why) and all(f == "ts" for f, _ in why.values())
    assert "plausible" in why[3][1] and "plausible" in why[5][1] and "plausible" in why[6][1]
    assert "nanoseconds" in why[4][1]
    first, last = _stored(store)["ts"].agg(["min", "max"])
    assert first.year == 2025 and last.year == 2025


def test_time_bounds_are_configurable_and_ns_epochs_readable(store, tmp_path: Path):
    p = tmp_path / "old.csv"
    p.write_text(HEAD + "M1,1985-06-01T00:00:00Z,230\n" + "M1,1736122200000000000,231\n")
    m = Mapping(ts_min="1980-01-01", epoch_unit="ns")
    c = ingest_path(store, p, m)
    assert (c.stored, c.rejected) == (2, 0)
    with pytest.raises(MappingError, match="ts_max"):
        Mapping(ts_max="not a time")
    tight = Mapping(ts_max="2025-01-06T00:02:00Z")
    p2 = tmp_path / "t.csv"
    p2.write_text(HEAD + _good(0, "M2") + _good(5, "M2"))
    c2 = ingest_path(store, p2, tight)
    assert (c2.stored, c2.rejected) == (1, 1)


def test_meter_spanning_year_1_to_9999_is_judged_on_a_bounded_grid():
    """Straight to the detector, no ingest: 4 readings spanning 0001-9999 took 40 s and 7.9 GB."""
    from wattwatch.detect.baseline.macd import BaselineMACD

    ts = np.array(["0001-01-01T00:00", "2025-01-06T00:00", "2025-01-06T01:00", "9999-12-31T00:00"],
                  dtype="datetime64[us]")
    absurd = pd.DataFrame({"meter_id": "BAD", "ts": pd.Series(ts).dt.tz_localize("UTC"),
                           "p_kw": [1.0, 1.0, 1.2, 1.1]})
    normal_ts = pd.date_range("2025-01-06", periods=14 * 24 * 12, freq="5min", tz="UTC").as_unit("us")
    p = 1 + 0.5 * np.sin(np.arange(len(normal_ts)) / 288 * 2 * np.pi)
    normal = pd.DataFrame({"meter_id": "OK", "ts": normal_ts, "p_kw": p})
    both = pd.concat([normal, absurd], ignore_index=True)
    from wattwatch.detect import frame

    seg = (both["meter_id"] == "BAD").to_numpy().astype(np.int64)
    t_s = both["ts"].astype("int64").to_numpy() / 1e6
    order = np.lexsort((t_s, seg))
    m, _, _ = frame.grid_arrays(seg[order], t_s[order], np.ones(len(seg)), 300.0)
    assert m.shape == (2, 2 * len(normal) + 1)  # the absurd meter gets the typical span, not 2 M bins
    tracemalloc.start()
    try:
        det = BaselineMACD().fit(both)
        s = det.score(both)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 * 2**20  # it was 7.9 GB, then 10 s of rolling windows over 2 M NaN bins
    alone = BaselineMACD().fit(normal).score(normal)
    np.testing.assert_array_equal(s[both["meter_id"] == "OK"].to_numpy(), alone.to_numpy())


def test_grid_is_bounded_when_one_meter_pads_a_fleet():
    from wattwatch.detect import frame

    grid_arrays, max_cells = frame.grid_arrays, getattr(frame, "GRID_MAX_CELLS", 1 << 24)

    n_meters, per = 400, 300
    seg = np.repeat(np.arange(n_meters), per)
    t = np.tile(1.7e9 + 300.0 * np.arange(per), n_meters)
    t[per * 7] = 6.4e8  # one reading of meter 7 in 1990: 35 years of 5-minute bins
    seg_t = np.lexsort((t, seg))
    seg, t = seg[seg_t], t[seg_t]
    m, cell, t0 = grid_arrays(seg, t, np.ones(len(t)), 300.0)
    assert m.size <= max(max_cells, 16 * len(t)) + n_meters
    assert np.isnan(m.ravel()[cell[seg == 7][0]])  # the 1990 reading is off the grid: not judged
    assert np.isfinite(m.ravel()[cell[seg == 7][1:]]).all()


# ------------------------------------------------------------------------ 5: bad epoch cells


@pytest.mark.parametrize("cell", ["inf", "-inf", "1e308", "1e20", "-1e20", "nan1"])
def test_one_bad_epoch_cell_is_a_one_row_reject(store, tmp_path: Path, cell: str):
    p = tmp_path / "epoch.csv"
    p.write_text(HEAD + "M1,1736121600,230\n" + f"M1,{cell},230\n" + "M1,1736122200,231\n")
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (2, 1)
    assert _by_line(c)[3][0] == "ts"


def test_bad_epoch_in_a_typed_parquet_column_is_a_one_row_reject(store, tmp_path: Path):
    p = tmp_path / "epoch.parquet"
    pd.DataFrame({"meter_id": ["M1"] * 3, "ts": [1736121600.0, 1e300, 1736122200.0],
                  "v_l1_v": [230.0] * 3}).to_parquet(p)
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (2, 1) and _by_line(c)[2][0] == "ts"


# ------------------------------------------------------------------------------------ 6: DST

ROME = Mapping(timezone="Europe/Rome")


def test_dst_fall_back_second_pass_is_kept_from_row_order(store, tmp_path: Path):
    rows = ["01:45", "02:00", "02:15", "02:30", "02:45", "02:00", "02:15", "02:30", "02:45", "03:00"]
    p = tmp_path / "fold.csv"
    p.write_text(HEAD + "".join(f"M1,2025-10-26 {hm}:00,{230 + i}\n" for i, hm in enumerate(rows)))
    c = ingest_path(store, p, ROME)
    assert (c.stored, c.rejected, c.duplicates) == (10, 0, 0)
    got = _stored(store)
    want = pd.date_range("2025-10-25 23:45", periods=10, freq="15min", tz="UTC")
    assert list(got["ts"]) == list(want)
    assert list(got["v_l1_v"]) == [230.0 + i for i in range(10)]


FOLD_ROWS = ["01:30", "01:45", "02:00", "02:15", "02:30", "02:45", "02:00", "02:15", "02:30", "02:45",
             "03:00", "03:15"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@pytest.mark.parametrize("cut", range(1, len(FOLD_ROWS)))
def test_dst_fold_is_placed_the_same_wherever_a_read_block_ends(tmp_path: Path, monkeypatch, fmt, cut):
    """A file is read in blocks (32 MB of CSV, 65,536 JSON lines); a block that starts inside
    the repeated hour (or just after it, with a late row) must place its rows by the rows of the
    blocks before it, exactly as one block would. Two meters interleaved, the second one out of
    order at the end (a reject either way)."""
    import functools

    from wattwatch.ingest import readers
    from wattwatch.store.duck import Store

    rows = [("M1", hm, 230 + i) for i, hm in enumerate(FOLD_ROWS)]
    rows += [("M2", hm, 250 + i) for i, hm in enumerate(FOLD_ROWS)] + [("M2", "02:30", 299)]
    rows.sort(key=lambda r: (FOLD_ROWS.index(r[1]) if r[2] != 299 else 99, r[0]))  # interleaved by time
    if fmt == "csv":
        text = HEAD + "".join(f"{m},2025-10-26 {hm}:00,{v}\n" for m, hm, v in rows)
        # Blocks of whole lines, each some `cut` to `2 * cut` rows long (the reader's first read holds the header).
        monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", cut * len("M1,2025-10-26 02:00:00,230\n"))
    else:
        text = "".join(json.dumps({"meter_id": m, "ts": f"2025-10-26 {hm}:00", "v_l1_v": v}) + "\n"
                       for m, hm, v in rows)
        monkeypatch.setattr(readers, "read_jsonl", functools.partial(readers.read_jsonl, block_lines=2 * cut))
    p = tmp_path / f"fold.{fmt}"
    p.write_text(text)
    s = Store(tmp_path / "s.duckdb")
    try:
        c = ingest_path(s, p, ROME)
        got = _stored(s)
    finally:
        s.close()
    assert (c.stored, c.rejected, c.duplicates, c.merged) == (24, 1, 0, 0)
    want = pd.date_range("2025-10-25 23:30", periods=12, freq="15min", tz="UTC")
    for meter, base in (("M1", 230.0), ("M2", 250.0)):
        mine = got[got.meter_id == meter]
        assert list(mine["ts"]) == list(want)
        assert list(mine["v_l1_v"]) == [base + i for i in range(12)]
    assert "not in time order" in _by_line(c)[len(rows) + (fmt == "csv")][1]


def test_dst_fold_out_of_order_and_spring_gap_are_rejects_with_reason(store, tmp_path: Path):
    p = tmp_path / "dst.csv"
    p.write_text(HEAD + "M1,2025-03-30 01:45:00,230\n" + "M1,2025-03-30 02:30:00,231\n"
                 + "M1,2025-03-30 03:00:00,232\n"
                 + "M2,2025-10-26 03:00:00,233\n" + "M2,2025-10-26 02:30:00,234\n")
    c = ingest_path(store, p, ROME)
    assert (c.stored, c.rejected) == (3, 2)
    why = _by_line(c)
    assert why[3][0] == "ts" and "does not exist" in why[3][1]
    assert why[6][0] == "ts" and "twice" in why[6][1] and "not in time order" in why[6][1]
    got = _stored(store)
    assert list(got.loc[got.meter_id == "M1", "ts"]) == [pd.Timestamp("2025-03-30 00:45", tz="UTC"),
                                                        pd.Timestamp("2025-03-30 01:00", tz="UTC")]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_basic_format_offsets_in_a_text_column_are_instants(store, tmp_path: Path, fmt: str):
    """ISO-8601's basic offsets (+0100, -0500, +0000, as strftime's %z writes them) are instants
    wherever the time column is text (a Parquet string column, a CSV column with one bad cell): they
    were taken for offsets beyond +-18:00 and every row was a reject "cannot parse". An offset of
    19 hours or more is still a reject, in either form."""
    cells = ["2025-01-06T01:00:00+0100", "2025-01-06T00:05:00+0000", "2025-01-05T19:10:00-0500",
             "2025-01-06T05:45:00+0530", "not a time", "2025-01-06T00:20:00+1900", "2025-01-06T00:25:00+25"]
    frame = pd.DataFrame({"meter_id": "M1", "ts": cells, "v_l1_v": 230.0 + np.arange(len(cells))})
    p = tmp_path / f"offsets.{fmt}"
    frame.to_csv(p, index=False) if fmt == "csv" else frame.to_parquet(p)
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (4, 3)
    first = 1 + (fmt == "csv")   # the line of the frame's first row
    assert sorted(_by_line(c)) == [first + 4, first + 5, first + 6]
    assert all(field == "ts" for field, _ in _by_line(c).values())
    assert list(_stored(store)["ts"]) == [pd.Timestamp("2025-01-06T00:00", tz="UTC") + pd.Timedelta(minutes=5 * i)
                                          for i in range(4)]


def test_a_quoted_value_with_line_breaks_is_one_record(store, tmp_path: Path):
    """RFC 4180 lets a quoted value hold line breaks (a comment or address column). Lines were read
    one by one: such a record was two rejects ("expected 4 fields, found 2" and "found 3") and its
    reading was lost. It is now one record at its first line; a stray quote character still does
    not swallow the rows after it, and a quote never closed is a reject that says so."""
    p = tmp_path / "q.csv"
    p.write_text('meter_id,note,ts,v_l1_v\r\n'
                 'M1,"two\r\nlines",2025-01-06T00:00:00Z,230\r\n'          # lines 2-3
                 'M1,5" pipe,2025-01-06T00:05:00Z,231\r\n'                   # line 4: a stray quote
                 'M1,ok,2025-01-06T00:10:00Z,abc\r\n'                       # line 5: a bad cell
                 'M1,"a\r\n\r\nb ""c""",2025-01-06T00:15:00Z,233\r\n'     # lines 6-8, a blank line inside
                 'M1,"never closed,2025-01-06T00:20:00Z,234\r\n'            # line 9
                 'M1,ok,2025-01-06T00:25:00Z,235\r\n')                      # line 10
    c = ingest_path(store, p)
    assert (c.read, c.stored, c.rejected) == (6, 4, 2)
    why = _by_line(c)
    assert sorted(why) == [5, 9]
    assert why[5][0] == "v_l1_v" and "quote" in why[9][1] and "line break" in why[9][1]
    assert list(_stored(store)["v_l1_v"]) == [230.0, 231.0, 233.0, 235.0]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_rejects_after_a_quoted_value_with_line_breaks_name_their_own_line(store, tmp_path: Path, eol: str):
    """A block without a malformed row is parsed whole (pyarrow reads the quoted line breaks), and
    its rows were numbered as one line each: every reject after such a value named the line above
    its own."""
    rows = ['M1,2025-01-06T00:00:00Z,230', '"M', '2",2025-01-06T00:05:00Z,230',    # lines 2, 3-4
            'M1,2025-01-06T00:10:00Z,abc', '"M', '', '3",2025-01-06T00:15:00Z,231',  # 5, 6-8
            'M1,2025-01-06T00:20:00Z,1e300', 'M1,2025-01-06T00:25:00Z,232']        # 9, 10
    p = tmp_path / "q.csv"
    p.write_text(HEAD + eol.join(rows) + eol)
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (4, 2)
    assert {line: field for line, (field, _) in _by_line(c).items()} == {5: "v_l1_v", 9: "v_l1_v"}


# ------------------------------------------------------------------ 7: nested JSON, empty list


def test_nested_json_with_an_empty_sibling_list_keeps_every_reading(store, tmp_path: Path):
    doc = [{"PODID": "P1", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 230}], "alarms": []},
           {"PODID": "P2", "readings": [{"start_ts": "2025-01-06T00:00:00Z", "Phase1Voltage": 231},
                                        {"start_ts": "2025-01-06T00:05:00Z", "Phase1Voltage": 232}],
            "alarms": [{"code": "A"}, {"code": "B"}]}]
    p = tmp_path / "nested.json"
    p.write_text(json.dumps(doc))
    c = ingest_path(store, p)
    assert (c.read, c.stored, c.duplicates, c.rejected) == (3, 3, 0, 0)


def test_json_records_with_different_keys_keep_every_column(store, tmp_path: Path):
    doc = [{"meter_id": "M1", "ts": "2025-01-06T00:00:00Z", "p_kw": 1.0},
           {"meter_id": "M1", "ts": "2025-01-06T00:05:00Z", "v_l1_v": 231},
           {"meter_id": "M1", "ts": "2025-01-06T00:10:00Z"}]
    p = tmp_path / "keys.json"
    p.write_text(json.dumps(doc))
    c = ingest_path(store, p)
    assert _stored(store)["v_l1_v"].tolist()[1] == 231
    # The record with neither (only a meter and a time) is a reject, not an empty reading.
    assert (c.stored, c.rejected) == (2, 1) and "no channel value" in c.rejects[0][3]


# ------------------------------------------------------------- 8: NUL and Latin-1 in the head


@pytest.mark.parametrize("bad", [b"2\x0030", b"23\xe90", b"\xff\xfe"])
@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".jsonl"])
def test_a_bad_byte_in_the_first_64kb_is_a_one_row_reject(store, tmp_path: Path, bad: bytes, suffix: str):
    if suffix == ".jsonl":
        line = lambda i, v: b'{"meter_id":"M1","ts":"2025-01-06T00:%02d:00Z","v_l1_v":%s}\n' % (i, v)  # noqa: E731
        data = line(0, b"230") + line(5, bad) + line(10, b"231")
    else:
        data = HEAD.encode() + _good(0).encode() + b"M1,2025-01-06T00:05:00Z," + bad + b"\n" + _good(10).encode()
    p = tmp_path / f"x{suffix}"
    p.write_bytes(gzip.compress(data) if suffix.endswith(".gz") else data)
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (2, 1)
    assert _by_line(c)[3 if suffix != ".jsonl" else 2]


def test_latin1_in_a_json_document_rejects_that_record_only(store, tmp_path: Path):
    p = tmp_path / "l1.json"
    p.write_bytes(b'[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":230},'
                  b'{"meter_id":"M\xe9","ts":"2025-01-06T00:05:00Z","v_l1_v":230},'
                  b'{"meter_id":"M1","ts":"2025-01-06T00:10:00Z","v_l1_v":230}]')
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (2, 1) and 2 in _by_line(c)


def test_binary_junk_is_still_refused_whole(store, tmp_path: Path):
    p = tmp_path / "junk.csv"
    p.write_bytes(b"meter_id,ts\n" + bytes(range(256)) * 40)
    with pytest.raises(IngestError, match="not a text CSV"):
        ingest_path(store, p)


# ---------------------------------------------------------------------- 9: a path is a path


def test_parquet_path_is_not_a_glob(store, tmp_path: Path):
    for name in ("a1", "a2", "a*", "b[1]"):
        pd.DataFrame({"meter_id": [name], "ts": pd.to_datetime(["2025-01-06"], utc=True),
                      "v_l1_v": [230.0]}).to_parquet(tmp_path / f"{name}.parquet")
    pd.DataFrame({"meter_id": ["b1"], "ts": pd.to_datetime(["2025-01-06"], utc=True),
                  "v_l1_v": [230.0]}).to_parquet(tmp_path / "b1.parquet")
    assert ingest_path(store, tmp_path / "a*.parquet").read == 1
    assert ingest_path(store, tmp_path / "b[1].parquet").read == 1
    assert sorted(_stored(store)["meter_id"]) == ["a*", "b[1]"]


# ------------------------------------------------------------------ 13: SQLite identifiers


@pytest.mark.parametrize("table", ['we"ird', "semi;colon", "sp ace", "x'y"])
def test_sqlite_table_names_are_quoted(store, tmp_path: Path, table: str):
    p = tmp_path / "q.db"
    con = sqlite3.connect(p)
    q = '"' + table.replace('"', '""') + '"'
    con.execute(f"CREATE TABLE {q} (ts TEXT, v_l1_v REAL)")
    con.executemany(f"INSERT INTO {q} VALUES (?, ?)", [("2025-01-06T00:00:00Z", 230.0), ("2025-01-06T00:05:00Z", 231.0)])
    con.commit()
    con.close()
    c = ingest_path(store, p)
    assert c.stored == 2
    assert set(_stored(store)["meter_id"]) == {table}


# ------------------------------------------------------------------- tracebacks -> clear errors


def test_block_whose_rows_are_all_rejected(store, tmp_path: Path):
    p = tmp_path / "allbad.csv"
    p.write_text(HEAD + "M1,2025-01-06T00:00:00Z\n")
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (0, 1)


def test_empty_sqlite_table(store, tmp_path: Path):
    p = tmp_path / "e.db"
    con = sqlite3.connect(p)
    con.execute("CREATE TABLE t (meter_id TEXT, ts TEXT, v_l1_v REAL)")
    con.commit()
    con.close()
    c = ingest_path(store, p)
    assert (c.read, c.stored) == (0, 0)


def test_json_integer_beyond_int64_is_a_reject_not_a_traceback(store, tmp_path: Path):
    p = tmp_path / "big.json"
    p.write_text('[{"meter_id":"M1","ts":"2025-01-06T00:00:00Z","v_l1_v":99999999999999999999999},'
                 '{"meter_id":"M1","ts":"2025-01-06T00:05:00Z","v_l1_v":230}]')
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (1, 1) and _by_line(c)[1][0] == "v_l1_v"


def test_deep_json_nesting(store, tmp_path: Path):
    doc = tmp_path / "deep.json"
    doc.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(IngestError, match="nested"):
        ingest_path(store, doc)
    lines = tmp_path / "deep.jsonl"
    lines.write_text(json.dumps({"meter_id": "M1", "ts": "2025-01-06T00:00:00Z", "v_l1_v": 230}) + "\n"
                     + '{"a":' * 100_000 + "1" + "}" * 100_000 + "\n")
    c = ingest_path(store, lines)
    assert (c.stored, c.rejected) == (1, 1) and "nested" in _by_line(c)[2][1]


@pytest.mark.parametrize("text,match", [
    ('[scale]\nv_l1_v = "abc"\n', "scale"),
    ('[options]\ntimezone = 5\n', "timezone"),
    ('[options]\ntimezone = "Mars/Olympus"\n', "timezone"),
    ('[options]\ndelimiter = ";;"\n', "delimiter"),
    ('[options]\ndecimal = {a = 1}\n', "decimal"),
    ('[columns]\nts = {a = 1}\n', "ts"),
    ('[options]\nts_format = 7\n', "ts_format"),
    ('[options]\nepoch_unit = "fortnights"\n', "epoch_unit"),
    ('[options]\nbuiltin_aliases = "yes"\n', "builtin_aliases"),
    ('[options]\ntables = 3\n', "tables"),
    ('[defaults]\nmeter_id = {x = 1}\n', "meter_id"),
    ('[options]\nts_min = "2030-01-01"\nts_max = "2020-01-01"\n', "ts_min"),
])
def test_mapping_with_wrong_types_is_a_mapping_error(tmp_path: Path, text: str, match: str):
    p = tmp_path / "m.toml"
    p.write_text(text)
    with pytest.raises(MappingError, match=match):
        Mapping.from_toml(p)


def test_binary_file_as_mapping_is_a_mapping_error(tmp_path: Path):
    p = tmp_path / "m.toml"
    p.write_bytes(bytes(range(256)))
    with pytest.raises(MappingError, match="m.toml"):
        Mapping.from_toml(p)


# ------------------------------------------------------------------------ memory ceilings


def test_an_endless_csv_line_is_refused_not_buffered(store, tmp_path: Path, monkeypatch):
    from wattwatch.ingest import readers

    monkeypatch.setattr(readers, "MAX_LINE_BYTES", 1 << 20, raising=False)
    monkeypatch.setattr(readers, "CSV_BLOCK_BYTES", 1 << 16)
    p = tmp_path / "bomb.csv.gz"
    p.write_bytes(gzip.compress(HEAD.encode() + b"a" * (8 << 20)))
    with pytest.raises(IngestError, match="longer than"):
        ingest_path(store, p)


def test_a_json_document_has_a_size_ceiling(store, tmp_path: Path, monkeypatch):
    from wattwatch.ingest import readers

    monkeypatch.setattr(readers, "MAX_JSON_DOC_BYTES", 1 << 20, raising=False)
    p = tmp_path / "bomb.json.gz"
    p.write_bytes(gzip.compress(b"[" + b" " * (4 << 20) + b"]"))
    with pytest.raises(IngestError, match="larger than"):
        ingest_path(store, p)


def test_truncated_gzip_is_refused_not_half_ingested(store, tmp_path: Path):
    """(Held on 83dfb55 too; kept because the reader changed from pyarrow's gzip to Python's.)"""
    rows = "".join(f"M{i},2025-01-06T00:{i % 60:02d}:{i % 59:02d}Z,{200 + i % 97}\n" for i in range(3000))
    z = gzip.compress((HEAD + rows).encode())
    p = tmp_path / "cut.csv.gz"
    p.write_bytes(z[: len(z) // 2])
    with pytest.raises(IngestError, match="cut.csv.gz"):
        ingest_path(store, p)
    assert store.info()["readings"] == 0


def test_nan_in_a_parquet_double_column_is_a_gap_not_out_of_range(store, tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "nan.parquet"
    ts = pa.array([1736121600_000_000, 1736121900_000_000, 1736122200_000_000], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"meter_id": ["M1"] * 3, "ts": ts, "v_l1_v": [230.0, float("nan"), 231.0],
                             "p_kw": [1.0, 2.0, 3.0]}), p)
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (3, 0)
    # A row whose only channel is NaN has no channel value: a reject saying so, not "out of range".
    p2 = tmp_path / "nan_only.parquet"
    pq.write_table(pa.table({"meter_id": ["M2"] * 3, "ts": ts, "v_l1_v": [230.0, float("nan"), 231.0]}), p2)
    c = ingest_path(store, p2)
    assert (c.stored, c.rejected) == (2, 1)
    assert "no channel value" in c.rejects[0][3] and "outside" not in c.rejects[0][3]


def test_a_header_wider_than_64kb_is_read_whole(store, tmp_path: Path):
    cols = ["meter_id", "ts", "v_l1_v"] + [f"column_number_{i}" for i in range(5000)]
    p = tmp_path / "wide.csv"
    p.write_text(",".join(cols) + "\n" + "M1,2025-01-06T00:00:00Z,230" + ",1" * 5000 + "\n")
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (1, 0)


@pytest.mark.parametrize("tail", [b"junk\n[1]\n{\"x\":\n", b'{"other": 1, "ts": 5}\n'])
def test_a_later_jsonl_block_that_cannot_be_mapped_rejects_its_lines_not_the_file(store, tmp_path: Path,
                                                                                   monkeypatch, tail: bytes):
    from wattwatch.ingest import readers

    monkeypatch.setattr(readers.read_jsonl, "__defaults__", (4,))  # blocks of 4 lines
    good = b"".join(json.dumps({"meter_id": "M1", "ts": f"2025-01-06T00:{m:02d}:00Z", "v_l1_v": 230}).encode() + b"\n"
                    for m in range(0, 40, 5))
    p = tmp_path / "x.jsonl"
    p.write_bytes(good + tail)
    c = ingest_path(store, p)
    assert c.stored == 8 and c.rejected == tail.count(b"\n")
    assert min(_by_line(c)) == 9


def test_a_time_in_another_layout_is_a_reject_that_says_how_to_read_it(store, tmp_path: Path):
    """06/01/2025 00:15 (a European export) was "cannot parse ... as a time" on every row with no
    word of [options] ts_format, which reads it; an offset beyond +-18:00 says that instead, and a
    time that does not match a given ts_format names the format."""
    p = tmp_path / "t.csv"
    p.write_text(HEAD + "M1,06/01/2025 00:15,230\n" + "M1,2025-01-06T00:20:00+1900,230\n" + "M1,soon,230\n" + _good(25))
    c = ingest_path(store, p)
    why = _by_line(c)
    assert (c.stored, c.rejected) == (1, 3)
    assert "ts_format" in why[2][1] and "beyond +-18:00" in why[3][1] and why[4][1] == "ts: cannot parse 'soon' as a time"
    q = tmp_path / "u.csv"
    q.write_text(HEAD + "M2,06/01/2025 00:15,230\n" + "M2,2025-01-06T00:20:00Z,230\n")
    c = ingest_path(store, q, Mapping(ts_format="%d/%m/%Y %H:%M"))
    assert (c.stored, c.rejected) == (1, 1)
    assert "does not match [options] ts_format '%d/%m/%Y %H:%M'" in _by_line(c)[3][1]


@pytest.mark.parametrize("eol", ["\n", "\r\n"])
def test_a_quoted_value_with_line_breaks_across_a_read_block_end_is_one_record(store, tmp_path: Path, eol):
    """A CSV is read in blocks (32 MB) cut at a line break; a cut inside a quoted value with line
    breaks made its record two rejects (its reading lost) and sent the block to the line-by-line
    parse. Wherever a block ends, every record is read whole at its first line, and the ingest
    keeps every good reading with the one bad row one reject."""
    from wattwatch.ingest import readers

    rows = [f'M1,{chr(34) + "a" + eol + "b" + str(i) + chr(34) if i % 3 == 1 else "ok"},'
            f'2025-01-06T00:{5 * i:02d}:00Z,{"abc" if i == 7 else 230 + i}' for i in range(12)]
    p = tmp_path / "q.csv"
    p.write_text("meter_id,note,ts,v_l1_v" + eol + eol.join(rows) + eol, newline="")
    # Rows 1, 4, 7 and 10 take two lines each.
    want = [2 + i + (i + 1) // 3 for i in range(12)]
    for block in range(len("meter_id,note,ts,v_l1_v") + 2, len(p.read_bytes()) + 2):
        batches = list(readers.read_csv(p, block_bytes=block))
        assert [r for b in batches for r in b.rejects] == [], f"blocks of {block} bytes"
        assert [x for b in batches for x in b.table[readers.LINE].to_pylist()] == want, f"blocks of {block} bytes"
        notes = [x.replace("\r", "") for b in batches for x in b.table["note"].to_pylist()]
        assert notes == [f"a\nb{i}" if i % 3 == 1 else "ok" for i in range(12)], f"blocks of {block} bytes"
    c = ingest_path(store, p)
    assert (c.stored, c.rejected, sorted(_by_line(c))) == (11, 1, [11])
