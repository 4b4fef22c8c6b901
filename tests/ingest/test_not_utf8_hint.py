"""(adv) A spreadsheet's "CSV" export on Windows is Windows-1252: a header `Zählpunkt;...` was refused as
"not UTF-8 text at byte 1", and a file with `Zähler-0` meter ids became one reject a row, "not UTF-8 text at
column 2" — every reading lost with no word of what to do. Both now say to save the file as UTF-8."""
from __future__ import annotations

import csv
from pathlib import Path

from tests.support.cli import ww


def test_a_windows_1252_export_is_told_to_be_saved_as_utf8(tmp_path: Path):
    head = tmp_path / "head.csv"
    head.write_bytes("Zählpunkt,ts,p_kw\nM1,2025-01-06T00:00:00Z,1.0\n".encode("cp1252"))
    r = ww("ingest", head, "--db", tmp_path / "a.duckdb", "--rejects", tmp_path / "a.csv", check=False)
    assert r.returncode == 1 and "head.csv" in r.stderr and "line 1" in r.stderr
    assert "save it as UTF-8" in r.stderr and "cp1252" in r.stderr, r.stderr

    rows = tmp_path / "rows.csv"
    rows.write_bytes(("meter_id,ts,p_kw\n" + "".join(f"Zähler-{h % 2},2025-01-06T{h:02d}:00:00Z,1.5\n"
                                                      for h in range(4))).encode("cp1252"))
    r = ww("ingest", rows, "--db", tmp_path / "b.duckdb", "--rejects", tmp_path / "b.csv", check=False)
    assert r.returncode == 1
    with open(tmp_path / "b.csv", newline="") as fh:
        rejects = list(csv.DictReader(fh))
    assert [x["line"] for x in rejects] == ["2", "3", "4", "5"]
    assert all("not UTF-8 text at column 2" in x["reason"] and "save it as UTF-8" in x["reason"] for x in rejects)


def test_a_row_that_is_not_utf8_in_a_column_read_names_its_field_and_the_other_rows_are_stored(tmp_path: Path):
    # (radv) the reject said only "at column 31"; the field is named, in the reason and in the rejects file's
    # field column. (adv2) 'Störung' in a comment column no mapping reads no longer rejects its row (it did:
    # 4 of 4 readings of a file with a cp1252 note lost); 'Zähler-1' as the meter, a column read, still does.
    # The block with the bad meter is read line by line (the slow parse), so both parses are crossed here.
    f = tmp_path / "mixed.csv"
    f.write_bytes(b"meter_id,ts,p_kw,note\n" + "M1,2025-01-06T00:00:00Z,1.0,Zählerwechsel\n".encode()
                  + "M1,2025-01-06T01:00:00Z,1.1,Störung\n".encode("cp1252")
                  + "Zähler-1,2025-01-06T02:00:00Z,1.2,ok\n".encode("cp1252")
                  + b"M1,2025-01-06T03:00:00Z,1.3,ok\n")
    r = ww("ingest", f, "--db", tmp_path / "s.duckdb", "--rejects", tmp_path / "r.csv", "--json", check=False)
    with open(tmp_path / "r.csv", newline="") as fh:
        rejects = {x["line"]: x for x in csv.DictReader(fh)}
    assert set(rejects) == {"4"}, rejects
    assert "(field meter_id)" in rejects["4"]["reason"] and "save it as UTF-8" in rejects["4"]["reason"], rejects
    assert rejects["4"]["field"] == "meter_id", rejects
    assert '"stored": 3' in r.stdout, r.stdout
    assert _stored(tmp_path / "s.duckdb") == [("M1", 1.0), ("M1", 1.1), ("M1", 1.3)]


def test_a_windows_1252_comment_column_that_is_not_read_loses_no_reading(tmp_path: Path):
    # (adv2) every row's note in cp1252 (the fast, typed parse: no row goes line by line), with `;` and a
    # quoted note holding the delimiter and a line break; the header's own names are UTF-8. Every reading
    # is stored with its values, nothing rejected, and the note is still said to be a column not read.
    f = tmp_path / "notes.csv"
    rows = [f'M{h % 2};2025-01-06T{h:02d}:00:00Z;{h + 0.5};"Störung; Zähler\ngewechselt"' if h == 3 else
            f"M{h % 2};2025-01-06T{h:02d}:00:00Z;{h + 0.5};Störung Nr {h}" for h in range(6)]
    f.write_bytes(b"meter_id;ts;p_kw;Bemerkung\n" + ("\n".join(rows) + "\n").encode("cp1252"))
    r = ww("ingest", f, "--db", tmp_path / "s.duckdb", "--rejects", tmp_path / "r.csv", "--json")
    assert '"stored": 6' in r.stdout and '"rejected": 0' in r.stdout, r.stdout
    assert not (tmp_path / "r.csv").exists()
    assert "ignored column(s) not in the schema: Bemerkung" in r.stdout + r.stderr
    assert sorted(v for _, v in _stored(tmp_path / "s.duckdb")) == [h + 0.5 for h in range(6)]


def _stored(db: Path) -> list[tuple[str, float]]:
    from wattwatch.store.duck import Store

    with Store(db, read_only=True) as st:
        return [tuple(x) for x in st.con.execute("SELECT meter_id, p_kw FROM readings ORDER BY ts").fetchall()]
