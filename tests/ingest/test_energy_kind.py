"""(adv2) An energy per interval mapped as the cumulative register ``e_kwh`` (the steel export's ``Usage_kWh``
by a mapping, or any ``kwh`` column by the alias), or a register mapped as power, was stored without a word.
Both are told from the data, a warning naming the file and the column; the readings are stored as given."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

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
