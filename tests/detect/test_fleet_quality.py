"""The issue's bar on simulated fleets, over several seeds: every rule fault type recalled at
>= 0.95 and alert precision >= 0.95, including the normal events that must not alert."""

from __future__ import annotations

import pytest

from wattwatch.detect.engine import detect
from wattwatch.evaluate.events import RULE_FAULTS, evaluate
from wattwatch.ingest.pipeline import ingest_path
from wattwatch.sim import SimConfig, simulate
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
