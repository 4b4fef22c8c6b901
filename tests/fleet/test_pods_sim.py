"""The POD-fleet simulator: seeded, physical (panel = PODs + technical losses), labelled faults."""

import json

import numpy as np
import pandas as pd
import pytest

from wattwatch.sim.pods import PodSimConfig, period_labels, simulate_pods

CFG = dict(pods=40, panels=2, months=3, fault_months=1, theft_share=0.1, shift_share=0.1, vacation_share=0.1)


@pytest.fixture(scope="module")
def run():
    return simulate_pods(PodSimConfig(seed=1, **CFG))


def test_same_seed_same_fleet_other_seed_another(run):
    again = simulate_pods(PodSimConfig(seed=1, **CFG))
    pd.testing.assert_frame_equal(run["hourly"], again["hourly"])
    assert run["labels"] == again["labels"]
    other = simulate_pods(PodSimConfig(seed=2, **CFG))
    assert not np.allclose(run["hourly"]["e_kwh"], other["hourly"]["e_kwh"])


def test_panel_sees_true_load_plus_technical_losses(run):
    h, p = run["hourly"], run["panel_hourly"]
    jan = h["hour"] < pd.Timestamp("2025-02-01", tz="UTC")  # no theft yet
    pods = h[jan].groupby("panel_id")["e_kwh"].sum()
    pan = p[p["hour"] < pd.Timestamp("2025-02-01", tz="UTC")].groupby("panel_id")["e_kwh"].sum()
    share = (pan - pods) / pan
    lo, hi = PodSimConfig().tech_loss
    assert share.between(lo - 0.01, hi + 0.01).all()
    assert set(run["tech_loss"]) == set(pan.index)


def test_faults_are_labelled_and_do_what_they_say(run):
    lab = pd.DataFrame(run["labels"])
    assert set(lab["type"]) == {"theft", "level_shift", "vacation"}
    assert len(lab) == 12 and lab["pod_id"].is_unique
    h = run["hourly"].set_index(["pod_id", "hour"])["e_kwh"]
    for row in lab[lab["type"] == "theft"].itertuples():
        s = pd.Timestamp(row.start)
        assert s >= pd.Timestamp("2025-03-01", tz="UTC")  # in the last month
        e = h.loc[row.pod_id]
        before = e[(e.index >= s - pd.Timedelta(days=14)) & (e.index < s)].mean()
        after = e[(e.index >= s) & (e.index < s + pd.Timedelta(days=7))].mean()
        assert after < before * (1 - row.detail["ratio"] * 0.5)


def test_period_labels_mark_the_periods_a_fault_touches(run):
    keys = pd.DataFrame({"pod_id": [lab["pod_id"] for lab in run["labels"]] * 3,
                         "period": sorted(["2025-01", "2025-02", "2025-03"] * len(run["labels"]))})
    got = period_labels(run["labels"], keys)
    thefts = got[got["pod_id"].isin([x["pod_id"] for x in run["labels"] if x["type"] == "theft"])]
    assert (thefts.loc[thefts["period"] == "2025-03", "fault"] == "theft").all()
    assert (thefts.loc[thefts["period"] == "2025-01", "fault"] == "").all()


def test_writes_parquet_mapping_labels_and_nested_json(tmp_path):
    cfg = PodSimConfig(seed=3, pods=6, panels=2, months=2, fault_months=1, theft_share=0.2)
    r = simulate_pods(cfg, out=tmp_path, json_records=True)
    t = pd.read_parquet(tmp_path / "telemetry.parquet")
    assert set(t["meter_id"]) == {f"POD-{i:06d}" for i in range(1, 7)} | {"PNL-001", "PNL-002"}
    assert (t.groupby("meter_id")["e_kwh"].diff().dropna() >= 0).all()  # a cumulative register
    m = pd.read_csv(tmp_path / "pods.csv")
    assert set(m["role"]) == {"pod", "panel"} and len(m) == 8
    p = pd.read_csv(tmp_path / "panels.csv")  # the panel meters, as `wattwatch fleet --panels` takes them
    assert list(p.columns) == ["panel_id", "meter_id"] and set(p["meter_id"]) == {"PNL-001", "PNL-002"}
    assert json.loads((tmp_path / "labels.json").read_text())["labels"] == r["labels"]
    docs = sorted((tmp_path / "json").glob("*.json"))
    assert len(docs) == 2
    lines = [ln for d in docs for ln in json.loads(d.read_text())["UrbanDataset"]["values"]["line"]]
    assert len(lines) == len(t)
    props = {p["name"]: p["val"] for p in lines[0]["property"]}
    assert {"PODID", "ElectricPanelID", "TownCode", "TotalActiveEnergy"} <= set(props)


def test_the_fleet_readers_read_what_the_simulator_writes(tmp_path):
    readers = pytest.importorskip("wattwatch.fleet.readers")  # fleetfeat's branch
    cfg = PodSimConfig(seed=3, pods=8, panels=2, months=2, fault_months=1, theft_share=0.2)
    r = simulate_pods(cfg, out=tmp_path, json_records=True)
    for path in (tmp_path / "json", tmp_path / "telemetry.parquet"):
        got = readers.read_fleet([path])
        assert not got.rejects
        assert set(got.frame["meter_id"]) == {f"POD-{i:06d}" for i in range(1, 9)} | {"PNL-001", "PNL-002"}
        assert got.frame.groupby("meter_id")["panel_id"].first().to_dict() == dict(
            zip(r["panels"]["meter_id"], r["panels"]["panel_id"]))
    fr = readers.read_fleet([tmp_path / "json"]).frame
    pods = fr[fr["meter_id"].str.startswith("POD")]
    assert pods["e_int_kwh"].sum() == pytest.approx(r["hourly"]["e_kwh"].sum(), rel=1e-5)
