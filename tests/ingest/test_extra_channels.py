"""Extra channels: numeric columns beyond the canonical schema, declared under [extra] in a mapping,
through the normaliser and checks into the store (and back out), from files and from frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import frame_equal
from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.ingest.pipeline import IngestError, ingest_frame, ingest_path
from wattwatch.schema import CHANNEL_NAMES, EXTRA_UNIT_SUFFIXES, extra_channel_error
from wattwatch.store import Store

UPS_MAP = """
[extra]
ups_battery_pct = "BatteryCapacity"
ups_mode_1 = "UPSMode"
pdu_outlets_a = ["Out1", "Out2"]
[scale]
ups_battery_pct = 100
"""

UPS_CSV = """Device,Time,Voltage1,BatteryCapacity,UPSMode,Out1,Out2
UPS-1,2025-01-01T00:00:00Z,230.0,0.95,1,2.5,1.5
UPS-1,2025-01-01T00:05:00Z,231.0,0.94,1,2.0,1.0
UPS-1,2025-01-01T00:10:00Z,232.0,0.93,2,,1.0
UPS-2,2025-01-01T00:00:00Z,229.0,,3,0.5,0.25
"""


def _mapping(tmp_path: Path, text: str = UPS_MAP) -> Mapping:
    p = tmp_path / "map.toml"
    p.write_text(text)
    return Mapping.from_toml(p)


# ----------------------------------------------------------------------------------- names, mapping


def test_extra_channel_names_need_a_lower_case_identifier_with_a_unit_suffix():
    for ok in ("ups_battery_pct", "ups_mode_1", "pdu_outlet_3_a", "fan_rpm", "inlet_temp_c", "a" * 61 + "_v"):
        assert extra_channel_error(ok) is None, ok
    for suffix in ("_v", "_a", "_kw", "_kvar", "_kva", "_kwh", "_w", "_wh", "_hz", "_c", "_pct", "_s", "_rpm", "_1"):
        assert suffix in EXTRA_UNIT_SUFFIXES and extra_channel_error("x" + suffix) is None
    cases = {"p_kw": "canonical", "meter_id": "canonical", "ups_battery": "unit suffix", "UPS_mode_1": "lower-case",
             "ups-mode_1": "lower-case", "_ups_v": "'_'", "9ups_v": "lower-case", "ups__v": "__",
             "a" * 62 + "_v": "at most 63", "": "non-empty"}
    for name, words in cases.items():
        err = extra_channel_error(name)
        assert err is not None and words in err, (name, err)


@pytest.mark.parametrize("section,line,words", [
    ("extra", 'UPS_Battery_pct = "B"', "lower-case identifier"),
    ("extra", 'p_kw = "B"', "canonical column"),
    ("extra", 'ups_battery = "B"', "unit suffix"),
    ("extra", 'ups_battery_pct = 3', "column name"),
    ("scale", "ups_battery = 100", "unit suffix"),
    ("scale", "ups_battery_pct = 100", "not declared in [extra]"),
    ("defaults", 'ups_mode_1 = "online"', "finite number"),
])
def test_bad_extra_names_and_values_are_errors_naming_file_section_and_key(tmp_path: Path, section, line, words):
    p = tmp_path / "site-map.toml"
    p.write_text(f"[{section}]\n{line}\n")
    with pytest.raises(MappingError) as err:
        Mapping.from_toml(p)
    text = str(err.value)
    key = line.split(" =")[0]
    assert "site-map.toml" in text and f"[{section}]" in text and key in text and words in text, text


def test_a_valid_extra_section_parses(tmp_path: Path):
    m = _mapping(tmp_path, UPS_MAP + '[defaults]\nups_phases_1 = 3\n')
    assert m.extra == {"ups_battery_pct": "BatteryCapacity", "ups_mode_1": "UPSMode", "pdu_outlets_a": ("Out1", "Out2")}
    assert m.scale == {"ups_battery_pct": 100.0}
    assert m.extra_channels == ("ups_battery_pct", "ups_mode_1", "pdu_outlets_a", "ups_phases_1")
    with pytest.raises(MappingError, match=r"\[extra\] Bad_v"):
        Mapping(extra={"Bad_v": "x"})  # the Python constructor checks names too


def test_extra_source_column_missing_is_the_same_error_as_for_columns(store, tmp_path: Path):
    (tmp_path / "u.csv").write_text(UPS_CSV.replace("UPSMode", "Mode"))
    with pytest.raises(IngestError, match=r"u\.csv: mapping for extra channel 'ups_mode_1' names column\(s\) "
                                          r"\['UPSMode'\] not in source"):
        ingest_path(store, tmp_path / "u.csv", _mapping(tmp_path))
    assert store.info()["readings"] == 0


# ------------------------------------------------------------------------------------- round trips


def _expected_ups() -> pd.DataFrame:
    return pd.DataFrame({
        "meter_id": ["UPS-1", "UPS-1", "UPS-1", "UPS-2"],
        "ts": pd.to_datetime(["2025-01-01T00:00Z", "2025-01-01T00:05Z", "2025-01-01T00:10Z", "2025-01-01T00:00Z"]),
        "v_l1_v": [230.0, 231.0, 232.0, 229.0],
        "ups_battery_pct": [95.0, 94.0, 93.0, np.nan],
        "ups_mode_1": [1.0, 1.0, 2.0, 3.0],
        "pdu_outlets_a": [4.0, 3.0, np.nan, 0.75],  # a sum with a gap is a gap, as for canonical sums
    })


def test_csv_extras_round_trip_through_ingest_and_query(store, tmp_path: Path):
    (tmp_path / "u.csv").write_text(UPS_CSV)
    c = ingest_path(store, tmp_path / "u.csv", _mapping(tmp_path))
    assert (c.read, c.stored, c.rejected) == (4, 4, 0)
    assert store.channels() == [*CHANNEL_NAMES, "ups_battery_pct", "ups_mode_1", "pdu_outlets_a"]
    df = store.query()
    assert list(df.columns) == ["meter_id", "ts", "v_l1_v", "ups_battery_pct", "ups_mode_1", "pdu_outlets_a"]
    frame_equal(df.assign(meter_id=df.meter_id.astype(str)), _expected_ups())
    one = store.query("UPS-1", columns=["ups_mode_1", "p_kw"])
    assert list(one.columns) == ["meter_id", "ts", "ups_mode_1", "p_kw"] and one.ups_mode_1.tolist() == [1, 1, 2]
    with pytest.raises(ValueError, match="unknown column"):
        store.query(columns=["ups_load_pct"])
    # The source column an extra takes is not also matched by a built-in alias.
    assert "v_l1_v" in df.columns and not df.v_l1_v.isna().any()


def test_parquet_extras_round_trip_and_an_infinite_value_is_dropped_not_its_reading(store, tmp_path: Path):
    exp = _expected_ups()
    src = pd.DataFrame({"Device": exp.meter_id, "Time": exp.ts, "Voltage1": exp.v_l1_v,
                        "BatteryCapacity": exp.ups_battery_pct / 100, "UPSMode": exp.ups_mode_1,
                        "Out1": [2.5, 2.0, np.nan, 0.5], "Out2": [1.5, 1.0, 1.0, 0.25]})
    bad = src.iloc[[0]].assign(Time=pd.Timestamp("2025-01-01T00:15Z"), UPSMode=np.inf)
    pd.concat([src, bad], ignore_index=True).to_parquet(tmp_path / "u.parquet")
    c = ingest_path(store, tmp_path / "u.parquet", _mapping(tmp_path))
    # (fld46) The infinite mode is dropped, not its reading: stored as missing, reported with its line.
    assert (c.read, c.stored, c.rejected) == (5, 5, 0)
    assert len(c.dropped) == 1 and c.dropped[0][1:3] == (5, "ups_mode_1") and "infinite" in c.dropped[0][3]
    assert c.values_dropped == {"ups_mode_1": 1}
    df = store.query()
    df = df.assign(meter_id=df.meter_id.astype(str))
    late = df.ts == pd.Timestamp("2025-01-01T00:15Z")
    frame_equal(df[~late].reset_index(drop=True), exp)
    row = df[late].iloc[0]
    assert np.isnan(row.ups_mode_1) and row.v_l1_v == exp.v_l1_v.iloc[0]


def test_non_numeric_extra_cell_is_dropped_with_line_and_field_and_its_reading_kept(store, tmp_path: Path):
    lines = UPS_CSV.splitlines()
    lines[2] = lines[2].replace(",1,2.0,", ",online,2.0,")  # line 3: UPSMode is text
    (tmp_path / "u.csv").write_text("\n".join(lines) + "\n")
    c = ingest_path(store, tmp_path / "u.csv", _mapping(tmp_path))
    # (fld46) the text cell is dropped (stored as missing), the reading keeps its other channels.
    assert (c.read, c.stored, c.rejected) == (4, 4, 0)
    _, line, fld, reason = c.dropped[0]
    assert (line, fld) == (3, "ups_mode_1") and "'online' is not a number" in reason
    df = store.query()
    assert df.ts.dt.minute.tolist() == [0, 5, 10, 0] and df.ups_mode_1.fillna(-1).tolist() == [1, -1, 2, 3]
    assert df.v_l1_v.notna().all()


def test_reingest_with_extras_is_idempotent(store, tmp_path: Path):
    (tmp_path / "u.csv").write_text(UPS_CSV)
    m = _mapping(tmp_path)
    ingest_path(store, tmp_path / "u.csv", m)
    before = store.query()
    again = ingest_path(store, tmp_path / "u.csv", m)
    assert (again.stored, again.merged) == (0, 4)
    pd.testing.assert_frame_equal(store.query(), before)
    assert store.channels()[len(CHANNEL_NAMES):] == ["ups_battery_pct", "ups_mode_1", "pdu_outlets_a"]
    assert store.con.execute("SELECT count(*) FROM channels").fetchall()[0][0] == 3


def test_a_defaults_entry_with_an_extra_name_is_a_constant_channel(store, tmp_path: Path):
    (tmp_path / "u.csv").write_text(UPS_CSV)
    m = _mapping(tmp_path, UPS_MAP + "[defaults]\nups_phases_1 = 3\n")
    ingest_path(store, tmp_path / "u.csv", m)
    assert store.channels()[-1] == "ups_phases_1" and store.query().ups_phases_1.tolist() == [3.0] * 4


# -------------------------------------------------------------------------------------- duplicates


def test_duplicates_in_one_file_fill_missing_extras_from_each_other(store, tmp_path: Path):
    # The same reading twice (2 s of jitter, cadence 5 min): each copy lacks a different extra.
    text = ("Device,Time,Voltage1,BatteryCapacity,UPSMode,Out1,Out2\n"
            "U,2025-01-01T00:00:00Z,230,0.9,,1,1\n"
            "U,2025-01-01T00:00:02Z,230,,4,1,1\n"
            "U,2025-01-01T00:05:00Z,231,0.8,4,1,1\n"
            "U,2025-01-01T00:10:00Z,232,0.7,4,1,1\n")
    (tmp_path / "u.csv").write_text(text)
    c = ingest_path(store, tmp_path / "u.csv", _mapping(tmp_path))
    assert (c.stored, c.duplicates) == (3, 1)
    first = store.query().iloc[0]
    assert first.ts == pd.Timestamp("2025-01-01T00:00:00Z")  # equally complete: the earlier one
    assert (first.ups_battery_pct, first.ups_mode_1) == (pytest.approx(90.0), 4.0)


def test_completeness_ranking_counts_extras(store, tmp_path: Path):
    # The later copy has more values only through its extras, so its timestamp is kept.
    text = ("Device,Time,Voltage1,BatteryCapacity,UPSMode,Out1,Out2\n"
            "U,2025-01-01T00:00:00Z,230,,,,\n"
            "U,2025-01-01T00:00:02Z,230,0.9,4,1,1\n"
            "U,2025-01-01T00:05:00Z,231,0.8,4,1,1\n"
            "U,2025-01-01T00:10:00Z,232,0.7,4,1,1\n")
    (tmp_path / "u.csv").write_text(text)
    ingest_path(store, tmp_path / "u.csv", _mapping(tmp_path))
    assert store.query().ts.iloc[0] == pd.Timestamp("2025-01-01T00:00:02Z")


def test_a_later_file_fills_extras_into_stored_readings(store, tmp_path: Path):
    # First the canonical channels only (the store has no extras yet), then a retransmission of the
    # same readings with jitter that carries the extras: they fill the stored rows, none is added.
    (tmp_path / "a.csv").write_text("meter_id,ts,v_l1_v\n" + "".join(
        f"U,2025-01-01T00:{m:02d}:00Z,{230 + m / 5}\n" for m in range(0, 30, 5)))
    ingest_path(store, tmp_path / "a.csv")
    assert store.channels() == list(CHANNEL_NAMES)
    (tmp_path / "b.csv").write_text("Device,Time,BatteryCapacity,UPSMode,Out1,Out2\n" + "".join(
        f"U,2025-01-01T00:{m:02d}:01Z,{0.9 - m / 100:.2f},1,{m},0\n" for m in range(0, 30, 5)))
    c = ingest_path(store, tmp_path / "b.csv", _mapping(tmp_path))
    assert (c.stored, c.merged) == (0, 6)
    df = store.query()
    assert len(df) == 6 and (df.ts.dt.second == 0).all()
    np.testing.assert_allclose(df.ups_battery_pct, [90 - m for m in range(0, 30, 5)])
    np.testing.assert_allclose(df.pdu_outlets_a, list(range(0, 30, 5)))
    np.testing.assert_allclose(df.v_l1_v, [230 + m / 5 for m in range(0, 30, 5)])
    # A stored value is kept: a third copy with other extras changes nothing.
    (tmp_path / "c.csv").write_text("Device,Time,BatteryCapacity,UPSMode,Out1,Out2\nU,2025-01-01T00:00:00Z,0.1,9,9,9\n")
    assert ingest_path(store, tmp_path / "c.csv", _mapping(tmp_path)).merged == 1
    assert store.query().iloc[0].ups_mode_1 == 1.0


# ------------------------------------------------------------------------------------------ frames


def test_ingest_frame_maps_aliases_and_rejects_bad_rows_with_their_row_numbers(store, tmp_path: Path):
    frame = pd.DataFrame({
        "Device": ["M1", "M1", "M1", "M1", None],
        "Timestamp": ["2025-03-10T14:00:00Z", "2025-03-10T14:05:00Z", "not a time", "2025-03-10T14:15:00Z",
                      "2025-03-10T14:20:00Z"],
        "Phase1Voltage": [230.1, 230.2, 230.3, -5.0, 230.5],
        "UPSMode": [1, "x", 1, 1, 1],  # numbers mixed with text, as a hand-built frame has them
        "Comment": ["a", "b", "c", "d", "e"],
    }, index=[10, 20, 30, 40, 50])  # lines are positions, not index labels
    c = ingest_frame(store, frame, Mapping(extra={"ups_mode_1": "UPSMode"}), source="ups-frame")
    # (fld46) a bad meter or time rejects the row; a bad value is dropped and its reading kept.
    assert (c.read, c.stored, c.rejected) == (5, 3, 2)
    by_line = {line: (fld, reason) for unit, line, fld, reason in c.reject_lines}
    assert {u for u, *_ in c.reject_lines} == {"ups-frame"}
    assert [r[1] for r in c.rejects] == [3, 5] and [r[1] for r in c.dropped] == [2, 4]
    assert by_line[2][0] == "ups_mode_1" and "'x' is not a number" in by_line[2][1]
    assert by_line[3][0] == "ts" and "not a time" in by_line[3][1]
    assert by_line[4][0] == "v_l1_v" and "-5" in by_line[4][1]
    assert by_line[5][0] == "meter_id"
    assert any("Comment" in n for n in c.notes)
    df = store.query()
    assert df.meter_id.astype(str).tolist() == ["M1"] * 3
    assert df.v_l1_v.fillna(-1).tolist() == [230.1, 230.2, -1] and df.ups_mode_1.fillna(-1).tolist() == [1.0, -1, 1.0]
    with pytest.raises(IngestError, match="ups-frame: no column maps to ts"):
        ingest_frame(store, frame.drop(columns="Timestamp"), source="ups-frame")
    with pytest.raises(IngestError, match="ups-frame: no column maps to ts"):  # even without rows
        ingest_frame(store, frame.drop(columns="Timestamp").iloc[:0], source="ups-frame")
    assert ingest_frame(store, frame.iloc[:0]).read == 0


def test_a_frame_stores_what_the_same_rows_as_a_file_store(tmp_path: Path):
    (tmp_path / "u.csv").write_text(UPS_CSV)
    m = _mapping(tmp_path)
    with Store(tmp_path / "a.duckdb") as a, Store(tmp_path / "b.duckdb") as b:
        ca = ingest_path(a, tmp_path / "u.csv", m)
        # Typed columns (timestamps, numbers) go in as they are, not through text.
        frame = pd.read_csv(tmp_path / "u.csv", parse_dates=["Time"])
        cb = ingest_frame(b, frame, m)
        assert (ca.stored, ca.rejected) == (cb.stored, cb.rejected) == (4, 0)
        frame_equal(a.query(), b.query())
        assert a.channels() == b.channels()
