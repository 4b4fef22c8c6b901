"""Data in: a SQLite export with one table per device group (seed 004: Meter 1, Meter 2, UPS, PDU,
each with its own columns) mapped table by table as the Data page does, and ingested by an operator."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pandas as pd
import pytest

from wattwatch.dashboard import actions, data
from wattwatch.dashboard.app import _mapping_toml, _preview_columns, _tables
from wattwatch.dashboard.auth import PermissionDenied, Session

MAPS = {"Meter 1": {"DateTime": "ts", "Voltage_L1": "v_l1_v", "Current_L1": "i_l1_a", "ActivePower": "p_kw"},
        "Meter 2": {"DateTime": "ts", "Voltage_L1": "v_l1_v", "Current_L1": "i_l1_a", "ActivePower": "p_kw"},
        "UPS": {"DateTime": "ts", "BatteryCapacity": "extra:ups_battery_pct", "OutputLoad": "extra:ups_load_pct"},
        "PDU": {"DateTime": "ts", "Outlet1_Current": "extra:pdu_outlet1_a", "Outlet2_Current": "extra:pdu_outlet2_a"}}


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "datacenter.db"
    rng = np.random.default_rng(4)
    ts = pd.date_range("2025-01-01", periods=300, freq="1min").strftime("%Y-%m-%d %H:%M:%S")
    with sqlite3.connect(path) as con:
        for t in ("Meter 1", "Meter 2"):
            pd.DataFrame({"DateTime": ts, "Voltage_L1": 220 + rng.normal(0, 1, 300), "Current_L1": 10.0,
                          "ActivePower": 2.2}).to_sql(t, con, index=False)
        pd.DataFrame({"DateTime": ts, "BatteryCapacity": 100.0, "UPSMode": 1.0,
                      "OutputLoad": 40 + rng.normal(0, 1, 300)}).to_sql("UPS", con, index=False)
        pd.DataFrame({"DateTime": ts, "Outlet1_Current": 3.0, "Outlet2_Current": 2.0}).to_sql("PDU", con, index=False)
    return path


def test_sqlite_export_is_mapped_per_table_and_ingested(export, tmp_path):
    tables = _tables(_preview_columns(export), str(export))
    assert set(tables) == set(MAPS) and tables["UPS"] == ["DateTime", "BatteryCapacity", "UPSMode", "OutputLoad"]
    toml = {t: _mapping_toml(pd.DataFrame({"column": cols, "maps_to": [MAPS[t].get(c, "(auto)") for c in cols]}),
                             "Europe/Rome", t) for t, cols in tables.items()}
    assert 'tables = ["UPS"]' in toml["UPS"] and 'ups_battery_pct = "BatteryCapacity"' in toml["UPS"]
    db = tmp_path / "dc.duckdb"
    now = time.time()
    with pytest.raises(PermissionDenied):
        actions.ingest(Session("v", "viewer", now, now), db, export, toml["UPS"])
    assert not db.exists()
    op = Session("o", "operator", now, now)
    counts = [c for t in tables for c in actions.ingest(op, db, export, toml[t])]
    assert sum(c.stored for c in counts) == 1200 and sum(c.rejected for c in counts) == 0
    meters = data.meters_frame(db)
    assert dict(zip(meters["meter_id"], meters["group"])) == {"Meter 1": "Meter", "Meter 2": "Meter", "PDU": "PDU",
                                                             "UPS": "UPS"}
    first, _, chans, n = data.meter_span(db, "UPS")
    assert n == 300 and {"ups_battery_pct", "ups_load_pct"} <= set(chans)
    assert first == pd.Timestamp("2024-12-31T23:00:00Z")                   # local Rome time -> UTC
