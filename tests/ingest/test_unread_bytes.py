"""(nb) Only what is read can reject a row. Loggers' exports carry NUL bytes in free-text columns; a
NUL in a column no mapping reads rejected its row (a Windows-1252 byte there no longer did, adv2), and
a ``[wide]`` export's status or notes column still had to be clean UTF-8 text: a bad byte there lost
every meter's reading of the row. A NUL in a column read is still a reject naming that column."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from wattwatch.ingest import readers
from wattwatch.ingest.mapping import Mapping, Wide
from wattwatch.ingest.pipeline import csv_column_types, ingest_path
from wattwatch.ingest.readers import LINE, read_csv

HEAD = b"meter_id,ts,p_kw,note\n"


def _row(h: int, v: bytes, note: bytes = b"ok") -> bytes:
    return b"M1,2025-01-06T%02d:00:00Z,%s,%s\n" % (h, v, note)


# line 4: a NUL in p_kw (read): rejected; line 8: three fields: rejected; lines 3, 5, 6, 9: NULs (and a
# cp1252 byte) in the note no mapping reads: kept, with their bytes.
DATA = HEAD + b"".join([_row(0, b"1.0"), _row(1, b"1.1", b"Kl\x00emme 3"), _row(2, b"1\x002"),
                        _row(3, b"1.3", b"\x00\x00"), _row(4, b"1.4", b"St\xf6rung\x00"), _row(5, b"1.5"),
                        b"M1,2025-01-06T06:00:00Z,1.6\n", _row(7, b"1.7", b"x\x00")])
KEPT = {2: b"ok", 3: b"Kl\x00emme 3", 5: b"\x00\x00", 6: b"St\xf6rung\x00", 7: b"ok", 9: b"x\x00"}
VALUES = [1.0, 1.1, 1.3, 1.4, 1.5, 1.7]


def _write(tmp_path: Path, gz: bool, data: bytes = DATA) -> Path:
    path = tmp_path / ("x.csv.gz" if gz else "x.csv")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_a_nul_in_a_column_not_read_keeps_its_row_wherever_the_read_block_ends(tmp_path: Path, gz: bool, monkeypatch):
    path = _write(tmp_path, gz)
    types = lambda names: csv_column_types(names, Mapping())  # noqa: E731 (the ingest's types: note is bytes)
    by = {"fast": set(), "slow": set()}   # the lines of KEPT each parse kept in some block
    fast, slow = readers._parse_csv_block, readers._parse_csv_block_slow

    def spy_fast(*a, **k):
        t = fast(*a, **k)
        by["fast"].update(t[LINE].to_pylist() if t is not None else ())
        return t

    def spy_slow(*a, **k):
        t, rej = slow(*a, **k)
        by["slow"].update(t[LINE].to_pylist())
        return t, rej

    monkeypatch.setattr(readers, "_parse_csv_block", spy_fast)
    monkeypatch.setattr(readers, "_parse_csv_block_slow", spy_slow)
    for block in [*range(len(HEAD) + 1, len(DATA), 9), 1 << 20]:   # blocks of one line to the whole file
        kept, notes, values, rejects = [], [], [], {}
        for b in read_csv(path, block_bytes=block, column_types=types):
            kept += b.table[LINE].to_pylist()
            notes += b.table["note"].to_pylist()
            values += [float(x) for x in b.table["p_kw"].to_pylist()]
            rejects.update({r.line: r for r in b.rejects})
        assert dict(zip(kept, notes)) == KEPT and values == VALUES, (block, kept, notes)
        assert sorted(rejects) == [4, 8], (block, rejects)
        assert rejects[4].field == "p_kw" and "NUL byte" in rejects[4].reason and "(field p_kw)" in rejects[4].reason
        assert "expected 4 fields, found 3" in rejects[8].reason
    # both parses were crossed: each kept a NUL row in some block (the fast one: a block without lines 4, 8)
    assert by["fast"] >= {3, 5, 9} and by["slow"] >= {3, 5, 6, 9}, by


@pytest.mark.parametrize("gz", [False, True])
def test_a_nul_in_a_column_not_read_loses_no_reading_and_one_in_a_column_read_names_it(store, tmp_path: Path, gz: bool):
    # ts and meter_id too: a NUL in any column read is a reject naming it (a meter 'M\0' is not a meter)
    data = DATA + _row(10, b"2.0").replace(b"M1", b"M\x001") + _row(11, b"2.1").replace(b"Z,", b"Z\x00,")
    c = ingest_path(store, _write(tmp_path, gz, data))
    got = store.con.execute("SELECT p_kw FROM readings ORDER BY ts").fetchall()
    assert [v for (v,) in got] == VALUES, got
    rejects = {line: (field, reason) for _, line, field, reason in c.rejects}
    assert sorted(rejects) == [4, 8, 10, 11], rejects
    assert [rejects[n][0] for n in (4, 10, 11)] == ["p_kw", "meter_id", "ts"], rejects
    assert all("binary data (NUL byte)" in rejects[n][1] for n in (4, 10, 11)), rejects


WIDE_CASES = {
    # meter columns named; the status column is neither them nor the time
    "named": ("ts,A,B,status", "{v},{w}", dict(wide=Wide(meter_columns=("A", "B")))),
    # every column a meter but the time and the ignored one
    "ignore": ("ts,A,B,status", "{v},{w}", dict(wide=Wide(ignore=("status",)))),
    # several channels per meter; the status column matches no pattern and is ignored
    "channels": ("ts,A_P,B_P,status", "{v},{w}", dict(wide=Wide(channels={"p_kw": "{meter}_P"}, ignore=("status",)))),
    # a European export: ';' and a decimal comma (no column typed but the unread one)
    "decimal": ("ts;A;B;status", "{v};{w}", dict(wide=Wide(ignore=("status",)), delimiter=";", decimal=",")),
}


@pytest.mark.parametrize("case", sorted(WIDE_CASES))
def test_a_wide_exports_status_column_does_not_lose_the_meters_readings(store, tmp_path: Path, case: str):
    header, cells, kw = WIDE_CASES[case]
    sep = ";" if case == "decimal" else ","
    num = (lambda x: str(x).replace(".", ",")) if case == "decimal" else str  # noqa: E731
    notes = [b"ok", "Störung".encode("cp1252"), b"x\x00y", b"\x00", "Zählerwechsel".encode()]
    lines = [header.encode() + b"\n"]
    for h, note in enumerate(notes):
        row = f"2025-01-06T{h:02d}:00:00Z{sep}" + cells.format(v=num(h + 0.5), w=num(10 + h)) + sep
        lines.append(row.encode() + note + b"\n")
    # a NUL in the time column (read) rejects its line, naming the column
    lines.append(f"2025-01-06T09:00:00Z\x00{sep}".encode() + cells.format(v=num(9.5), w=num(19)).encode() + sep.encode()
                 + b"ok\n")
    path = tmp_path / "wide.csv"
    path.write_bytes(b"".join(lines))
    c = ingest_path(store, path, Mapping(**kw))
    got = store.con.execute("SELECT meter_id, p_kw FROM readings ORDER BY meter_id, ts").fetchall()
    assert got == [("A", h + 0.5) for h in range(5)] + [("B", 10.0 + h) for h in range(5)], got
    assert [(line, field) for _, line, field, _ in c.rejects] == [(7, "ts")], c.rejects
    assert "NUL byte" in c.rejects[0][3]
