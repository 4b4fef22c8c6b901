"""Fixtures of the dashboard tests: users (one operator, one viewer), a small simulated store with
alerts from the rule detectors, its labels, and a helper that counts what a store holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

OPERATOR = ("olga", "op-secret-1")
VIEWER = ("victor", "view-secret-2")


@pytest.fixture(scope="session")
def users_env():
    from wattwatch.dashboard.auth import hash_password

    return (f"{OPERATOR[0]}:operator:{hash_password(OPERATOR[1])};"
            f"{VIEWER[0]}:viewer:{hash_password(VIEWER[1])}")


@pytest.fixture(scope="session")
def sim_store(tmp_path_factory):
    """(store, events.json, telemetry.csv) of 5 meters x 3 days with faults, judged by the rules."""
    from wattwatch import api
    from wattwatch.detect.registry import DEFAULT_DETECTORS, LEARNED
    from wattwatch.sim import SimConfig, simulate

    root = tmp_path_factory.mktemp("dash")
    sim = simulate(SimConfig(meters=5, days=3, seed=11, fault_share=0.8))
    db = root / "s.duckdb"
    api.ingest(sim["frame"], db)
    res = api.detect(db, detectors=[n for n in DEFAULT_DETECTORS if n not in LEARNED])
    assert len(res.alerts) >= 3, "the simulated store has too few alerts to test with"
    events = root / "events.json"
    events.write_text(json.dumps(sim["events"], default=str))
    csv = root / "telemetry.csv"
    sim["frame"].to_csv(csv, index=False)
    return db, events, csv


@pytest.fixture
def store_copy(sim_store, tmp_path):
    db = tmp_path / "s.duckdb"
    shutil.copy(sim_store[0], db)
    return db


def snapshot(db: Path) -> dict:
    """Everything a write could change: the alerts with status and note, the rule resets, readings."""
    from wattwatch.store import Store

    with Store(db, read_only=True) as s:
        alerts = s.con.execute("SELECT id, status, note, status_at FROM alerts ORDER BY id").fetchall()
        resets = s.con.execute("SELECT count(*) FROM rule_resets").fetchone()[0]
        readings = s.con.execute("SELECT count(*) FROM readings_raw").fetchone()[0]
    return {"alerts": alerts, "resets": resets, "readings": readings}
