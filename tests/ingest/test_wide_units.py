"""Issue 13, readers: wide exports, units per column, configurable ranges, rows without a value,
counts that say whether anything usable was read, and hints in reader errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch.ingest.mapping import Mapping, MappingError
from wattwatch.ingest.pipeline import IngestError, ingest_path

# The mapping a user writes for a regional load export in MW (the README walkthrough uses it).
WIDE_MW = """\
[wide]
meter_columns = "*"
ts = "Datetime"
unit = "MW"
"""


def _regions(n_hours: int = 48, n_regions: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ts = pd.date_range("2024-01-01", periods=n_hours, freq="h", tz="UTC")
    df = pd.DataFrame({"Datetime": ts.strftime("%Y-%m-%d %H:%M:%S")})
    for i in range(n_regions):
        df[f"REGION_{i:02d}"] = np.round(1500 + 25_000 * rng.random(n_hours), 1)  # MW: beyond 1e6 kW
    if n_regions > 6 and n_hours > 7:
        df.loc[3, "REGION_05"] = np.nan  # blank cells: absent readings, not rows
        df.loc[7, "REGION_06"] = np.nan
    return df


def _stored(store) -> pd.DataFrame:
    return store.con.execute("SELECT * FROM readings ORDER BY meter_id, ts").df()


def _mapping(tmp_path: Path, text: str) -> Mapping:
    p = tmp_path / "map.toml"
    p.write_text(text)
    return Mapping.from_toml(p)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wide_hourly_regions_in_mw_ingest_with_a_four_line_mapping(store, tmp_path: Path, fmt: str):
    df = _regions()
    p = tmp_path / f"load.{fmt}"
    df.to_csv(p, index=False) if fmt == "csv" else df.to_parquet(p)
    assert len(WIDE_MW.strip().splitlines()) <= 5
    c = ingest_path(store, p, _mapping(tmp_path, WIDE_MW))
    assert (c.read, c.stored, c.rejected) == (20 * 48 - 2, 20 * 48 - 2, 0)
    got = _stored(store)
    assert sorted(got["meter_id"].unique()) == [f"REGION_{i:02d}" for i in range(20)]
    r0 = got[got["meter_id"] == "REGION_00"]["p_kw"].to_numpy()
    np.testing.assert_allclose(r0, df["REGION_00"].to_numpy() * 1000)  # MW -> kW, beyond 1e6 kW
    assert got["p_kw"].notna().all()  # no empty readings from the blank cells
    assert (got["meter_id"] == "REGION_05").sum() == 47


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_wide_reject_keeps_the_line_and_names_the_column(store, tmp_path: Path, fmt: str):
    df = _regions(n_hours=6, n_regions=4).astype({"REGION_02": object})
    df.loc[2, "REGION_02"] = "abc"  # line 4 of the CSV, row 3 of the Parquet file
    df["REGION_02"] = df["REGION_02"].astype(str)  # a text column in Parquet
    p = tmp_path / f"load.{fmt}"
    df.to_csv(p, index=False) if fmt == "csv" else df.to_parquet(p)
    c = ingest_path(store, p, _mapping(tmp_path, WIDE_MW))
    assert c.rejected == 1 and c.stored == 4 * 6 - 1
    _, line, fld, reason = c.rejects[0]
    assert line == (4 if fmt == "csv" else 3)
    assert fld == "REGION_02" and "'abc' is not a number" in reason
    got = _stored(store)
    assert len(got[got["ts"] == got["ts"].min() + pd.Timedelta(hours=2)]) == 3  # the line's other cells


def test_wide_list_prefix_renames_and_channel_with_a_temperature_offset(store, tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_text("when,A,B,note\n2025-01-06T00:00:00Z,212,32,x\n2025-01-06T01:00:00Z,,50,y\n")
    m = _mapping(tmp_path, '[wide]\nmeter_columns = ["A", "B"]\nts = "when"\nchannel = "temp_c"\n'
                           'unit = "degF"\nmeter_prefix = "site-"\n[wide.meters]\nB = "boiler"\n')
    c = ingest_path(store, p, m)
    assert (c.stored, c.rejected) == (3, 0)
    got = _stored(store)
    assert got["meter_id"].tolist() == ["boiler", "boiler", "site-A"]
    np.testing.assert_allclose(got["temp_c"], [0.0, 10.0, 100.0])


def test_wide_star_uses_the_ts_alias_and_ignore(store, tmp_path: Path):
    p = tmp_path / "w.csv"
    p.write_text("timestamp,comment,m1,m2\n2025-01-06T00:00:00Z,hi,1.5,2.5\n")
    c = ingest_path(store, p, _mapping(tmp_path, '[wide]\nignore = ["comment"]\n'))
    assert c.stored == 2 and sorted(_stored(store)["meter_id"]) == ["m1", "m2"]


def test_wide_unknown_meter_column_lists_the_closest(store, tmp_path: Path):
    p = tmp_path / "w.csv"
    p.write_text("ts,REGION_01,REGION_02\n2025-01-06T00:00:00Z,1,2\n")
    with pytest.raises(IngestError, match=r"REGION_1.*closest: 'REGION_01'"):
        ingest_path(store, p, _mapping(tmp_path, '[wide]\nmeter_columns = ["REGION_1"]\n'))


@pytest.mark.parametrize("unit, value, col, want", [
    ("MW", "1.5", "p_kw", 1500.0), ("W", "1500", "p_kw", 1.5), ("kW", "2", "p_kw", 2.0),
    ("kV", "0.23", "v_l1_v", 230.0), ("kA", "0.005", "i_l1_a", 5.0), ("A", "5", "i_l1_a", 5.0),
    ("V", "230", "v_l1_v", 230.0), ("MWh", "2", "e_kwh", 2000.0), ("Wh", "500", "e_kwh", 0.5),
    ("kWh", "3", "e_kwh", 3.0), ("°F", "212", "temp_c", 100.0), ("degF", "32", "temp_c", 0.0)])
def test_units_per_column_convert_to_the_canonical_unit(store, tmp_path: Path, unit, value, col, want):
    p = tmp_path / "u.csv"
    p.write_text(f"meter_id,ts,{col}\nM1,2025-01-06T00:00:00Z,{value}\n")
    c = ingest_path(store, p, _mapping(tmp_path, f'[units]\n{col} = "{unit}"\n'))
    assert (c.stored, c.rejected) == (1, 0)
    assert _stored(store)[col].iloc[0] == pytest.approx(want)


def test_range_check_applies_after_conversion(store, tmp_path: Path):
    # 1,500 MW of regional load is 1.5e6 kW: with its unit declared it is not "outside ±1e6 kW".
    p = tmp_path / "r.csv"
    p.write_text("meter_id,ts,load_mw\nR1,2025-01-06T00:00:00Z,1500\nR1,2025-01-06T01:00:00Z,-2e9\n")
    c = ingest_path(store, p, _mapping(tmp_path, '[columns]\np_kw = "load_mw"\n[units]\np_kw = "MW"\n'))
    assert (c.stored, c.rejected) == (1, 1)
    assert _stored(store)["p_kw"].iloc[0] == 1.5e6
    assert c.rejects[0][2] == "p_kw" and "outside" in c.rejects[0][3]


def test_a_unit_of_the_wrong_quantity_is_a_mapping_error(tmp_path: Path):
    with pytest.raises(MappingError, match=r"'A' is a unit of current, not of power.*W, kW, MW"):
        _mapping(tmp_path, '[units]\np_kw = "A"\n')
    with pytest.raises(MappingError, match=r"unknown unit 'furlong'"):
        _mapping(tmp_path, '[units]\nv_l1_v = "furlong"\n')


def test_ranges_are_configurable_and_errors_say_how(store, tmp_path: Path):
    p = tmp_path / "r.csv"
    p.write_text("meter_id,ts,p_kw\nM1,2025-01-06T00:00:00Z,2e6\nM1,2025-01-06T01:00:00Z,6e6\n")
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (0, 2)
    assert "[ranges] p_kw = [low, high]" in c.rejects[0][3] and "[-1e+06, 1e+06]" in c.rejects[0][3]
    c = ingest_path(store, p, _mapping(tmp_path, "[ranges]\np_kw = [-5e6, 5e6]\n"))
    assert (c.stored, c.rejected) == (1, 1)
    assert "outside [-5e+06, 5e+06] kW" in c.rejects[0][3] and "set in [ranges]" in c.rejects[0][3]
    with pytest.raises(MappingError, match=r"\[ranges\] p_kw: low"):
        _mapping(tmp_path, "[ranges]\np_kw = [5, 1]\n")


def test_a_row_without_any_channel_value_is_a_reject(store, tmp_path: Path):
    p = tmp_path / "e.csv"
    p.write_text("meter_id,ts,p_kw,v_l1_v\nM1,2025-01-06T00:00:00Z,1,230\nM1,2025-01-06T01:00:00Z,,\n")
    c = ingest_path(store, p)
    assert (c.stored, c.rejected) == (1, 1)
    assert c.rejects[0][1] == 3 and c.rejects[0][3].startswith("no channel value")


def test_a_mapping_that_maps_no_channel_is_an_error_before_reading(store, tmp_path: Path):
    p = tmp_path / "n.csv"
    p.write_text("meter_id,ts,colour\nM1,2025-01-06T00:00:00Z,red\n")
    with pytest.raises(IngestError, match="maps no channel"):
        ingest_path(store, p)
    assert store.con.execute("SELECT count(*) FROM readings").fetchone()[0] == 0


def test_a_file_whose_rows_are_all_rejected_reports_stored_zero(store, tmp_path: Path):
    # The MW column of issue 13 mapped without its unit: every row is out of range.
    p = tmp_path / "a.csv"
    p.write_text("meter_id,ts,p_kw\nR1,2025-01-06T00:00:00Z,1500000000\nR1,2025-01-06T01:00:00Z,\n")
    c = ingest_path(store, p)
    assert c.stored == 0 and c.merged == 0 and c.rejected == 2


def test_a_decimal_comma_suggests_the_option(store, tmp_path: Path):
    p = tmp_path / "d.csv"
    p.write_text('meter_id,ts,p_kw\nM1,2025-01-06T00:00:00Z,"1234,5"\n')
    c = ingest_path(store, p)
    assert "'1234,5' is not a number" in c.rejects[0][3] and 'decimal = ","' in c.rejects[0][3]


def test_an_unknown_mapped_column_lists_the_valid_ones_closest_first(store, tmp_path: Path):
    p = tmp_path / "c.csv"
    p.write_text("Device,Zeit,ActivePowerKW,Voltage\nM1,2025-01-06T00:00:00Z,1,230\n")
    with pytest.raises(IngestError, match=r"\['ActivePowerKw'\].*closest: 'ActivePowerKW'.*columns: .*Device"):
        ingest_path(store, p, _mapping(tmp_path, '[columns]\nmeter_id = "Device"\nts = "Zeit"\np_kw = "ActivePowerKw"\n'))


# ------------------------------------------------------------------ several channels per meter, SQLite

WIDE_CHANNELS = """\
[wide]
ts = "time"
[wide.channels]
p_kw = "{meter}_P"
v_l1_v = "{meter}_V"
[units]
p_kw = "W"
"""


def _channels_frame() -> pd.DataFrame:
    ts = pd.date_range("2025-01-06", periods=4, freq="h", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    return pd.DataFrame({"time": ts,
                         "m1_P": [1000.0, 2000, np.nan, 4000], "m1_V": [230.0, 231, np.nan, 229],
                         "m2_P": [500.0, np.nan, 700, 800], "m2_V": ["230", "abc", "", "232"],
                         "m3_P": [100.0, 200, 300, 400]})  # m3 has no voltage column


def _write(df: pd.DataFrame, p: Path, fmt: str) -> None:
    import sqlite3

    if fmt == "csv":
        df.to_csv(p, index=False)
    elif fmt == "parquet":
        df.to_parquet(p)
    else:
        con = sqlite3.connect(p)
        df.to_sql("readings", con, index=False)
        con.execute("CREATE TABLE settings (key TEXT, value TEXT)")  # not telemetry: skipped with a note
        con.commit()
        con.close()


@pytest.mark.parametrize("fmt", ["csv", "parquet", "db"])
def test_wide_several_channels_per_meter_in_every_format(store, tmp_path: Path, fmt: str):
    p = tmp_path / f"w.{fmt}"
    _write(_channels_frame(), p, fmt)
    c = ingest_path(store, p, _mapping(tmp_path, WIDE_CHANNELS))
    # 3 meters x 4 lines = 12 cells groups; m1 at line 3 is all blank: no reading (not a reject);
    # m2's 'abc' voltage is a reject naming the line, the meter and the channel (its only value on
    # that line: no channel value is left, so the row is rejected whole).
    assert (c.stored, c.rejected) == (10, 1)
    _, line, fld, reason = c.rejects[0]
    assert line == (3 if fmt == "csv" else 2) and fld == "m2" and reason.startswith("m2: v_l1_v: 'abc' is not a number; ")
    assert reason.endswith("no channel value left (the row's other channels are blank)")
    got = _stored(store)
    assert sorted(got["meter_id"].unique()) == ["m1", "m2", "m3"]
    m1 = got[got["meter_id"] == "m1"]
    np.testing.assert_allclose(m1["p_kw"], [1.0, 2.0, 4.0])  # W -> kW
    np.testing.assert_allclose(m1["v_l1_v"], [230, 231, 229])
    m2 = got[got["meter_id"] == "m2"]
    assert m2["v_l1_v"].isna().tolist() == [False, True, False]  # a blank voltage: p_kw alone is stored
    assert got[got["meter_id"] == "m3"]["v_l1_v"].isna().all()  # a meter without a voltage column
    if fmt == "db":
        assert any("settings skipped" in n for n in c.notes)


def test_wide_channels_unknown_column_lists_the_patterns_and_the_matching_columns(store, tmp_path: Path):
    df = _channels_frame().assign(m1_Q=1.0)
    p = tmp_path / "w.csv"
    df.to_csv(p, index=False)
    with pytest.raises(IngestError, match=r"'m1_Q' match no \[wide.channels\] pattern \(p_kw = '\{meter\}_P', "
                                          r"v_l1_v = '\{meter\}_V'\).*ignore.*columns that match: m1_P, m1_V"):
        ingest_path(store, p, _mapping(tmp_path, WIDE_CHANNELS))
    c = ingest_path(store, p, _mapping(tmp_path, WIDE_CHANNELS.replace('ts = "time"', 'ts = "time"\nignore = ["m1_Q"]')))
    assert c.stored == 10
    # A list of meters names the {meter} parts; a meter without any column names the closest.
    listed = WIDE_CHANNELS.replace('ts = "time"', 'ts = "time"\nmeter_columns = ["m1", "m9"]')
    with pytest.raises(IngestError, match=r"meter 'm9' has no column.*closest"):
        ingest_path(store, p, _mapping(tmp_path, listed))


def test_wide_channels_renames_prefix_and_extra_channels(store, tmp_path: Path):
    p = tmp_path / "w.csv"
    p.write_text("time,A.kw,A.temp,B.kw\n2025-01-06T00:00:00Z,1.5,68,2\n")
    m = _mapping(tmp_path, '[wide]\nts = "time"\nmeter_prefix = "site-"\n[wide.meters]\nB = "boiler"\n'
                           '[wide.channels]\np_kw = "{meter}.kw"\ntemp_c = "{meter}.temp"\ncase_temp_c = "{meter}.case"\n'
                           '[units]\ntemp_c = "degF"\n')
    c = ingest_path(store, p, m)
    assert (c.stored, c.rejected) == (2, 0)
    got = _stored(store)
    assert got["meter_id"].tolist() == ["boiler", "site-A"]
    assert got["temp_c"].iloc[1] == pytest.approx(20.0)


def test_wide_channels_config_errors(tmp_path: Path):
    with pytest.raises(MappingError, match=r"one \{meter\}"):
        _mapping(tmp_path, '[wide.channels]\np_kw = "P"\n')
    with pytest.raises(MappingError, match="not a channel"):
        _mapping(tmp_path, '[wide.channels]\npower = "{meter}_P"\n')
    with pytest.raises(MappingError, match=r"\[units\]"):
        _mapping(tmp_path, '[wide]\nunit = "MW"\n[wide.channels]\np_kw = "{meter}_P"\n')


def test_wide_single_channel_from_sqlite(store, tmp_path: Path):
    import sqlite3

    df = _regions(n_hours=6, n_regions=3)
    p = tmp_path / "load.db"
    con = sqlite3.connect(p)
    df.to_sql("load", con, index=False)
    con.close()
    c = ingest_path(store, p, _mapping(tmp_path, WIDE_MW))
    assert (c.stored, c.rejected) == (18, 0)
    np.testing.assert_allclose(_stored(store).query("meter_id == 'REGION_00'")["p_kw"], df["REGION_00"] * 1000)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])   # melted by a DuckDB UNPIVOT, by pyarrow per column
def test_wide_channels_is_vectorised_on_a_large_export(tmp_path: Path, fmt: str):
    # 200 meters x 2 channels: 200 lines (40,000 readings) and 2,000 lines (400,000) from one file
    # run the same Python lines of wattwatch (14,518 or 22,126 each: per batch and per column,
    # never per line or cell; a loop over the lines would add at least 1,800). Its speed is
    # `wattwatch bench ingest --formats wide`'s figure.
    import wattwatch
    from tests.support.pylines import lines_run
    from wattwatch.store import Store

    mapping = _mapping(tmp_path, WIDE_CHANNELS.replace('p_kw = "W"', 'p_kw = "kW"'))
    rng = np.random.default_rng(1)
    k, lines = 200, {}
    for n in (200, 2000):
        data = {"time": pd.date_range("2025-01-06", periods=n, freq="min", tz="UTC")}
        for i in range(k):
            data[f"M{i}_P"] = rng.random(n)
            data[f"M{i}_V"] = 230 + rng.random(n)
        p = tmp_path / f"big-{n}.{fmt}"
        pd.DataFrame(data).to_parquet(p) if fmt == "parquet" else pd.DataFrame(data).to_csv(p, index=False)
        with Store(tmp_path / f"s-{n}.duckdb") as s:
            c, lines[n] = lines_run(lambda: ingest_path(s, p, mapping), wattwatch)
        assert c.stored == n * k and c.rejected == 0
    assert abs(lines[2000] - lines[200]) < 1800 / 2, lines
