"""A channel named with its unit in the header (`p_kw [W]`, `Voltage (V)`), as many exports write
them: the column was "ignored column(s) not in the schema: p_kw [W]" and the file's power was lost
with no word of how to read it. The note (and the "maps no channel" refusal) now names the mapping
that reads it, and that mapping does."""
from __future__ import annotations

from pathlib import Path

import pytest

from wattwatch.ingest.mapping import Mapping
from wattwatch.ingest.pipeline import IngestError, ingest_path

def rows(meter: str) -> str:
    return "".join(f"{meter},2025-01-06T00:{i:02d}:00Z,{1000 + i},230,70\n" for i in range(6))


def test_a_unit_in_a_header_says_the_mapping_that_reads_it(store, tmp_path: Path):
    p = tmp_path / "a.csv"
    p.write_text("meter_id,ts,p_kw [W],v_l1_v,Comment (x)\n" + rows("M1"))
    c = ingest_path(store, p)
    note = next(n for n in c.notes if "ignored column(s)" in n)
    assert '[columns] p_kw = "p_kw [W]" with [units] p_kw = "W"' in note and "Comment" not in note.split(";", 1)[1]
    q = tmp_path / "b.csv"
    q.write_text("meter_id,ts,p_kw [W],Voltage (V),temp (degF)\n" + rows("M2"))
    with pytest.raises(IngestError, match="maps no channel") as e:
        ingest_path(store, q)
    for hint in ('[columns] p_kw = "p_kw [W]" with [units] p_kw = "W"',
                 '[columns] v_l1_v = "Voltage (V)" with [units] v_l1_v = "V"',
                 '[columns] temp_c = "temp (degF)" with [units] temp_c = "degF"'):
        assert hint in str(e.value)
    m = tmp_path / "b.toml"
    m.write_text('[columns]\np_kw = "p_kw [W]"\nv_l1_v = "Voltage (V)"\ntemp_c = "temp (degF)"\n'
                 '[units]\np_kw = "W"\nv_l1_v = "V"\ntemp_c = "degF"\n')
    c = ingest_path(store, q, Mapping.from_toml(m))
    assert c.stored == 6
    p_kw, temp = store.con.execute("SELECT p_kw, temp_c FROM readings WHERE meter_id = 'M2' ORDER BY ts").fetchone()
    assert p_kw == pytest.approx(1.0) and temp == pytest.approx(21.111, abs=1e-3)


def test_a_wide_export_without_a_mapping_is_told_about_wide(store, tmp_path: Path):
    """BDG2's export (`timestamp,Fox_education_Maureen,Mouse_health_Justin,...`, one column per
    building) said only "give one with [columns] meter_id or [defaults] meter_id": the wrong fix
    (every building read as one meter's channels, or nothing)."""
    p = tmp_path / "wide.csv"
    p.write_text("timestamp,Fox_education_Maureen,Mouse_health_Justin\n2016-01-01 00:00:00,1.5,282.9\n")
    with pytest.raises(IngestError, match="no column maps to meter_id") as e:
        ingest_path(store, p)
    assert '[wide] meter_columns = "*"' in str(e.value)
