"""Event-level evaluation on hand-computed cases."""

from __future__ import annotations

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
