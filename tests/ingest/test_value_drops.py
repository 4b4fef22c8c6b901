"""(fld46) The unit of rejection is the value, not the reading.

A channel value that cannot be read or is implausible (not a number, infinite, outside its range)
is stored as missing and written to the rejects file with its line, field and reason; the reading
keeps its other channels. Only a bad meter id or time, or no channel value left, rejects the row.
Before, one such value cost the whole reading: a meter whose energy register read negative stored
nothing (not even its power) and then looked like packet loss.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from wattwatch import api
from wattwatch.ingest.mapping import Mapping
from wattwatch.ingest.pipeline import ingest_frame, ingest_live, ingest_path
from wattwatch.store import Store

HEAD = "meter_id,ts,p_kw,v_l1_v,i_l1_a,e_kwh\n"


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wattwatch.app.cli", *args], capture_output=True, text=True)


def test_csv_a_negative_energy_register_loses_its_value_not_the_reading(tmp_path: Path):
    p = tmp_path / "pdu.csv"
    p.write_text(HEAD + "".join(f"P7,2026-10-31T{h:02d}:00:00Z,1.5,230,6.5,{h}\n" for h in range(10))
                 + "P7,2026-11-01T00:00:00Z,1.5,230,6.5,-5\n"
                 "P7,2026-11-01T00:15:00Z,1.6,231,6.9,-5\n"
                 "P7,2026-11-01T00:30:00Z,x,231,inf,12.5\n")
    rej = tmp_path / "rej.csv"
    out = _cli("ingest", str(p), "--db", str(tmp_path / "s.duckdb"), "--rejects", str(rej), "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)["files"][0]
    assert (c["read"], c["stored"], c["rejected"]) == (13, 13, 0) and c["channels_mostly_bad"] == []
    assert c["values_dropped"] == {"e_kwh": 2, "i_l1_a": 1, "p_kw": 1}
    r = pd.read_csv(rej)
    assert list(r.columns) == ["file", "line", "field", "reason", "run"]
    assert [(ln, f) for ln, f in zip(r["line"], r["field"])] == [(12, "e_kwh"), (13, "e_kwh"), (14, "i_l1_a"), (14, "p_kw")]
    assert "-5" in r["reason"][0] and "outside [0," in r["reason"][0]
    assert "infinite" in r["reason"][2] and "'x' is not a number" in r["reason"][3]
    with Store(tmp_path / "s.duckdb", read_only=True) as s:
        got = s.query().iloc[10:]
    assert got["p_kw"].fillna(-1).tolist() == [1.5, 1.6, -1] and got["v_l1_v"].tolist() == [230, 231, 231]
    assert got["e_kwh"].fillna(-1).tolist() == [-1, -1, 12.5] and got["i_l1_a"].fillna(-1).tolist() == [6.5, 6.9, -1]
    # The table says it too.
    out = _cli("ingest", str(p), "--db", str(tmp_path / "t.duckdb"), "--rejects", str(tmp_path / "r2.csv"))
    assert out.returncode == 0 and "values dropped" in out.stdout and "e_kwh 2" in out.stdout


def test_parquet_a_glitched_current_channel_costs_that_value_only(store, tmp_path: Path):
    ts = pa.array(np.arange(4) * 900_000_000 + 1_790_000_000_000_000, pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"meter_id": ["M"] * 4, "ts": ts, "p_kw": [1.0, 1.1, 1.2, 1.3],
                             "i_l1_a": [5.0, float("inf"), 2e9, 5.3], "v_l1_v": [230.0] * 4}), tmp_path / "g.parquet")
    c = ingest_path(store, tmp_path / "g.parquet")
    assert (c.read, c.stored, c.rejected) == (4, 4, 0) and c.values_dropped == {"i_l1_a": 2}
    assert [(r[1], r[2]) for r in c.dropped] == [(2, "i_l1_a"), (3, "i_l1_a")]  # a Parquet row's line: its position + 1
    got = store.query()
    assert got["p_kw"].tolist() == [1.0, 1.1, 1.2, 1.3] and got["i_l1_a"].isna().tolist() == [False, True, True, False]
    assert not c.mostly_bad and not any("most of the channel" in n for n in c.notes)


def test_wide_channels_a_bad_cell_drops_that_channel_of_that_meter_only(store, tmp_path: Path):
    (tmp_path / "w.csv").write_text("time,m1_P,m1_V,m2_P,m2_V\n"
                                    "2026-11-01T00:00:00Z,1000,230,500,abc\n"
                                    "2026-11-01T00:15:00Z,1100,99999,510,231\n")
    (tmp_path / "m.toml").write_text('[wide]\nts = "time"\nmeter_columns = "*"\n'
                                     '[units]\np_kw = "W"\n[wide.channels]\np_kw = "{meter}_P"\nv_l1_v = "{meter}_V"\n')
    c = ingest_path(store, tmp_path / "w.csv", Mapping.from_toml(tmp_path / "m.toml"))
    assert (c.read, c.stored, c.rejected) == (4, 4, 0)
    assert sorted((r[1], r[3].split(":")[0], r[3].split(":")[1].strip()) for r in c.dropped) == \
        [(2, "m2", "v_l1_v"), (3, "m1", "v_l1_v")]
    got = store.query().set_index(["meter_id", "ts"]).sort_index()
    assert got["p_kw"].tolist() == [1.0, 1.1, 0.5, 0.51]
    assert got["v_l1_v"].isna().tolist() == [False, True, True, False]


def test_a_channel_bad_on_most_rows_is_said_prominently_exits_1_and_a_fixed_mapping_fills_it_in(tmp_path: Path):
    # The classic mapping mistake: a feeder's power in W read as kW (2 MW = 2,000,000 "kW", outside
    # the plausible range). Its voltage and current are good: they are kept, but the ingest must not
    # pass quietly, and the same file ingested again with the right unit fills p_kw in.
    t = pd.date_range("2026-11-01", periods=40, freq="15min", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")
    p = tmp_path / "feeder.csv"
    pd.DataFrame({"meter_id": "F1", "ts": t, "p_kw": np.linspace(1.8e6, 2.2e6, 40), "v_l1_v": 230.0,
                  "i_l1_a": 50.0}).to_csv(p, index=False)
    db, rej = tmp_path / "s.duckdb", tmp_path / "rej.csv"
    out = _cli("ingest", str(p), "--db", str(db), "--rejects", str(rej))
    assert out.returncode == 1
    err = " ".join(out.stderr.split())
    assert "p_kw: 40 of its 40 value(s) unreadable or implausible, most of the channel" in err
    assert "[units] p_kw" in err and "p_kw unreadable or implausible on most rows" in err
    assert "p_kw 40" in out.stdout
    with Store(db, read_only=True) as s:
        got = s.query(columns=["p_kw", "v_l1_v"])
    assert len(got) == 40 and got["p_kw"].isna().all() and (got["v_l1_v"] == 230).all()
    (tmp_path / "m.toml").write_text('[units]\np_kw = "W"\n')
    out = _cli("ingest", str(p), "--db", str(db), "--rejects", str(tmp_path / "r2.csv"), "--mapping",
               str(tmp_path / "m.toml"), "--json")
    assert out.returncode == 0, out.stderr
    c = json.loads(out.stdout)["files"][0]
    assert (c["stored"], c["already_stored"], c["values_dropped"]) == (0, 40, {})
    with Store(db, read_only=True) as s:
        got = s.query()
    np.testing.assert_allclose(got["p_kw"], np.linspace(1800, 2200, 40))


def test_a_resent_corrected_reading_fills_the_dropped_value(store):
    t = pd.Timestamp("2026-11-01T00:00:00Z")
    c = ingest_frame(store, pd.DataFrame({"meter_id": ["M"], "ts": [t], "p_kw": [1.0], "e_kwh": [-3.0]}))
    assert (c.stored, c.values_dropped) == (1, {"e_kwh": 1})
    c = ingest_frame(store, pd.DataFrame({"meter_id": ["M"], "ts": [t], "p_kw": [1.0], "e_kwh": [7.0]}))
    assert (c.stored, c.merged) == (0, 1) and not any("different values" in n for n in c.notes)
    assert store.query()[["p_kw", "e_kwh"]].values.tolist() == [[1.0, 7.0]]


def test_live_a_bad_value_is_dropped_and_the_reading_handed_on(store):
    t = pd.Timestamp("2026-11-01T00:00:00Z")
    frame = pd.DataFrame({"meter_id": ["ok", "pdu7", "pdu7"], "ts": [t, t, pd.Timestamp("1970-01-01", tz="UTC")],
                          "p_kw": [1.0, 2.0, 2.0], "e_kwh": [10.0, -5.0, 3.0]})
    c, rows, _ = ingest_live(store, frame, cache={})
    assert (c.stored, c.rejected) == (2, 1) and [r[1] for r in c.rejects] == [3]
    assert [(r[1], r[2]) for r in c.dropped] == [(2, "e_kwh")]
    assert rows["meter_id"].tolist() == ["ok", "pdu7"] and rows["p_kw"].tolist() == [1.0, 2.0]
    assert np.isnan(rows["e_kwh"].iloc[1])


def test_a_negative_energy_register_for_six_hours_is_not_packet_loss_nor_frozen(tmp_path: Path):
    # adv41's finding: before, the six hours of readings with a negative register were rejected whole
    # and the meter alerted ALRM_PKT_LOSS_CRIT for readings it had sent.
    t = pd.date_range("2026-10-01", periods=7 * 96, freq="15min", tz="UTC")
    k = np.arange(len(t))
    frame = pd.DataFrame({"meter_id": "P7", "ts": t, "p_kw": 5 + np.sin(k / 8.0), "v_l1_v": 230 + np.cos(k / 5.0),
                          "i_l1_a": 20 + np.sin(k / 3.0), "e_kwh": 1000 + 1.25 * k})
    frame.loc[400:423, "e_kwh"] = -1.0
    with Store(tmp_path / "s.duckdb") as s:
        c = ingest_frame(s, frame)
        assert (c.stored, c.rejected, c.values_dropped) == (len(t), 0, {"e_kwh": 24})
    found = api.detect(str(tmp_path / "s.duckdb"), detectors=["packet_loss", "frozen_readings"])
    assert [a.code for a in found.alerts] == []
