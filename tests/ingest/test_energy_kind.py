"""(adv2) An energy per interval mapped as the cumulative register ``e_kwh`` (the steel export's ``Usage_kWh``
by a mapping, or any ``kwh`` column by the alias), or a register mapped as power, was stored without a word.
Both are told from the data, a warning naming the file and the column; the readings are stored as given."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tests.support.cli import ww


def _fleet(tmp_path: Path) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    ts = pd.date_range("2025-01-06", periods=96, freq="15min", tz="UTC")
    parts = []
    for i, m in enumerate(("M1", "M2", "M3")):
        interval = np.round(rng.gamma(2.0, 0.3, len(ts)), 3)   # kWh per 15 min
        reg = 1000.0 * (i + 1) + np.cumsum(interval)
        if m == "M3":
            reg[60:] -= reg[59]      # a register reset (a meter exchange): one fall, no warning for it
        parts.append(pd.DataFrame({"meter_id": m, "ts": ts, "kw": interval * 4, "interval_kwh": interval, "reg": reg}))
    return pd.concat(parts).sort_values("ts", kind="stable")   # rows by time, meters interleaved


def _ingest(tmp_path: Path, name: str, frame: pd.DataFrame, mapping: str):
    f = tmp_path / f"{name}.csv"
    frame.to_csv(f, index=False)
    (tmp_path / f"{name}.toml").write_text(mapping)
    r = ww("ingest", f, "--db", tmp_path / f"{name}.duckdb", "--mapping", tmp_path / f"{name}.toml", "--json")
    return " ".join(r.stderr.split()), json.loads(r.stdout)["files"][0]


def test_an_interval_energy_mapped_as_the_register_and_a_register_mapped_as_power_are_warned(tmp_path: Path):
    df = _fleet(tmp_path)
    said, counts = _ingest(tmp_path, "interval", df[["meter_id", "ts", "interval_kwh"]],
                           '[columns]\ne_kwh = "interval_kwh"\n')
    assert counts["stored"] == 288 and counts["rejected"] == 0
    assert "interval.csv: e_kwh (read from column interval_kwh) is a cumulative energy register" in said, said
    assert "map that column to p_kw with [scale] p_kw = 60 / the interval in minutes" in said, said

    said, counts = _ingest(tmp_path, "reg", df[["meter_id", "ts", "reg"]], '[columns]\np_kw = "reg"\n')
    assert counts["stored"] == 288
    assert "reg.csv: p_kw (read from column reg) rose at" in said and "map it to e_kwh instead" in said, said

    # the right mapping of the same columns (a register with a reset on one meter included): not a word
    said, _ = _ingest(tmp_path, "good", df[["meter_id", "ts", "kw", "reg"]], '[columns]\np_kw = "kw"\ne_kwh = "reg"\n')
    assert "cumulative energy register" not in said and "map it to e_kwh" not in said, said


# (radv2) PVDAQ system 50's real AC power (W), 2012-07-18 04:45-12:45 -07:00 at 15 min, values as exported
# (shared/data/real/nrel_pvdaq_pv_15min): a clear morning rises 28 times and never falls.
PV_MORNING_W = [0.0, 0.0, 0.0, 0.0, 0.0, 6.308, 30.955, 52.272, 126.717, 256.769, 420.567, 606.694, 798.259, 982.811,
                1140.113, 1311.007, 1440.02, 1557.487, 1655.52, 1720.047, 1783.633, 1861.567, 1959.7, 2044.073, 2109.8,
                2159.88, 2201.153, 2237.227, 2251.187, 2273.547, 2309.147, 2373.3, 2401.4]


def _rows(meters, ts, **chans):
    return pa.table({"meter_id": pa.array(meters), "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
                     **{c: pa.array(v, pa.float64()) for c, v in chans.items()}})


def test_power_that_rose_all_morning_and_registers_reset_once_are_not_warned():
    from wattwatch.ingest.energykind import EnergyKind

    # an export of one PV morning: power, not a register (adv2's check said "map it to e_kwh")
    ts = pd.date_range("2012-07-18 11:45", periods=len(PV_MORNING_W), freq="15min", tz="UTC")
    kind = EnergyKind()
    kind(_rows(["pv"] * len(ts), ts, p_kw=np.array(PV_MORNING_W) / 1000))
    assert kind.notes("pv.csv", {}) == [] and kind.rises["p_kw"] == 0, kind.notes("pv.csv", {})
    # the same rises kept on for two days: a register, warned
    days = pd.date_range("2012-07-18", periods=192, freq="15min", tz="UTC")
    kind = EnergyKind()
    kind(_rows(["m"] * 192, days, p_kw=np.arange(192.0)))
    assert "map it to e_kwh" in " ".join(kind.notes("m.csv", {}))
    # vacant flats' registers read hourly in whole kWh: a few rises in 10 days, then one reset each when a
    # firmware update zeroed them all; adv2's check said "energy per interval?" (4 falls of 8 changes)
    hours = pd.date_range("2025-01-01", periods=240, freq="h", tz="UTC")
    reg = np.floor(np.arange(240) / 100.0) + 7.0
    reg[200:] = 0.0
    kind = EnergyKind()
    kind(_rows(np.repeat(["F1", "F2", "F3", "F4"], 240), np.tile(hours, 4), e_kwh=np.tile(reg, 4)))
    assert kind.notes("flats.csv", {}) == [], kind.notes("flats.csv", {})
    # an interval energy still warned when it falls at every other change
    kind = EnergyKind()
    kind(_rows(np.repeat(["F1", "F2"], 240), np.tile(hours, 2), e_kwh=np.tile(np.where(np.arange(240) % 2, 2.0, 1.0), 2)))
    assert "energy per interval?" in " ".join(kind.notes("i.csv", {}))


def test_a_chunk_sorted_by_time_of_many_meters_is_judged_on_whole_meters():
    # (radv2) the sample was the chunk's first rows: sorted by time, they held 15 h of each of 4,000 meters, too
    # short to count power steps; the sample now reads a few meters' rows of the chunk whole (23 h here)
    from wattwatch.ingest.energykind import SAMPLE_ROWS, EnergyKind

    n_m, per = 4_000, 24
    ts = pd.date_range("2025-01-01", periods=per, freq="h", tz="UTC")
    meters = np.tile([f"m{i}" for i in range(n_m)], per)
    rows = _rows(meters, np.repeat(ts, n_m), p_kw=np.repeat(np.arange(per, dtype=float), n_m))
    # meter ids as text or dictionary-encoded (Store.ingest's on_rows is public: the sample's filter takes both)
    for ids in (rows["meter_id"], rows["meter_id"].dictionary_encode()):
        kind = EnergyKind()
        kind(rows.set_column(0, "meter_id", ids))
        assert n_m * per > SAMPLE_ROWS and kind.rises["p_kw"] >= 24, (ids.type, dict(kind.rises))
        assert "map it to e_kwh" in " ".join(kind.notes("big.csv", {}))
    assert pa.types.is_dictionary(ids.type)
