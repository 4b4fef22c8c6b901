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


def test_a_row_that_is_not_utf8_names_its_field_and_the_utf8_rows_are_stored(tmp_path: Path):
    # (radv) the reject said only "at column 31": 'Störung' in a comment column that is not read and
    # 'Zähler-1' as the meter read alike; the field is named. The UTF-8 rows of the same file are stored.
    f = tmp_path / "mixed.csv"
    f.write_bytes(b"meter_id,ts,p_kw,note\n" + "M1,2025-01-06T00:00:00Z,1.0,Zählerwechsel\n".encode()
                  + "M1,2025-01-06T01:00:00Z,1.1,Störung\n".encode("cp1252")
                  + "Zähler-1,2025-01-06T02:00:00Z,1.2,ok\n".encode("cp1252")
                  + b"M1,2025-01-06T03:00:00Z,1.3,ok\n")
    r = ww("ingest", f, "--db", tmp_path / "s.duckdb", "--rejects", tmp_path / "r.csv", "--json", check=False)
    with open(tmp_path / "r.csv", newline="") as fh:
        rejects = {x["line"]: x["reason"] for x in csv.DictReader(fh)}
    assert set(rejects) == {"3", "4"}, rejects
    assert "(field note)" in rejects["3"] and "(field meter_id)" in rejects["4"], rejects
    assert '"stored": 2' in r.stdout, r.stdout
