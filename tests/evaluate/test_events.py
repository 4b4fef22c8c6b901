"""Event-level evaluation on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from wattwatch.alerts.model import Alert
from wattwatch.evaluate.events import evaluate


def A(meter, start, end, code):
    return Alert(meter, start, end, code, "warning", 0.9, "x", "m")


EVENTS = [
    {"meter_id": "M1", "type": "neutral_bypass", "start": "2025-01-10T10:00Z", "end": "2025-01-10T12:00Z"},
    {"meter_id": "M2", "type": "open_ct", "start": "2025-01-10T10:00Z", "end": "2025-01-10T12:00Z"},
    {"meter_id": "M3", "type": "supply_outage", "start": "2025-01-10T10:00Z", "end": "2025-01-10T11:00Z"},
    {"meter_id": "M4", "type": "level_shift", "start": "2025-01-11T00:00Z", "end": "2025-01-14T00:00Z"},
    {"meter_id": "M5", "type": "motor_start", "start": "2025-01-10T10:00Z", "end": "2025-01-10T10:00Z"},
]


def test_recall_precision_f1_and_delay_by_hand():
    alerts = [
        A("M1", "2025-01-10T10:30Z", "2025-01-10T11:50Z", "ERR_IMBAL_LIMIT_EXCEEDED"),  # TP, 30 min late
        A("M2", "2025-01-10T10:00Z", "2025-01-10T12:00Z", "ERR_PHASE_IMBALANCE_01"),  # wrong code: FP, miss
        A("M3", "2025-01-10T10:05Z", "2025-01-10T10:55Z", "INFO_SUPPLY_OUTAGE"),  # outage reported: TP
        A("M4", "2025-01-12T00:00Z", "2025-01-12T12:00Z", "WARN_BASELINE_DEVIATION"),  # consumption: TP
        A("M5", "2025-01-10T10:00Z", "2025-01-10T10:10Z", "ERR_IMBAL_LIMIT_EXCEEDED"),  # motor start: FP
        A("M1", "2025-01-10T14:30Z", "2025-01-10T15:00Z", "ERR_IMBAL_LIMIT_EXCEEDED"),  # 2.5 h after: FP
    ]
    r = evaluate(EVENTS, alerts, tolerance_s=3600)
    assert r["per_type"]["neutral_bypass"]["recall"] == 1.0
    assert r["per_type"]["neutral_bypass"]["median_delay_min"] == pytest.approx(30)
    assert r["per_type"]["open_ct"]["recall"] == 0.0
    assert r["per_type"]["level_shift"]["detected"] == 1
    assert (r["events"], r["detected"]) == (3, 2)  # faults only: bypass, open CT, level shift
    assert r["recall"] == pytest.approx(2 / 3)
    assert (r["alerts"], r["true_alerts"]) == (6, 3)
    assert r["precision"] == pytest.approx(0.5)
    assert r["f1"] == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert r["false_alerts_by_code"] == {"ERR_IMBAL_LIMIT_EXCEEDED": 2, "ERR_PHASE_IMBALANCE_01": 1}


def test_no_alerts_means_zero_recall_and_undefined_precision():
    r = evaluate(EVENTS, [])
    assert r["recall"] == 0 and r["alerts"] == 0 and r["precision"] != r["precision"]  # NaN


# ------------------------------------------------------------------------ visibility at a cadence


def test_events_the_readings_cannot_show_are_invisible_with_the_reason():
    events = [
        # An intermittent one-hour bypass seen by one hourly reading: a blip, not a fault.
        {"meter_id": "M1", "type": "neutral_bypass", "start": "2025-01-10T10:00Z", "end": "2025-01-10T10:00Z"},
        {"meter_id": "M2", "type": "neutral_bypass", "start": "2025-01-10T10:00Z", "end": "2025-01-10T11:00Z"},
        # 3 readings lost of 10: below the 4 a loss must count to stand out from random losses.
        {"meter_id": "M3", "type": "packet_loss", "start": "2025-01-10T00:00Z", "end": "2025-01-10T09:00Z",
         "detail": {"loss_rate": 0.3}},
        {"meter_id": "M4", "type": "packet_loss", "start": "2025-01-10T00:00Z", "end": "2025-01-11T23:00Z",
         "detail": {"loss_rate": 0.3}},
        # A fault that lay between two hourly readings keeps its true span: it covers none.
        {"meter_id": "M5", "type": "harmonic_noise", "start": "2025-01-10T10:10Z", "end": "2025-01-10T10:40Z"},
    ]
    alerts = [A("M2", "2025-01-10T10:00Z", "2025-01-10T11:00Z", "ERR_IMBAL_LIMIT_EXCEEDED"),
              A("M1", "2025-01-10T10:00Z", "2025-01-10T10:00Z", "ERR_IMBAL_LIMIT_EXCEEDED"),
              A("M4", "2025-01-10T02:00Z", "2025-01-11T20:00Z", "ALRM_PKT_LOSS_CRIT")]
    r = evaluate(events, alerts, cadence_s=3600)
    bypass = r["per_type"]["neutral_bypass"]
    assert (bypass["events"], bypass["visible"], bypass["detected_visible"]) == (2, 1, 1)
    assert bypass["invisible"] == {"under 2 readings": 1}
    loss = r["per_type"]["packet_loss"]
    assert (loss["visible"], loss["detected_visible"]) == (1, 1) and loss["invisible"] == {"under 4 readings lost": 1}
    assert r["per_type"]["harmonic_noise"]["visible"] == 0
    reasons = {e["meter_id"]: e["reason"] for e in r["invisible_events"]}
    assert set(reasons) == {"M1", "M3", "M5"}
    assert "covers 1 reading" in reasons["M1"] and "loses 3 of 10" in reasons["M3"] and "covers 0 readings" in reasons["M5"]
    assert r["recall_visible"] == 1.0 and r["recall"] == pytest.approx(3 / 5)
    # An alert on an invisible fault still names a real fault: it is not a false alarm.
    assert r["precision"] == 1.0
    # Read every 5 minutes the hour-long bypass and both losses show (33 of 109 readings lost).
    r5 = evaluate(events[1:4], alerts, cadence_s=300)
    assert r5["visible_events"] == 3 and r5["invisible_events"] == []


def test_without_a_cadence_every_event_is_visible_and_load_events_finds_the_fleets(tmp_path):
    import json

    r = evaluate(EVENTS, [])
    assert r["visible_events"] == r["events"] == 3 and r["invisible_events"] == []
    (tmp_path / "events.json").write_text(json.dumps(EVENTS[:1]))
    from wattwatch.evaluate.events import load_events

    assert "cadence_s" not in load_events(tmp_path / "events.json")[0]
    (tmp_path / "meters.json").write_text(json.dumps({"config": {"step": "60min"}, "meters": []}))
    ev = load_events(tmp_path / "events.json")
    assert ev[0]["cadence_s"] == 3600.0
    assert evaluate(ev, [])["visible_events"] == 1  # 10:00 to 12:00 hourly: three readings
    assert evaluate(ev, [], cadence_s={"M1": 4 * 3600.0})["visible_events"] == 0  # one 4-hourly reading


def test_visibility_rules_follow_the_packet_loss_rule():
    from wattwatch.detect.rules.packets import PacketLossConfig
    from wattwatch.evaluate.events import Visibility

    v, c = Visibility(), PacketLossConfig()
    assert (v.min_lost, v.loss_limit) == (c.min_lost, c.limit)
    with pytest.raises(ValueError):
        Visibility(min_readings=0)


def test_a_loss_with_a_data_gap_is_visible_as_the_rule_finds_it():
    """q64: the packet-loss rule finds one gap of ``gap_lost`` (3) readings lost in a row lasting
    ``gap_s`` (2 h) whatever the share (q56): such a fault is visible though it lost under
    ``min_lost`` readings; two in a row, or three at 15 minutes (an hour), are not."""
    from wattwatch.detect.rules.packets import PacketLossConfig
    from wattwatch.evaluate.events import Visibility

    v, c = Visibility(), PacketLossConfig()
    assert (v.gap_lost, v.gap_s) == (c.gap_lost, c.gap_s)

    def ev(m, run, rate=0.3, end="2025-01-10T09:00Z"):
        return {"meter_id": m, "type": "packet_loss", "start": "2025-01-10T00:00Z", "end": end,
                "detail": {"loss_rate": rate, "lost_in_a_row": run}}

    events = [ev("G3", 3), ev("G2", 2), {**ev("OLD", 3), "detail": {"loss_rate": 0.3}},
              ev("T3", 3, 0.03, "2025-01-14T03:00Z")]   # 3 of 100: 3 %, a 4-h gap all the same
    r = evaluate(events, [], cadence_s=3600)
    assert sorted(e["meter_id"] for e in r["invisible_events"]) == ["G2", "OLD"]
    assert evaluate(events, [], cadence_s=3600, rules=Visibility(gap_lost=0))["visible_events"] == 0
    r15 = evaluate([ev("G3", 3, 0.3, "2025-01-10T02:15Z")], [], cadence_s=900)   # 3 of 10 at 15 min: 1 h
    assert r15["visible_events"] == 0
    assert evaluate([ev("H", 3)], [], cadence_s=1799.9)["visible_events"] == 1   # 4 cadences: 2 h, within 15 %
    with pytest.raises(ValueError):
        Visibility(gap_s=0)


def test_the_simulator_labels_the_longest_run_a_packet_loss_lost(clean_fleet):
    """The fleet's packet-loss labels carry the longest run of readings lost in a row inside the
    span (``lost_in_a_row``), as the readings show it."""
    f = clean_fleet["frame"]
    losses = [e for e in clean_fleet["events"] if e["type"] == "packet_loss"]
    assert losses
    for e in losses:
        t = pd.to_datetime(f.loc[f["meter_id"] == e["meter_id"], "ts"], utc=True)
        grid = pd.date_range(pd.Timestamp(e["start"]), pd.Timestamp(e["end"]), freq="5min")
        runs = np.diff(np.flatnonzero(np.r_[True, grid.isin(t), True])) - 1
        assert e["detail"]["lost_in_a_row"] == runs.max() > 0
