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
