"""``grid monitor`` on a user's own files: the same decisions as the simulation that wrote them,
and errors that name the file, line and field."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wattwatch.errors import ConfigError, InputError
from wattwatch.grid.monitor import monitor


@pytest.fixture()
def files(fdi_run, tmp_path: Path):
    m = tmp_path / "flows.csv"
    r = tmp_path / "refs.parquet"
    t = tmp_path / "grid.toml"
    fdi_run.measurements.assign(ts=fdi_run.measurements["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).to_csv(m, index=False)
    fdi_run.references.to_parquet(r, index=False)
    t.write_text(fdi_run.topology_toml)
    return m, r, t


def test_monitor_finds_what_the_simulation_found(files, fdi_run):
    m, r, t = files
    res = monitor(m, t, r)
    assert [(x["prosumer"], x["ts"]) for x in res.isolations] == [(x["prosumer"], x["ts"]) for x in fdi_run.isolations]
    a = res.intervals.set_index(["ts", "prosumer"])
    b = fdi_run.intervals.set_index(["ts", "prosumer"])
    before = b.index.get_level_values(0) <= fdi_run.isolations[0]["ts"]
    # Same mismatch up to the isolation (the topology carries the first operating point's losses).
    assert np.allclose(a.loc[b.index[before], "d_mwh"], b.loc[before, "d_mwh"], atol=1e-6, equal_nan=True)


def test_a_missing_far_end_meter_falls_back_to_the_own_end_with_a_notice(files):
    m, r, t = files
    df = pd.read_csv(m)
    df = df[~((df["line"] == "line3") & (df["at"] == "P2"))]
    df.to_csv(m, index=False)
    res = monitor(m, t, r)
    assert any("line3" in n and "own end" in n for n in res.notices)


@pytest.mark.parametrize("mutate,match", [
    (lambda df: df.drop(columns=["p_mw"]), r"flows\.csv: measurements lacks column\(s\) \['p_mw'\]"),
    (lambda df: df.assign(ts=df["ts"].where(df.index != 4, "yesterday")), r"flows\.csv: line 6: field ts: 'yesterday'"),
    (lambda df: df.assign(line=df["line"].where(df.index != 0, "L99")), r"flows\.csv: line 2: field line: 'L99'"),
    (lambda df: df.assign(at=df["at"].where(df.index != 2, "P5")), r"flows\.csv: line 4: field at: 'P5' is not an end"),
    (lambda df: df.assign(p_mw=df["p_mw"].astype(str).where(df.index != 3, "12,5")), r"line 5: field p_mw: '12,5'"),
    (lambda df: df.assign(ts=df["ts"].where(df.index != 1, "1970-01-01T00:00:00Z")), r"flows\.csv: the data span .* too long"),
])
def test_bad_measurements_name_file_line_and_field(files, mutate, match):
    m, r, t = files
    mutate(pd.read_csv(m)).to_csv(m, index=False)
    with pytest.raises(InputError, match=match):
        monitor(m, t, r)


def test_bad_references_and_topology(files, tmp_path):
    m, r, t = files
    bad = tmp_path / "refs.csv"
    pd.read_parquet(r).assign(prosumer="nobody").to_csv(bad, index=False)
    with pytest.raises(InputError, match=r"refs\.csv: line 2: field prosumer: 'nobody'"):
        monitor(m, t, bad)
    topo = tmp_path / "bad.toml"
    topo.write_text('[[line]]\nid = "a"\nfrom = "X"\nto = "X"\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: line\[1\] \(a\): from and to are the same node"):
        monitor(m, topo, r)
    topo.write_text('[[line]]\nid = "a"\nfrom = "X"\nto = "Y"\n[watch]\nlam = 2.0\n')
    with pytest.raises(ConfigError, match=r"bad\.toml: \[watch\]: watch\.lam = 2\.0"):
        monitor(m, topo, r)
    topo.write_text("not toml = = =")
    with pytest.raises(ConfigError, match="cannot read grid config"):
        monitor(m, topo, r)
    with pytest.raises(InputError, match="no such measurements file"):
        monitor(tmp_path / "nope.csv", t, r)
