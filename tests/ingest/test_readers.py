"""Each reader and the column mapping, on small hand-made files."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.ingest.pipeline import IngestError, ingest_path

CSV = """meter_id,ts,v_l1_v,i_l1_a,i_n_a,p_kw,pf,e_kwh
M1,2025-03-10T14:00:00Z,230.1,5.0,4.99,1.093,0.95,100.000
M1,2025-03-10T14:05:00Z,230.2,5.1,5.09,1.115,0.95,100.091
M2,2025-03-10T14:00:00+01:00,229.0,2.0,2.0,0.435,0.95,50.000
M2,1741611900,229.5,,2.0,0.436,0.95,50.036
"""


def test_csv_reads_values_and_converts_offsets_and_epochs_to_utc(store, tmp_path: Path):
    p = tmp_path / "a.csv"
    p.write_text(CSV)
    c = ingest_path(store, p)
    assert (c.read, c.stored, c.duplicates, c.rejected) == (4, 4, 0, 0)
    df = store.query()
    m2 = df[df.meter_id == "M2"]
    assert list(m2.ts) == [pd.Timestamp("2025-03-10T13:00:00Z"), pd.Timestamp("2025-03-10T13:05:00Z")]
    assert np.isnan(m2.i_l1_a.iloc[1])  # an empty field is a gap, not a reject
    assert df[df.meter_id == "M1"].v_l1_v.tolist() == [230.1, 230.2]
    assert str(df.ts.dt.tz) == "UTC"


def test_csv_gzip_semicolon_bom_and_blank_lines(store, tmp_path: Path):
    text = "\ufeff" + CSV.replace(",", ";").replace("\nM2", "\n\nM2")
    p = tmp_path / "a.csv.gz"
    with gzip.open(p, "wt", encoding="utf-8") as fh:
        fh.write(text)
    c = ingest_path(store, p)
    assert (c.read, c.stored, c.rejected) == (4, 4, 0)


def test_csv_naive_timestamps_take_the_mapping_timezone(store, tmp_path: Path):
    p = tmp_path / "a.csv"
    p.write_text("meter_id,ts,p_kw\nM1,2025-07-01 12:00:00,1.0\nM1,2025-07-01 12:05:00,1.1\n")
    ingest_path(store, p, Mapping(timezone="Europe/Rome"))
    assert store.query().ts.iloc[0] == pd.Timestamp("2025-07-01T10:00:00Z")  # CEST = UTC+2


def test_parquet_flat_and_nested(store, tmp_path: Path):
    flat = pd.DataFrame({"meter_id": ["A", "A"], "ts": pd.to_datetime(["2025-01-01T00:00Z", "2025-01-01T00:05Z"]),
                         "p_kw": [1.0, 2.0]})
    flat.to_parquet(tmp_path / "f.parquet")
    nested = pa.table({"PODID": ["B"], "readings": [[{"start_ts": "2025-01-01T00:00:00Z", "TotalActivePower": 3.0},
                                                     {"start_ts": "2025-01-01T00:05:00Z", "TotalActivePower": 4.0}]]})
    pq.write_table(nested, tmp_path / "n.parquet")
    assert ingest_path(store, tmp_path / "f.parquet").stored == 2
    assert ingest_path(store, tmp_path / "n.parquet").stored == 2
    df = store.query()
    assert df[df.meter_id == "B"].p_kw.tolist() == [3.0, 4.0]


ENEA_RECORD = {
    "PODID": "IT001E0001", "ElectricPanelID": "QE-7", "TownCode": "058091", "height": 4.5,
    "start_ts": "2024-05-01T10:00:00Z", "end_ts": "2024-05-01T10:15:00Z",
    "Line1Current": 10.0, "Line2Current": 11.0, "Line3Current": 9.5,
    "Phase1Voltage": 231.0, "Phase2Voltage": 229.5, "Phase3Voltage": 230.2,
    "Phase1ActivePower": 2.2, "Phase2ActivePower": 2.4, "Phase3ActivePower": 2.1,
    "Phase1PowerFactor": 0.95, "TotalActivePower": 6.7, "TotalReactivePower": 2.1,
    "TotalApparentPower": 7.0, "TotalActiveEnergy": 1520.5,
}


def test_json_smart_meter_export_maps_builtin_names(store, tmp_path: Path):
    second = dict(ENEA_RECORD, start_ts="2024-05-01T10:15:00Z", TotalActiveEnergy=1522.2)
    (tmp_path / "enea.json").write_text(json.dumps([ENEA_RECORD, second]))
    c = ingest_path(store, tmp_path / "enea.json")
    assert c.stored == 2
    assert any("ignored column" in n and "TownCode" in n for n in c.notes)
    row = store.query().iloc[0]
    assert row.meter_id == "IT001E0001"
    assert (row.v_l1_v, row.v_l2_v, row.v_l3_v) == (231.0, 229.5, 230.2)
    assert (row.i_l1_a, row.i_l2_a, row.i_l3_a) == (10.0, 11.0, 9.5)
    assert (row.p_kw, row.q_kvar, row.s_kva, row.e_kwh) == (6.7, 2.1, 7.0, 1520.5)


def test_json_nested_records_with_a_list_of_readings(store, tmp_path: Path):
    doc = {"PODID": "POD-9", "data": [
        {"start_ts": "2024-05-01T10:00:00Z", "measures": {"Phase1Voltage": 230, "Line1Current": 4.0}},
        {"start_ts": "2024-05-01T10:15:00Z", "measures": {"Phase1Voltage": 231, "Line1Current": 4.2}},
    ]}
    (tmp_path / "pod.json").write_text(json.dumps(doc))
    assert ingest_path(store, tmp_path / "pod.json").stored == 2
    df = store.query()
    assert df.meter_id.unique().tolist() == ["POD-9"]
    assert df.i_l1_a.tolist() == [4.0, 4.2]


def test_jsonl_nested_with_a_bad_line_keeps_the_others(store, tmp_path: Path):
    lines = [json.dumps({"PODID": "P1", "start_ts": f"2024-05-01T10:{m:02d}:00Z",
                         "electrical": {"Phase1Voltage": 230.0, "TotalActivePower": 1.0 + m / 100}})
             for m in (0, 15, 30)]
    lines.insert(2, '{"PODID": "P1", "start_ts": broken')
    (tmp_path / "p.jsonl").write_text("\n".join(lines) + "\n")
    c = ingest_path(store, tmp_path / "p.jsonl")
    assert (c.read, c.stored, c.rejected) == (4, 3, 1)
    assert c.rejects[0][1] == 3 and "not valid JSON" in c.rejects[0][3]


def test_sqlite_export_one_table_per_device_group(store, tmp_path: Path):
    db = tmp_path / "dc.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE meter1 (timestamp TEXT, voltage_l1 REAL, current_l1 REAL, active_power_kw REAL)")
    con.execute("CREATE TABLE ups (timestamp TEXT, voltage_l1 REAL, temperature REAL)")
    con.execute("CREATE TABLE settings (key TEXT, value TEXT)")
    con.executemany("INSERT INTO meter1 VALUES (?,?,?,?)",
                    [("2024-11-01 00:00:00", 220.1, 10.0, 2.1), ("2024-11-01 00:01:00", 220.3, 10.2, 2.15)])
    con.executemany("INSERT INTO ups VALUES (?,?,?)", [("2024-11-01 00:00:00", 221.0, 24.5)])
    con.commit()
    con.close()
    c = ingest_path(store, db)
    assert c.stored == 3
    assert any("settings skipped" in n for n in c.notes)
    df = store.query()
    assert sorted(df.meter_id.unique()) == ["meter1", "ups"]
    assert df[df.meter_id == "ups"].temp_c.tolist() == [24.5]


def test_toml_mapping_renames_scales_sums_and_defaults(store, tmp_path: Path):
    (tmp_path / "map.toml").write_text(
        '[columns]\nts = "Zeit"\np_kw = ["P1_W", "P2_W", "P3_W"]\nv_l1_v = "U1"\n'
        '[scale]\np_kw = 0.001\n[defaults]\nmeter_id = "PDU-7"\n[options]\ndelimiter = ";"\ndecimal = ","\n')
    (tmp_path / "pdu.csv").write_text("Zeit;U1;P1_W;P2_W;P3_W\n2025-01-01T00:00:00Z;230,5;1000;1100;900\n")
    m = Mapping.from_toml(tmp_path / "map.toml")
    ingest_path(store, tmp_path / "pdu.csv", m)
    row = store.query().iloc[0]
    assert row.meter_id == "PDU-7"
    assert row.v_l1_v == pytest.approx(230.5)
    assert row.p_kw == pytest.approx(3.0)


def test_toml_mapping_errors_name_the_problem(tmp_path: Path):
    (tmp_path / "bad.toml").write_text('[columns]\nvolts = "U1"\n')
    with pytest.raises(MappingError, match="unknown canonical column"):
        Mapping.from_toml(tmp_path / "bad.toml")
    with pytest.raises(MappingError, match="not in source"):
        Mapping(columns={"ts": "nope"}).resolve(["time", "meter"])


def test_file_without_a_timestamp_column_is_a_clear_error(store, tmp_path: Path):
    (tmp_path / "x.csv").write_text("meter_id,power\nM1,1.0\n")
    with pytest.raises(IngestError, match=r"x\.csv: no column maps to ts"):
        ingest_path(store, tmp_path / "x.csv")


def test_read_frame_reads_each_column_as_iloc_gives_it_in_one_batch_or_many():
    """(fk) ``read_frame`` takes a one-batch frame as it is and its columns through ``items()``: the
    same tables as slicing it and taking ``iloc[:, i]`` (mixed numbers and text as text, a named
    index level as a column, nested records flattened, a zone kept), in one batch or several."""
    from wattwatch.ingest.readers import LINE, _frame_column, flatten_nested, read_frame

    f = pd.DataFrame({"meter_id": ["a", "b", "a", "c", "b"],
                      "ts": pd.date_range("2026-03-01", periods=5, freq="min", tz="Europe/Paris"),
                      "p_kw": [1.0, np.nan, 2.5, -0.0, 3.0], "mode": [1, "x", 1, 1, None],
                      "tag": pd.Categorical(list("uvuvu")), "info": [{"a": 1}, {"a": 2}, None, {"a": 3}, {"a": 4}]},
                     index=pd.Index(range(5), name="row"))
    for rows in (1000, 2):
        got = [b.table for b in read_frame(f, batch_rows=rows)]
        g = f.reset_index(level=["row"])
        names = [str(c) for c in g.columns]
        want = []
        for start in range(0, len(g), rows):
            part = g.iloc[start:start + rows]
            arrays = [_frame_column(part.iloc[:, i]) for i in range(part.shape[1])]
            arrays.append(pa.array(np.arange(start + 1, start + len(part) + 1, dtype=np.int64)))
            want.append(flatten_nested(pa.Table.from_arrays(arrays, names=names + [LINE])))
        assert len(got) == len(want) and all(a.equals(b) for a, b in zip(got, want)), rows
