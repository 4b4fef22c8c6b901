"""The issue's bar on simulated fleets, over several seeds: every rule fault type recalled at
>= 0.95 and alert precision >= 0.95, including the normal events that must not alert; and (t1)
phase imbalance on meters with no learned normal, judged on the SPEC's fixed 10 % limit."""

from __future__ import annotations

import pandas as pd
import pytest

from wattwatch.detect.engine import EngineConfig, detect
from wattwatch.evaluate.events import RULE_FAULTS, evaluate
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.sim import SimConfig, simulate
from wattwatch.sim.fleet import SimKnobs
from wattwatch.store import Store


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = []
    for seed in (31, 32, 33):
        d = tmp_path_factory.mktemp(f"fleet{seed}")
        sim = simulate(SimConfig(meters=48, days=14, seed=seed, fault_share=0.5), d, formats=("parquet",))
        with Store(d / "s.duckdb") as s:  # messy files go through the store, as users run it
            ingest_path(s, sim["files"]["parquet"])
            frame = s.query()
        out.append((sim["events"], detect(frame).alerts))
    return out


def test_rule_faults_recall_and_precision_over_seeds(runs):
    events = [e for ev, _ in runs for e in ev]
    per_type: dict = {}
    alerts = n_true = 0
    for ev, al in runs:
        r = evaluate(ev, al)
        alerts += r["alerts"]
        n_true += r["true_alerts"]
        for k, v in r["per_type"].items():
            t = per_type.setdefault(k, [0, 0])
            t[0] += v["events"]
            t[1] += v["detected"]
    for k in RULE_FAULTS:
        n, d = per_type.get(k, (0, 0))
        assert n > 0, f"no {k} event in the fleets"
        assert d / n >= 0.95, f"{k}: recall {d}/{n}"
    assert n_true / alerts >= 0.95, f"precision {n_true}/{alerts}"
    assert any(e["type"] in ("register_reset", "motor_start", "supply_outage") for e in events)


@pytest.mark.parametrize("seed", [1, 2])
def test_imbalance_on_meters_without_a_learned_normal_is_found_at_the_spec_limit(tmp_path, seed):
    """(t1) SPEC: an imbalance above 10 % (mean >= 1 A, >= 15 min) on a meter whose normal is balanced
    alerts. On the fleets above every three-phase meter has learned its normal shares, and there the
    share-change score carries every imbalance fault: on a balanced meter the imbalance is three times
    the largest share step, so with the step's allowance at its floor (0.03) the change score is at
    least the level score (imbalance / 0.10), and the limit decides nothing (a doubled limit, 0.20,
    passed all three seeds: docs/quality-log.md, tt18's I3). Here the sites were closed while they were
    profiled (phase currents at 0.2 % for the first 5 days: no imbalance judged, no learned normal),
    so each is judged on the fixed limit alone, as the SPEC states it. Balanced meters (normal up to
    4 %), imbalance faults only (boosts 22-50 %: imbalances of ~14-29 %), no loose CT (its alerts blank
    phase_imbalance; its detector is not run here). Every fault is found at 0.10; at 0.20 2-6 of 24
    were missed on each of the seeds studied (1-4) and held out (5, 6). ~0.7 s CPU a seed."""
    sim = simulate(SimConfig(meters=48, days=10, seed=seed, step="15min", fault_share=0.5, commercial_share=1.0,
                             faults=("phase_imbalance",), profile_days=5.0, loose_ct_share=0.0,
                             knobs=SimKnobs(high_imbalance_share=0.0)), tmp_path, formats=("parquet",))
    frame = pd.read_parquet(sim["files"]["parquet"])
    closed = frame["ts"] < frame["ts"].min() + pd.Timedelta(days=5)
    frame.loc[closed, ["i_l1_a", "i_l2_a", "i_l3_a"]] *= 0.002
    from wattwatch.detect.registry import build_all

    dets = build_all(["supply_outage", "harmonic_noise", "phase_imbalance"])
    alerts = detect(frame, dets, EngineConfig(profile_days=5.0)).alerts
    learned = [m for m, st in dets[-1].state_.items() if st.get("share_median") is not None]
    assert len(learned) <= 6, f"{len(learned)} meters learned their normal shares: the fixed limit is not what judges"
    r = evaluate(sim["events"], alerts)["per_type"]["phase_imbalance"]
    assert r["events"] >= 20 and r["detected"] / r["events"] >= 0.95, r


@pytest.fixture(scope="module")
def consumption_run(tmp_path_factory):
    """A fleet where most faults are consumption faults: the default detector set (rules, MACD
    baseline and the learned ensemble) against theft, level shifts and frozen registers."""
    d = tmp_path_factory.mktemp("consumption")
    sim = simulate(SimConfig(meters=80, days=21, seed=5, fault_share=0.6,
                             faults=("theft_under_registration", "level_shift", "frozen_register")), d,
                   formats=("parquet",))
    with Store(d / "s.duckdb") as s:
        ingest_path(s, sim["files"]["parquet"])
        frame = s.query()
    from wattwatch.detect.registry import DEFAULT_DETECTORS, build_all

    return sim["events"], detect(frame, build_all(list(DEFAULT_DETECTORS))).alerts


def test_consumption_faults_recall_and_precision(consumption_run):
    events, alerts = consumption_run
    r = evaluate(events, alerts)
    for k in ("theft_under_registration", "level_shift", "frozen_register"):
        assert r["per_type"][k]["events"] >= 10
        assert r["per_type"][k]["recall"] >= 0.85, (k, r["per_type"][k])
    assert r["precision"] >= 0.9, r["false_alerts_by_code"]
    # The learned ensemble takes part: it names consumption faults, with its explanation.
    learned = [a for a in alerts if a.detector == "learned_ensemble"]
    assert learned and all(a.code == "WARN_CONSUMPTION_ANOMALY" for a in learned)
    assert all(a.evidence["drivers"] and a.evidence["drivers"][0]["feature"] for a in learned)
