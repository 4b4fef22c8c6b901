"""Bad input: row-level rejects with line and field, file-level one-line errors, nothing lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.pipeline import IngestError, ingest_path

GOOD = "meter_id,ts,v_l1_v,i_l1_a,pf,e_kwh\n" + "".join(
    f"M1,2025-03-10T14:{m:02d}:00Z,230,5,0.95,{100 + m / 100:.2f}\n" for m in range(0, 60, 5))


def test_schema_errors_name_line_and_field(store, tmp_path: Path):
    text = (
        "meter_id,ts,v_l1_v,i_l1_a,pf,e_kwh\n"  # line 1
        "M1,2025-03-10T14:00:00Z,230,5,0.95,100\n"  # 2 good
        "M1,2025-03-10T14:05:00Z,-5,5,0.95,100.1\n"  # 3 negative voltage
        "M1,2025-03-10T14:10:00Z,230,5,1.7,100.2\n"  # 4 pf out of range
        "M1,2025-03-10T14:15:00Z,230,abc,0.95,100.3\n"  # 5 junk number
        "M1,yesterday,230,5,0.95,100.4\n"  # 6 unparseable time
        ",2025-03-10T14:25:00Z,230,5,0.95,100.5\n"  # 7 no meter
        "M1,2025-03-10T14:30:00Z,230,5,0.95\n"  # 8 missing field
        "M1,2025-03-10T14:35:00Z,230,NaN,0.95,100.6\n"  # 9 NaN channel: a gap, kept
    )
    p = tmp_path / "bad.csv"
    p.write_text(text)
    c = ingest_path(store, p)
    # (fld46) a bad value (lines 3-5) is dropped and its reading kept with its other channels; a bad
    # time, meter or field count (6-8) rejects the row.
    assert (c.read, c.stored, c.rejected) == (8, 5, 3)
    assert [r[1] for r in c.rejects] == [6, 7, 8] and [r[1] for r in c.dropped] == [3, 4, 5]
    assert c.values_dropped == {"v_l1_v": 1, "pf": 1, "i_l1_a": 1}
    by_line = {line: (field, reason) for _, line, field, reason in c.reject_lines}
    assert by_line[3][0] == "v_l1_v" and "-5" in by_line[3][1]
    assert by_line[4][0] == "pf" and "1.7" in by_line[4][1]
    assert by_line[5][0] == "i_l1_a" and "'abc' is not a number" in by_line[5][1]
    assert by_line[6][0] == "ts" and "yesterday" in by_line[6][1]
    assert by_line[7][0] == "meter_id"
    assert "expected 6 fields, found 5" in by_line[8][1]
    assert store.info()["readings"] == 5
    got = store.query().set_index("ts")
    assert np.isnan(got["v_l1_v"].iloc[1]) and got["i_l1_a"].iloc[1] == 5 and got["e_kwh"].iloc[1] == 100.1
    assert np.isnan(got["pf"].iloc[2]) and np.isnan(got["i_l1_a"].iloc[3]) and got["v_l1_v"].iloc[3] == 230


def test_cli_writes_rejects_file_and_counts(tmp_path: Path):
    p = tmp_path / "bad.csv"
    p.write_text(GOOD + "M1,2025-03-10T15:00:00Z,230,5,9.9,101\n")
    rejects = tmp_path / "rej.csv"
    out = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "ingest", str(p), "--db", str(tmp_path / "s.duckdb"),
                          "--rejects", str(rejects), "--json"], capture_output=True, text=True, check=True)
    counts = json.loads(out.stdout)["files"][0]
    # (fld46) the implausible pf is dropped, its reading kept; the rejects file still names it.
    assert (counts["read"], counts["stored"], counts["rejected"]) == (13, 13, 0)
    assert counts["values_dropped"] == {"pf": 1} and counts["channels_mostly_bad"] == []
    rej = pd.read_csv(rejects)
    assert rej.loc[0, "line"] == 14 and rej.loc[0, "field"] == "pf" and "9.9" in rej.loc[0, "reason"]


@pytest.mark.parametrize("name,content,message", [
    ("junk.csv", bytes(range(256)) * 40, "not a text CSV file"),
    ("empty.csv", b"", "empty file"),
    ("trunc.parquet", None, "not a readable Parquet file"),
    ("scalar.json", b"42", "JSON that is not records"),
    ("list.json", b"[1, 2, 3]", "not records"),
    ("broken.json", b'{"a": [1, 2', "not valid JSON"),
    ("fake.db", b"hello, I am not sqlite" * 10, "not a SQLite database"),
    ("data.xlsx", b"PK..", "unknown file type"),
])
def test_file_that_is_not_what_it_claims_fails_whole_and_keeps_the_store(store, tmp_path: Path, name, content, message):
    good = tmp_path / "good.csv"
    good.write_text(GOOD)
    ingest_path(store, good)
    before = store.query()
    bad = tmp_path / name
    if content is None:  # a real Parquet file cut in half
        pd.DataFrame({"meter_id": ["X"] * 1000, "ts": pd.date_range("2025-01-01", periods=1000, freq="5min", tz="UTC"),
                      "p_kw": range(1000)}).to_parquet(bad)
        bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])
    else:
        bad.write_bytes(content)
    with pytest.raises(IngestError) as err:
        ingest_path(store, bad)
    text = str(err.value)
    assert message in text and name in text and "\n" not in text
    pd.testing.assert_frame_equal(store.query(), before)


def test_truncated_gzip_rolls_back_the_whole_file(store, tmp_path: Path):
    import gzip

    rows = "".join(f"M{i % 7},2025-03-{1 + i // 2000:02d}T00:00:00Z,230\n" for i in range(20000))
    data = gzip.compress(("meter_id,ts,v_l1_v\n" + rows).encode())
    p = tmp_path / "cut.csv.gz"
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(IngestError, match="cut.csv.gz"):
        ingest_path(store, p)
    assert store.info()["readings"] == 0


def test_cli_exits_nonzero_with_one_line_but_ingests_the_good_files(tmp_path: Path):
    good, junk = tmp_path / "good.csv", tmp_path / "junk.csv"
    good.write_text(GOOD)
    junk.write_bytes(b"\x00\x01\x02binary" * 100)
    db = tmp_path / "s.duckdb"
    out = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "ingest", str(junk), str(good), "--db", str(db)],
                         capture_output=True, text=True)
    assert out.returncode == 1
    errors = [line for line in out.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "junk.csv" in errors[0]
    info = subprocess.run([sys.executable, "-m", "wattwatch.app.cli", "store", "info", "--json", "--db", str(db)],
                          capture_output=True, text=True, check=True)
    assert json.loads(info.stdout)["readings"] == 12
