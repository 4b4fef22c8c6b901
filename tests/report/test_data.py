"""The report's data preparation: bins within a budget, spikes kept, the overview's counts, bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch import api
from wattwatch.alerts.model import Alert
from wattwatch.errors import InputError
from wattwatch.report import data as rd
from wattwatch.store import Store


def _alert(meter, start, end, code="ERR_PHASE_IMBALANCE_01", severity="warning", score=0.8, **kw):
    return Alert(meter, start, end, code, severity, score, "d", "m", evidence=kw.get("evidence", {"x": 1.0}),
                 action=kw.get("action", "check it"))


@pytest.fixture
def store(tmp_path):
    """Three meters x 4 days at 5 min; M1 carries a one-reading spike of 99 kW on day 2."""
    ts = pd.date_range("2025-01-01", periods=4 * 288, freq="5min", tz="UTC")
    frames = []
    for m in ("M1", "M2", "M3"):
        p = 1.0 + 0.5 * np.sin(np.arange(len(ts)) / 40.0)
        if m == "M1":
            p[400] = 99.0
        frames.append(pd.DataFrame({"meter_id": m, "ts": ts, "p_kw": p, "e_kwh": 1e4 + np.cumsum(p) / 12,
                                    "v_l1_v": 230.0}))
    db = tmp_path / "s.duckdb"
    api.ingest(pd.concat(frames), db)
    with Store(db, read_only=True) as s:
        yield s


def test_plan_keeps_within_the_budget_and_coarsens_with_the_fleet():
    day = 86400.0
    few = rd.plan(5, 10, 35 * day, 300, budget=400_000)
    many = rd.plan(400, 10, 35 * day, 300, budget=400_000)
    assert few[0] == 5 and many[0] < 400
    assert few[1] < many[1]  # fewer meters: finer bins
    for drawn, step in (few, many):
        bins = np.ceil(35 * day / step)
        assert drawn * bins * 10 * 2 <= 400_000 * 1.05
        assert bins >= rd.MIN_BINS * 0.5  # a drawn meter keeps the shape of a day
    # Never finer than the readings: a bin holds at least one reading's worth of time.
    assert rd.plan(1, 1, day, 900, budget=10**9)[1] >= 900


def test_a_one_reading_spike_survives_binning(store):
    t = rd.store_telemetry(store, ["M1"], pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-01-05", tz="UTC"),
                           3600.0, ["p_kw", "e_kwh"])["M1"]
    assert t.bins == 96 and len(t.series["p_kw"]) == 192
    assert max(v for v in t.series["p_kw"] if v is not None) == 99.0  # the mean of its hour would be ~9
    assert t.readings == 4 * 288
    # The energy register keeps its rise: rounded to digits of its range, not of its value.
    e = [v for v in t.series["e_kwh"] if v is not None]
    assert e == sorted(e) and e[-1] - e[0] > 90 and len(set(e)) > 90


def test_overview_counts_and_the_strip_take_the_worst_severity_per_day():
    alerts = rd.alert_dicts([
        _alert("A", "2025-01-01T10:00:00Z", "2025-01-02T01:00:00Z", severity="warning"),
        _alert("A", "2025-01-02T05:00:00Z", "2025-01-02T06:00:00Z", code="SENSOR_FAULT", severity="critical", score=0.9),
        _alert("B", "2025-01-03T00:00:00Z", "2025-01-03T00:00:00Z", code="INFO_SUPPLY_OUTAGE", severity="info"),
    ])
    data = rd.ReportData(alerts=alerts, period=(pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-01-04", tz="UTC")),
                         fleet_meters=None, meters=rd.order_meters(alerts))
    ov = data.overview()
    assert data.meters == ["A", "B"]  # worst first
    assert ov["days"] == 3
    assert ov["worst"] == [[2, 3, 0], [0, 0, 1]]
    assert ov["count"] == [[1, 2, 0], [0, 0, 1]]
    assert ov["by_severity"] == {"info": 1, "warning": 1, "critical": 1}
    assert ov["by_code"]["SENSOR_FAULT"]["critical"] == 1


def test_bounds_select_overlapping_alerts_and_unknown_meters_are_named(store):
    alerts = [_alert("M1", "2025-01-02T00:00:00Z", "2025-01-02T02:00:00Z"),
              _alert("M2", "2025-01-03T00:00:00Z", "2025-01-03T05:00:00Z")]
    d = rd.prepare(alerts, store, start="2025-01-02T01:00:00Z", end="2025-01-03T00:00:00Z")
    assert [a["meter_id"] for a in d.alerts] == ["M1"]  # M2's starts at the end bound: outside
    assert d.period == (pd.Timestamp("2025-01-02T01:00", tz="UTC"), pd.Timestamp("2025-01-03", tz="UTC"))
    with pytest.raises(InputError, match="unknown meter.*NOPE.*known: M1, M2, M3"):
        rd.prepare(alerts, store, meters=["NOPE"])
    with pytest.raises(rd.NothingToReport, match="no alerts .* within --from/--to"):
        rd.prepare(alerts, store, start="2025-02-01")
    with pytest.raises(InputError, match="not before"):
        rd.prepare(alerts, store, start="2025-01-03", end="2025-01-02")
    with pytest.raises(InputError, match="cannot read 'soon' as a time"):
        rd.prepare(alerts, store, start="soon")
    # A meter asked for without alerts still gets its section and channels.
    d = rd.prepare(alerts, store, meters=["M3", "M1"])
    assert d.meters == ["M1", "M3"] and set(d.telemetry) == {"M1", "M3"}


def test_past_the_budget_the_least_severe_meters_are_listed_not_dropped(store):
    alerts = [_alert("M1", "2025-01-02T00:00:00Z", "2025-01-02T02:00:00Z", severity="critical", score=0.95),
              _alert("M2", "2025-01-02T00:00:00Z", "2025-01-02T02:00:00Z", severity="info", score=0.6),
              _alert("M3", "2025-01-02T00:00:00Z", "2025-01-02T02:00:00Z", severity="warning", score=0.8)]
    d = rd.prepare(alerts, store, budget=rd.MIN_BINS * 3 * 2 * 2)  # room for two meters of three channels
    assert d.meters == ["M1", "M3", "M2"]
    assert set(d.telemetry) == {"M1", "M3"} and d.not_drawn == ["M2"]
    assert "2 most severe of 3" in d.telemetry_note and "--meters" in d.telemetry_note


def test_alerts_alone_say_telemetry_was_not_available():
    d = rd.prepare([_alert("M1", "2025-01-02T00:00:00Z", "2025-01-02T02:00:00Z")], None)
    assert not d.telemetry and d.fleet_meters is None
    assert "telemetry was not available" in d.telemetry_note


def test_panels_group_canonical_and_extra_channels():
    p = rd.panels_for(["p_kw", "i_l1_a", "i_n_a", "ups_battery_pct", "pdu_outlet_3_a", "temp_c"])
    assert p == [("power (kW)", ["p_kw"]), ("current (A)", ["i_l1_a", "i_n_a"]), ("temperature (°C)", ["temp_c"]),
                 ("extra channels (%)", ["ups_battery_pct"]), ("extra channels (A)", ["pdu_outlet_3_a"])]


def test_compacted_hours_are_drawn_with_their_min_and_max(tmp_path):
    ts = pd.date_range("2025-01-01", periods=4 * 288, freq="5min", tz="UTC")
    p = np.full(len(ts), 1.0)
    p[400] = 99.0  # 2025-01-02 09:20, in the part compacted below
    db = tmp_path / "c.duckdb"
    api.ingest(pd.DataFrame({"meter_id": "M1", "ts": ts, "p_kw": p, "e_kwh": 100 + np.cumsum(p) / 12}), db)
    with Store(db) as s:
        s.compact(older_than_days=2, as_of="2025-01-05")
    with Store(db, read_only=True) as s:
        assert len(s.query(["M1"])) < len(ts)  # the first two days left the raw table
        t = rd.store_telemetry(s, ["M1"], pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-01-05", tz="UTC"),
                               3600.0, ["p_kw", "e_kwh"])["M1"]
    first_day = t.series["p_kw"][:48]
    assert None not in first_day and max(first_day) == 1.0
    assert max(v for v in t.series["p_kw"] if v is not None) == 99.0
    assert t.readings == len(ts)
    e = [v for v in t.series["e_kwh"] if v is not None]
    assert len(e) == 192 and e == sorted(e)


def test_a_report_past_its_byte_cap_leaves_out_the_least_severe_channels(store):
    from wattwatch.report import html

    alerts = [_alert(m, "2025-01-02T00:00:00Z", "2025-01-02T02:00:00Z", severity=sev, score=sc)
              for m, sev, sc in (("M1", "critical", 0.95), ("M2", "info", 0.6), ("M3", "warning", 0.8))]
    d = rd.prepare(alerts, store)
    assert set(d.telemetry) == {"M1", "M2", "M3"}
    full = len(html.render(d))
    cap = full - 100  # one meter's channels too many
    text = html.fit(d, max_bytes=cap)
    assert len(text) <= cap
    assert "M1" in d.telemetry and "M2" not in d.telemetry and "M2" in d.not_drawn
    assert d.meters == ["M1", "M3", "M2"]  # every meter keeps its section
    assert "most severe of 3" in d.telemetry_note
