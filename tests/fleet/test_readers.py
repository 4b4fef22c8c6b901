"""Fleet readers: the nested SCPS UrbanDataset and flat PODID JSON, units, time zones, rejects,
ordinary telemetry files, and Spark's JSON reader giving the same frame."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.fleet.fleetdata import write_urban
from wattwatch.errors import InputError
from wattwatch.fleet.readers import FLEET_COLUMNS, read_fleet, read_fleet_json


def urban(lines, defs=None, tz="UTC+1"):
    return {"UrbanDataset": {"specification": {"properties": {"propertyDefinition": defs or []}},
                             "context": {"timeZone": tz}, "values": {"line": lines}}}


def line(i, start, end, **props):
    return {"id": i, "period": {"start_ts": start, "end_ts": end},
            "property": [{"name": k, "val": v} for k, v in props.items()]}


@pytest.fixture
def nested(tmp_path):
    doc = urban([
        line(1, "2025-01-01T00:00:00", "2025-01-01T01:00:00", PODID="IT001", ElectricPanelID="QE7", TownCode="058091",
             Phase1ActivePower="840", Phase2ActivePower="500", Phase1ApparentPower="1.0", Phase2ApparentPower="0.6",
             Phase1Voltage="230.5", Line1Current="3.6", TotalActiveEnergy="1.34", TotalReactiveEnergy="0.2"),
        line(2, "2025-01-01T01:00:00", "2025-01-01T02:00:00", PODID="IT001", Phase1ActivePower="abc"),
        line(3, "2025-01-01T02:00:00", "2025-01-01T03:00:00", Phase1ActivePower="1"),
        line(4, "2025-01-01T03:00:00", "2025-01-01T02:00:00", PODID="IT001"),
        line(5, "2025-01-01T04:00:00Z", "2025-01-01T05:00:00Z", PODID="IT001", Phase1Voltage="-5"),
        line(6, "2025/01/01 05:00:00", None, PODID="IT002", Phase1ActivePower="2000", Phase1PowerFactor="0.9"),
    ], defs=[{"propertyName": f"Phase{k}ActivePower", "unitOfMeasure": "watt"} for k in (1, 2, 3)])
    path = tmp_path / "pell.json"
    path.write_text(json.dumps(doc))
    return path


def test_nested_layout_units_time_zone_and_mapping(nested):
    got = read_fleet_json(nested)
    f = got.frame
    assert list(f.columns) == list(FLEET_COLUMNS)
    assert list(f["meter_id"]) == ["IT001", "IT002"]
    a = f.iloc[0]
    assert a["ts"] == pd.Timestamp("2024-12-31 23:00", tz="UTC")  # local UTC+1 -> UTC
    assert a["ts_end"] == pd.Timestamp("2025-01-01 00:00", tz="UTC")
    assert (a["panel_id"], a["town"]) == ("QE7", "058091")
    assert a["p_l1_kw"] == pytest.approx(0.84) and a["p_l2_kw"] == pytest.approx(0.5)  # watts declared
    assert a["p_kw"] == pytest.approx(1.34)  # sum of the phases
    assert a["s_kva"] == pytest.approx(1.6) and a["pf"] == pytest.approx(1.34 / 1.6)
    assert (a["v_l1_v"], a["i_l1_a"]) == (230.5, 3.6)
    assert a["e_int_kwh"] == pytest.approx(1.34) and np.isnan(a["e_kwh"])
    assert a["q_int_kvarh"] == pytest.approx(0.2)
    b = f.iloc[1]
    assert b["ts"] == pd.Timestamp("2025-01-01 04:00", tz="UTC") and pd.isna(b["ts_end"])
    assert b["p_kw"] == pytest.approx(2.0) and b["pf"] == pytest.approx(0.9)  # no apparent power: the phase pf


def test_bad_records_are_rejected_with_file_record_and_field(nested):
    rej = {(r[1], r[2]): r[3] for r in read_fleet_json(nested).rejects}
    assert all(r[0] == str(nested) for r in read_fleet_json(nested).rejects)
    assert rej == {(2, "Phase1ActivePower"): "not a number", (3, "PODID"): "no POD id",
                   (4, "end_ts"): "end_ts not after start_ts", (5, "Phase1Voltage"): "outside the physical range [0, 50000]"}


def test_register_energy_and_unknown_units(tmp_path, nested):
    got = read_fleet_json(nested, energy="register")
    assert got.frame["e_kwh"].iloc[0] == pytest.approx(1.34) and got.frame["e_int_kwh"].isna().all()
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(urban([], defs=[{"propertyName": "Phase1ActivePower", "unitOfMeasure": "volt"}])))
    with pytest.raises(InputError, match=r"bad\.json: Phase1ActivePower: unitOfMeasure 'volt' is a unit of voltage"):
        read_fleet_json(bad)
    tzbad = tmp_path / "tz.json"
    tzbad.write_text(json.dumps(urban([], tz="Mars/Olympus")))
    with pytest.raises(InputError, match="tz.json.*timeZone"):
        read_fleet_json(tzbad)


def test_flat_records_and_json_lines(tmp_path):
    flat = tmp_path / "flat.json"
    flat.write_text(json.dumps([
        {"PODID": "A", "start_ts": "2025-01-01T00:00:00Z", "end_ts": "2025-01-01T00:15:00Z", "Phase1ActivePower": 1.5,
         "TotalActivePower": 9.0, "height": 7.5},
        {"PODID": "A", "start_ts": "2025-01-01T00:15:00Z", "TotalActivePower": 2.0}]))
    f = read_fleet([flat]).frame
    assert list(f["p_kw"]) == [1.5, 2.0]  # the phase sum wins; the total when no phase is given
    assert f["height_m"].iloc[0] == 7.5
    rows = pd.DataFrame({"meter_id": "B", "ts": pd.date_range("2025-01-01", periods=6, freq="h", tz="UTC"),
                         "p_l1_kw": np.arange(6.0)})
    jl = tmp_path / "docs.jsonl"
    write_urban(rows, jl, jsonl=True, lines_per_doc=4)
    g = read_fleet([jl]).frame
    assert len(g) == 6 and list(g["p_kw"]) == list(np.arange(6.0))
    assert (g["ts"] == rows["ts"]).all()


def test_ordinary_telemetry_files_keep_panel_and_town(tmp_path):
    csv = tmp_path / "meters.csv"
    pd.DataFrame({"meter_id": ["M1", "M1", "M2"], "ts": ["2025-01-01T00:00:00Z", "2025-01-01T01:00:00Z", "not a time"],
                  "p_kw": [1.0, 2.0, 3.0], "panel_id": ["QE1", "QE1", "QE2"], "town": ["T", "T", "T"]}).to_csv(csv, index=False)
    got = read_fleet([csv])
    assert list(got.frame["meter_id"]) == ["M1", "M1"] and list(got.frame["panel_id"]) == ["QE1", "QE1"]
    assert len(got.rejects) == 1 and got.rejects[0][0] == str(csv) and got.rejects[0][2] == "ts"
    with pytest.raises(InputError, match="nope.json: no such file"):
        read_fleet([tmp_path / "nope.json"])


def test_spark_reads_the_same_frame_and_rejects(spark, nested, tmp_path):
    from wattwatch.fleet.spark import read_fleet_spark

    sdf, rejects, _ = read_fleet_spark(spark, [str(nested)])
    got = sdf.toPandas().sort_values(["meter_id", "ts"]).reset_index(drop=True)
    for c in ("ts", "ts_end"):  # Spark hands timestamps back naive, in its session zone (UTC)
        got[c] = pd.to_datetime(got[c]).dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    want = read_fleet_json(nested).frame
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    norm = lambda rs: sorted((r[1], r[2], r[3]) for r in rs)  # noqa: E731
    assert norm(rejects) == norm(read_fleet_json(nested).rejects)
    assert all(r[0].endswith("pell.json") for r in rejects)


def _messy_canonical_csv(tmp_path):
    """A canonical CSV with the mistakes an export makes (adv45): a value that is not a number, an
    infinite and a negative interval energy, an interval that ends before it starts, a blank and a
    ``NaN`` (both missing, the rest of the reading kept), a column under a name the fleet does not
    read (``Power_W``)."""
    path = tmp_path / "canon.csv"
    path.write_text(
        "meter_id,ts,ts_end,p_kw,e_int_kwh,height_m,Power_W\n"
        "M1,2025-01-01T00:00:00Z,2025-01-01T01:00:00Z,1.0,1.0,5,7\n"        # 2: good
        "M1,2025-01-01T01:00:00Z,2025-01-01T02:00:00Z,abc,1.0,5,7\n"        # 3: p_kw not a number
        "M1,2025-01-01T02:00:00Z,2025-01-01T03:00:00Z,1.0,inf,5,7\n"        # 4: infinite energy
        "M1,2025-01-01T03:00:00Z,2025-01-01T04:00:00Z,1.0,-5000,5,7\n"      # 5: negative interval energy: kept
        "M1,2025-01-01T04:00:00Z,2025-01-01T03:30:00Z,1.0,1.0,5,7\n"        # 6: ends before it starts
        "M1,2025-01-01T05:00:00Z,2025-01-01T06:00:00Z,NaN,1.0,-inf,7\n"     # 7: height infinite
        "M1,2025-01-01T06:00:00Z,2025-01-01T07:00:00Z,NaN,1.0,,7\n"         # 8: p_kw NaN = missing, kept
        "M1,2025-01-01T07:00:00Z,2025-01-01T08:00:00Z,,1.0,5,7\n")          # 9: p_kw blank = missing, kept
    return path


# Line 5's negative interval energy is kept (rev45: a prosumer's net export; only a register is >= 0).
CANONICAL_REJECTS = [(3, "p_kw", "not a number"), (4, "e_int_kwh", "outside the physical range [-1e+12, 1e+12]"),
                     (6, "ts_end", "ts_end not after ts"), (7, "height_m", "outside the physical range [-inf, inf]")]


def test_canonical_csv_rejects_what_the_json_reader_rejects(tmp_path):
    """adv45: a canonical CSV took ``abc`` as a missing value, an infinite or negative interval
    energy as consumption and a reversed interval silently, where the JSON reader rejects each."""
    path = _messy_canonical_csv(tmp_path)
    got = read_fleet([path])
    assert sorted(r[1:] for r in got.rejects) == CANONICAL_REJECTS
    assert all(r[0] == str(path) for r in got.rejects)
    kept = got.frame.sort_values("ts").reset_index(drop=True)
    assert list(kept["ts"].dt.hour) == [0, 3, 6, 7]
    assert np.isnan(kept["p_kw"].iloc[2]) and np.isnan(kept["p_kw"].iloc[3])
    assert kept["e_int_kwh"].tolist() == [1.0, -5000.0, 1.0, 1.0]
    assert [n for n in got.notes if "Power_W" in n and str(path) in n and "not read" in n], got.notes


def test_spark_reads_a_messy_canonical_csv_as_pandas_does(spark, tmp_path):
    """adv45: Spark rejected a ``NaN`` value (NaN is above every number in Spark's ordering) that
    pandas keeps as missing, so the reading's hour was covered by the reading before on Spark and
    uncovered on pandas: different energies for the same file."""
    from wattwatch.fleet.spark import read_fleet_spark

    path = _messy_canonical_csv(tmp_path)
    sdf, rejects, notes = read_fleet_spark(spark, [str(path)])
    assert sorted((r[2], r[3]) for r in rejects) == sorted(r[1:] for r in CANONICAL_REJECTS)
    assert [n for n in notes if "Power_W" in n and "canon.csv" in n and "not read" in n], notes
    got = sdf.toPandas().sort_values(["meter_id", "ts"]).reset_index(drop=True)
    for c in ("ts", "ts_end"):
        got[c] = pd.to_datetime(got[c]).dt.tz_localize("UTC").astype("datetime64[us, UTC]")
    for c in ("meter_id", "panel_id", "town"):
        got[c] = got[c].astype("string")
    want = read_fleet([path]).frame.sort_values(["meter_id", "ts"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_dtype=False)
    # The JSON readers: a "NaN" string was "not a number" on pandas and "outside the physical range"
    # on Spark (the same reject, two reasons).
    doc = tmp_path / "nan.json"
    doc.write_text(json.dumps(urban([line(1, "2025-01-01T00:00:00", "2025-01-01T01:00:00", PODID="IT001",
                                          Phase1ActivePower="NaN"),
                                     line(2, "2025-01-01T01:00:00", "2025-01-01T02:00:00", PODID="IT001",
                                          Phase1ActivePower="1")])))
    _, rejects, _ = read_fleet_spark(spark, [str(doc)])
    assert [r[1:] for r in rejects] == [r[1:] for r in read_fleet_json(doc).rejects] == [(1, "Phase1ActivePower", "not a number")]


def _symbol_units_doc(tmp_path):
    doc = urban([line(1, "2025-01-01T00:00:00", "2025-01-01T01:00:00", PODID="IT001", Phase1ActivePower="840",
                      Phase2ActivePower="0.5", TotalActiveEnergy="1340", Line1Current="3600", Phase1Voltage="0.23")],
                defs=[{"propertyName": "Phase1ActivePower", "unitOfMeasure": "W"},
                      {"propertyName": "Phase2ActivePower", "unitOfMeasure": "KW"},
                      {"propertyName": "TotalActiveEnergy", "unitOfMeasure": "Wh"},
                      {"propertyName": "Line1Current", "unitOfMeasure": "mA"},
                      {"propertyName": "Phase1Voltage", "unitOfMeasure": "kV"}])
    path = tmp_path / "sym.json"
    path.write_text(json.dumps(doc))
    return path


def test_unit_symbols_are_read_as_their_names(tmp_path):
    """adv45: a document declaring ``W``, ``kW``, ``Wh`` (the symbols exports use) instead of the SCPS
    names ``watt``, ``kilowatt``, ``wattHour`` failed the whole run (unknown unitOfMeasure). Symbols
    are read case-sensitively where case is the prefix (``mA`` milli, ``MW`` mega), any case otherwise."""
    got = read_fleet_json(_symbol_units_doc(tmp_path)).frame.iloc[0]
    assert got["p_l1_kw"] == pytest.approx(0.84) and got["p_l2_kw"] == pytest.approx(0.5)
    assert got["e_int_kwh"] == pytest.approx(1.34) and got["i_l1_a"] == pytest.approx(3.6)
    assert got["v_l1_v"] == pytest.approx(230.0)
    bad = tmp_path / "mw.json"
    bad.write_text(json.dumps(urban([], defs=[{"propertyName": "Phase1ActivePower", "unitOfMeasure": "mw"}])))
    with pytest.raises(InputError, match=r"mw\.json: Phase1ActivePower: unknown unitOfMeasure 'mw'"):
        read_fleet_json(bad)


def test_spark_reads_unit_symbols_as_pandas_does(spark, tmp_path):
    from wattwatch.fleet.spark import read_fleet_spark

    path = _symbol_units_doc(tmp_path)
    sdf, _, _ = read_fleet_spark(spark, [str(path)])
    got = sdf.toPandas().iloc[0]
    want = read_fleet_json(path).frame.iloc[0]
    for c in ("p_l1_kw", "p_l2_kw", "p_kw", "e_int_kwh", "i_l1_a", "v_l1_v"):
        assert got[c] == pytest.approx(want[c]), c


def _two_hours(tmp_path, pod: str, column: str, field: str, power: tuple, values: tuple):
    """A POD's two hours with ``values`` of one signed interval quantity: as a canonical CSV (its
    ``column``) and as the nested JSON (its ``field``), with ``power`` as the active power."""
    hours = [("2025-06-01T10:00:00Z", "2025-06-01T11:00:00Z"), ("2025-06-01T11:00:00Z", "2025-06-01T12:00:00Z")]
    csv = tmp_path / f"{pod}.csv"
    csv.write_text(f"meter_id,ts,ts_end,p_kw,{column}\n"
                   + "".join(f"{pod},{a},{b},{p},{v}\n" for (a, b), p, v in zip(hours, power, values)))
    doc = tmp_path / f"{pod}.json"
    doc.write_text(json.dumps(urban([line(k + 1, a, b, PODID=pod, TotalActivePower=str(p), **{field: str(v)})
                                     for k, ((a, b), p, v) in enumerate(zip(hours, power, values))])))
    return csv, doc


def _net_export_inputs(tmp_path):
    """A prosumer POD's two hours, the second exporting (rev45): as a canonical CSV with its interval
    energy, and as the nested JSON (``TotalActiveEnergy`` of the interval)."""
    return _two_hours(tmp_path, "N1", "e_int_kwh", "TotalActiveEnergy", (1.5, -2.0), (1.5, -2.0))


def test_a_net_export_interval_is_kept_as_its_power_is(tmp_path):
    """rev45: adv45 gave a canonical ``e_int_kwh`` the cumulative register's range [0, 1e12] (as the
    JSON reader gave ``TotalActiveEnergy``), so the hour a prosumer exports (``p_kw`` -2, its energy
    -2 kWh) was a reject, its power with it, while the same hour without the energy column was kept
    (``p_kw`` is negative while exporting). An interval's energy is signed; a register is not."""
    csv, doc = _net_export_inputs(tmp_path)
    for got in (read_fleet([csv]), read_fleet_json(doc)):
        assert got.rejects == []
        assert got.frame.sort_values("ts")["e_int_kwh"].tolist() == [1.5, -2.0]
        assert got.frame.sort_values("ts")["p_kw"].tolist() == [1.5, -2.0]
    reg = read_fleet_json(doc, energy="register")  # a cumulative register cannot go below zero
    assert [r[1:] for r in reg.rejects] == [(2, "TotalActiveEnergy", "outside the physical range [0, 1e+12]")]


def _capacitive_inputs(tmp_path):
    """A POD's two hours, the second capacitive (its reactive energy negative, as a signed reactive
    register's interval is while the load leads): a canonical CSV and the nested JSON."""
    return _two_hours(tmp_path, "C1", "q_int_kvarh", "TotalReactiveEnergy", (1.5, 1.2), (0.4, -0.3))


def test_a_capacitive_reactive_interval_is_kept(tmp_path):
    """rev45's finding: ``q_int_kvarh`` (an interval's reactive energy) had the register's range
    [0, 1e12], so a capacitive hour was a reject, its active power with it; an interval's reactive
    energy is signed as ``q_kvar`` is."""
    csv, doc = _capacitive_inputs(tmp_path)
    for got in (read_fleet([csv]), read_fleet_json(doc)):
        assert got.rejects == []
        assert got.frame.sort_values("ts")["q_int_kvarh"].tolist() == [0.4, -0.3]
        assert got.frame.sort_values("ts")["p_kw"].tolist() == [1.5, 1.2]


@pytest.fixture(scope="module")
def capacitive_on_spark(spark, tmp_path_factory):
    """The capacitive hours' nested JSON read once by Spark for the two tests that check that read
    (its readings here, its job count in the sp1 test): the read, its jobs, its readings."""
    from wattwatch.fleet.spark import read_fleet_spark

    csv, doc = _capacitive_inputs(tmp_path_factory.mktemp("capacitive"))
    (sdf, rejects, _), jobs = _jobs(spark, "sp1-jobs-capacitive", lambda: read_fleet_spark(spark, [str(doc)]))
    return {"csv": csv, "doc": doc, "rejects": rejects, "jobs": jobs, "frame": sdf.toPandas()}


def test_spark_keeps_a_capacitive_reactive_interval_as_pandas_does(spark, capacitive_on_spark):
    from wattwatch.fleet.spark import read_fleet_spark

    csv, doc = capacitive_on_spark["csv"], capacitive_on_spark["doc"]
    sdf, rejects, _ = read_fleet_spark(spark, [str(csv)])
    for path, rejects, got in ((csv, rejects, sdf.toPandas()),
                               (doc, capacitive_on_spark["rejects"], capacitive_on_spark["frame"])):
        assert rejects == [], path
        assert got.sort_values("ts")["q_int_kvarh"].tolist() == [0.4, -0.3], path


def test_spark_keeps_a_net_export_interval_as_pandas_does(spark, tmp_path):
    from wattwatch.fleet.spark import read_fleet_spark

    csv, doc = _net_export_inputs(tmp_path)
    for path in (csv, doc):
        sdf, rejects, _ = read_fleet_spark(spark, [str(path)])
        assert rejects == [], path
        got = sdf.toPandas().sort_values("ts")
        assert got["e_int_kwh"].tolist() == [1.5, -2.0] and got["p_kw"].tolist() == [1.5, -2.0], path
    _, rejects, _ = read_fleet_spark(spark, [str(doc)], energy="register")
    assert [r[1:] for r in rejects] == [r[1:] for r in read_fleet_json(doc, energy="register").rejects]


def test_spark_calls_what_pandas_cannot_read_not_a_number(spark, tmp_path):
    """rev45: Spark casts text with Java's parser, which reads ``1d`` and ``2.5f`` (Java's double and
    float suffixes) as 1.0 and 2.5 and ``+NaN`` as NaN; pandas calls the first two "not a number", and
    the canonical reader keeps only a blank or ``NaN`` as missing. On Spark those readings were kept
    (the ``1d`` one with a value) where pandas rejects them."""
    from wattwatch.fleet.spark import read_fleet_spark

    csv = tmp_path / "odd.csv"
    csv.write_text("meter_id,ts,p_kw\n"
                   "A,2025-01-01T00:00:00Z,1.5\n"
                   "A,2025-01-01T01:00:00Z,1d\n"
                   "A,2025-01-01T02:00:00Z,2.5f\n"
                   "A,2025-01-01T03:00:00Z,+NaN\n"
                   "A,2025-01-01T04:00:00Z,-inf\n"
                   "A,2025-01-01T05:00:00Z,nan\n"
                   "A,2025-01-01T06:00:00Z,+.5e1\n")
    want = read_fleet([csv])
    assert sorted(r[1:] for r in want.rejects) == [(3, "p_kw", "not a number"), (4, "p_kw", "not a number"),
                                                   (5, "p_kw", "not a number"),
                                                   (6, "p_kw", "outside the physical range [-1e+06, 1e+06]")]
    sdf, rejects, _ = read_fleet_spark(spark, [str(csv)])
    assert sorted((r[2], r[3]) for r in rejects) == sorted(r[2:] for r in want.rejects)
    got = sdf.toPandas().sort_values("ts")
    assert got["p_kw"].tolist()[::2] == [1.5, 5.0] and np.isnan(got["p_kw"].iloc[1]) and len(got) == 3
    doc = tmp_path / "odd.json"
    doc.write_text(json.dumps(urban([line(1, "2025-01-01T00:00:00", "2025-01-01T01:00:00", PODID="A",
                                          Phase1ActivePower="1d"),
                                     line(2, "2025-01-01T01:00:00", "2025-01-01T02:00:00", PODID="A",
                                          Phase1ActivePower="1")])))
    _, rejects, _ = read_fleet_spark(spark, [str(doc)])
    assert [r[1:] for r in rejects] == [r[1:] for r in read_fleet_json(doc).rejects] == [(1, "Phase1ActivePower", "not a number")]


# ---------------------------------------------------------------------------- ops52: the file's line

def _lined_csv(tmp_path):
    """A canonical CSV whose records are not one per line after the header: a blank and a
    whitespace-only line (pandas and Spark skip both), Windows line ends on some lines, and a quoted
    town spanning two lines. Each reject's real line is written beside it."""
    path = tmp_path / "lined.csv"
    path.write_bytes(
        b"meter_id,ts,p_kw,town\n"                                  # 1
        b"M1,2025-01-01T00:00:00Z,1.0,T\n"                          # 2: good
        b"\n"                                                       # 3: blank
        b"   \r\n"                                                  # 4: spaces only
        b"M1,2025-01-01T01:00:00Z,abc,T\r\n"                        # 5: not a number
        b'M1,2025-01-01T02:00:00Z,2.0,"Two\nlines"\n'               # 6-7: good, a town on two lines
        b"M1,2025-01-01T03:00:00Z,zz,T\n"                           # 8: not a number
        b'M1,2025-01-01T04:00:00Z,yy,"a ""b"" c"\n'                 # 9: not a number (quotes doubled)
        b"M1,not a time,1.0,T\n")                                   # 10: unreadable time
    return path


LINED_REJECTS = [(5, "p_kw", "not a number"), (8, "p_kw", "not a number"), (9, "p_kw", "not a number"),
                 (10, "ts", "missing or unreadable timestamp")]


def test_csv_rejects_name_the_files_line(tmp_path):
    """ops52: the pandas engine numbered a reject by its row (+1 for the header): after a blank line or
    a quoted field over two lines the number was not the line a user opens the file at."""
    path = _lined_csv(tmp_path)
    got = read_fleet([path])
    assert sorted(r[1:] for r in got.rejects) == LINED_REJECTS
    assert got.frame["town"].tolist() == ["T", "Two\nlines"]


@pytest.fixture(scope="module")
def lined_on_spark(spark, tmp_path_factory):
    """``lined.csv`` read once by Spark for the two tests that check that read (its lines and
    readings here, its job counts in the sp2 test): the read's rejects and jobs, one action's
    readings and jobs."""
    from wattwatch.fleet.spark import read_fleet_spark

    path = _lined_csv(tmp_path_factory.mktemp("lined"))
    (sdf, rejects, _), jobs = _jobs(spark, "sp2-lined", lambda: read_fleet_spark(spark, [str(path)]))
    got, after = _jobs(spark, "sp2-lined-after", sdf.toPandas)
    return {"paths": [path], "rejects": rejects, "jobs": jobs, "frame": got, "after": after}


def test_spark_names_the_same_csv_lines_as_pandas(lined_on_spark):
    """adv45/rev45 Left: Spark's rejects of a CSV carried line -1; and Spark read the quoted two-line
    town as two broken records (one of them a reject pandas does not have)."""
    path, = lined_on_spark["paths"]
    rejects = lined_on_spark["rejects"]
    assert sorted(r[1:] for r in rejects) == sorted(r[1:] for r in read_fleet([path]).rejects) == LINED_REJECTS
    got = lined_on_spark["frame"].sort_values("ts")
    assert got["town"].tolist() == ["T", "Two\nlines"] and got["p_kw"].tolist() == [1.0, 2.0]


def test_spark_keeps_the_rows_after_a_quote_that_opens_no_quoted_field(spark, tmp_path):
    """rev52: ops52 joined lines while the quotes before them were odd, so one double quote inside an
    unquoted field (``5" pipe``, a literal to pandas and to Spark's parser) glued every later line of the
    file into one record: 2 readings of 30 came out, and the reject at line 32 was gone, without a
    word (before ops52 Spark read all 30). A quoted field opens only at a field's start (pandas' rule),
    and a quoted field that never closes fails the input on both engines (spk60)."""
    from wattwatch.fleet.spark import read_fleet_spark

    def row(i, p="1.0", town="T"):
        return f"M1,2025-01-01T00:{i:02d}:00Z,{p},{town}\n"

    stray = tmp_path / "stray.csv"
    stray.write_text("meter_id,ts,p_kw,town\n" + row(0) + row(1, town='5" pipe') + "".join(row(i) for i in range(2, 30))
                     + row(30, p="zz") + row(31, town='"x\ny"') + row(32, p="yy"))
    want = [(32, "p_kw", "not a number"), (35, "p_kw", "not a number")]
    assert len(read_fleet([stray]).frame) == 31
    sdf, rejects, _ = read_fleet_spark(spark, [str(stray)])
    got = sdf.toPandas()
    assert len(got) == 31 and sorted(r[1:] for r in rejects) == want
    assert sorted(set(got["town"])) == ['5" pipe', "T", "x\ny"]
    unclosed = tmp_path / "unclosed.csv"
    unclosed.write_text("meter_id,ts,p_kw,town\n" + row(0) + row(1, p="q") + row(2, town='"open') + row(3) + row(4, p="zz"))
    # spk60: a quoted field that never closes fails the input on both engines (pandas refused it,
    # "EOF inside string"; Spark read its lines as records), naming the line its record starts on.
    for read in (lambda: read_fleet([unclosed]), lambda: read_fleet_spark(spark, [str(unclosed)])):
        with pytest.raises(InputError, match="line 4 runs to the end"):
            read()


def test_spark_numbers_lines_across_the_splits_of_a_file(spark, tmp_path):
    """A file Spark reads in several splits (here 2 KB each) is numbered on from split to split;
    the rejects sit past the first split, and in a second file read in the same job."""
    from wattwatch.fleet.spark import read_fleet_spark

    def write(name, bad_every):
        rows = ["meter_id,ts,p_kw"]
        for i in range(400):
            rows.append(f"M{i % 7},2025-01-01T00:00:00Z,{'bad' if i % bad_every == 5 else i}")
        p = tmp_path / name
        p.write_text("\n".join(rows) + "\n")
        return p

    a, b = write("a.csv", 97), write("b.csv", 53)
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")
    try:
        _, rejects, _ = read_fleet_spark(spark, [str(a), str(b)])
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)
    want = read_fleet([a, b]).rejects
    assert [r[1] for r in want if r[0] == str(a)] == [7, 104, 201, 298, 395]  # row i is line i + 2
    assert sorted((r[0].rsplit("/", 1)[-1], r[1]) for r in rejects) == sorted((r[0].rsplit("/", 1)[-1], r[1]) for r in want)


def test_spark_keeps_every_row_when_the_splits_change_before_the_frame_is_used(spark, tmp_path):
    """rev52: the line numbers are joined to the rows by (file, split start) found in a first job; the
    frame is lazy, and a later job that splits the files otherwise (another split size, or on a cluster
    another core count: Spark sizes splits by the cores) found no shift for most rows and the inner
    join dropped them: 2,969 readings became 196 without a word. Rows are kept whatever the splits;
    the rejects, collected at the read, keep their lines."""
    from wattwatch.fleet.spark import read_fleet_spark

    def write(name, town):
        rows = ["meter_id,ts,p_kw,town"]
        for i in range(400):
            rows.append(f"M{i % 7},2025-01-01T{i // 60:02d}:{i % 60:02d}:00Z,{'bad' if i % 97 == 5 else i},"
                        + (town if i % 50 == 3 else "T"))
        p = tmp_path / name
        p.write_text("\n".join(rows) + "\n")
        return p

    plain, quoted = write("plain.csv", "T"), write("quoted.csv", '"two\nlines"')
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    try:
        for path in (plain, quoted):
            spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")
            sdf, rejects, _ = read_fleet_spark(spark, [str(path)])
            n = sdf.count()
            assert n == 395 and sorted(r[1] for r in rejects) == sorted(r[1] for r in read_fleet([path]).rejects)
            spark.conf.set("spark.sql.files.maxPartitionBytes", "3000")
            assert sdf.count() == n
            assert sorted(sdf.toPandas()["p_kw"]) == sorted(read_fleet([path]).frame["p_kw"])
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)


def test_spark_names_the_same_parquet_rows_as_pandas(spark, tmp_path):
    from wattwatch.fleet.spark import read_fleet_spark

    path = tmp_path / "rows.parquet"
    pd.DataFrame({"meter_id": ["A", "A", "", "A"], "ts": pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC"),
                  "p_kw": [1.0, 2e9, 1.0, -np.inf]}).to_parquet(path)
    want = read_fleet([path]).rejects
    assert [r[1] for r in want] == [2, 3, 4]
    _, rejects, _ = read_fleet_spark(spark, [str(path)])
    assert sorted(r[1:] for r in rejects) == sorted(r[1:] for r in want)


def test_spark_names_the_same_json_lines_as_pandas(spark, tmp_path):
    """Flat records in JSON Lines (with a blank line and a line that is not JSON), flat records in a
    JSON array (the record's position), and UrbanDataset documents one per line (the document's line)."""
    from wattwatch.fleet.spark import read_fleet_spark

    rec = lambda t, v: json.dumps({"PODID": "A", "start_ts": f"2025-01-01T0{t}:00:00Z", "TotalActivePower": v})  # noqa: E731
    flat = tmp_path / "flat.jsonl"
    flat.write_text("\n".join([rec(0, 1.0), "", rec(1, "abc"), "{not json", rec(2, 2.0), rec(3, "x")]) + "\n")
    arr = tmp_path / "arr.json"
    arr.write_text(json.dumps([json.loads(rec(0, 1.0)), json.loads(rec(1, "abc")), json.loads(rec(2, 2.0))]))
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps(urban([line(1, f"2025-01-01T0{h}:00:00", f"2025-01-01T0{h + 1}:00:00",
                                                     PODID="B", Phase1ActivePower=v)]))
                              for h, v in ((0, "1"), (1, "2"), (2, "abc"), (3, "4"))) + "\n")
    for path, lines in ((flat, [3, 4, 6]), (arr, [2]), (docs, [3])):
        want = read_fleet([path]).rejects
        assert sorted(r[1] for r in want) == lines, (path, want)
        _, rejects, _ = read_fleet_spark(spark, [str(path)])
        assert sorted(r[1] for r in rejects) == lines, (path, rejects)
        # pandas says why a line is not JSON ("not valid JSON: Expecting ..."), Spark only that it is not
        assert sorted((r[2], r[3].split(":")[0]) for r in rejects) == sorted((r[2], r[3].split(":")[0]) for r in want)


def test_the_unread_columns_note_is_the_same_on_both_engines(spark, tmp_path, monkeypatch):
    """rev45 Left: pandas named each file as given (one note each), Spark a group of resolved absolute
    paths ("and N more"): the same columns in other words. Now one note per set of unread columns,
    the files as given, the first three and how many more, on both engines."""
    from wattwatch.fleet.spark import read_fleet_spark

    folder = tmp_path / "exports"
    folder.mkdir()
    for k in range(5):
        pd.DataFrame({"meter_id": ["A"], "ts": ["2025-01-01T00:00:00Z"], "p_kw": [1.0], "Power_W": [5]}).to_csv(
            folder / f"m{k}.csv", index=False)
    pd.DataFrame({"meter_id": ["B"], "ts": pd.to_datetime(["2025-01-01"], utc=True), "kvar": [1.0]}).to_parquet(
        tmp_path / "b.parquet")
    monkeypatch.chdir(tmp_path)
    want = [n for n in read_fleet(["exports", "b.parquet"]).notes if "not read" in n]
    assert [n.split(": column(s)")[0] for n in want] == ["exports/m0.csv, exports/m1.csv, exports/m2.csv and 2 more",
                                                          "b.parquet"]
    _, _, notes = read_fleet_spark(spark, ["exports", "b.parquet"])
    assert [n for n in notes if "not read" in n] == want


def test_a_row_with_a_field_too_many_is_read_as_spark_reads_it(spark, tmp_path):
    """ops52: a data row with one field more than the header made pandas take the first column as
    the index (every column shifted one to the left): all three readings rejected as "missing or
    unreadable timestamp", where Spark drops the extra field and reads them. Now pandas drops it too
    (and a row a field short has that value missing, on both engines)."""
    from wattwatch.fleet.spark import read_fleet_spark

    path = tmp_path / "extra.csv"
    path.write_text("meter_id,ts,p_kw\nA,2025-01-01T00:00:00Z,1.0,extra\nA,2025-01-01T01:00:00Z\n"
                    "A,2025-01-01T02:00:00Z,2.0\n")
    got = read_fleet([path])
    assert got.rejects == [] and got.frame["p_kw"].tolist()[::2] == [1.0, 2.0] and len(got.frame) == 3
    sdf, rejects, _ = read_fleet_spark(spark, [str(path)])
    assert rejects == [] and sorted(sdf.toPandas()["p_kw"].fillna(-1).tolist()) == [-1.0, 1.0, 2.0]


# ------------------------------------------ spk53: Spark's own readers first, lines numbered only where needed

def _readings(frame):
    """A fleet frame's readings as sorted (meter, UTC time, p_kw, town) rows, pandas' or Spark's."""
    ts = pd.to_datetime(frame["ts"])
    ts = ts.dt.tz_localize("UTC") if ts.dt.tz is None else ts.dt.tz_convert("UTC")
    p = frame["p_kw"].astype(float).fillna(-1.0)
    town = frame["town"].astype(object).where(frame["town"].notna(), None)
    return sorted(zip(frame["meter_id"].astype(str), ts.dt.strftime("%Y-%m-%dT%H:%M:%S"), p, town),
                  key=lambda r: (r[0], r[1], r[2], str(r[3])))


def _spy(monkeypatch, name):
    """Record the files each call of ``wattwatch.fleet.spark.<name>`` (the numbered-text readers) reads."""
    import wattwatch.fleet.spark as sp

    seen, real = [], getattr(sp, name)

    def spy(spark, ps, *args):
        seen.extend(str(p).rsplit("/", 1)[-1] for p in ps)
        return real(spark, ps, *args)

    monkeypatch.setattr(sp, name, spy)
    return seen


def _csv_rows(n, bad=(), town=None):
    """A canonical CSV of ``n`` readings of three meters; row i (line i + 2) has p_kw ``zz`` when i is in
    ``bad`` and the town ``town[i]`` when given."""
    town = town or {}
    return "meter_id,ts,p_kw,town\n" + "".join(
        f"M{i % 3},2025-01-{1 + i // 72:02d}T{(i // 3) % 24:02d}:00:00Z,{'zz' if i in bad else i / 4},{town.get(i, 'T')}\n"
        for i in range(n))


def test_spark_reads_a_clean_csv_without_numbering_a_line(spark, tmp_path, monkeypatch):
    """spk53: a CSV with no reject and no quoting to mend is read by Spark's CSV reader alone (ops52
    read every CSV as numbered text: a third slower); every reading is there, the same as pandas'."""
    from wattwatch.fleet.spark import read_fleet_spark

    path = tmp_path / "clean.csv"
    path.write_text(_csv_rows(300, town={7: '"quoted, with a comma"'}))
    numbered = _spy(monkeypatch, "_csv_lines")
    sdf, rejects, _ = read_fleet_spark(spark, [str(path)])
    want = read_fleet([path])
    assert numbered == [] and rejects == [] == want.rejects
    got = _readings(sdf.toPandas())
    assert len(got) == 300 and got == _readings(want.frame)
    assert ("M1", "2025-01-01T02:00:00", 1.75, "quoted, with a comma") in got


@pytest.fixture(scope="module")
def four_csv_on_spark(spark, tmp_path_factory):
    """Four CSV files (clean, a bad line, a quoted line end with a bad line, a stray quote) read
    together once by Spark for the two tests that check that read (which files are numbered, lines
    and readings in the spk53 test; job counts in the sp2 test): the files ``_csv_lines`` numbered,
    the read's rejects and jobs, one action's readings and jobs."""
    from wattwatch.fleet.spark import read_fleet_spark

    folder = tmp_path_factory.mktemp("four")
    files = {"clean.csv": _csv_rows(200), "bad.csv": _csv_rows(200, bad={120}),
             "quoted.csv": _csv_rows(200, bad={150}, town={40: '"two\nlines"'}),
             "stray.csv": _csv_rows(200, town={60: '5" pipe'})}
    for name, text in files.items():
        (folder / name).write_text(text)
    paths = [folder / n for n in files]
    with pytest.MonkeyPatch.context() as mp:
        numbered = _spy(mp, "_csv_lines")
        (sdf, rejects, _), jobs = _jobs(spark, "sp2-four", lambda: read_fleet_spark(spark, [str(p) for p in paths]))
    got, after = _jobs(spark, "sp2-four-after", sdf.toPandas)
    return {"paths": paths, "numbered": numbered, "rejects": rejects, "jobs": jobs, "frame": got, "after": after}


def test_spark_numbers_only_the_csv_files_that_need_it(four_csv_on_spark):
    """spk53: of four files read together, only the one with a bad line (for its reject's line) and the
    ones whose lines are not records when read alone (a quoted line end, a stray quote) are read as
    numbered text; the clean one is not. Readings and reject lines equal pandas' in every file."""
    paths, numbered, rejects = (four_csv_on_spark[k] for k in ("paths", "numbered", "rejects"))
    assert "clean.csv" not in numbered and {"bad.csv", "quoted.csv", "stray.csv"} <= set(numbered)
    want = read_fleet(paths)
    name = lambda rs: sorted((str(r[0]).rsplit("/", 1)[-1], r[1], r[2], r[3]) for r in rs)  # noqa: E731
    # row 120 is line 122; in quoted.csv row 150 is line 153 (row 40's town takes two lines)
    assert name(rejects) == name(want.rejects) == [("bad.csv", 122, "p_kw", "not a number"),
                                                   ("quoted.csv", 153, "p_kw", "not a number")]
    got = _readings(four_csv_on_spark["frame"])
    assert len(got) == 798 and got == _readings(want.frame)
    assert sum(r[3] == "two\nlines" for r in got) == 1 and sum(r[3] == '5" pipe' for r in got) == 1


def test_spark_keeps_the_readers_readings_of_a_csv_with_one_bad_line(spark, tmp_path, monkeypatch):
    """spk53: a file with one bad line keeps Spark's CSV reader's readings (numbered text only for the
    reject's line): the frame is the same whatever splits a later job makes, and the one reject names
    its line, past the first of many small splits."""
    from wattwatch.fleet.spark import read_fleet_spark

    path = tmp_path / "bad.csv"
    path.write_text(_csv_rows(1500, bad={1234}))
    want = read_fleet([path])
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    try:
        spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")
        sdf, rejects, _ = read_fleet_spark(spark, [str(path)])
        assert [r[1:] for r in rejects] == [r[1:] for r in want.rejects] == [(1236, "p_kw", "not a number")]
        first = _readings(sdf.toPandas())
        spark.conf.set("spark.sql.files.maxPartitionBytes", "5000")
        assert _readings(sdf.toPandas()) == first == _readings(want.frame) and len(first) == 1499
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)


def test_spark_numbers_a_quoted_line_end_the_line_reader_cannot_see(spark, tmp_path):
    """spk53: a quoted last field whose second line reads, alone, as a whole record with no quote left in
    it (``"x`` then ``M2,later,"``): no field count and no value gives it away, but the reader's reject
    count differs from the numbered text's, so the file's readings are the numbered text's, as pandas'."""
    from wattwatch.fleet.spark import read_fleet_spark

    path = tmp_path / "hidden.csv"
    path.write_text("meter_id,ts,town\nM1,2025-01-01T00:00:00Z,\"x\nM2,later,\"\nM1,2025-01-01T01:00:00Z,T\n"
                    "M1,soon,T\n")
    want = read_fleet([path])
    assert [r[1] for r in want.rejects] == [5] and want.frame["town"].tolist() == ["x\nM2,later,", "T"]
    sdf, rejects, _ = read_fleet_spark(spark, [str(path)])
    assert [r[1:] for r in rejects] == [r[1:] for r in want.rejects]
    got = sdf.toPandas().sort_values("ts")
    assert got["town"].tolist() == ["x\nM2,later,", "T"]
    # With no reject at all: the closing quote is left in a value of the line read alone (``y"``).
    tail = tmp_path / "tail.csv"
    tail.write_text('meter_id,ts,town\nM1,2025-01-01T00:00:00Z,"x\nM2,2025-01-01T05:00:00Z,y"\n')
    assert read_fleet([tail]).frame["town"].tolist() == ["x\nM2,2025-01-01T05:00:00Z,y"]
    sdf, rejects, _ = read_fleet_spark(spark, [str(tail)])
    assert rejects == [] and sdf.toPandas()["town"].tolist() == ["x\nM2,2025-01-01T05:00:00Z,y"]


def test_spark_numbers_only_the_json_lines_files_with_rejects(spark, tmp_path, monkeypatch):
    """spk53: JSON Lines are read by Spark's JSON reader; only a file with a reject is read again as
    numbered text, for the lines (the readings stay the reader's). An input with a line that is not
    JSON is read as numbered text whole. Lines and readings equal pandas'."""
    from wattwatch.fleet.spark import read_fleet_spark

    rec = lambda t, v: json.dumps({"PODID": "A", "start_ts": f"2025-01-01T{t:02d}:00:00Z", "TotalActivePower": v})  # noqa: E731
    clean, bad, broken = tmp_path / "clean.jsonl", tmp_path / "bad.jsonl", tmp_path / "broken.jsonl"
    clean.write_text("\n".join(rec(t, t * 1000) for t in range(12)) + "\n")
    bad.write_text("\n".join([rec(12, 1.0), "", rec(13, 2.0), rec(14, "abc"), rec(15, 3.0)]) + "\n")
    broken.write_text("\n".join([rec(16, 1.0), "{not json", rec(17, "x"), rec(18, 4.0)]) + "\n")
    for group, lines in (([clean, bad], [("bad.jsonl", 4)]),
                         ([clean, bad, broken], [("bad.jsonl", 4), ("broken.jsonl", 2), ("broken.jsonl", 3)])):
        numbered = _spy(monkeypatch, "_json_lines")
        sdf, rejects, _ = read_fleet_spark(spark, [str(p) for p in group])
        want = read_fleet(group)
        name = lambda rs: sorted((str(r[0]).rsplit("/", 1)[-1], r[1]) for r in rs)  # noqa: E731
        assert name(rejects) == name(want.rejects) == lines
        got = sdf.toPandas()
        assert len(got) == len(want.frame) and _readings(got) == _readings(want.frame)
        if broken not in group:
            assert numbered == ["bad.jsonl"]


# ------------------------------------------ rev53: review of spk53

def test_spark_reads_a_file_given_twice_twice_as_pandas_does(spark, tmp_path):
    """rev53: a file named twice (or named and inside a named folder) is read twice by both engines. spk53
    counted the CSV reader's rejects of both copies but numbered the file once: the counts differed, so
    the file's readings were the numbered text's, once (99 readings of 148, one reject of two); a JSON
    Lines file the same way kept the reader's rejects at line -1. Now each copy is read in a round of
    its own: every reading and every reject (at its line) twice, as on pandas."""
    from wattwatch.fleet.spark import read_fleet_spark

    bad, clean = tmp_path / "bad.csv", tmp_path / "clean.csv"
    bad.write_text(_csv_rows(50, bad={10}))
    clean.write_text(_csv_rows(50))
    group = [bad, bad, clean]
    want = read_fleet(group)
    sdf, rejects, _ = read_fleet_spark(spark, [str(p) for p in group])
    name = lambda rs: sorted((str(r[0]).rsplit("/", 1)[-1], r[1], r[2], r[3]) for r in rs)  # noqa: E731
    assert name(rejects) == name(want.rejects) == [("bad.csv", 12, "p_kw", "not a number")] * 2
    got = _readings(sdf.toPandas())
    assert len(got) == 148 and got == _readings(want.frame)

    rec = lambda t, v: json.dumps({"PODID": "A", "start_ts": f"2025-01-01T{t:02d}:00:00Z", "TotalActivePower": v})  # noqa: E731
    lines = tmp_path / "j" / "b.jsonl"
    lines.parent.mkdir()
    lines.write_text("\n".join([rec(1, 1.0), "", rec(2, "q"), rec(3, 3.0)]) + "\n")
    group = [lines, lines.parent]  # the file, then its folder
    want = read_fleet(group)
    sdf, rejects, _ = read_fleet_spark(spark, [str(p) for p in group])
    assert name(rejects) == name(want.rejects) == [("b.jsonl", 3, "TotalActivePower", "not a number")] * 2
    got = _readings(sdf.toPandas())
    assert len(got) == 4 and got == _readings(want.frame)


def test_a_json_lines_line_of_null_fails_the_input_on_both_engines(spark, tmp_path):
    """rev53: a JSON Lines line that is ``null`` is no record: the pandas engine refuses the file (JSON
    that is not records), as for any top level that is not an object or a list. spk53's Spark (and
    ops52's) parsed it as a record of nothing and went on with a reject ``no POD id`` at its line. Now
    Spark refuses it too, naming the file and the line; a blank line and ``{}`` are not refused."""
    from wattwatch.fleet.spark import read_fleet_spark

    rec = lambda t, v: json.dumps({"PODID": "A", "start_ts": f"2025-01-01T{t:02d}:00:00Z", "TotalActivePower": v})  # noqa: E731
    clean, bad = tmp_path / "clean.jsonl", tmp_path / "null.jsonl"
    clean.write_text("\n".join(rec(t, t) for t in range(5)) + "\n")
    bad.write_text("\n".join([rec(5, 1.0), "", rec(6, "abc"), "null", rec(8, 2.0)]) + "\n")
    with pytest.raises(InputError, match="not records"):
        read_fleet([clean, bad])
    with pytest.raises(InputError, match=r"null\.jsonl.* not records .*line 4 "):
        read_fleet_spark(spark, [str(clean), str(bad)])
    bad.write_text("\n".join([rec(5, 1.0), " 5 ", rec(8, 2.0)]) + "\n")  # a number: the same
    with pytest.raises(InputError, match="not records"):
        read_fleet([bad])
    with pytest.raises(InputError, match=r"null\.jsonl.* not records .*line 2 "):
        read_fleet_spark(spark, [str(bad)])
    # {} is an object: a reject "no POD id" on both engines, at its line
    bad.write_text("\n".join([rec(5, 1.0), "", rec(6, "abc"), "{}", rec(8, 2.0)]) + "\n")
    want = read_fleet([clean, bad])
    sdf, rejects, _ = read_fleet_spark(spark, [str(clean), str(bad)])
    name = lambda rs: sorted((str(r[0]).rsplit("/", 1)[-1], r[1], r[2], r[3]) for r in rs)  # noqa: E731
    assert name(rejects) == name(want.rejects) and [r[1] for r in name(rejects)] == [3, 4]
    assert _readings(sdf.toPandas()) == _readings(want.frame)


def _row(i, p="1.0"):
    return f"M1,2025-01-01T00:{i:02d}:00Z,{p}\n"


def test_a_csv_both_engines_cannot_read_fails_the_input_naming_it(spark, tmp_path):
    """spk60 (rev53 Left): an empty (or blank) CSV, a quoted field never closed and a header with a
    stray quote (pandas then finds no ts column) failed the input on pandas while Spark read on.
    Both engines now refuse the input, naming the file (and the open record's line)."""
    from wattwatch.fleet.spark import read_fleet_spark

    good = tmp_path / "good.csv"
    good.write_text("meter_id,ts,p_kw\n" + "".join(_row(i) for i in range(10)))
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    blank = tmp_path / "blank.csv"
    blank.write_text("\n  \n")
    unclosed = tmp_path / "open.csv"
    # (a bad value before it: Spark finds the open quote on a file it numbers; spk60 Left)
    unclosed.write_text("meter_id,ts,p_kw\n" + _row(0, p="zz") + "\n" + _row(1, p='"2') + _row(2) + _row(3))
    header = tmp_path / "header.csv"
    header.write_text('meter_id,"ts,p_kw\n' + _row(0) + _row(1))
    for bad, words in ((empty, "empty file"), (blank, "empty file"), (unclosed, "line 4"),
                       (header, "ts")):
        with pytest.raises(InputError, match=str(bad)) as pd_err:
            read_fleet([good, bad])
        assert words in str(pd_err.value)
        with pytest.raises(InputError, match=str(bad)) as sp_err:
            read_fleet_spark(spark, [str(good), str(bad)])
        assert words in str(sp_err.value)


def test_a_good_header_over_a_first_record_whose_quote_never_closes_is_not_a_bad_header(spark, tmp_path):
    """rev60: the header check parsed the first data record too (``pd.read_csv(nrows=0)``), so a file
    whose *first* record opens a quote that never closes was taken for a file without ``ts``: Spark
    said "the header has no meter_id or no ts column", pandas raised a bare ``ParserError``. Both now
    name the file and the record's line; a header of other names keeps the hint to the local engine."""
    from wattwatch.fleet.readers import _canonical_columns
    from wattwatch.fleet.spark import read_fleet_spark

    bad = tmp_path / "open_first.csv"
    bad.write_text('meter_id,ts,p_kw\nM1,"2025-01-01T00:00:00Z,1.0\n' + _row(1) + _row(2))
    assert _canonical_columns(bad)
    for read in (lambda: read_fleet([bad]), lambda: read_fleet_spark(spark, [str(bad)])):
        with pytest.raises(InputError, match=f"{bad}: a quoted field never closed.*line 2 runs"):
            read()
    upper = tmp_path / "upper.csv"
    upper.write_text("METER_ID,TS,P_KW\n" + _row(0))
    assert len(read_fleet([upper]).frame) == 1
    with pytest.raises(InputError, match=f"{upper}: the header .*--engine local"):
        read_fleet_spark(spark, [str(upper)])


def test_the_csv_header_check_reads_the_header_only(tmp_path):
    """rev60: a header whose quote never closes made the header check read the whole file (the Spark
    driver's memory); it now reads at most 1 MB and takes such a file for one without ``ts``."""
    from wattwatch.fleet.readers import _canonical_columns, _csv_header_bytes

    big = tmp_path / "big.csv"
    big.write_text('meter_id,"ts,p_kw\n' + _row(0) * 200_000)  # ~5.6 MB
    assert _csv_header_bytes(big) is None and not _canonical_columns(big)
    ok = tmp_path / "ok.csv"
    ok.write_text('\n  \n"meter_id","ts","p,kw"\r\n' + _row(0) * 200_000)
    assert _csv_header_bytes(ok) == b'\n  \n"meter_id","ts","p,kw"\r'
    assert _canonical_columns(ok)


def test_spark_reads_a_nested_json_document_in_few_jobs(spark, tmp_path, capacitive_on_spark):
    """sp1: a two-line UrbanDataset document cost 9 Spark jobs (a numbering nothing read, and a
    broadcast of the numbering's shifts in each later job); a JSON Lines file with a reject 11 (its
    units checked again on the numbered text). Now: the schema, the units (2 with AQE's shuffle
    stage) and the rejects; the JSON Lines file adds its numbering and its rejects' lines. The
    results are the ones the tests above check (the document's read is the capacitive test's: tt10)."""
    from wattwatch.fleet.spark import read_fleet_spark

    jl = tmp_path / "one_bad.jsonl"
    jl.write_text(json.dumps(urban([line(1, "2025-06-01T10:00:00Z", "2025-06-01T11:00:00Z", PODID="C1",
                                         TotalActivePower="1.5")])) + "\n"
                  + json.dumps(urban([line(1, "2025-06-01T11:00:00Z", "2025-06-01T12:00:00Z", PODID="C1",
                                           TotalActivePower="x")])) + "\n")
    (_, rejects, _), jobs = _jobs(spark, f"sp1-jobs-{jl.name}", lambda: read_fleet_spark(spark, [str(jl)]))
    for path, most, want, (rejects, jobs) in (
            (capacitive_on_spark["doc"], 4, [], (capacitive_on_spark["rejects"], capacitive_on_spark["jobs"])),
            (jl, 7, [(2, "TotalActivePower", "not a number")], (rejects, jobs))):
        assert [r[1:] for r in rejects] == want, path
        assert jobs <= most, (path.name, jobs)


def test_spark_names_a_nested_documents_records_by_position_when_they_span_lines(spark, nested, tmp_path):
    """rsp1 (review of sp1): a .json UrbanDataset document is no longer numbered by Spark; a
    record's line is its 1-based position in ``values.line`` (as pandas), also when the document is
    indented (every record over many text lines) and two documents are read in one Spark read."""
    from wattwatch.fleet.spark import read_fleet_spark

    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(json.loads(nested.read_text()), indent=2))
    other = tmp_path / "other.json"
    other.write_text(json.dumps(urban([
        line(1, "2025-01-02T00:00:00", "2025-01-02T01:00:00", PODID="IT009", Phase1ActivePower="1"),
        line(2, "2025-01-02T01:00:00", "2025-01-02T02:00:00", PODID="IT009", Phase1ActivePower="1"),
        line(3, "2025-01-02T02:00:00", "2025-01-02T03:00:00", PODID="IT009", Phase1ActivePower="zz"),
    ]), indent=4))
    want = read_fleet([pretty, other]).rejects
    assert sorted(r[1] for r in want if r[0] == str(other)) == [3]
    assert len({r[1] for r in want if r[0] == str(pretty)}) >= 3  # several records of the first document
    _, rejects, _ = read_fleet_spark(spark, [str(pretty), str(other)])
    key = lambda r: (r[0].rsplit("/", 1)[-1], r[1], r[2], r[3])  # noqa: E731
    assert sorted(map(key, rejects)) == sorted(map(key, want))


def test_spark_numbers_many_splits_by_a_join_with_the_same_lines(spark, tmp_path, monkeypatch):
    """rsp1: above ``SHIFT_MAP_MAX`` splits the numbering's shifts are joined (a literal map of
    thousands of entries made an 8,000-file read slower); the lines, and the rows of a later job
    that splits the files otherwise, are the same as with the map."""
    import wattwatch.fleet.spark as sp

    paths = []
    for k in range(3):
        p = tmp_path / f"m{k}.csv"
        p.write_text("meter_id,ts,p_kw,town\n" + "".join(
            f"M{k},2025-01-01T{i // 60:02d}:{i % 60:02d}:00Z,{'bad' if i % 41 == 7 else i},T\n" for i in range(300)))
        paths.append(p)
    # rsp2: and a file with quoted line ends, whose readings (not only its rejects) are the numbered
    # text's: a header line taken one line off in the join (the first reading dropped) shows in them.
    two = '"two\nlines"'
    p = tmp_path / "q.csv"
    p.write_text("meter_id,ts,p_kw,town\n" + "".join(
        f"Q,2025-01-01T{i // 60:02d}:{i % 60:02d}:00Z,{'bad' if i % 41 == 7 else i},{two if i % 50 == 3 else 'T'}\n"
        for i in range(300)))
    paths.append(p)
    read = read_fleet(paths)
    want, rows = sorted((r[0].rsplit("/", 1)[-1], r[1]) for r in read.rejects), len(read.frame)
    old = spark.conf.get("spark.sql.files.maxPartitionBytes")
    try:
        for most in (sp.SHIFT_MAP_MAX, 0):  # the map, then the join
            monkeypatch.setattr(sp, "SHIFT_MAP_MAX", most)
            spark.conf.set("spark.sql.files.maxPartitionBytes", "2048")
            sdf, rejects, _ = sp.read_fleet_spark(spark, [str(p) for p in paths])
            assert sorted((r[0].rsplit("/", 1)[-1], r[1]) for r in rejects) == want, most
            n = sdf.count()
            spark.conf.set("spark.sql.files.maxPartitionBytes", "3000")
            assert sdf.count() == n == rows == 1200 - len(want), most
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", old)


def _jobs(spark, group, action):
    """``action()`` and the number of Spark jobs it ran."""
    sc = spark.sparkContext
    sc.setJobGroup(group, group)
    try:
        out = action()
        return out, len(sc.statusTracker().getJobIdsForGroup(group))
    finally:
        sc.setLocalProperty("spark.jobGroup.id", None)


def test_spark_reads_csv_files_with_rejects_and_quoted_line_ends_in_few_jobs(lined_on_spark, four_csv_on_spark):
    """sp2: the numbered CSV text took each file's header from a broadcast join of a local frame, a
    job of its own in every later job over the text (the never-closed check's, the rejects', each
    action on the readings); and of files read together, those with a quoted line end were numbered
    a second time when another file had a bad line only. Now the headers are a literal map (as the
    numbering's shifts) and the quoted files' readings are the first numbering's. Jobs: the header
    (1), the reader's per-file counts (2: AQE runs a shuffle stage as a job), the numbering (2), the
    rejects (1); a quoted line end adds the never-closed check (2) and a shuffle to the rejects (1);
    an action on the readings is 1 job, 2 with a quoted line end. Before: 11 and 3 jobs for
    ``lined.csv``, 13 and 3 for the four files. (Both reads are the module's, which the lines
    tests above also check: tt10.)"""
    name = lambda rs: sorted((str(r[0]).rsplit("/", 1)[-1], r[1], r[2], r[3]) for r in rs)  # noqa: E731
    for read, most_read, most_after in ((lined_on_spark, 9, 2), (four_csv_on_spark, 9, 2)):
        paths, rejects, jobs, got, after = (read[k] for k in ("paths", "rejects", "jobs", "frame", "after"))
        want = read_fleet(paths)
        assert name(rejects) == name(want.rejects) and len(rejects) in (4, 2)
        assert _readings(got) == _readings(want.frame)
        assert jobs <= most_read and after <= most_after, (paths[0].name, jobs, after)
