"""``wattwatch fleet`` and ``api.fleet``: outputs, errors naming files, and local == Spark."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.fleet.fleetdata import messy_fleet, write_urban
from wattwatch import api
from wattwatch.app.cli import app
from wattwatch.errors import InputError
from wattwatch.fleet.features import FEATURES

runner = CliRunner()


@pytest.fixture(scope="module")
def pell(tmp_path_factory):
    """Five PODs (15 min .. 1 day, interval records, a register, single-phase) and a panel meter as
    SCPS JSON (watts, UTC+1), 5 days; the 1-minute POD is left out to keep the files small."""
    d = tmp_path_factory.mktemp("pell")
    f = messy_fleet(seed=2, days=5, n=6)
    f = f[f["meter_id"] != "POD00"]
    write_urban(f[f["meter_id"] != "POD05"], d / "pell.json", watts=True)
    write_urban(f[f["meter_id"] == "POD05"], d / "pod05.jsonl", jsonl=True, lines_per_doc=40)
    return d


def test_fleet_command_writes_the_table_the_excluded_list_and_a_summary(pell, tmp_path):
    out = tmp_path / "fleet.parquet"
    res = runner.invoke(app, ["fleet", str(pell / "pell.json"), str(pell / "pod05.jsonl"), "--period", "day",
                              "--tz", "Europe/Rome", "--min-peers", "2", "--out", str(out),
                              "--rejects", str(tmp_path / "rej.csv")])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out)
    assert set(FEATURES) <= set(table.columns)
    assert {"POD01", "POD03", "POD05"} <= set(table["pod_id"])
    excluded = pd.read_csv(tmp_path / "fleet.excluded.csv")
    assert "QE0" in set(excluded["pod_id"])  # the panel meter, listed and not scored
    summary = json.loads((tmp_path / "fleet.json").read_text())
    assert summary["pods_scored"] == table["pod_id"].nunique() and summary["period"] == "day"
    assert "POD(s) scored" in res.output


def test_fleet_command_errors_name_the_file(pell, tmp_path):
    res = runner.invoke(app, ["fleet", str(tmp_path / "missing.json"), "--out", str(tmp_path / "f.parquet")])
    assert res.exit_code == 2 and "missing.json: no such file" in res.output
    res = runner.invoke(app, ["fleet", str(pell / "pell.json"), "--period", "year", "--out", str(tmp_path / "f.parquet")])
    assert res.exit_code == 2 and "--period must be one of month, week, day" in res.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"UrbanDataset": {"values": {"line": [')
    res = runner.invoke(app, ["fleet", str(bad), "--out", str(tmp_path / "f.parquet")])
    assert res.exit_code == 2 and "bad.json: not valid JSON" in res.output
    res = runner.invoke(app, ["fleet", str(pell / "pell.json"), "--out", str(pell / "pell.json")])
    assert res.exit_code == 2 and not (tmp_path / "f.parquet").exists()
    with pytest.raises(InputError, match="no POD has complete data"):
        api.fleet([pell / "pod05.jsonl"], period="day", min_coverage=1.01)


def test_local_and_spark_engines_give_the_same_fleet_table(tmp_path, spark):
    """Canonical Parquet (the Spark JSON reader has its own test in test_readers; JSON in Spark
    costs a few extra jobs, and the project's Spark tests share a 3-minute budget)."""
    f = messy_fleet(seed=3, days=5, n=6)
    f = f[f["meter_id"] != "POD00"]
    path = tmp_path / "fleet.parquet"
    f.to_parquet(path, index=False)
    a = api.fleet([path], period="day", tz="Europe/Rome", min_peers=2, out=tmp_path / "local.parquet")
    b = api.fleet([str(path)], period="day", engine="spark", tz="Europe/Rome", min_peers=2,
                  out=tmp_path / "spark.parquet")
    ta, tb = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "spark.parquet")
    assert len(ta) > 0 and list(ta["pod_id"]) == list(tb["pod_id"]) and list(ta["period"]) == list(tb["period"])
    for c in FEATURES:
        np.testing.assert_allclose(ta[c].to_numpy(float), tb[c].to_numpy(float), rtol=1e-6, atol=1e-9, err_msg=c)
    pd.testing.assert_frame_equal(a.features.excluded, b.features.excluded)


def test_a_simulated_theft_is_scored_and_localised_end_to_end(tmp_path):
    """Simulator JSON -> `wattwatch fleet` -> the scored table (every model, consensus) and the
    balance, whose periods are the feature table's periods (same labels, same time zone)."""
    from wattwatch.sim.pods import PodSimConfig, simulate_pods

    cfg = PodSimConfig(seed=5, pods=30, panels=2, months=3, fault_months=1, theft_share=0.07, shift_share=0.0,
                       vacation_share=0.0)
    sim = simulate_pods(cfg, out=tmp_path / "sim", json_records=True)
    thieves = {lab["pod_id"] for lab in sim["labels"] if lab["type"] == "theft"}
    assert thieves
    out = tmp_path / "fleet.parquet"
    res = runner.invoke(app, ["fleet", str(tmp_path / "sim" / "json"), "--period", "week", "--tz", "Europe/Rome",
                              "--panels", str(tmp_path / "sim" / "panels.csv"), "--out", str(out)])
    assert res.exit_code == 0, res.output
    table = pd.read_parquet(out)
    for c in ("pca_score", "iforest_score", "lof_score", "consensus_score", "consensus_label", "votes", "driver_1"):
        assert c in table.columns, c
    bal = pd.read_parquet(tmp_path / "fleet.balance.parquet")
    # every scored week has its balance row under the same label (a partial edge week that the
    # complete-POD filter leaves out of the table may still be balanced)
    assert set(table["period"]) <= set(bal["period"]) and len(bal)
    suspects = pd.read_csv(tmp_path / "fleet.suspects.csv")
    flagged = suspects[suspects["rank"] <= 5]
    assert thieves & set(flagged["pod_id"]), (thieves, suspects.head(10))


def test_local_and_spark_give_the_same_scores_and_labels(tmp_path, spark):
    """The issue's equality on the scored table: every model's score to 1e-6, identical labels."""
    from wattwatch.sim.pods import PodSimConfig, simulate_pods

    cfg = PodSimConfig(seed=6, pods=24, panels=2, months=3, fault_months=1, theft_share=0.1, shift_share=0.1,
                       vacation_share=0.0)
    simulate_pods(cfg, out=tmp_path / "sim")
    path = tmp_path / "sim" / "telemetry.parquet"
    kw = dict(period="month", panels=tmp_path / "sim" / "panels.csv", min_peers=2)
    a = api.fleet([path], out=tmp_path / "local.parquet", **kw)
    b = api.fleet([str(path)], engine="spark", out=tmp_path / "spark.parquet", **kw)
    ta, tb = pd.read_parquet(tmp_path / "local.parquet"), pd.read_parquet(tmp_path / "spark.parquet")
    assert len(ta) == len(tb) > 0
    for c in [c for c in ta.columns if c.endswith(("_score", "_rank"))]:
        np.testing.assert_allclose(ta[c].to_numpy(float), tb[c].to_numpy(float), rtol=1e-6, atol=1e-9, err_msg=c)
    for c in ("consensus_label", "votes", "driver_1"):
        assert list(ta[c]) == list(tb[c]), c
    assert a.balance is not None and b.balance is not None
    pd.testing.assert_frame_equal(a.balance.suspects, b.balance.suspects, check_exact=False, rtol=1e-6)


def test_no_readings_at_all_says_so_naming_the_input_and_the_rejects(tmp_path):
    """adv45: a folder with no files and a file whose every record is rejected both ended in "no POD
    has complete data in every month", which sends the user looking at coverage instead of at the
    input (the rejects were written, but not mentioned)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"empty: no files in this folder"):
        api.fleet([empty])
    flat = tmp_path / "flat.jsonl"
    flat.write_text('{"PODID": "A", "Phase1ActivePower": "1"}\n{"PODID": "B", "start_ts": "x"}\n')
    rejects = tmp_path / "rejects.csv"
    with pytest.raises(InputError, match=r"no readings: all 2 record\(s\) rejected \(see .*rejects\.csv\)"):
        api.fleet([flat], rejects=rejects, out=tmp_path / "f.parquet")
    assert len(pd.read_csv(rejects)) == 2


def test_spark_says_the_same_of_an_empty_folder(tmp_path, spark):
    """adv45: on Spark an empty folder was an IndexError (a traceback), not a message."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match=r"empty: no files in this folder"):
        api.fleet([str(empty)], engine="spark")


@pytest.mark.parametrize("text, why", [
    ("panel_id,meter_id\nQE0,QE0\nQE1,QE0\n", r"panels\.csv: line 3: meter_id QE0 is already the panel meter of QE0 \(line 2\)"),
    ("panel_id,meter_id\nQE0,QE0\nQE1,\n", r"panels\.csv: line 3: meter_id is empty"),
    ("panel_id,meter_id\n,QE0\n", r"panels\.csv: line 2: panel_id is empty"),
])
def test_a_panel_mapping_with_mistakes_is_refused_naming_the_line(pell, tmp_path, text, why):
    """adv45: a meter under two panels was kept under the first one for the balance and listed
    under both as excluded; an empty cell was dropped; neither was said."""
    panels = tmp_path / "panels.csv"
    panels.write_text(text)
    with pytest.raises(InputError, match=why):
        api.fleet([pell / "pell.json"], period="day", panels=panels, min_peers=2)


def test_a_panel_meter_without_readings_is_said(pell, tmp_path):
    """adv45: a panel mapping that names a meter with no readings (a typo in the id) balanced
    nothing for that panel, and said nothing."""
    panels = tmp_path / "panels.csv"
    panels.write_text("panel_id,meter_id\nQE0,QE0\nQE1,QE1-typo\n")
    run = api.fleet([pell / "pell.json"], period="day", panels=panels, min_peers=2)
    assert any("QE1-typo" in n and "no readings" in n and "QE1" in n for n in run.notes), run.notes


def test_a_power_column_under_another_name_is_named_when_nothing_can_be_scored(tmp_path):
    """adv45: a canonical CSV whose power is ``Power_W`` (not ``p_kw``) was read as readings with no
    value: every POD excluded for coverage, and nothing said about the column."""
    f = messy_fleet(seed=1, days=3, n=3).rename(columns={"p_kw": "Power_W"})
    path = tmp_path / "w.csv"
    f[["meter_id", "ts", "Power_W"]].to_csv(path, index=False)
    with pytest.raises(InputError, match=r"no POD has complete data.*w\.csv: column\(s\) not read: Power_W"):
        api.fleet([path], period="day", out=tmp_path / "f.parquet")
