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
