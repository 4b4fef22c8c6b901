"""``wattwatch grid simulate|monitor`` end to end, alerts into the store with their lifecycle."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from wattwatch.app.cli import app

runner = CliRunner()


def test_simulate_writes_series_plots_alerts_and_keeps_them_in_the_store(tmp_path: Path):
    out, db = tmp_path / "run", tmp_path / "s.duckdb"
    r = runner.invoke(app, ["grid", "simulate", "--case", "case5", "--scenario", "paper", "--out", str(out),
                            "--db", str(db), "--measurements", "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert [x["prosumer"] for x in summary["isolations"]] == ["P3"]
    for f in ("samples.parquet", "intervals.parquet", "pairs.parquet", "alerts.jsonl", "alerts.log", "run.json",
              "grid.png", "measurements.parquet", "references.parquet", "topology.toml"):
        assert (out / f).stat().st_size > 0, f
    iv = pd.read_parquet(out / "intervals.parquet")
    assert {"ts", "prosumer", "d_mwh", "f", "penalty", "signals", "watchers", "decision", "isolated"} <= set(iv.columns)
    alerts = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert sorted(a["code"] for a in alerts) == ["ALRM_PROSUMER_ISOLATE", "WARN_PROSUMER_PENALTY", "WARN_PROSUMER_PENALTY"]
    iso = next(a for a in alerts if a["code"] == "ALRM_PROSUMER_ISOLATE")

    r = runner.invoke(app, ["alerts", "list", "--db", str(db), "--json"])
    assert r.exit_code == 0, r.output
    listed = json.loads(r.stdout)
    rows = listed if isinstance(listed, list) else listed.get("alerts", [])
    assert iso["id"] in {a["id"] for a in rows}
    assert runner.invoke(app, ["alerts", "ack", iso["id"], "--db", str(db)]).exit_code == 0
    # Re-running the same scenario does not duplicate the alert and keeps its status.
    r = runner.invoke(app, ["grid", "simulate", "--scenario", "paper", "--out", str(out), "--db", str(db), "--json",
                            "--transport", "batch", "--no-plot"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["stored"] == {"new": 0, "updated": 3}
    again = [json.loads(x) for x in (out / "alerts.jsonl").read_text().splitlines()]
    assert next(a for a in again if a["id"] == iso["id"])["status"] == "acknowledged"

    # The files it wrote are what `grid monitor` reads: the same isolation.
    r = runner.invoke(app, ["grid", "monitor", str(out / "measurements.parquet"), "--topology", str(out / "topology.toml"),
                            "--references", str(out / "references.parquet"), "--out", str(tmp_path / "mon"), "--json"])
    assert r.exit_code == 0, r.output
    assert [x["prosumer"] for x in json.loads(r.stdout)["isolations"]] == ["P3"]


def test_errors_exit_2_with_a_message(tmp_path: Path):
    r = runner.invoke(app, ["grid", "simulate", "--scenario", "nonsense", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "scenario must be paper" in r.output
    bad = tmp_path / "sc.toml"
    bad.write_text('case = "case5"\nhours = 1\n[[deviations]]\nprosumer = "P3"\ndelta_mw = "lots"\n')
    r = runner.invoke(app, ["grid", "simulate", "--scenario", str(bad), "--out", str(tmp_path / "x"), "--transport", "batch"])
    assert r.exit_code == 2 and "deviations[0]: delta_mw must be a finite number" in r.output
    r = runner.invoke(app, ["grid", "monitor", str(tmp_path / "none.csv"), "--topology", str(bad), "--references",
                            str(tmp_path / "none.csv"), "--out", str(tmp_path / "m")])
    assert r.exit_code == 2 and "error" in r.output


def test_custom_scenario_toml(tmp_path: Path):
    sc = tmp_path / "custom.toml"
    sc.write_text("""
[scenario]
case = "case5"
hours = 1.0
line_noise_mw = 0.2
[[scenario.deviations]]
prosumer = "P2"
delta_mw = 80.0
start_min = 10
[watch]
c_th = 3.0
""")
    r = runner.invoke(app, ["grid", "simulate", "--scenario", str(sc), "--out", str(tmp_path / "o"), "--json",
                            "--transport", "batch", "--no-plot"])
    assert r.exit_code == 0, r.output
    assert [x["prosumer"] for x in json.loads(r.stdout)["isolations"]] == ["P2"]
