"""What the pages read: the ranking, the binned meter series, counts, the confusion table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from wattwatch.dashboard import data


def test_ranking_puts_open_critical_first_and_keeps_quiet_meters():
    t = pd.Timestamp("2025-01-01", tz="UTC")
    a = pd.DataFrame({"meter_id": ["A", "A", "B", "C", "C"], "code": ["X"] * 5,
                      "severity": ["info", "info", "critical", "warning", "warning"],
                      "status": ["open", "open", "open", "cleared", "open"], "score": [0.6, 0.7, 0.95, 0.99, 0.8],
                      "start": [t] * 5, "end": [t] * 5})
    meters = pd.DataFrame({"meter_id": ["A", "B", "C", "D"]})
    r = data.ranking(a, meters)
    assert list(r["meter_id"]) == ["A", "B", "C", "D"]      # 2 open, then 1 open critical, then 1 open warning
    assert list(r["open_alerts"]) == [2, 1, 1, 0] and r.loc[1, "worst_open"] == "critical"


def test_meter_groups():
    g = data.meter_group(pd.Series(["Meter 1", "Meter 2", "PDU-07", "M00012", "UPS", "12"]))
    assert list(g) == ["Meter", "Meter", "PDU", "M", "UPS", "12"]


def test_meter_series_bins_a_year_and_keeps_a_spike(tmp_path):
    from wattwatch import api

    n = 365 * 1440   # a year of 1-minute readings
    ts = pd.date_range("2025-01-01", periods=n, freq="1min", tz="UTC")
    p = np.full(n, 2.0)
    p[200_000] = 50.0   # one reading
    db = tmp_path / "y.duckdb"
    api.ingest(pd.DataFrame({"meter_id": "m1", "ts": ts, "p_kw": p}), db)
    series, binned = data.meter_series(db, "m1", ["p_kw"])
    assert binned and len(series) <= data.POINT_BUDGET
    assert series["p_kw_max"].max() == 50.0 and series["p_kw_min"].min() == 2.0
    # Zoomed to a day: every reading, raw.
    day, binned = data.meter_series(db, "m1", ["p_kw"], ts[199_500], ts[200_939])
    assert not binned and len(day) == 1440 and day["p_kw"].max() == 50.0


def test_confusion_counts_types_by_code_and_misses():
    t = pd.Timestamp("2025-01-01", tz="UTC")
    events = [{"meter_id": "A", "type": "neutral_tamper", "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T02:00:00Z"},
              {"meter_id": "B", "type": "neutral_tamper", "start": "2025-01-01T00:00:00Z", "end": "2025-01-01T01:00:00Z"}]
    alerts = pd.DataFrame({"meter_id": ["A", "A"], "code": ["ERR_IMBAL_LIMIT_EXCEEDED", "SENSOR_FAULT"],
                           "start": [t, t + pd.Timedelta(hours=1)], "end": [t + pd.Timedelta(hours=1)] * 2})
    c = data.confusion(events, alerts)
    assert c.loc["neutral_tamper"].to_dict() == {"ERR_IMBAL_LIMIT_EXCEEDED": 1, "SENSOR_FAULT": 1, "(none)": 1}


def test_counts_over_time_and_csv_export(sim_store):
    a = data.alerts_frame(sim_store[0])
    c = data.counts_over_time(a)
    assert c[["info", "warning", "critical"]].to_numpy().sum() == len(a)
    csv = data.export_csv(a).decode()
    assert csv.splitlines()[0].startswith("id,meter_id,start,end,code,severity,score")
    assert len(pd.read_csv(__import__("io").StringIO(csv))) == len(a)


def test_evidence_table_keeps_each_value_as_written():
    t = data.evidence_table('{"readings": 24, "duration_min": 115.0, "phases": [1, 2], "ok": true, "x": null}')
    assert dict(zip(t["field"], t["value"])) == {"readings": "24", "duration_min": "115.0", "phases": "[1, 2]",
                                                 "ok": "true", "x": "null"}


def test_the_badge_says_a_provisional_alert_and_a_pending_continuation():
    """(rpf) A provisional alert says so; a final alert continued by one still provisional (the
    stream writes its merged version, the follower ``pending``) says its continuation is
    provisional, with the follower's detector; a final continuation says nothing."""
    member = {"id": "a", "detector": "seasonal_profile"}
    follower = {"id": "b", "detector": "baseline_macd"}
    assert data.provisional_badge({"provisional": True, "waits_for": ["sensor_fault"]}) == \
        " · **provisional** (waits for sensor\\_fault)"
    pending = {"continued": {"alerts": [member, {**follower, "pending": True}]}}
    assert data.provisional_badge(json.dumps(pending)) == " · **continuation provisional** (baseline\\_macd)"
    assert data.provisional_badge({"continued": {"alerts": [member, follower]}}) == ""
